using LiveLearning.Governance;
using LiveLearning.Storage;
using NUnit.Framework;

namespace LiveLearning.Tests.Live;

/// <summary>The drift alarm in the learner: recorded with its figures, pausing promotion, rolling back to an alias.</summary>
[TestFixture]
public sealed class LiveModelDriftTests
{
    [Test]
    public async Task AnAlarmIsRecordedAndPausesPromotionUntilAnOwnerPromotes()
    {
        var ledger = new InMemoryLedger();
        var detector = new AlarmOn(3);
        await using LiveModel model = LiveTestKit.Create(
            o =>
            {
                o.Drift.Factory = _ => detector;
                o.Drift.Action = DriftAction.PausePromotion;
            },
            new LiveModelServices { Ledger = ledger });
        for (int i = 0; i < 2; i++)
        {
            await model.LearnAsync(new Demonstration { Prompt = $"Item {i}?", Completion = " fine" });
            await model.WaitForIdleAsync();
        }

        Assert.That(model.IsShadowMode(), Is.False);
        AdapterVersion beforeAlarm = model.Version;
        await model.LearnAsync(new Demonstration { Prompt = "Item 2?", Completion = " drifted" });
        await model.WaitForIdleAsync();

        LedgerEntry alarm = ledger.Entries.Single(e => e.Event == LedgerEvent.DriftDetected);
        Assert.That(alarm.Rule, Is.EqualTo("test-detector"));
        Assert.That(alarm.Actor, Is.EqualTo("drift-alarm"));
        Assert.That(alarm.Figures!["seen"], Is.EqualTo(3.0));
        Assert.That(detector.Values, Has.Count.EqualTo(3).And.All.GreaterThan(0.0), "fed each live item's loss per token");
        Assert.That(model.IsShadowMode(), Is.True);
        Assert.That(ledger.Entries.Any(e => e.Event == LedgerEvent.ControlChanged && e.Message.Contains("drift alarm paused promotion", StringComparison.Ordinal)), Is.True);
        Assert.That(model.Version, Is.EqualTo(beforeAlarm), "the step that raised the alarm is held as a candidate");
        Assert.That(model.GetCandidate(), Is.Not.Null);
        AdapterVersion promoted = await model.PromoteCandidateAsync(actor: "owner");
        Assert.That(model.Version, Is.EqualTo(promoted));
    }

    [Test]
    public async Task AnAlarmCanRollTheScopeBackToAnAlias()
    {
        var snapshots = new InMemorySnapshotStore();
        var ledger = new InMemoryLedger();
        var detector = new AlarmOn(3);
        await using LiveModel model = LiveTestKit.Create(
            o =>
            {
                o.Drift.Factory = _ => detector;
                o.Drift.RollbackTo = "last-good";
            },
            new LiveModelServices { Ledger = ledger, Snapshots = snapshots });
        await model.LearnAsync(new Demonstration { Prompt = "Item 0?", Completion = " fine" });
        await model.WaitForIdleAsync();
        SnapshotInfo good = await model.SnapshotAsync("good");
        await snapshots.SetAliasAsync("last-good", good.Id, CancellationToken.None);
        await model.LearnAsync(new Demonstration { Prompt = "Item 1?", Completion = " fine" });
        await model.WaitForIdleAsync();
        Assert.That(model.Version.ContentHash, Is.Not.EqualTo(good.Version.ContentHash));

        await model.LearnAsync(new Demonstration { Prompt = "Item 2?", Completion = " drifted" });
        await model.WaitForIdleAsync();
        LedgerEntry rolled = ledger.Entries.Single(e => e.Event == LedgerEvent.RolledBack);
        Assert.That(rolled.Actor, Is.EqualTo("drift-alarm"));
        Assert.That(rolled.Message, Does.Contain(good.Id).And.Contain("drift alarm (test-detector)"));
        Assert.That(ledger.Entries.Select(e => e.Event), Is.SupersetOf(new[] { LedgerEvent.DriftDetected, LedgerEvent.RolledBack }));
        Assert.That(model.IsShadowMode(), Is.False, "Record: promotion is not paused");
    }

    [Test]
    public async Task RecoveryDoesNotFeedTheAlarm()
    {
        var journal = new InMemoryFeedbackJournal();
        await using (LiveModel first = LiveTestKit.Create(services: new LiveModelServices { Journal = journal }))
        {
            for (int i = 0; i < 3; i++)
            {
                await first.LearnAsync(new Demonstration { Prompt = $"Item {i}?", Completion = " fine" });
            }

            await first.WaitForIdleAsync();
        }

        var detector = new AlarmOn(1);
        await using LiveModel second = LiveTestKit.Create(o => o.Drift.Factory = _ => detector, new LiveModelServices { Journal = journal });
        await second.WaitForIdleAsync();
        Assert.That(second.GetStatistics()["default"].Learned, Is.EqualTo(3), "the journal was learned again");
        Assert.That(detector.Values, Is.Empty, "old items are not evidence of drift now");
    }

    [Test]
    public void DriftOptionsAreValidated()
    {
        var options = new LiveModelOptions();
        options.Drift.RollbackTo = "../x";
        options.Drift.PageHinkley = new PageHinkleyOptions { Threshold = -1 };
        Assert.That(options.Validate(), Has.Some.Contains("Drift.RollbackTo").And.Some.Contains("Drift.PageHinkley"));
    }

    /// <summary>Fires on its n-th value.</summary>
    private sealed class AlarmOn(int n) : IDriftDetector
    {
        public List<double> Values { get; } = [];

        public string Name => "test-detector";

        public DriftReport? LastAlarm { get; private set; }

        public bool Add(double value)
        {
            Values.Add(value);
            if (Values.Count != n)
            {
                return false;
            }

            LastAlarm = new DriftReport("fired as told", new Dictionary<string, double> { ["seen"] = Values.Count });
            return true;
        }

        public void Reset()
        {
        }
    }
}
