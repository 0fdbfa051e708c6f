using System.Runtime.CompilerServices;
using LiveLearning.Backends;
using LiveLearning.Governance;
using NUnit.Framework;

namespace LiveLearning.Tests.Live;

/// <summary>Disposal and learner failure: nobody waits forever, nothing runs on a released backend.</summary>
[TestFixture]
public sealed class LiveModelShutdownTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(15);

    [Test]
    public async Task AnImmediateShutdownEndsTheLearnCallsWaitingForQueueRoom()
    {
        // The learner is cancelled, so it never frees a queue slot again; a caller blocked in Slots.WaitAsync (the Wait
        // back-pressure policy) is never woken: the call hangs instead of failing with ObjectDisposedException.
        LiveModel model = LiveTestKit.Create(o =>
        {
            o.Learner.QueueCapacity = 1;
            o.Shutdown = ShutdownMode.Immediate;
        });
        model.PauseLearning();
        Assert.That((await model.LearnAsync(new Demonstration { Prompt = "A", Completion = " b" })).Accepted, Is.True);
        Task<LearnReceipt> waiting = model.LearnAsync(new Demonstration { Prompt = "C", Completion = " d" }).AsTask();
        await Task.Delay(100);
        Assert.That(waiting.IsCompleted, Is.False, "the second call waits for room");

        await model.DisposeAsync();
        Assert.That(async () => await waiting.WaitAsync(Patience), Throws.InstanceOf<ObjectDisposedException>(), "the waiting call ends with the model");
    }

    [Test]
    public async Task WhenALearnerStopsTheLearnCallsWaitingForQueueRoomEnd()
    {
        // A ledger that fails the step and the skip that reports it stops the learner (the catch's own Record throws).
        // The learner then drains its queue without releasing the slots of the learn items in it, so callers already
        // waiting for room wait forever.
        var ledger = new FailingLedger(e => e.Event is LedgerEvent.Step or LedgerEvent.StepSkipped);
        await using LiveModel model = LiveTestKit.Create(o => o.Learner.QueueCapacity = 1, new LiveModelServices { Ledger = ledger });
        model.PauseLearning();
        Assert.That((await model.LearnAsync(new Demonstration { Prompt = "A", Completion = " b" })).Accepted, Is.True);
        Task<LearnReceipt> second = model.LearnAsync(new Demonstration { Prompt = "C", Completion = " d" }).AsTask();
        Task<LearnReceipt> third = model.LearnAsync(new Demonstration { Prompt = "E", Completion = " f" }).AsTask();
        await Task.Delay(100);
        model.ResumeLearning();

        Task both = Task.WhenAll(second, third);
        Task first = await Task.WhenAny(both, Task.Delay(Patience));
        Assert.That(first, Is.SameAs(both), "both waiting calls ended (accepted, refused or failed) once the learner stopped");
    }

    [Test]
    public async Task ABriefLedgerOutageDoesNotStopTheLearnerForGood()
    {
        // The ledger fails twice in a row: the Step entry of the first batch, then the StepSkipped entry the batch's
        // catch records. That second throw escapes the catch and kills the learner ("items are refused until the model
        // is restarted"), although event 12 promises "it goes on with the next".
        int failures = 0;
        var ledger = new FailingLedger(e => e.Event is LedgerEvent.Step or LedgerEvent.StepSkipped && Interlocked.Increment(ref failures) <= 2);
        await using LiveModel model = LiveTestKit.Create(services: new LiveModelServices { Ledger = ledger });
        Assert.That((await model.LearnAsync(new Demonstration { Prompt = "A", Completion = " b" })).Accepted, Is.True);
        await model.WaitForIdleAsync();

        LearnReceipt next = await model.LearnAsync(new Demonstration { Prompt = "C", Completion = " d" });
        Assert.That(next.Accepted, Is.True);
        await model.WaitForIdleAsync();
        Assert.That(model.GetStatistics()["default"].Steps, Is.GreaterThanOrEqualTo(1), "the second item was learned after the ledger came back");
    }

    [Test]
    public async Task ASecondDisposeWaitsForTheDrainTheFirstOneStarted()
    {
        // DisposeAsync returns at once when another disposal is under way, so the host's StopAsync (which may give up
        // on its token) followed by the container's DisposeAsync lets the container dispose the logger factory, the
        // meter factory and the journal while the learner still drains and uses them.
        LiveModel model = LiveTestKit.Create(o => o.Learner.StepsPerItem = 50);
        model.PauseLearning();
        for (int i = 0; i < 3; i++)
        {
            Assert.That((await model.LearnAsync(new Demonstration { Prompt = $"Item {i}", Completion = " queued" })).Accepted, Is.True);
        }

        ValueTask first = model.DisposeAsync();
        ValueTask second = model.DisposeAsync();
        await second;
        bool drained = first.IsCompleted;
        await first;
        Assert.That(drained, Is.True, "the second DisposeAsync returned while the first was still draining");
    }

    [Test]
    public async Task TheBackendIsNotReleasedWhileAResponseIsBeingGenerated()
    {
        // DisposeAsync waits for the learners but not for serving: it disposes the backend (and so the LlamaModel: its
        // compute pool and its memory-mapped weights) while a forward pass of a response may still be reading them.
        var backend = (StallingBackend)ForwardingBackend.Over(inner => new StallingBackend(inner));
        var model = new LiveModel(backend, new LiveModelOptions());
        Task<LiveCompletion> serving = model.CompleteAsync("Hello", new GenerationOptions { MaxTokens = 8, StopTokenIds = new HashSet<int>() });
        Assert.That(backend.InSecondPass.Wait(Patience), Is.True, "the response is in its second forward pass");

        Task disposing = model.DisposeAsync().AsTask();
        await Task.WhenAny(disposing, Task.Delay(TimeSpan.FromSeconds(2)));
        bool releasedMidPass = backend.DisposedDuringGeneration;
        backend.Release.Set();
        try
        {
            await serving;
        }
        catch (ObjectDisposedException)
        {
            // Refusing the rest of the response is fine; running it on a released model is not.
        }

        await disposing;
        Assert.That(releasedMidPass, Is.False, "the backend was disposed while a forward pass was running on it");
    }

    [Test]
    public async Task AScopeCreatedWhileTheModelIsBeingDisposedIsRefused()
    {
        // CreateScope checks disposal once, before AddScope; DisposeAsync neither takes the scope lock nor looks at scopes
        // added after its snapshot, so a scope created meanwhile is added to a disposed model and its learner is started
        // over a released backend (and, if disposal is still draining, waits on a queue nobody completes).
        var backend = (SlowTrainerBackend)ForwardingBackend.Over(inner => new SlowTrainerBackend(inner, "late"));
        var model = new LiveModel(backend, new LiveModelOptions());
        Task<AdapterVersion> creating = Task.Run(() => model.CreateScope(new ScopeOptions { Name = "late" }));
        Assert.That(backend.Creating.Wait(Patience), Is.True);
        await model.DisposeAsync();
        backend.Release.Set();
        Assert.That(async () => await creating.WaitAsync(Patience), Throws.InstanceOf<ObjectDisposedException>(), "no scope is created in a disposed model");
    }

    [Test]
    public async Task ADrainTimeoutThatValidationAcceptsDoesNotMakeDisposalThrow()
    {
        // Validate only asks for DrainTimeout > 0, but Task.WaitAsync refuses more than ~49.7 days (and the natural
        // "wait for ever", Timeout.InfiniteTimeSpan, is refused by Validate): DisposeAsync throws
        // ArgumentOutOfRangeException, and the backend, the meter and the watchers are never released.
        LiveModel model = LiveTestKit.Create(o => o.DrainTimeout = TimeSpan.FromDays(60));
        Assert.That(new LiveModelOptions { DrainTimeout = TimeSpan.FromDays(60) }.Validate(), Is.Empty, "the option is valid");
        Assert.That(async () => await model.DisposeAsync(), Throws.Nothing);
    }

    [Test]
    public async Task ALedgerThatFailsForOneChildScopeStopsNeitherItNorItsParentsPublications()
    {
        // The ledger records decisions; it does not take part in them: a child scope whose every ledger append fails
        // still learns, and its parent's publications still rebase every child (they used to throw half-way).
        var ledger = new FailingLedger(e => e.Scope == "acme/alice");
        var logs = new CapturingLoggerProvider();
        await using LiveModel model = LiveTestKit.Create(
            o =>
            {
                o.Scopes.Add(new ScopeOptions { Name = "acme" });
                o.Scopes.Add(new ScopeOptions { Name = "acme/alice", Parent = "acme" });
                o.Scopes.Add(new ScopeOptions { Name = "acme/bob", Parent = "acme" });
            },
            new LiveModelServices { Ledger = ledger, LoggerFactory = logs });
        Assert.That((await model.LearnAsync(new Demonstration { Prompt = "A", Completion = " b", Scope = "acme/alice" })).Accepted, Is.True);
        await model.WaitForIdleAsync("acme/alice");
        Assert.That(model.GetStatistics()["acme/alice"].Steps, Is.EqualTo(1), "alice learned although her ledger entries failed");
        Assert.That(logs.Events.Select(e => e.Id.Id), Has.Member(15), "each failed append was logged");

        Assert.That((await model.LearnAsync(new Demonstration { Prompt = "C", Completion = " d", Scope = "acme" })).Accepted, Is.True);
        await model.WaitForIdleAsync();
        Assert.That(model.GetStatistics()["acme"].SkippedSteps, Is.Zero, "the organisation's step succeeded");
        Assert.That(model.GetVersion("acme/alice").BaseVersionId, Is.EqualTo(model.GetVersion("acme").Id), "alice follows the organisation's new version");
        Assert.That(model.GetVersion("acme/bob").BaseVersionId, Is.EqualTo(model.GetVersion("acme").Id), "bob follows the organisation's new version");
    }

    [Test]
    public async Task AnItemWhoseJournalWriteFailsDoesNotTakeTheRestOfItsBatchWithIt()
    {
        // The learner awaits every item's Durable task before the step; one faulted task fails the whole batch, so
        // the other items of the batch, acknowledged as accepted, are never learned (nor replayed).
        var journal = new FlakyJournal(failing: 2);
        await using LiveModel model = LiveTestKit.Create(services: new LiveModelServices { Journal = journal });
        model.PauseLearning();
        Assert.That((await model.LearnAsync(new Demonstration { Prompt = "A", Completion = " b" })).Accepted, Is.True);
        Assert.That(async () => await model.LearnAsync(new Demonstration { Prompt = "C", Completion = " d" }), Throws.InstanceOf<IOException>(), "the item that could not be made durable is refused");
        Assert.That((await model.LearnAsync(new Demonstration { Prompt = "E", Completion = " f" })).Accepted, Is.True);
        model.ResumeLearning();
        await model.WaitForIdleAsync();
        Assert.That(model.GetStatistics()["default"].Learned, Is.EqualTo(2), "the two acknowledged items were learned");
    }

    /// <summary>The in-memory journal, except that one record's durability fails (a write error on a durable journal).</summary>
    private sealed class FlakyJournal(long failing) : Storage.IFeedbackJournal
    {
        private readonly Storage.InMemoryFeedbackJournal _inner = new();

        public long LastSequence => _inner.LastSequence;

        public Storage.JournalAppend Append(Storage.JournalRecord record)
        {
            Storage.JournalAppend appended = _inner.Append(record);
            return appended.Sequence == failing ? appended with { Durable = Task.FromException(new IOException("The journal write failed.")) } : appended;
        }

        public IAsyncEnumerable<Storage.JournalRecord> ReadAsync(long afterSequence, CancellationToken cancellationToken) => _inner.ReadAsync(afterSequence, cancellationToken);

        public ValueTask<int> RemoveThroughAsync(long sequence, CancellationToken cancellationToken) => _inner.RemoveThroughAsync(sequence, cancellationToken);

        public long RemovedThrough => _inner.RemovedThrough;

        public ValueTask<int> EraseAsync(long afterSequence, Func<Storage.JournalRecord, bool> match, CancellationToken cancellationToken) => _inner.EraseAsync(afterSequence, match, cancellationToken);
    }

    /// <summary>Flags a dispose that happens while a generation is running; holds the second pass until released.</summary>
    private sealed class StallingBackend(ILearningBackend inner) : ForwardingBackend(inner)
    {
        private int _active;
        private int _disposePending;

        public ManualResetEventSlim InSecondPass { get; } = new();

        public ManualResetEventSlim Release { get; } = new();

        public bool DisposedDuringGeneration { get; private set; }

        public override async IAsyncEnumerable<GeneratedToken> GenerateAsync(IReadOnlyList<int> prompt, PromptKind kind, GenerationOptions options, IReadOnlyList<IAdapterWeights> adapters, [EnumeratorCancellation] CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _active);
            try
            {
                int tokens = 0;
                await foreach (GeneratedToken token in Inner.GenerateAsync(prompt, kind, options, adapters, cancellationToken).ConfigureAwait(false))
                {
                    yield return token;
                    if (++tokens == 1)
                    {
                        // The consumer asked for the next token: this is the next decode pass, made long.
                        InSecondPass.Set();
                        Release.Wait(TimeSpan.FromSeconds(60), CancellationToken.None);
                    }
                }
            }
            finally
            {
                if (Interlocked.Decrement(ref _active) == 0 && Interlocked.Exchange(ref _disposePending, 0) == 1)
                {
                    Inner.Dispose();
                }
            }
        }

        public override void Dispose()
        {
            if (Volatile.Read(ref _active) > 0)
            {
                // Record it, and (so this test cannot crash the run) release the real model only after the pass.
                DisposedDuringGeneration = true;
                Volatile.Write(ref _disposePending, 1);
                return;
            }

            Inner.Dispose();
        }
    }

    /// <summary>Holds the creation of one scope's trainer until released.</summary>
    private sealed class SlowTrainerBackend(ILearningBackend inner, string slowScope) : ForwardingBackend(inner)
    {
        public ManualResetEventSlim Creating { get; } = new();

        public ManualResetEventSlim Release { get; } = new();

        public override IAdapterTrainer CreateTrainer(TrainerOptions options)
        {
            if (options.Scope == slowScope)
            {
                Creating.Set();
                Release.Wait(TimeSpan.FromSeconds(60));
            }

            return Inner.CreateTrainer(options);
        }
    }
}
