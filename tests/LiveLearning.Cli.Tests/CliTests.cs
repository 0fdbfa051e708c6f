using LiveLearning.Cli;
using LiveLearning.Governance;
using LiveLearning.Testing;
using Microsoft.Data.Sqlite;
using NUnit.Framework;

namespace LiveLearning.Tests;

/// <summary>livelearn, run in-process as a user runs it: data on stdout, diagnostics on stderr, exit codes.</summary>
[TestFixture]
public sealed class CliTests
{
    private static readonly Lazy<string> Model = new(() =>
    {
        string dir = Path.Combine(Path.GetTempPath(), "livelearning-cli-model-" + Guid.NewGuid().ToString("N"));
        ModelWriter.WriteRandomWithTokenizer(dir, new ModelSpec { HiddenSize = 64, IntermediateSize = 128, Layers = 2, Heads = 4, KvHeads = 2, MaxPositionEmbeddings = 512, Seed = 7 });
        return dir;
    });

    private string _dir = string.Empty;

    private string Data => Path.Combine(_dir, "data");

    [SetUp]
    public void MakeDirectory()
    {
        _dir = Path.Combine(Path.GetTempPath(), "livelearning-cli-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
    }

    [TearDown]
    public void RemoveDirectory() => Directory.Delete(_dir, recursive: true);

    [OneTimeTearDown]
    public void RemoveModel()
    {
        if (Model.IsValueCreated)
        {
            Directory.Delete(Model.Value, recursive: true);
        }
    }

    [Test]
    public async Task LearnThenListVersionsQueryExportAndVerifyTheLedger()
    {
        string feedback = Feedback(
            """{"kind":"demonstration","prompt":"Capital of Zorbia?","completion":" Quux","source":"alice"}""",
            "",
            """{"kind":"preference","prompt":"Greet:","chosen":" Hello","rejected":" Go away","source":"bob"}""",
            """{"kind":"rating","messages":[{"role":"user","content":"Say hi"}],"completion":" hi","positive":true}""");
        Result learn = await Run("learn", "--model", Model.Value, "--feedback", feedback, "--data", Data, "--learning-rate", "1e-2", "--steps-per-item", "5");
        Assert.That(learn.Exit, Is.Zero, learn.Error);
        Assert.That(learn.Out, Does.StartWith("learned 3 items (0 refused); now default@"));
        Assert.That(learn.Error, Does.Contain("3/3 sent"), "progress goes to stderr");

        Result list = await Run("versions", "list", "--data", Data, "--json");
        string id = System.Text.Json.JsonDocument.Parse(list.Out.Trim()).RootElement.GetProperty("id").GetString()!;
        Result show = await Run("versions", "show", id, "--data", Data);
        Assert.That(show.Exit, Is.Zero, show.Error);
        Assert.That(show.Out, Does.Contain("3 items").And.Contain("label after learn feedback.jsonl"));
        Assert.That(list.Out.Trim().Split('\n'), Has.Length.EqualTo(1).And.All.Contains("\"label\":\"after learn feedback.jsonl\""));

        Result query = await Run("ledger", "query", "--data", Data, "--source", "alice");
        Assert.That(query.Out, Does.Contain("Accepted"));
        Result json = await Run("ledger", "query", "--data", Data, "--event", "Published", "--limit", "1", "--json");
        Assert.That(json.Out.Trim().Split('\n'), Has.Length.EqualTo(1).And.All.Contains("\"event\":\"Published\""));

        string export = Path.Combine(_dir, "ledger.jsonl");
        Assert.That((await Run("ledger", "export", "--data", Data, "--out", export)).Exit, Is.Zero);
        using (FileStream stream = File.OpenRead(export))
        {
            Assert.That(LedgerChain.Verify(LedgerJson.Read(stream)).Valid, Is.True, "the export verifies on its own");
        }

        Result verify = await Run("ledger", "verify", "--data", Data);
        Assert.That(verify.Exit, Is.Zero);
        Assert.That(verify.Out, Does.StartWith("ledger chain verified"));
    }

    [Test]
    public async Task ChatStreamsAnswersAndTeachesFromSlashCommands()
    {
        var input = new StringReader("Capital of Zorbia?\n/correct Quux\n/stats\n/bogus\n/quit\n");
        Result chat = await Run(input, "chat", "--model", Model.Value, "--data", Data, "--max-tokens", "3", "--learning-rate", "1e-2", "--steps-per-item", "30");
        Assert.That(chat.Exit, Is.Zero, chat.Error);
        Assert.That(chat.Out, Is.Not.Empty, "the answer");
        Assert.That(chat.Error, Does.Contain("taught (item #1)").And.Contain("1 accepted").And.Contain("'/bogus'"));

        // The correction persisted: a new session starts from the snapshot taken at /quit and answers as taught.
        Result again = await Run(new StringReader("Capital of Zorbia?\n/quit\n"), "chat", "--model", Model.Value, "--data", Data, "--max-tokens", "8");
        Assert.That(again.Out.Trim(), Does.StartWith("Quux"));
    }

    [Test]
    public async Task ForgetAndRollbackWorkAcrossRuns()
    {
        string feedback = Feedback(
            """{"kind":"demonstration","prompt":"Capital of Zorbia?","completion":" Quux","source":"alice"}""",
            """{"kind":"demonstration","prompt":"Name of the cat?","completion":" Tom","source":"bob"}""");
        Assert.That((await Run("learn", "--model", Model.Value, "--feedback", feedback, "--data", Data)).Exit, Is.Zero);
        Result forget = await Run("forget", "--source", "alice", "--model", Model.Value, "--data", Data, "--reason", "asked", "--actor", "dpo");
        Assert.That(forget.Exit, Is.Zero, forget.Error);
        Assert.That(forget.Out, Does.StartWith("default: 1 items forgotten"));
        Result who = await Run("ledger", "query", "--data", Data, "--event", "Forgotten");
        Assert.That(who.Out, Does.Contain("(by dpo)"));

        // Each process starts from the fresh adapter (its version 1) before it restores the newest snapshot.
        Result rollback = await Run("versions", "rollback", "default@1", "--model", Model.Value, "--data", Data, "--reason", "start over", "--actor", "ops");
        Assert.That(rollback.Exit, Is.Zero, rollback.Error);
        Assert.That(rollback.Out, Does.StartWith("rolled back to the weights of default@1"));
        Assert.That((await Run("ledger", "query", "--data", Data, "--event", "RolledBack")).Out, Does.Contain("start over").And.Contain("(by ops)"));

        Result unknown = await Run("versions", "rollback", "default@999", "--model", Model.Value, "--data", Data);
        Assert.That(unknown.Exit, Is.EqualTo(LivelearnCli.Failed));
        Assert.That(unknown.Error.Trim(), Does.StartWith("livelearn: ").And.Contain("default@999").And.Not.Contain("\n"), "one line, no stack trace");
    }

    [Test]
    public async Task ASnapshotsAdapterExportsAsPeftThatLoads()
    {
        Assert.That((await Run("learn", "--model", Model.Value, "--feedback", Feedback("""{"kind":"demonstration","prompt":"p","completion":" c"}"""), "--data", Data)).Exit, Is.Zero);
        string id = (await Run("versions", "list", "--data", Data)).Out.Split(' ')[0];
        Assert.That((await Run("versions", "tag", id, "production", "--data", Data)).Exit, Is.Zero);
        string peft = Path.Combine(_dir, "peft");
        Result export = await Run("adapter", "export-peft", "production", "--out", peft, "--data", Data);
        Assert.That(export.Exit, Is.Zero, export.Error);
        using var model = LiveLearning.Models.LlamaModel.Load(Model.Value);
        LiveLearning.Lora.LoraAdapter adapter = LiveLearning.Lora.LoraAdapter.LoadPeft(peft, model);
        Assert.That(adapter.Config.Rank, Is.EqualTo(8), "the library's default r=8 q,v adapter");

        string merged = Path.Combine(_dir, "merged");
        Result merge = await Run("adapter", "merge", peft, "--model", Model.Value, "--out", merged);
        Assert.That(merge.Exit, Is.Zero, merge.Error);
        using var mergedModel = LiveLearning.Models.LlamaModel.Load(merged);
        int[] prompt = [1, 2, 3];
        int[] completion = [4, 5];
        Assert.That(mergedModel.Score(prompt, completion).LogLikelihood, Is.EqualTo(model.Score(prompt, completion, adapter).LogLikelihood).Within(1e-3), "the merged copy scores like the base with the adapter");
        Assert.That((await Run("adapter", "merge", Path.Combine(_dir, "none"), "--model", Model.Value, "--out", merged)).Error, Does.Contain("not a PEFT adapter directory"));

        // Into a fresh data directory: the imported adapter serves, and a later run keeps its layout.
        string other = Path.Combine(_dir, "other");
        Result import = await Run("adapter", "import-peft", peft, "--model", Model.Value, "--data", other, "--reason", "from elsewhere");
        Assert.That(import.Exit, Is.Zero, import.Error);
        Assert.That(import.Out, Does.StartWith($"imported {peft}"));
        Assert.That((await Run("ledger", "query", "--data", other, "--event", "Imported")).Out, Does.Contain("from elsewhere"));
        Result later = await Run("learn", "--model", Model.Value, "--feedback", Feedback("""{"kind":"demonstration","prompt":"q","completion":" a"}"""), "--data", other);
        Assert.That(later.Exit, Is.Zero, later.Error);
    }

    [Test]
    public async Task BenchReportsMedians()
    {
        Result bench = await Run("bench", "--model", Model.Value, "--runs", "2", "--json");
        Assert.That(bench.Exit, Is.Zero, bench.Error);
        using var doc = System.Text.Json.JsonDocument.Parse(bench.Out);
        Assert.That(doc.RootElement.GetProperty("runs").GetInt32(), Is.EqualTo(2));
        Assert.That(doc.RootElement.GetProperty("learn_latency_ms").GetDouble(), Is.GreaterThan(0));
        Assert.That(doc.RootElement.GetProperty("first_token_ms").GetDouble(), Is.GreaterThan(0));
    }

    [Test]
    public async Task BadInputIsOneLineAndANonZeroExit()
    {
        Result noModel = await Run("learn", "--model", Path.Combine(_dir, "nope"), "--feedback", Feedback("{}"), "--data", Data);
        Assert.That(noModel.Exit, Is.EqualTo(LivelearnCli.Failed));
        Assert.That(noModel.Error.Trim(), Does.Match("^livelearn: model directory '.*nope' does not exist$"));

        Result badLine = await Run("learn", "--model", Model.Value, "--feedback", Feedback("""{"kind":"demonstration","prompt":"p","completion":" c"}""", """{"kind":"poem","prompt":"p"}"""), "--data", Data);
        Assert.That(badLine.Exit, Is.EqualTo(LivelearnCli.Failed));
        Assert.That(badLine.Error, Does.Contain("line 2: unknown kind 'poem'"));
        Assert.That(File.Exists(Path.Combine(Data, "ledger.db")), Is.False, "nothing was learned: the file is checked before anything is sent");

        Result usage = await Run("learn", "--feedbak", "x");
        Assert.That(usage.Exit, Is.EqualTo(LivelearnCli.Usage));
        Assert.That(usage.Error, Does.Contain("--feedbak"));

        Result noLedger = await Run("ledger", "verify", "--data", Data);
        Assert.That(noLedger.Exit, Is.EqualTo(LivelearnCli.Failed));
        Assert.That(noLedger.Error, Does.Contain("no ledger at"));

        Result help = await Run("--help");
        Assert.That(help.Exit, Is.Zero);
        Assert.That(help.Out, Does.Contain("chat").And.Contain("learn").And.Contain("versions").And.Contain("ledger").And.Contain("forget"));
    }

    [Test]
    public async Task VerifyFindsATamperedLedgerWithExitCodeThree()
    {
        Assert.That((await Run("learn", "--model", Model.Value, "--feedback", Feedback("""{"kind":"demonstration","prompt":"p","completion":" c"}"""), "--data", Data)).Exit, Is.Zero);
        using (var c = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = Path.Combine(Data, "ledger.db"), Pooling = false }.ToString()))
        {
            c.Open();
            using SqliteCommand cmd = c.CreateCommand();
            cmd.CommandText = "UPDATE entries SET message = 'nothing happened' WHERE idx = 2;";
            cmd.ExecuteNonQuery();
        }

        Result verify = await Run("ledger", "verify", "--data", Data);
        Assert.That(verify.Exit, Is.EqualTo(LivelearnCli.Damaged));
        Assert.That(verify.Out, Does.Contain("BROKEN at entry 2"));
    }

    private string Feedback(params string[] lines)
    {
        string path = Path.Combine(_dir, "feedback.jsonl");
        File.WriteAllLines(path, lines);
        return path;
    }

    private static Task<Result> Run(params string[] args) => Run(new StringReader(string.Empty), args);

    private static async Task<Result> Run(TextReader input, params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int exit = await LivelearnCli.RunAsync(args, input, output, error, CancellationToken.None);
        return new Result(exit, output.ToString(), error.ToString());
    }

    private sealed record Result(int Exit, string Out, string Error);
}
