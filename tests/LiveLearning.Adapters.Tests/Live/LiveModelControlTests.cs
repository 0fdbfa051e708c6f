using LiveLearning.Backends;
using LiveLearning.Governance;
using NUnit.Framework;

namespace LiveLearning.Tests.Live;

/// <summary>The owner's controls: pause, versions and their history, snapshots, rollback, scopes, replay, skipped steps.</summary>
[TestFixture]
public sealed class LiveModelControlTests
{
    [Test]
    public async Task PausedLearningQueuesItemsAndResumingLearnsThem()
    {
        await using LiveModel model = LiveTestKit.Create();
        model.PauseLearning();
        Assert.That(model.GetStatistics()["default"].Paused, Is.True);
        for (int i = 0; i < 3; i++)
        {
            Assert.That((await model.LearnAsync(new Demonstration { Prompt = $"Item {i}", Completion = " ok" })).Accepted, Is.True);
        }

        await Task.Delay(200);
        ScopeStatistics paused = model.GetStatistics()["default"];
        Assert.That(paused.Steps, Is.Zero);
        Assert.That(paused.QueueDepth, Is.EqualTo(3));
        Assert.That(model.Version.Number, Is.EqualTo(1));
        model.ResumeLearning();
        await model.WaitForIdleAsync();
        ScopeStatistics resumed = model.GetStatistics()["default"];
        Assert.That(resumed.Learned, Is.EqualTo(3));
        Assert.That(resumed.QueueDepth, Is.Zero);
        Assert.That(model.Version.Number, Is.GreaterThan(1));
    }

    [Test]
    public async Task VersionsCarryIdentityParentTimeCountsAndAreWatchable()
    {
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider(new DateTimeOffset(2026, 12, 2, 12, 0, 0, TimeSpan.Zero));
        await using LiveModel model = LiveTestKit.Create(o => o.Learner.MaxBatchItems = 1, new LiveModelServices { Time = time });
        AdapterVersion initial = model.Version;
        Assert.That(initial.Id, Is.EqualTo("default@1"));
        Assert.That(initial.Reason, Is.EqualTo("initial"));
        Assert.That(initial.CreatedAt, Is.EqualTo(time.GetUtcNow()));
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var seen = new List<AdapterVersion>();
        IAsyncEnumerable<AdapterVersion> versions = model.WatchVersionsAsync("default", stop.Token); // registered here
        Task watching = Task.Run(async () =>
        {
            await foreach (AdapterVersion v in versions)
            {
                seen.Add(v);
                if (seen.Count == 2)
                {
                    return;
                }
            }
        });
        time.Advance(TimeSpan.FromMinutes(5));
        LearnReceipt a = await model.LearnAsync(new Demonstration { Prompt = "One", Completion = " 1" });
        LearnReceipt b = await model.LearnAsync(new Demonstration { Prompt = "Two", Completion = " 2" });
        Assert.That(b.SequenceNumber, Is.GreaterThan(a.SequenceNumber));
        Assert.That(a.ReceivedAt, Is.EqualTo(time.GetUtcNow()));
        await model.WaitForIdleAsync();
        await watching;
        Assert.That(seen.Select(v => v.Number), Is.EqualTo(new[] { 2L, 3L }));
        Assert.That(seen[0].ParentId, Is.EqualTo(initial.Id));
        Assert.That(seen[1].ParentId, Is.EqualTo(seen[0].Id));
        Assert.That(seen[1].Items, Is.EqualTo(2));
        Assert.That(seen[1].JournalPosition, Is.EqualTo(b.SequenceNumber));
        Assert.That(seen[1].CreatedAt, Is.EqualTo(time.GetUtcNow()));
        Assert.That(seen.Select(v => v.ContentHash).Distinct().Count(), Is.EqualTo(2));
        Assert.That(model.GetVersionHistory().Select(v => v.Id), Is.EqualTo(new[] { "default@1", "default@2", "default@3" }));
        Assert.That(LiveModel.ContentHash(model.GetWeights("default@3")), Is.EqualTo(seen[1].ContentHash));
    }

    [Test]
    public async Task RollbackToAKeptVersionRestoresItsWeightsAndLearningContinuesFromThem()
    {
        await using LiveModel model = LiveTestKit.Create(o =>
        {
            o.Learner.StepsPerItem = 20;
            o.VersionHistoryCapacity = 64;
        });
        await model.LearnAsync(new Demonstration { Prompt = "The capital of France is", Completion = " Paris." });
        await model.WaitForIdleAsync();
        AdapterVersion good = model.Version;
        string goodText = (await model.CompleteAsync("The capital of France is", new GenerationOptions { MaxTokens = 16 })).Text;
        Assert.That(goodText, Does.StartWith(" Paris"));
        await model.LearnAsync(new Demonstration { Prompt = "The capital of France is", Completion = " Lyon." });
        await model.WaitForIdleAsync();
        Assert.That((await model.CompleteAsync("The capital of France is", new GenerationOptions { MaxTokens = 16 })).Text, Does.StartWith(" Lyon"));

        AdapterVersion rolled = await model.RollbackAsync(good.Id);
        Assert.That(rolled.Reason, Is.EqualTo("rollback"));
        Assert.That(rolled.ContentHash, Is.EqualTo(good.ContentHash), "the weights of the target, bit for bit");
        Assert.That(rolled.Number, Is.GreaterThan(good.Number));
        Assert.That(model.Version, Is.EqualTo(rolled));
        Assert.That((await model.CompleteAsync("The capital of France is", new GenerationOptions { MaxTokens = 16 })).Text, Is.EqualTo(goodText), "it answers as the rolled-back version did");

        await model.LearnAsync(new Demonstration { Prompt = "Two plus two is", Completion = " four." });
        await model.WaitForIdleAsync();
        AdapterVersion next = model.GetVersionHistory().Single(v => v.Number == rolled.Number + 1);
        Assert.That(next.ParentId, Is.EqualTo(rolled.Id), "learning goes on from the rolled-back version");
    }

    [Test]
    public async Task ASnapshotRestoresExactlyTheStateItCaptured()
    {
        // Two models learn the same stream; one takes a snapshot midway, goes astray, and rolls back to the snapshot;
        // from there both learn the same items: the weights must be bit-identical (optimizer moments, replay, KTO included).
        var snapshots = new Storage.InMemorySnapshotStore();
        await using LiveModel a = LiveTestKit.Create(Deterministic, new LiveModelServices { Snapshots = snapshots });
        await using LiveModel b = LiveTestKit.Create(Deterministic);
        Feedback[] first = [new Demonstration { Prompt = "One", Completion = " 1" }, new Rating { Prompt = "Two", Completion = " 2", Positive = true }, new Preference { Prompt = "Three", Chosen = " 3", Rejected = " x" }];
        Feedback[] second = [new Demonstration { Prompt = "Four", Completion = " 4" }, new Rating { Prompt = "Five", Completion = " 5", Positive = false }];
        await LearnAll(a, first);
        await LearnAll(b, first);
        SnapshotInfo snapshot = await a.SnapshotAsync("before-detour");
        Assert.That(snapshot.Label, Is.EqualTo("before-detour"));
        Assert.That(snapshot.Version, Is.EqualTo(a.Version));
        Assert.That((await snapshots.ListAsync("default", CancellationToken.None)).Select(s => s.Id), Has.Member(snapshot.Id));

        await LearnAll(a, [new Demonstration { Prompt = "Detour", Completion = " wrong" }, new Demonstration { Prompt = "More", Completion = " wrong" }, new Demonstration { Prompt = "Even", Completion = " more" }, new Demonstration { Prompt = "And", Completion = " more" }, new Demonstration { Prompt = "Yet", Completion = " more" }, new Demonstration { Prompt = "Last", Completion = " one" }, new Demonstration { Prompt = "Really", Completion = " last" }, new Demonstration { Prompt = "Done", Completion = " now" }, new Demonstration { Prompt = "Over", Completion = " flow" }]);
        Assert.That(a.GetVersionHistory().Select(v => v.Id), Has.No.Member(snapshot.Version.Id), "the version left the in-memory history; only the snapshot has it");
        AdapterVersion restored = await a.RollbackAsync(snapshot.Version.Id);
        Assert.That(restored.ContentHash, Is.EqualTo(snapshot.Version.ContentHash));

        await LearnAll(a, second);
        await LearnAll(b, second);
        Assert.That(a.Version.ContentHash, Is.EqualTo(b.Version.ContentHash), "resuming from the snapshot equals never having made the detour");

        static void Deterministic(LiveModelOptions o)
        {
            o.Learner.Batching = BatchPolicy.Fixed;
            o.Learner.MaxBatchItems = 1;
            o.Learner.StepsPerItem = 2;
            o.Replay.Ratio = 1;
            o.VersionHistoryCapacity = 2;
        }
    }

    [Test]
    public async Task AUserScopeLearnsOverTheFrozenOrganisationScopeAndFollowsItsVersions()
    {
        await using LiveModel model = LiveTestKit.Create(o =>
        {
            o.Learner.StepsPerItem = 20;
            o.Scopes.Add(new ScopeOptions { Name = "acme" });
            o.Scopes.Add(new ScopeOptions { Name = "acme/alice", Parent = "acme" });
        });
        Assert.That(model.Scopes, Is.EqualTo(new[] { "default", "acme", "acme/alice" }));
        Assert.That(model.GetVersion("acme/alice").BaseVersionId, Is.EqualTo("acme@1"));

        await model.LearnAsync(new Demonstration { Prompt = "Our product is called", Completion = " Rocket.", Scope = "acme" });
        await model.WaitForIdleAsync();
        AdapterVersion org = model.GetVersion("acme");
        Assert.That(model.GetVersion("acme/alice").BaseVersionId, Is.EqualTo(org.Id), "the user scope was rebased onto the new organisation version");
        Assert.That(model.GetVersion("acme/alice").Reason, Is.EqualTo("rebased"));
        Assert.That((await model.CompleteAsync("Our product is called", new GenerationOptions { MaxTokens = 8 }, "acme/alice")).Text, Is.EqualTo(" Rocket."), "the user sees what the organisation learned");

        string orgHash = org.ContentHash;
        await model.LearnAsync(new Demonstration { Prompt = "My name is", Completion = " Alice.", Scope = "acme/alice" });
        await model.WaitForIdleAsync();
        Assert.That(model.GetVersion("acme").ContentHash, Is.EqualTo(orgHash), "the organisation adapter stays frozen under the user's");
        Assert.That((await model.CompleteAsync("My name is", new GenerationOptions { MaxTokens = 8 }, "acme/alice")).Text, Is.EqualTo(" Alice."));
        Assert.That((await model.CompleteAsync("My name is", new GenerationOptions { MaxTokens = 8 }, "acme")).Text, Is.Not.EqualTo(" Alice."), "what the user taught stays in the user's scope");
        Assert.That((await model.CompleteAsync("Our product is called", new GenerationOptions { MaxTokens = 8 }, "default")).Text, Is.Not.EqualTo(" Rocket."));

        AdapterVersion bob = model.CreateScope(new ScopeOptions { Name = "acme/bob", Parent = "acme" });
        Assert.That(bob.BaseVersionId, Is.EqualTo(org.Id));
        Assert.That(() => model.CreateScope(new ScopeOptions { Name = "acme/bob" }), Throws.ArgumentException.With.Message.Contains("exists"));
        Assert.That(() => model.CreateScope(new ScopeOptions { Name = "x", Parent = "nobody" }), Throws.ArgumentException.With.Message.Contains("nobody"));
        Assert.That(() => model.CreateScope(new ScopeOptions { Name = "bad name" }), Throws.ArgumentException);
    }

    [Test]
    public async Task PrivateItemsAreLearnedButNeverReplayedAndReplayMixesInAtTheRatio()
    {
        var ledger = new InMemoryLedger();
        await using LiveModel model = LiveTestKit.Create(
            o =>
            {
                o.Learner.MaxBatchItems = 1;
                o.Learner.Batching = BatchPolicy.Fixed;
                o.Replay.Ratio = 1;
            },
            new LiveModelServices { Ledger = ledger });
        LearnReceipt secret = await model.LearnAsync(new Demonstration { Prompt = "My password is", Completion = " hunter2", Private = true });
        for (int i = 0; i < 6; i++)
        {
            await model.LearnAsync(new Demonstration { Prompt = $"Public {i}", Completion = " fine" });
        }

        await model.WaitForIdleAsync();
        ScopeStatistics stats = model.GetStatistics()["default"];
        Assert.That(stats.Learned, Is.EqualTo(7));
        Assert.That(stats.ReplayItems, Is.EqualTo(6), "the private item is not in the buffer");
        List<LedgerEntry> steps = [.. ledger.Entries.Where(e => e.Event == LedgerEvent.Step)];
        Assert.That(steps, Has.Count.EqualTo(7));
        Assert.That(steps[1].Items, Has.Count.EqualTo(1), "the private item learned first left nothing to replay");
        Assert.That(steps.Skip(2).Select(s => s.Items!.Count), Has.All.EqualTo(2), "one new and one replayed item per step once the buffer has any");
        Assert.That(steps.SelectMany(s => s.Items!).Count(seq => seq == secret.SequenceNumber), Is.EqualTo(1), "the private item was learned once and never replayed");
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task ANonFiniteLossOrGradientSkipsTheStepAndLeavesTheWeightsUntouched(bool gradient)
    {
        var log = new CapturingLoggerProvider();
        var poisoned = new PoisoningBackend(new LiveLearning.Lora.LoraBackend(LiveLearning.Models.LlamaModel.Load(LiveTestKit.ModelDirectory), LiveTestKit.Lora, ownsModel: true));
        var options = new LiveModelOptions();
        options.Replay.Ratio = 0;
        options.Learner.Optimizer = new OptimizerOptions { LearningRate = 1e-2f };
        await using var model = new LiveModel(poisoned, options, new LiveModelServices { LoggerFactory = log });
        string before = model.Version.ContentHash;
        poisoned.PoisonGradients = gradient;
        poisoned.Poison = true;
        Assert.That((await model.LearnAsync(new Demonstration { Prompt = "Poison", Completion = " pill" })).Accepted, Is.True);
        await model.WaitForIdleAsync();
        ScopeStatistics stats = model.GetStatistics()["default"];
        Assert.That(stats.SkippedSteps, Is.EqualTo(1));
        Assert.That(stats.Steps, Is.Zero);
        Assert.That(model.Version.ContentHash, Is.EqualTo(before), "no weight changed");
        Assert.That(log.Events.Select(e => e.Id.Id), Has.Member(6), "the skip was logged under its event id");

        poisoned.Poison = false;
        await model.LearnAsync(new Demonstration { Prompt = "Healthy", Completion = " item" });
        await model.WaitForIdleAsync();
        Assert.That(model.GetStatistics()["default"].Steps, Is.EqualTo(1));
        Assert.That(model.Version.ContentHash, Is.Not.EqualTo(before));
    }

    private static async Task LearnAll(LiveModel model, IEnumerable<Feedback> items)
    {
        foreach (Feedback f in items)
        {
            LearnReceipt receipt = await model.LearnAsync(f);
            Assert.That(receipt.Accepted, Is.True, receipt.Message);
        }

        await model.WaitForIdleAsync();
    }

    /// <summary>A backend whose trainers report a NaN loss (or, with <see cref="PoisonGradients"/>, a NaN gradient norm) while <see cref="Poison"/> is set.</summary>
    private sealed class PoisoningBackend(ILearningBackend inner) : ILearningBackend
    {
        public volatile bool Poison;

        public volatile bool PoisonGradients;

        public string ModelId => inner.ModelId;

        public int ContextLength => inner.ContextLength;

        public bool SupportsChat => inner.SupportsChat;

        public IReadOnlyList<int> EncodePrompt(string text) => inner.EncodePrompt(text);

        public IReadOnlyList<int> EncodeChatPrompt(IReadOnlyList<Microsoft.Extensions.AI.ChatMessage> messages) => inner.EncodeChatPrompt(messages);

        public IReadOnlyList<int> EncodeCompletion(string completion, PromptKind kind, bool appendEnd) => inner.EncodeCompletion(completion, kind, appendEnd);

        public IAdapterTrainer CreateTrainer(TrainerOptions options) => new Trainer(this, inner.CreateTrainer(options));

        public IAdapterWeights ImportWeights(AdapterWeightsData data) => inner.ImportWeights(data);

        public CompletionScore Score(IReadOnlyList<int> prompt, IReadOnlyList<int> completion, IReadOnlyList<IAdapterWeights> adapters) => inner.Score(prompt, completion, adapters);

        public IAsyncEnumerable<GeneratedToken> GenerateAsync(IReadOnlyList<int> prompt, PromptKind kind, GenerationOptions options, IReadOnlyList<IAdapterWeights> adapters, CancellationToken cancellationToken) =>
            inner.GenerateAsync(prompt, kind, options, adapters, cancellationToken);

        public IDisposable EnterLearningPriority(double share) => inner.EnterLearningPriority(share);

        public void Dispose() => inner.Dispose();

        private sealed class Trainer(PoisoningBackend owner, IAdapterTrainer inner) : IAdapterTrainer
        {
            public long ParameterCount => inner.ParameterCount;

            public long StateBytes => inner.StateBytes;

            public long Step => inner.Step;

            public TrainingStepResult ComputeGradients(IReadOnlyList<TrainingExample> batch, ObjectiveOptions objectives, IReadOnlyList<IAdapterWeights> frozenBelow)
            {
                TrainingStepResult result = inner.ComputeGradients(batch, objectives, frozenBelow);
                return owner.Poison && !owner.PoisonGradients ? result with { Loss = double.NaN } : result;
            }

            public double ClipGradients(double maxNorm) => owner.Poison && owner.PoisonGradients ? double.NaN : inner.ClipGradients(maxNorm);

            public void ApplyOptimizer(OptimizerOptions options) => inner.ApplyOptimizer(options);

            public IAdapterWeights Publish() => inner.Publish();

            public void Trim(IAdapterWeights published) => inner.Trim(published);

            public TrainerState Capture() => inner.Capture();

            public void Restore(TrainerState state) => inner.Restore(state);

            public void Reset(IAdapterWeights weights) => inner.Reset(weights);
        }
    }
}
