using LiveLearning.Governance;
using LiveLearning.Storage;
using NUnit.Framework;

namespace LiveLearning.Tests.Live;

/// <summary>Quarantined items are listed, approved (then learned) or discarded; the learner holds back loss outliers.</summary>
[TestFixture]
public sealed class LiveModelQuarantineTests
{
    private string _dir = string.Empty;

    [SetUp]
    public void MakeDirectory()
    {
        _dir = Path.Combine(Path.GetTempPath(), "livelearning-quarantine-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
    }

    [TearDown]
    public void RemoveDirectory() => Directory.Delete(_dir, recursive: true);

    [Test]
    public async Task AGateQuarantinedItemIsListedThenApprovedAndLearned()
    {
        var ledger = new InMemoryLedger();
        await using LiveModel model = LiveTestKit.Create(services: new LiveModelServices { Gates = [new HoldSource("suspect")], Ledger = ledger });
        var item = new Demonstration { Prompt = "Capital of Zorbia?", Completion = " Quux", Source = "suspect" };
        LearnReceipt held = await model.LearnAsync(item);
        Assert.That(held.Accepted, Is.False);
        Assert.That(held.Reason, Is.EqualTo(RejectionReason.Quarantined));
        Assert.That(held.QuarantineId, Is.Not.Null);

        QuarantinedItem listed = model.GetQuarantine().Single();
        Assert.That(listed.Id, Is.EqualTo(held.QuarantineId));
        Assert.That(listed.Origin, Is.EqualTo(QuarantineOrigin.Gate));
        Assert.That(listed.Rule, Is.EqualTo("hold-source"));
        Assert.That(listed.Feedback, Is.EqualTo(item with { Timestamp = listed.ReceivedAt }));
        Assert.That(model.GetQuarantine("default"), Has.Count.EqualTo(1));

        LearnReceipt approved = await model.ApproveQuarantinedAsync(listed.Id, actor: "reviewer");
        Assert.That(approved.Accepted, Is.True);
        await model.WaitForIdleAsync();
        Assert.That(model.GetStatistics()["default"].Learned, Is.EqualTo(1), "approved means learned, without the gate again");
        Assert.That(model.GetQuarantine(), Is.Empty);
        LedgerEntry released = ledger.Entries.Single(e => e.Event == LedgerEvent.Released);
        Assert.That(released.Actor, Is.EqualTo("reviewer"));
        Assert.That(released.Sequence, Is.EqualTo(approved.SequenceNumber));
        Assert.That(() => model.ApproveQuarantinedAsync(listed.Id).AsTask(), Throws.TypeOf<KeyNotFoundException>());
    }

    [Test]
    public async Task ADiscardedItemIsNeverLearnedAndTheLedgerSaysWhoAndWhy()
    {
        var ledger = new InMemoryLedger();
        await using LiveModel model = LiveTestKit.Create(o => o.QuarantineCapacity = 2, new LiveModelServices { Gates = [new HoldSource("suspect")], Ledger = ledger });
        for (int i = 0; i < 3; i++)
        {
            await model.LearnAsync(new Demonstration { Prompt = $"Question {i}?", Completion = " answer", Source = "suspect" });
        }

        IReadOnlyList<QuarantinedItem> kept = model.GetQuarantine();
        Assert.That(kept.Select(k => k.Id), Is.EqualTo(new long[] { 2, 3 }), "beyond the capacity the oldest goes");
        Assert.That(ledger.Entries.Where(e => e.Event == LedgerEvent.Discarded).Select(e => e.Message), Has.One.Contains("quarantine is full"));

        Assert.That(model.DiscardQuarantined(2, "spam", "reviewer"), Is.True);
        Assert.That(model.DiscardQuarantined(2), Is.False);
        LedgerEntry discarded = ledger.Entries.Last(e => e.Event == LedgerEvent.Discarded);
        Assert.That(discarded.Actor, Is.EqualTo("reviewer"));
        Assert.That(discarded.Message, Does.Contain("spam"));
        await model.WaitForIdleAsync();
        Assert.That(model.GetStatistics()["default"].Learned, Is.Zero);
    }

    [Test]
    public async Task TheLearnerHoldsBackALossOutlierErasesItsRecordAndARestartNeverLearnsIt()
    {
        var ledger = new InMemoryLedger();
        long outlierSequence;
        long learned;
        string weights;
        await using (FileFeedbackJournal journal = OpenJournal())
        {
            await using LiveModel model = LiveTestKit.Create(Screening, new LiveModelServices { Journal = journal, Ledger = ledger });

            // Many prompts, one answer: it is soon easy, so the recent losses are low and close together.
            for (int i = 0; i < 24; i++)
            {
                await model.LearnAsync(new Demonstration { Prompt = $"Is {i} a number?", Completion = " yes", Source = "teacher" });
                await model.WaitForIdleAsync();
            }

            LearnReceipt receipt = await model.LearnAsync(new Demonstration { Prompt = "Is 99 a number?", Completion = " qzx vwk plf jrt ghb mnd", Source = "vandal" });
            Assert.That(receipt.Accepted, Is.True, "acknowledged first: the screening happens in the learner");
            outlierSequence = receipt.SequenceNumber;
            await model.WaitForIdleAsync();

            QuarantinedItem held = model.GetQuarantine().Single();
            Assert.That(held.Origin, Is.EqualTo(QuarantineOrigin.Learner));
            Assert.That(held.Rule, Is.EqualTo("learner.loss-outlier"));
            Assert.That(held.Reason, Does.Contain("robust standard deviations above the recent median"));
            Assert.That(held.JournalSequence, Is.EqualTo(outlierSequence));
            Assert.That(held.Source, Is.EqualTo("vandal"));
            learned = model.GetStatistics()["default"].Learned;
            Assert.That(learned, Is.EqualTo(24), "the outlier was not learned");
            weights = model.Version.ContentHash;
            Assert.That(ledger.Entries.Where(e => e.Event == LedgerEvent.Quarantined).Select(e => e.Sequence), Is.EqualTo(new long?[] { outlierSequence }));
            Assert.That(ledger.Entries.Where(e => e.Event == LedgerEvent.Step).SelectMany(e => e.Items!), Does.Not.Contain(outlierSequence));

            var sequences = new List<long>();
            await foreach (JournalRecord r in journal.ReadAsync(0, CancellationToken.None))
            {
                sequences.Add(r.Sequence);
            }

            Assert.That(sequences, Has.Count.EqualTo(24).And.No.EqualTo(outlierSequence), "its journal record is erased");
        }

        await using (FileFeedbackJournal journal = OpenJournal())
        {
            await using LiveModel restarted = LiveTestKit.Create(Screening, new LiveModelServices { Journal = journal });
            await restarted.WaitForIdleAsync();
            Assert.That(restarted.GetStatistics()["default"].Learned, Is.EqualTo(learned), "a restart learns the journal without it");
            Assert.That(restarted.Version.ContentHash, Is.EqualTo(weights));
        }
    }

    [Test]
    public async Task AGradientNormOutlierIsHeldBackAndOnceApprovedLearnedWithoutScreening()
    {
        // A steeper learning rate: the answer's loss plateaus, the gradient norms settle near 0.01, and the odd item's
        // gradient stands out far more than its loss does.
        await using LiveModel model = LiveTestKit.Create(o =>
        {
            Screening(o);
            o.Learner.Optimizer = new OptimizerOptions { LearningRate = 5e-2f };
        });
        for (int i = 0; i < 24; i++)
        {
            await model.LearnAsync(new Demonstration { Prompt = $"Is {i} a number?", Completion = " yes", Source = "teacher" });
            await model.WaitForIdleAsync();
        }

        await model.LearnAsync(new Demonstration { Prompt = "Is 99 a number?", Completion = " qzx vwk plf jrt ghb mnd", Source = "vandal" });
        await model.WaitForIdleAsync();
        QuarantinedItem held = model.GetQuarantine().Single();
        Assert.That(held.Rule, Is.EqualTo("learner.gradient-norm-outlier"));
        Assert.That(model.GetStatistics()["default"].Learned, Is.EqualTo(24));
        LearnReceipt approved = await model.ApproveQuarantinedAsync(held.Id, "reviewer");
        Assert.That(approved.Accepted, Is.True);
        await model.WaitForIdleAsync();
        Assert.That(model.GetStatistics()["default"].Learned, Is.EqualTo(25));
        Assert.That(model.GetQuarantine(), Is.Empty);
    }

    [Test]
    public void InvalidScreeningOptionsAreNamed()
    {
        Assert.That(
            () => LiveTestKit.Create(o => { o.Outliers.MinItems = 100; o.Outliers.Threshold = 0; }),
            Throws.ArgumentException.With.Message.Contains("Outliers.MinItems").And.Message.Contains("Outliers.Threshold"));
    }

    private static void Screening(LiveModelOptions o)
    {
        o.Learner.MaxBatchItems = 1;
        o.Outliers.Window = 8;
        o.Outliers.MinItems = 8;
        o.Outliers.Threshold = 8;
    }

    private FileFeedbackJournal OpenJournal() => new(new FileFeedbackJournalOptions { Directory = Path.Combine(_dir, "journal") });

    /// <summary>Quarantines every item of one source.</summary>
    private sealed class HoldSource(string source) : IFeedbackGate
    {
        public string Name => "hold-source";

        public ValueTask<GateDecision> EvaluateAsync(GateContext context, CancellationToken cancellationToken) =>
            ValueTask.FromResult(context.Feedback.Source == source ? GateDecision.Quarantine("held for review") : GateDecision.Accept);
    }
}
