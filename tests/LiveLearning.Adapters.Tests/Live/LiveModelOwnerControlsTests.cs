using LiveLearning.Governance;
using LiveLearning.Storage;
using NUnit.Framework;

namespace LiveLearning.Tests.Live;

/// <summary>Shadow mode, exclusion from replay, pause with an actor, journal retention: owner controls, each in the ledger.</summary>
[TestFixture]
public sealed class LiveModelOwnerControlsTests
{
    private string _dir = string.Empty;

    [SetUp]
    public void MakeDirectory()
    {
        _dir = Path.Combine(Path.GetTempPath(), "livelearning-controls-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
    }

    [TearDown]
    public void RemoveDirectory() => Directory.Delete(_dir, recursive: true);

    [Test]
    public async Task InShadowModeAScopeLearnsAndEvaluatesButServesItsVersionUntilPromoted()
    {
        var ledger = new InMemoryLedger();
        await using LiveModel model = LiveTestKit.Create(services: new LiveModelServices { Ledger = ledger });
        AdapterVersion serving = model.Version;
        await model.SetShadowModeAsync(true, actor: "owner");
        Assert.That(model.IsShadowMode(), Is.True);

        await model.LearnAsync(new Demonstration { Prompt = "Capital of Zorbia?", Completion = " Quux" });
        await model.WaitForIdleAsync();
        Assert.That(model.Version, Is.EqualTo(serving), "nothing learned in shadow mode is served");
        AdapterVersion? candidate = model.GetCandidate();
        Assert.That(candidate, Is.Not.Null);
        Assert.That(candidate!.ContentHash, Is.Not.EqualTo(serving.ContentHash));
        LiveCompletion answer = await model.CompleteAsync("Capital of Zorbia?", new GenerationOptions { MaxTokens = 2 });
        Assert.That(answer.Version, Is.EqualTo(serving));

        await model.LearnAsync(new Demonstration { Prompt = "Name of the cat?", Completion = " Tom" });
        await model.WaitForIdleAsync();
        AdapterVersion? newer = model.GetCandidate();
        Assert.That(newer!.Number, Is.GreaterThan(candidate.Number), "the newest candidate waits");
        Assert.That(newer.ParentId, Is.EqualTo(candidate.Id), "candidates follow each other");
        await using (LiveModel plain = LiveTestKit.Create())
        {
            await plain.LearnAsync(new Demonstration { Prompt = "Capital of Zorbia?", Completion = " Quux" });
            await plain.WaitForIdleAsync();
            await plain.LearnAsync(new Demonstration { Prompt = "Name of the cat?", Completion = " Tom" });
            await plain.WaitForIdleAsync();
            Assert.That(newer.ContentHash, Is.EqualTo(plain.Version.ContentHash), "learning in shadow continues from the candidate, as if it were served");
        }

        AdapterVersion promoted = await model.PromoteCandidateAsync(actor: "owner");
        Assert.That(promoted.ContentHash, Is.EqualTo(newer.ContentHash));
        Assert.That(model.Version, Is.EqualTo(promoted));
        Assert.That(model.GetCandidate(), Is.Null);
        Assert.That(model.IsShadowMode(), Is.True, "promoting one candidate does not leave shadow mode");
        Assert.That(() => model.PromoteCandidateAsync(), Throws.InvalidOperationException.With.Message.Contains("no candidate"));

        await model.LearnAsync(new Demonstration { Prompt = "Largest moon?", Completion = " Ganymede" });
        await model.WaitForIdleAsync();
        string pending = model.GetCandidate()!.ContentHash;
        await model.SetShadowModeAsync(false, actor: "owner");
        Assert.That(model.IsShadowMode(), Is.False);
        Assert.That(model.Version.ContentHash, Is.EqualTo(pending), "leaving shadow mode serves what was learned in it");

        Assert.That(ledger.Entries.Where(e => e.Event == LedgerEvent.ControlChanged).Select(e => e.Actor), Is.EqualTo(new[] { "owner", "owner" }));
        Assert.That(ledger.Entries.Where(e => e.Event == LedgerEvent.Promoted).Select(e => e.Actor), Is.EqualTo(new[] { "owner", "owner" }));
    }

    [Test]
    public async Task AScopeRestartedInShadowModeServesWhatItServedAndKeepsTheCandidate()
    {
        var snapshots = new FileSnapshotStore(Path.Combine(_dir, "snapshots"));
        string served;
        string candidate;
        await using (FileFeedbackJournal journal = OpenJournal())
        {
            await using LiveModel model = LiveTestKit.Create(services: new LiveModelServices { Journal = journal, Snapshots = snapshots });
            await model.LearnAsync(new Demonstration { Prompt = "Capital of Zorbia?", Completion = " Quux" });
            await model.WaitForIdleAsync();
            served = model.Version.ContentHash;
            await model.SetShadowModeAsync(true);
            await model.LearnAsync(new Demonstration { Prompt = "Name of the cat?", Completion = " Tom" });
            await model.WaitForIdleAsync();
            candidate = model.GetCandidate()!.ContentHash;
            await model.SnapshotAsync("shadow");
        }

        await using (FileFeedbackJournal journal = OpenJournal())
        {
            await using LiveModel restarted = LiveTestKit.Create(services: new LiveModelServices { Journal = journal, Snapshots = snapshots });
            await restarted.WaitForIdleAsync();
            Assert.That(restarted.IsShadowMode(), Is.True);
            Assert.That(restarted.Version.ContentHash, Is.EqualTo(served));
            Assert.That(restarted.GetCandidate()?.ContentHash, Is.EqualTo(candidate));
        }
    }

    [Test]
    public async Task AnExcludedSourceLeavesTheReplayBufferAndIsNeverKeptAgain()
    {
        var ledger = new InMemoryLedger();
        await using LiveModel model = LiveTestKit.Create(o => o.Replay.Ratio = 0.5, new LiveModelServices { Ledger = ledger });
        for (int i = 0; i < 4; i++)
        {
            await model.LearnAsync(new Demonstration { Prompt = $"Question {i}?", Completion = " answer", Source = i % 2 == 0 ? "loud" : "quiet" });
        }

        await model.WaitForIdleAsync();
        Assert.That(model.GetStatistics()["default"].ReplayItems, Is.EqualTo(4));
        int removed = await model.ExcludeFromReplayAsync("loud", actor: "owner");
        Assert.That(removed, Is.EqualTo(2));
        Assert.That(model.ExcludedFromReplay, Is.EqualTo(new[] { "loud" }));
        await model.LearnAsync(new Demonstration { Prompt = "Question 9?", Completion = " answer", Source = "loud" });
        await model.WaitForIdleAsync();
        Assert.That(model.GetStatistics()["default"].ReplayItems, Is.EqualTo(2), "its new items are learned, not kept");
        Assert.That(model.GetStatistics()["default"].Learned, Is.EqualTo(5));
        Assert.That(ledger.Entries.Single(e => e.Event == LedgerEvent.ControlChanged).Message, Does.Contain("2 kept items removed"));

        await model.ExcludeFromReplayAsync("loud", excluded: false);
        Assert.That(model.ExcludedFromReplay, Is.Empty);
    }

    [Test]
    public async Task PauseAndResumeRecordWhoAsked()
    {
        var ledger = new InMemoryLedger();
        await using LiveModel model = LiveTestKit.Create(services: new LiveModelServices { Ledger = ledger });
        model.PauseLearning(actor: "ops");
        model.ResumeLearning(actor: "ops");
        Assert.That(ledger.Entries.Where(e => e.Event is LedgerEvent.Paused or LedgerEvent.Resumed).Select(e => e.Actor), Is.EqualTo(new[] { "ops", "ops" }));
    }

    [Test]
    public async Task RetentionRemovesJournalSegmentsOnlyBehindEveryScopesOldestSnapshot()
    {
        var snapshots = new InMemorySnapshotStore();
        await using FileFeedbackJournal journal = new(new FileFeedbackJournalOptions { Directory = Path.Combine(_dir, "journal"), SegmentBytes = 4096 });
        await using LiveModel model = LiveTestKit.Create(
            o =>
            {
                o.JournalRetention = JournalRetention.BeforeOldestSnapshot;
                o.Scopes.Add(new ScopeOptions { Name = "team" });
            },
            new LiveModelServices { Journal = journal, Snapshots = snapshots });
        for (int i = 0; i < 40; i++)
        {
            await model.LearnAsync(new Demonstration { Prompt = $"A rather long question number {i} to fill the segments?", Completion = " a rather long answer to fill them too" });
        }

        await model.WaitForIdleAsync();
        await model.SnapshotAsync();
        Assert.That(journal.RemovedThrough, Is.Zero, "scope 'team' has no snapshot: everything stays");
        await model.SnapshotAsync(scope: "team");
        Assert.That(journal.RemovedThrough, Is.Zero, "team's snapshot is at position 0");

        await model.LearnAsync(new Demonstration { Prompt = "For the team?", Completion = " yes", Scope = "team" });
        await model.WaitForIdleAsync();
        foreach (SnapshotInfo old in await snapshots.ListAsync(null, CancellationToken.None))
        {
            await snapshots.DeleteAsync(old.Id, CancellationToken.None);
        }

        await model.SnapshotAsync(scope: "team");
        await model.SnapshotAsync();
        Assert.That(journal.RemovedThrough, Is.GreaterThan(0).And.LessThanOrEqualTo(40), "segments before both scopes' oldest snapshots went");
    }

    private FileFeedbackJournal OpenJournal() => new(new FileFeedbackJournalOptions { Directory = Path.Combine(_dir, "journal") });
}
