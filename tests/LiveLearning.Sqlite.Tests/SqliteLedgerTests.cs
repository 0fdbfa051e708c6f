using LiveLearning.Governance;
using LiveLearning.Storage;
using Microsoft.Data.Sqlite;
using NUnit.Framework;

namespace LiveLearning.Tests;

[TestFixture]
public sealed class SqliteLedgerTests
{
    private static readonly DateTimeOffset Start = new(2026, 12, 4, 12, 0, 0, TimeSpan.FromHours(1));
    private string _dir = string.Empty;

    private string DbPath => Path.Combine(_dir, "ledger", "audit.db");

    [SetUp]
    public void MakeDirectory()
    {
        _dir = Path.Combine(Path.GetTempPath(), "livelearning-sqlite-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
    }

    [TearDown]
    public void RemoveDirectory() => Directory.Delete(_dir, recursive: true);

    [Test]
    public async Task EntriesComeBackExactlyAndChained()
    {
        LedgerEntry[] written = Sample();
        using (var ledger = Open())
        {
            foreach (LedgerEntry e in written)
            {
                await ledger.AppendAsync(e, CancellationToken.None);
            }

            LedgerEntry[] read = await ToArray(ledger.QueryAsync(LedgerQuery.All));
            Assert.That(read.Select(e => e.Index), Is.EqualTo(new long[] { 1, 2, 3, 4, 5 }));
            Assert.That(read.Select(e => e with { Index = 0, PreviousHash = "", Hash = "", Items = null, Figures = null }), Is.EqualTo(written.Select(e => e with { Items = null, Figures = null })));
            Assert.That(read[2].Items, Is.EqualTo(new long[] { 1, 2 }));
            Assert.That(read[3].Figures, Is.EqualTo(written[3].Figures));
            Assert.That(read[2].Loss, Is.EqualTo(written[2].Loss), "bit for bit");
            Assert.That(read[0].At, Is.EqualTo(Start).And.Property(nameof(DateTimeOffset.Offset)).EqualTo(TimeSpan.FromHours(1)));
            Assert.That((await ledger.VerifyChainAsync()).Valid, Is.True);
            Assert.That(LedgerChain.Verify(read).Valid, Is.True, "hashes computed on write hold on read");
        }

        using (var reopened = Open())
        {
            await reopened.AppendAsync(new LedgerEntry(Start.AddMinutes(9), "m", "default", LedgerEvent.Paused, "later"), CancellationToken.None);
            Assert.That((await reopened.GetHeadAsync()).Index, Is.EqualTo(6), "the chain continues across opens");
            Assert.That((await reopened.VerifyChainAsync()).Valid, Is.True);
        }
    }

    [Test]
    public async Task QueriesFindBySourceVersionItemEventActorAndTime()
    {
        using var ledger = Open();
        foreach (LedgerEntry e in Sample())
        {
            await ledger.AppendAsync(e, CancellationToken.None);
        }

        Assert.That(await Indices(ledger, new LedgerQuery { Source = "alice" }), Is.EqualTo(new long[] { 1 }));
        Assert.That(await Indices(ledger, new LedgerQuery { Item = 2 }), Is.EqualTo(new long[] { 2, 3 }), "the item's own entry and the step that learned it");
        Assert.That(await Indices(ledger, new LedgerQuery { VersionId = "default@2" }), Is.EqualTo(new long[] { 4 }));
        Assert.That(await Indices(ledger, new LedgerQuery { Event = LedgerEvent.RolledBack, Actor = "ops" }), Is.EqualTo(new long[] { 5 }));
        Assert.That(await Indices(ledger, new LedgerQuery { From = Start.AddMinutes(2), To = Start.AddMinutes(4) }), Is.EqualTo(new long[] { 3, 4 }));
        Assert.That(await Indices(ledger, new LedgerQuery { AfterIndex = 2, Limit = 2 }), Is.EqualTo(new long[] { 3, 4 }));
        Assert.That(await Indices(ledger, new LedgerQuery { Scope = "other" }), Is.Empty);
        var memory = new InMemoryLedger();
        foreach (LedgerEntry e in Sample())
        {
            await memory.AppendAsync(e, CancellationToken.None);
        }

        Assert.That(await Indices(memory, new LedgerQuery { Item = 2 }), Is.EqualTo(new long[] { 2, 3 }), "the in-memory ledger answers the same");
    }

    [TestCase("UPDATE entries SET message = 'nothing to see' WHERE idx = 3;", 3L, "edited")]
    [TestCase("DELETE FROM entries WHERE idx = 3;", 4L, "missing")]
    [TestCase("DELETE FROM entries WHERE idx = 1;", 2L, "before it were deleted")]
    [TestCase("UPDATE entries SET idx = 9 WHERE idx = 2;", 3L, "missing or out of order")]
    [TestCase("UPDATE entries SET loss_bits = NULL WHERE idx = 3;", 3L, "edited")]
    public async Task AnEditedOrDeletedEntryIsFound(string tamper, long firstBad, string problem)
    {
        await Fill();
        Tamper(tamper);
        using var ledger = new SqliteLedger(new SqliteLedgerOptions { Path = DbPath, CheckHeadOnOpen = false });
        LedgerVerification check = await ledger.VerifyChainAsync();
        Assert.That(check.Valid, Is.False);
        Assert.That(check.FirstBadIndex, Is.EqualTo(firstBad));
        Assert.That(check.Problem, Does.Contain(problem));
    }

    [Test]
    public async Task DeletingTheNewestEntryIsFoundByTheHead()
    {
        await Fill();
        Tamper("DELETE FROM entries WHERE idx = 5;");
        Assert.That(() => Open(), Throws.InstanceOf<StorageCorruptedException>().With.Message.Contains("audit.db").And.Message.Contains("head"), "refused at open: appending would hide it");
        Tamper("UPDATE head SET last_index = 4, last_hash = (SELECT hash FROM entries WHERE idx = 4);");
        using var ledger = Open();
        Assert.That((await ledger.VerifyChainAsync()).Valid, Is.True, "a consistent rewrite of the head is what an external anchor (GetHeadAsync) catches");
    }

    [TestCase(0)]
    [TestCase(1)]
    public async Task ADamagedFileIsATypedErrorNamingIt(int damage)
    {
        await Fill();
        byte[] bytes = File.ReadAllBytes(DbPath);
        if (damage == 0)
        {
            File.WriteAllBytes(DbPath, bytes.AsSpan(0, 100).ToArray());
        }
        else
        {
            bytes.AsSpan(0, 16).Fill(0x41);
            File.WriteAllBytes(DbPath, bytes);
        }

        Assert.That(() => Open(), Throws.InstanceOf<StorageCorruptedException>().With.Message.Contains("audit.db"));
    }

    [Test]
    public async Task AnExportVerifiesOnItsOwnAndAnEditedLineDoesNot()
    {
        using var ledger = Open();
        foreach (LedgerEntry e in Sample())
        {
            await ledger.AppendAsync(e with { Figures = new Dictionary<string, double> { ["nan"] = double.NaN, ["x"] = 0.1 } }, CancellationToken.None);
        }

        var export = new MemoryStream();
        long count = await LedgerJson.WriteAsync(ledger.QueryAsync(LedgerQuery.All), export);
        Assert.That(count, Is.EqualTo(5));
        export.Position = 0;
        LedgerEntry[] read = [.. LedgerJson.Read(export)];
        Assert.That(LedgerChain.Verify(read).Valid, Is.True);
        Assert.That(read.Select(e => e.Hash), Is.EqualTo((await ToArray(ledger.QueryAsync(LedgerQuery.All))).Select(e => e.Hash)));

        string[] lines = System.Text.Encoding.UTF8.GetString(export.ToArray()).Split('\n');
        lines[1] = lines[1].Replace("\"scope\":\"default\"", "\"scope\":\"elsewhere\"", StringComparison.Ordinal);
        LedgerVerification edited = LedgerChain.Verify(LedgerJson.Read(new MemoryStream(System.Text.Encoding.UTF8.GetBytes(string.Join('\n', lines)))));
        Assert.That(edited.FirstBadIndex, Is.EqualTo(2));
        Assert.That(() => LedgerJson.Read(new MemoryStream("{\"index\":1}\n"u8.ToArray())).ToList(), Throws.InstanceOf<InvalidDataException>().With.Message.Contains("line 1"));
    }

    [Test]
    public async Task ConcurrentWritersAndTwoOpenersKeepOneChain()
    {
        using var a = Open();
        using var b = Open();
        await Parallel.ForAsync(0, 200, async (i, ct) => await (i % 2 == 0 ? a : b).AppendAsync(new LedgerEntry(Start, "m", "default", LedgerEvent.Accepted, $"item {i}") { Sequence = i }, ct));
        LedgerVerification check = await a.VerifyChainAsync();
        Assert.That(check.Valid, Is.True, check.Problem);
        Assert.That(check.Checked, Is.EqualTo(200));
    }

    private SqliteLedger Open() => new(new SqliteLedgerOptions { Path = DbPath });

    private async Task Fill()
    {
        using var ledger = Open();
        foreach (LedgerEntry e in Sample())
        {
            await ledger.AppendAsync(e, CancellationToken.None);
        }
    }

    private void Tamper(string sql)
    {
        using var c = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = DbPath, Pooling = false }.ToString());
        c.Open();
        using SqliteCommand cmd = c.CreateCommand();
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }

    private static LedgerEntry[] Sample() =>
    [
        new(Start, "m", "default", LedgerEvent.Accepted, "item 1") { Sequence = 1, Source = "alice" },
        new(Start.AddMinutes(1), "m", "default", LedgerEvent.Accepted, "item 2") { Sequence = 2, Source = "bob" },
        new(Start.AddMinutes(2), "m", "default", LedgerEvent.Step, "step 1") { Items = [1, 2], Loss = 0.1 + 0.2 },
        new(Start.AddMinutes(3), "m", "default", LedgerEvent.Published, "published") { VersionId = "default@2", Figures = new Dictionary<string, double> { ["guard_accuracy_candidate"] = 1.0 / 3 } },
        new(Start.AddMinutes(4), "m", "default", LedgerEvent.RolledBack, "rolled back") { Actor = "ops", Rule = null },
    ];

    private static async Task<long[]> Indices(IQueryableLedger ledger, LedgerQuery query) => [.. (await ToArray(ledger.QueryAsync(query))).Select(e => e.Index)];

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
