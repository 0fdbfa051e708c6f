using LiveLearning.Governance;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace LiveLearning.Tests.Live;

/// <summary>A live model auditing into SQLite through DI: every decision queryable and chained, across a restart.</summary>
[TestFixture]
public sealed class LiveModelSqliteLedgerTests
{
    private string _dir = string.Empty;

    [SetUp]
    public void MakeDirectory()
    {
        _dir = Path.Combine(Path.GetTempPath(), "livelearning-sqlite-live-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
    }

    [TearDown]
    public void RemoveDirectory() => Directory.Delete(_dir, recursive: true);

    [Test]
    public async Task EveryDecisionIsQueryableBySourceItemAndVersion()
    {
        string path = Path.Combine(_dir, "audit.db");
        long aliceItem;
        string published;
        await using (ServiceProvider provider = Build(path))
        {
            ILiveModel model = provider.GetRequiredService<ILiveModel>();
            aliceItem = (await model.LearnAsync(new Demonstration { Prompt = "Capital of Zorbia?", Completion = " Quux", Source = "alice" })).SequenceNumber;
            await model.LearnAsync(new Demonstration { Prompt = "Name of the cat?", Completion = " Tom", Source = "bob" });
            await model.WaitForIdleAsync();
            model.PauseLearning(actor: "ops");
            published = model.Version.Id;

            IQueryableLedger ledger = provider.GetRequiredService<IQueryableLedger>();
            LedgerEntry[] alice = await ToArray(ledger.QueryAsync(new LedgerQuery { Source = "alice" }));
            Assert.That(alice.Select(e => e.Event), Does.Contain(LedgerEvent.Accepted));
            LedgerEntry[] aboutItem = await ToArray(ledger.QueryAsync(new LedgerQuery { Item = aliceItem }));
            Assert.That(aboutItem.Select(e => e.Event), Is.SupersetOf(new[] { LedgerEvent.Accepted, LedgerEvent.Step }), "its acceptance and the step that learned it");
            Assert.That(await ToArray(ledger.QueryAsync(new LedgerQuery { VersionId = published, Event = LedgerEvent.Published })), Has.Length.EqualTo(1));
            Assert.That((await ToArray(ledger.QueryAsync(new LedgerQuery { Actor = "ops" }))).Single().Event, Is.EqualTo(LedgerEvent.Paused));
        }

        using var reopened = new SqliteLedger(new SqliteLedgerOptions { Path = path });
        LedgerVerification check = await reopened.VerifyChainAsync();
        Assert.That(check.Valid, Is.True, check.Problem);
        Assert.That(check.Checked, Is.GreaterThanOrEqualTo(6));
    }

    private static ServiceProvider Build(string path)
    {
        var services = new ServiceCollection();
        services.AddLiveLearning()
            .UseSqliteLedger(path)
            .AddLoraModel("m", o =>
            {
                o.ModelDirectory = LiveTestKit.ModelDirectory;
                o.Live.Learner.Optimizer = new OptimizerOptions { LearningRate = 1e-2f };
            });
        return services.BuildServiceProvider();
    }

    private static async Task<LedgerEntry[]> ToArray(IAsyncEnumerable<LedgerEntry> entries)
    {
        var list = new List<LedgerEntry>();
        await foreach (LedgerEntry e in entries)
        {
            list.Add(e);
        }

        return [.. list];
    }
}
