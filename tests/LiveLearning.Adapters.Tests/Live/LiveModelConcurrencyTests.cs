using System.Collections.Concurrent;
using LiveLearning.Backends;
using Microsoft.Extensions.AI;
using NUnit.Framework;

namespace LiveLearning.Tests.Live;

/// <summary>Serving while learning: determinism whatever the load, responses from exactly one version, cancellation, draining.</summary>
[TestFixture]
public sealed class LiveModelConcurrencyTests
{
    private static readonly Feedback[] Stream =
    [
        new Demonstration { Prompt = "The capital of France is", Completion = " Paris.", Source = "alice" },
        new Preference { Prompt = "My favourite colour is", Chosen = " green", Rejected = " purple", Source = "bob" },
        new Demonstration { Messages = [new ChatMessage(ChatRole.User, "Say hi")], Completion = "Hi!", Source = "alice" },
        new Rating { Prompt = "A haiku:", Completion = " autumn leaves falling", Positive = true, Source = "carol" },
        new Demonstration { Prompt = "Two plus two is", Completion = " four.", Source = "bob", Weight = 2 },
        new Rating { Prompt = "A limerick:", Completion = " there once was", Positive = false, Source = "carol" },
        new Demonstration { Prompt = "The sky is", Completion = " blue.", Source = "dave", Private = true },
        new Preference { Prompt = "Best pet:", Chosen = " a cat", Rejected = " a rock", Source = "alice" },
        new Demonstration { Prompt = "Water boils at", Completion = " 100 degrees.", Source = "erin" },
    ];

    [TestCase(BatchPolicy.Fixed)]
    [TestCase(BatchPolicy.Opportunistic)]
    public async Task TheSameFeedbackSequenceGivesBitIdenticalWeightsWhateverTheServingLoad(BatchPolicy batching)
    {
        (string idle, IReadOnlyList<string> idleVersions) = await LearnStreamAsync(batching, servingThreads: 0);
        (string loaded, IReadOnlyList<string> loadedVersions) = await LearnStreamAsync(batching, servingThreads: 2);
        (string again, _) = await LearnStreamAsync(batching, servingThreads: 0);
        Assert.That(loaded, Is.EqualTo(idle), "the weights under serving load equal those of an idle run, bit for bit");
        Assert.That(again, Is.EqualTo(idle), "and of another idle run");
        Assert.That(loadedVersions, Is.EqualTo(idleVersions), "every intermediate version too");
    }

    [Test]
    public async Task UnderConcurrentServingEveryResponseIsWhatItsOneVersionAloneProduces()
    {
        await using LiveModel model = LiveTestKit.Create(o =>
        {
            o.Learner.StepsPerItem = 2;
            o.Learner.MaxBatchItems = 2;
            o.VersionHistoryCapacity = 1000;
        });
        var responses = new ConcurrentBag<(string Prompt, int Seed, LiveCompletion Completion)>();
        var failures = new ConcurrentBag<Exception>();
        using var stop = new CancellationTokenSource();
        Task[] servers = [.. Enumerable.Range(0, 3).Select(t => Task.Run(async () =>
        {
            int i = 0;
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    string prompt = $"Request {t}.{i}:";
                    int seed = (t * 1000) + i;
                    LiveCompletion c = await model.CompleteAsync(prompt, new GenerationOptions { MaxTokens = 6, Temperature = 0.8f, Seed = seed });
                    responses.Add((prompt, seed, c));
                    i++;
                }
                catch (Exception ex)
                {
                    failures.Add(ex);
                    return;
                }
            }
        }))];
        Task feeder = Task.Run(async () =>
        {
            for (int round = 0; round < 3; round++)
            {
                foreach (Feedback f in Stream)
                {
                    LearnReceipt receipt = await model.LearnAsync(f);
                    Assert.That(receipt.Accepted, Is.True, receipt.Message);

                    // Interleave: wait until the item is learned and a response has come from the version it
                    // published, so responses come from many versions however the threads are scheduled.
                    await model.WaitForIdleAsync();
                    string current = model.Version.Id;
                    SpinWait.SpinUntil(() => responses.Any(r => r.Completion.Version.Id == current) || !failures.IsEmpty, TimeSpan.FromSeconds(60));
                }
            }
        });

        await feeder;
        await model.WaitForIdleAsync();
        await stop.CancelAsync();
        await Task.WhenAll(servers);
        Assert.That(failures, Is.Empty);
        Assert.That(model.GetStatistics()["default"].Learned, Is.EqualTo(3 * Stream.Length));
        Assert.That(model.GetStatistics()["default"].QueueDepth, Is.Zero, "the queue drained");

        var versions = responses.Select(r => r.Completion.Version.Id).Distinct().ToList();
        TestContext.Out.WriteLine($"{responses.Count} responses from {versions.Count} versions; {model.Version.Number} versions published");
        Assert.That(versions, Has.Count.GreaterThan(1), "serving saw the model change while it learned");
        foreach ((string prompt, int seed, LiveCompletion completion) in responses)
        {
            // Regenerate with that version alone: same prompt, same seed, same weights must give the same text.
            IAdapterWeights weights = model.GetWeights(completion.Version.Id);
            string alone = await Regenerate(model.Backend, prompt, seed, weights);
            Assert.That(completion.Text, Is.EqualTo(alone), $"{prompt} from {completion.Version.Id}");
        }
    }

    [Test]
    public async Task CancellingAGenerationStopsItAndLeavesTheModelServing()
    {
        await using LiveModel model = LiveTestKit.Create();
        using var cancel = new CancellationTokenSource();
        int pieces = 0;
        Assert.That(async () =>
        {
            await foreach (LiveCompletionUpdate update in model.StreamAsync("Count to a hundred:", new GenerationOptions { MaxTokens = 200, Temperature = 1, Seed = 1 }, cancellationToken: cancel.Token))
            {
                if (++pieces == 3)
                {
                    await cancel.CancelAsync();
                }
            }
        }, Throws.InstanceOf<OperationCanceledException>());
        Assert.That(pieces, Is.LessThan(200));
        LiveCompletion next = await model.CompleteAsync("Still there?", new GenerationOptions { MaxTokens = 3 });
        Assert.That(next.CompletionTokens, Is.InRange(0, 3));
    }

    [Test]
    public async Task CancellingALearnCallWaitingForQueueRoomAcceptsNothing()
    {
        await using LiveModel model = LiveTestKit.Create(o => o.Learner.QueueCapacity = 1);
        model.PauseLearning();
        LearnReceipt first = await model.LearnAsync(new Demonstration { Prompt = "A", Completion = " b" });
        Assert.That(first.Accepted, Is.True);
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
        Assert.That(async () => await model.LearnAsync(new Demonstration { Prompt = "C", Completion = " d" }, cancel.Token), Throws.InstanceOf<OperationCanceledException>());
        ScopeStatistics stats = model.GetStatistics()["default"];
        Assert.That(stats.Accepted, Is.EqualTo(1), "the cancelled item was not accepted");
        Assert.That(stats.QueueDepth, Is.EqualTo(1));
        model.ResumeLearning();
        await model.WaitForIdleAsync();
        Assert.That(model.GetStatistics()["default"].Learned, Is.EqualTo(1));
    }

    [Test]
    public async Task ImmediateShutdownStopsTheLearnerBetweenStepsInsteadOfDraining()
    {
        var ledger = new Governance.InMemoryLedger();
        LiveModel model = LiveTestKit.Create(
            o =>
            {
                o.Learner.StepsPerItem = 500;
                o.Shutdown = ShutdownMode.Immediate;
            },
            new LiveModelServices { Ledger = ledger });
        await model.LearnAsync(new Demonstration { Prompt = "The capital of France is", Completion = " Paris." });
        SpinWait.SpinUntil(() => ledger.Entries.Any(e => e.Event == Governance.LedgerEvent.Step), TimeSpan.FromSeconds(30));
        await model.DisposeAsync();
        int steps = ledger.Entries.Count(e => e.Event == Governance.LedgerEvent.Step);
        Assert.That(steps, Is.InRange(1, 499), "it stopped between two steps of the item");
        Assert.That(model.GetStatistics, Throws.InstanceOf<ObjectDisposedException>());
        Assert.That(async () => await model.LearnAsync(new Demonstration { Prompt = "x", Completion = " y" }), Throws.InstanceOf<ObjectDisposedException>());
        Assert.That(async () => await model.CompleteAsync("x"), Throws.InstanceOf<ObjectDisposedException>());
    }

    private static async Task<(string Hash, IReadOnlyList<string> Versions)> LearnStreamAsync(BatchPolicy batching, int servingThreads)
    {
        await using LiveModel model = LiveTestKit.Create(o =>
        {
            o.Learner.Batching = batching;
            o.Learner.MaxBatchItems = 3;
            o.Learner.StepsPerItem = 2;
            o.Replay.Ratio = 0.5;
            o.Learner.Optimizer = new OptimizerOptions { LearningRate = 5e-3f, WarmupSteps = 3 };
            o.VersionHistoryCapacity = 100;
        });
        using var stop = new CancellationTokenSource();
        Task[] servers = [.. Enumerable.Range(0, servingThreads).Select(t => Task.Run(async () =>
        {
            int i = 0;
            while (!stop.IsCancellationRequested)
            {
                await model.CompleteAsync($"Load {t}.{i++}", new GenerationOptions { MaxTokens = 8, Temperature = 1, Seed = i });
            }
        }))];

        // Opportunistic batches depend on arrival: queue the whole stream first, then learn it while serving runs.
        if (batching == BatchPolicy.Opportunistic)
        {
            model.PauseLearning();
        }

        foreach (Feedback f in Stream)
        {
            Assert.That((await model.LearnAsync(f)).Accepted, Is.True);
        }

        model.ResumeLearning();
        await model.WaitForIdleAsync();
        await stop.CancelAsync();
        await Task.WhenAll(servers);
        return (model.Version.ContentHash, [.. model.GetVersionHistory().Select(v => $"{v.Number}:{v.ContentHash}")]);
    }

    private static async Task<string> Regenerate(ILearningBackend backend, string prompt, int seed, IAdapterWeights weights)
    {
        var text = new System.Text.StringBuilder();
        var options = new GenerationOptions { MaxTokens = 6, Temperature = 0.8f, Seed = seed };
        await foreach (GeneratedToken token in backend.GenerateAsync(backend.EncodePrompt(prompt), PromptKind.Text, options, [weights], CancellationToken.None))
        {
            text.Append(token.Text);
        }

        return text.ToString();
    }
}
