using LiveLearning.Backends;
using LiveLearning.Governance;
using LiveLearning.Storage;
using NUnit.Framework;

namespace LiveLearning.Tests.Live;

/// <summary>What the loop keeps: snapshots, per-scope options, trainer memory, the ledger's view, what a rating teaches.</summary>
[TestFixture]
public sealed class LiveModelStateTests
{
    private static readonly Feedback[] Before = [new Demonstration { Prompt = "One", Completion = " 1" }, new Rating { Prompt = "Two", Completion = " 2", Positive = true }];

    private static readonly Feedback[] After = [new Demonstration { Prompt = "Four", Completion = " 4" }, new Rating { Prompt = "Five", Completion = " 5", Positive = false }];

    [Test]
    public async Task ASnapshotRestoresTheLoraPlusRatioOfTheScopesAdapter()
    {
        // The trainer state is restored through LoraAdapter.Import, which rebuilds the LoraConfig from adapter_config.json:
        // LoRA+ (LoraPlusRatio) is not a PEFT key, so the restored trainer steps B at the plain learning rate.
        await AssertSnapshotResumesExactly(LiveTestKit.Lora with { LoraPlusRatio = 16 });
    }

    [Test]
    public async Task ASnapshotRestoresTheDropoutSeedOfTheScopesAdapter()
    {
        // Likewise the scope's seed (Config.Seed, which seeds every dropout mask) is not in adapter_config.json: the
        // restored trainer draws its masks from seed 0 instead of the scope's seed.
        await AssertSnapshotResumesExactly(LiveTestKit.Lora with { Dropout = 0.1 });
    }

    [Test]
    public async Task TwoModelsSharingASnapshotStoreRollBackToTheirOwnSnapshots()
    {
        // AddLiveLearning registers one ISnapshotStore for every model of the container. Snapshot ids are
        // "{scope}@{number}#{count}" and RollbackAsync looks snapshots up by scope name and version id only, so model
        // b's snapshot replaces model a's (same id "default@2#1") and a's rollback restores b's weights.
        var store = new InMemorySnapshotStore();
        await using LiveModel a = LiveTestKit.Create(o => { o.Name = "a"; o.VersionHistoryCapacity = 1; }, new LiveModelServices { Snapshots = store });
        await using LiveModel b = LiveTestKit.Create(o => { o.Name = "b"; o.VersionHistoryCapacity = 1; }, new LiveModelServices { Snapshots = store });
        await LearnAll(a, [new Demonstration { Prompt = "The capital of France is", Completion = " Paris." }]);
        await LearnAll(b, [new Demonstration { Prompt = "My name is", Completion = " Bob." }]);
        SnapshotInfo mine = await a.SnapshotAsync("a's");
        SnapshotInfo theirs = await b.SnapshotAsync("b's");
        Assert.That(mine.Version.ContentHash, Is.Not.EqualTo(theirs.Version.ContentHash));

        await LearnAll(a, [new Demonstration { Prompt = "Two plus two is", Completion = " four." }]);
        Assert.That(a.GetVersionHistory().Select(v => v.Id), Has.No.Member(mine.Version.Id), "only the snapshot has it now");
        AdapterVersion restored = await a.RollbackAsync(mine.Version.Id);
        Assert.That(restored.ContentHash, Is.EqualTo(mine.Version.ContentHash), "model a rolled back to its own snapshot, not to model b's");
    }

    [Test]
    public async Task TheDefaultScopeListedInScopesKeepsItsOptions()
    {
        // Validate accepts Scopes entries named like DefaultScope, but the constructor creates the default scope from
        // new ScopeOptions { Name = DefaultScope } and skips the entry: its optimizer and history capacity are dropped.
        await using LiveModel model = LiveTestKit.Create(o =>
        {
            o.Learner.MaxBatchItems = 1;
            o.Scopes.Add(new ScopeOptions { Name = "default", VersionHistoryCapacity = 1 });
        });
        await LearnAll(model, [new Demonstration { Prompt = "A", Completion = " b" }, new Demonstration { Prompt = "C", Completion = " d" }]);
        Assert.That(model.GetVersionHistory(), Has.Count.EqualTo(1), "the default scope keeps one version, as configured");
    }

    [Test]
    public async Task ASnapshotOfAnIdleScopeLeavesItsTrainerTrimmed()
    {
        // Capture publishes through LoraTrainingState.Publish, which re-allocates the working parameters of a trimmed
        // state; the scope stays marked Trimmed, so they are never released again: an idle user scope that was
        // snapshotted costs a full extra adapter for good.
        await using LiveModel model = LiveTestKit.Create();
        await LearnAll(model, [new Demonstration { Prompt = "A", Completion = " b" }]);
        long idle = model.GetStatistics()["default"].TrainerBytes;
        await model.SnapshotAsync();
        await model.WaitForIdleAsync();
        Assert.That(model.GetStatistics()["default"].TrainerBytes, Is.EqualTo(idle));
    }

    [Test]
    public async Task AnItemIsEitherAcknowledgedOrNotLearned()
    {
        // LearnAsync journals and queues the item, then records "Accepted" in the ledger: when that append fails the
        // caller gets the exception (and may well send the item again) while the item is learned anyway.
        int failures = 0;
        var ledger = new FailingLedger(e => e.Event == LedgerEvent.Accepted && Interlocked.Increment(ref failures) == 1);
        await using LiveModel model = LiveTestKit.Create(services: new LiveModelServices { Ledger = ledger });
        Exception? error = null;
        try
        {
            Assert.That((await model.LearnAsync(new Demonstration { Prompt = "A", Completion = " b" })).Accepted, Is.True);
        }
        catch (IOException ex)
        {
            error = ex;
        }

        await model.WaitForIdleAsync();
        if (error is not null)
        {
            Assert.That(model.GetStatistics()["default"].Learned, Is.Zero, $"LearnAsync threw ({error.Message}), yet the item was learned");
        }
        else
        {
            Assert.That(model.GetStatistics().LedgerFailures, Is.EqualTo(1), "the failed append is counted where an operator sees it");
        }
    }

    [Test]
    public async Task ARatingOfAResponseCutByTheTokenLimitTeachesOnlyWhatTheModelSaid()
    {
        // A rating (or a preference) by response id rates the served text, and the learner encodes it with
        // AppendEndToken: the rated sequence gets an end-of-sequence token the model never produced, so a thumbs-down
        // of a response cut at MaxTokens mostly teaches "do not stop here" and a thumbs-up teaches "stop here".
        var journal = new CapturingJournal();
        await using LiveModel model = LiveTestKit.Create(services: new LiveModelServices { Journal = journal });
        LiveCompletion served = await model.CompleteAsync("Tell me a joke:", new GenerationOptions { MaxTokens = 4, Temperature = 1, Seed = 3, StopTokenIds = new HashSet<int>() });
        Assert.That(served.FinishReason, Is.EqualTo(LiveFinishReason.Length));
        Assert.That((await model.LearnAsync(Feedback.ThumbsDown(served.ResponseId))).Accepted, Is.True);

        IReadOnlyList<int> end = model.Backend.EncodeCompletion(string.Empty, PromptKind.Text, appendEnd: true);
        IReadOnlyList<int> rated = journal.Records.Single().Example.Completion;
        Assert.That(end, Has.Count.EqualTo(1));
        Assert.That(rated[^1], Is.Not.EqualTo(end[0]), "the rated sequence ends where the response ended");
    }

    [Test]
    public async Task WatchingSeesTheVersionsPublishedAfterTheCall()
    {
        // WatchVersionsAsync is an async iterator: its channel is registered at the first MoveNextAsync, not when it is
        // called, so "every version published from now on" misses whatever is published in between (the existing
        // watch test needs a Task.Delay before it learns).
        await using LiveModel model = LiveTestKit.Create();
        using var stop = new CancellationTokenSource();
        IAsyncEnumerator<AdapterVersion> watch = model.WatchVersionsAsync(cancellationToken: stop.Token).GetAsyncEnumerator(stop.Token);
        await LearnAll(model, [new Demonstration { Prompt = "A", Completion = " b" }]);
        Task<bool> next = watch.MoveNextAsync().AsTask();
        try
        {
            Task first = await Task.WhenAny(next, Task.Delay(TimeSpan.FromSeconds(5)));
            Assert.That(first, Is.SameAs(next), "the version published after the call was delivered");
            Assert.That(watch.Current.Id, Is.EqualTo("default@2"));
        }
        finally
        {
            await stop.CancelAsync();
            try
            {
                await next;
            }
            catch (OperationCanceledException)
            {
            }

            await watch.DisposeAsync();
        }
    }

    [Test]
    public async Task StatisticsCanBeReadWhileASourceBalancedReplayBufferGrows()
    {
        // GetStatistics reads Replay.Count from any thread; the source-balanced buffer ("not thread-safe: one learner
        // owns it") computes it by enumerating its SortedDictionary, which the learner modifies after every batch:
        // a dashboard polling the statistics gets "Collection was modified" while the model learns.
        await using LiveModel model = LiveTestKit.Create(o =>
        {
            o.Replay.Kind = ReplayKind.SourceBalanced;
            o.Learner.MaxBatchItems = 1;
        });
        model.PauseLearning();
        for (int i = 0; i < 150; i++)
        {
            Assert.That((await model.LearnAsync(new Demonstration { Prompt = $"Item {i}", Completion = " ok", Source = $"user{i % 40}" })).Accepted, Is.True);
        }

        Exception? failure = null;
        using var stop = new CancellationTokenSource();
        Task poller = Task.Run(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    _ = model.GetStatistics();
                }
                catch (InvalidOperationException ex)
                {
                    failure = ex;
                    return;
                }
            }
        });
        model.ResumeLearning();
        await model.WaitForIdleAsync();
        await stop.CancelAsync();
        await poller;
        Assert.That(failure, Is.Null);
    }

    private static async Task AssertSnapshotResumesExactly(LiveLearning.Lora.LoraConfig lora)
    {
        var snapshots = new InMemorySnapshotStore();
        await using LiveModel a = LiveTestKit.Create(Deterministic, new LiveModelServices { Snapshots = snapshots }, lora);
        await using LiveModel b = LiveTestKit.Create(Deterministic, lora: lora);
        await LearnAll(a, Before);
        await LearnAll(b, Before);
        SnapshotInfo snapshot = await a.SnapshotAsync();
        await LearnAll(a, [new Demonstration { Prompt = "Detour", Completion = " wrong" }, new Demonstration { Prompt = "More", Completion = " wrong" }, new Demonstration { Prompt = "Even", Completion = " more" }]);
        Assert.That(a.GetVersionHistory().Select(v => v.Id), Has.No.Member(snapshot.Version.Id), "only the snapshot has the version");
        AdapterVersion restored = await a.RollbackAsync(snapshot.Version.Id);
        Assert.That(restored.ContentHash, Is.EqualTo(snapshot.Version.ContentHash));

        await LearnAll(a, After);
        await LearnAll(b, After);
        Assert.That(a.Version.ContentHash, Is.EqualTo(b.Version.ContentHash), "resuming from the snapshot equals never having made the detour");

        static void Deterministic(LiveModelOptions o)
        {
            o.Learner.Batching = BatchPolicy.Fixed;
            o.Learner.MaxBatchItems = 1;
            o.Learner.StepsPerItem = 2;
            o.VersionHistoryCapacity = 2;
        }
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
}
