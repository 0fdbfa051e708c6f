using LiveLearning.Governance;
using LiveLearning.Storage;
using NUnit.Framework;

namespace LiveLearning.Tests.Live;

/// <summary>
/// Forgetting a source: the scope is rebuilt without its items, its journal records are erased, the snapshots that held
/// its influence deleted, and the weights equal, bit for bit, those of a run that never saw the source (same seed,
/// fixed batching).
/// </summary>
[TestFixture]
public sealed class LiveModelForgetTests
{
    private static readonly Feedback[] Early =
    [
        new Demonstration { Prompt = "Capital of Zorbia?", Completion = " Quux", Source = "alice" },
        new Demonstration { Prompt = "Colour of the sky?", Completion = " blue", Source = "bob" },
    ];

    private static readonly Feedback[] Mixed =
    [
        new Demonstration { Prompt = "Colour of the sky?", Completion = " plaid", Source = "mallory" },
        new Demonstration { Prompt = "Name of the cat?", Completion = " Tom", Source = "alice" },
        new Demonstration { Prompt = "Largest moon?", Completion = " Ganymede", Source = "bob" },
        new Demonstration { Prompt = "Capital of Zorbia?", Completion = " Nowhere", Source = "mallory" },
        new Demonstration { Prompt = "Best editor?", Completion = " ed", Source = "alice" },
        new Demonstration { Prompt = "First prime?", Completion = " two", Source = "bob" },
    ];

    private string _dir = string.Empty;

    [SetUp]
    public void MakeDirectory()
    {
        _dir = Path.Combine(Path.GetTempPath(), "livelearning-forget-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
    }

    [TearDown]
    public void RemoveDirectory() => Directory.Delete(_dir, recursive: true);

    [Test]
    public async Task ForgettingASourceEqualsARunThatNeverSawItFromTheInitialState()
    {
        string expected = await NeverSawMallory();
        await using LiveModel model = LiveTestKit.Create(Deterministic);
        await LearnAll(model, [.. Early, .. Mixed]);
        Assert.That(model.Version.ContentHash, Is.Not.EqualTo(expected), "the source did change the weights");

        ForgetReport report = await model.ForgetSourceAsync("mallory", reason: "asked to be forgotten", actor: "dpo@example");
        ScopeForgetReport scope = report.Scopes.Single();
        Assert.That(scope.ItemsForgotten, Is.EqualTo(2));
        Assert.That(scope.RebuiltFrom, Is.Null, "no snapshot predates the source: rebuilt from the initial state");
        Assert.That(scope.ItemsRelearned, Is.EqualTo(6));
        Assert.That(model.Version.ContentHash, Is.EqualTo(expected), "bit for bit the run that never saw the source");
        Assert.That(model.Version.Reason, Is.EqualTo("forgot a source"));
    }

    [Test]
    public async Task ForgettingRebuildsFromTheLastCleanSnapshotDeletesTaintedOnesAndSurvivesARestart()
    {
        string expected = await NeverSawMallory();
        var snapshots = new FileSnapshotStore(Path.Combine(_dir, "snapshots"));
        var ledger = new InMemoryLedger();
        SnapshotInfo clean;
        SnapshotInfo tainted;
        await using (FileFeedbackJournal journal = OpenJournal())
        {
            await using LiveModel model = LiveTestKit.Create(Deterministic, new LiveModelServices { Journal = journal, Snapshots = snapshots, Ledger = ledger });
            await LearnAll(model, Early);
            clean = await model.SnapshotAsync("before");
            await LearnAll(model, Mixed[..4]);
            tainted = await model.SnapshotAsync("during");
            await snapshots.SetAliasAsync("last-good", tainted.Id, CancellationToken.None);
            await LearnAll(model, Mixed[4..]);

            ScopeForgetReport report = (await model.ForgetSourceAsync("mallory", actor: "dpo@example")).Scopes.Single();
            Assert.That(report.RebuiltFrom, Is.EqualTo(clean.Id));
            Assert.That(report.ItemsRelearned, Is.EqualTo(4));
            Assert.That(report.SnapshotsDeleted, Is.EqualTo(new[] { tainted.Id }));
            Assert.That(model.Version.ContentHash, Is.EqualTo(expected));

            List<JournalRecord> records = await ReadAll(journal);
            Assert.That(records.Select(r => r.Source), Has.None.EqualTo("mallory"), "its journal records are erased");
            Assert.That(records, Has.Count.EqualTo(6));
            Assert.That((await snapshots.ListAsync(null, CancellationToken.None)).Select(s => s.Id), Is.EqualTo(new[] { clean.Id }));
            Assert.That(await snapshots.ListAliasesAsync(CancellationToken.None), Does.Not.ContainKey("last-good"), "an alias of a deleted snapshot goes with it");
            LedgerEntry forgotten = ledger.Entries.Single(e => e.Event == LedgerEvent.Forgotten);
            Assert.That(forgotten.Source, Is.EqualTo("mallory"));
            Assert.That(forgotten.Actor, Is.EqualTo("dpo@example"));
            Assert.That(forgotten.Message, Does.Contain("2 journal records erased").And.Contain(clean.Id));
        }

        foreach (string file in Directory.GetFiles(Path.Combine(_dir, "journal")))
        {
            Assert.That(System.Text.Encoding.UTF8.GetString(File.ReadAllBytes(file)), Does.Not.Contain("mallory"));
        }

        await using (FileFeedbackJournal journal = OpenJournal())
        {
            await using LiveModel restarted = LiveTestKit.Create(Deterministic, new LiveModelServices { Journal = journal, Snapshots = snapshots });
            await restarted.WaitForIdleAsync();
            Assert.That(restarted.Version.ContentHash, Is.EqualTo(expected), "a restart recovers the forgotten state, not the source's");
        }
    }

    [Test]
    public async Task AScopeThatNeverLearnedFromTheSourceStaysAsItWas()
    {
        await using LiveModel model = LiveTestKit.Create(Deterministic);
        await LearnAll(model, Early);
        AdapterVersion before = model.Version;
        ScopeForgetReport report = (await model.ForgetSourceAsync("nobody")).Scopes.Single();
        Assert.That(report.ItemsForgotten, Is.Zero);
        Assert.That(report.Version, Is.EqualTo(before));
        Assert.That(model.Version, Is.EqualTo(before));
    }

    [Test]
    public async Task AJournalThatNoLongerReachesBackRefusesAndChangesNothing()
    {
        var journal = new InMemoryFeedbackJournal(capacity: 3);
        await using LiveModel model = LiveTestKit.Create(Deterministic, new LiveModelServices { Journal = journal });
        await LearnAll(model, [.. Early, .. Mixed]);
        AdapterVersion before = model.Version;
        Assert.That(
            () => model.ForgetSourceAsync("mallory"),
            Throws.InvalidOperationException.With.Message.Contains("cannot forget source 'mallory' exactly").And.Message.Contains("Nothing was changed"));
        Assert.That(model.Version, Is.EqualTo(before));
        Assert.That((await ReadAll(journal)).Select(r => r.Source), Does.Contain("mallory"), "nothing erased either");
    }

    private static async Task<string> NeverSawMallory()
    {
        await using LiveModel reference = LiveTestKit.Create(Deterministic);
        await LearnAll(reference, [.. Early, .. Mixed.Where(f => f.Source != "mallory")]);
        return reference.Version.ContentHash;
    }

    private FileFeedbackJournal OpenJournal() => new(new FileFeedbackJournalOptions { Directory = Path.Combine(_dir, "journal") });

    private static void Deterministic(LiveModelOptions o)
    {
        o.Learner.Batching = BatchPolicy.Fixed;
        o.Learner.MaxBatchItems = 2;
        o.Replay.Ratio = 0.45;
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

    private static async Task<List<JournalRecord>> ReadAll(IFeedbackJournal journal)
    {
        var list = new List<JournalRecord>();
        await foreach (JournalRecord r in journal.ReadAsync(0, CancellationToken.None))
        {
            list.Add(r);
        }

        return list;
    }
}
