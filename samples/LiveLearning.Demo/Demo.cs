using System.Globalization;
using LiveLearning.Governance;
using LiveLearning.Storage;
using LiveLearning.Testing;
using Microsoft.Extensions.DependencyInjection;

namespace LiveLearning.Demo;

/// <summary>Where the demo reads its model and keeps its data.</summary>
public sealed record DemoOptions
{
    /// <summary>A Hugging Face model directory, or null to write the small demo model.</summary>
    public string? ModelDirectory { get; init; }

    /// <summary>Where the journal, snapshots and ledger go (emptied first).</summary>
    public required string DataDirectory { get; init; }
}

/// <summary>
/// The demo: a live model that is taught in front of the user — corrections while it serves, a preference, a poisoned
/// stream refused, a snapshot, rollbacks, forgetting a source — through the public API and DI, with durable storage.
/// </summary>
public static class DemoRunner
{
    private const string Zorbia = "Zorbia has its capital in";
    private const string Cat = "Our cat is called";
    private const string River = "The longest river on Zorbia:";
    private const string Guard = "Two plus two equals";
    private static readonly GenerationOptions Short = new() { MaxTokens = 6 };

    /// <summary>Runs the demo, writing what happens to <paramref name="output"/>.</summary>
    /// <param name="options">Model and data directories.</param>
    /// <param name="output">Where the story goes.</param>
    /// <param name="cancellationToken">Stops the demo.</param>
    /// <returns>0 when every step behaved as described, 1 otherwise.</returns>
    public static async Task<int> RunAsync(DemoOptions options, TextWriter output, CancellationToken cancellationToken = default)
    {
        string data = Path.GetFullPath(options.DataDirectory);
        if (Directory.Exists(data))
        {
            Directory.Delete(data, recursive: true);
        }

        Directory.CreateDirectory(data);
        string model = options.ModelDirectory ?? Path.Combine(data, "model");
        output.WriteLine("LiveLearning demo");
        if (options.ModelDirectory is null)
        {
            // No base model is bundled yet: a small one is written in the real format (random weights, so its answers
            // are noise until taught — which makes every change below the model's learning, nothing else).
            DemoModel.Ensure(model);
            output.WriteLine($"  model: {model} (written for the demo: config.json, model.safetensors, tokenizer.json; 4 layers of 128, random weights)");
        }
        else
        {
            output.WriteLine($"  model: {model}");
        }

        output.WriteLine($"  data:  {data}");
        var check = new Checks(output);

        // 1. The base, before anything is taught; its answer to the guard prompt becomes a guard that must keep passing.
        output.WriteLine();
        output.WriteLine("1. What the base model answers");
        string guardAnswer;
        string zorbiaBefore;
        await using (ServiceProvider first = Build(model, data, guards: []))
        {
            ILiveModel m = first.GetRequiredService<ILiveModel>();
            zorbiaBefore = await AskAsync(m, Zorbia, output, cancellationToken);
            await AskAsync(m, Cat, output, cancellationToken);
            await AskAsync(m, Guard, output, cancellationToken);
            guardAnswer = " four.";
            await TeachAsync(m, "owner", Guard, guardAnswer, output, cancellationToken);
            await m.WaitForIdleAsync(cancellationToken: cancellationToken);
            check.That(await AskAsync(m, Guard, output, cancellationToken) == guardAnswer, "the owner's fact is learned");
            output.WriteLine($"   the owner declares it a guard: no later version may stop answering \"{Guard}\" →{guardAnswer}");
            output.WriteLine("   (the model stops here and starts again over the same journal: the restart relearns what it was taught)");
        }

        await using ServiceProvider provider = Build(model, data, [new GuardExample { Name = "two plus two", Prompt = Guard, Expected = guardAnswer }]);
        ILiveModel live = provider.GetRequiredService<ILiveModel>();
        await live.WaitForIdleAsync(cancellationToken: cancellationToken);
        check.That(await AskAsync(live, Guard, output, cancellationToken) == guardAnswer, "after the restart the owner's fact is still known");

        // 2. Corrections from three sources while a reader keeps being served; each new version is announced.
        output.WriteLine();
        output.WriteLine("2. Teaching corrections while the model keeps serving");
        using var stopWatching = new CancellationTokenSource();
        Task watcher = Task.Run(
            async () =>
            {
                try
                {
                    await foreach (AdapterVersion v in live.WatchVersionsAsync(cancellationToken: stopWatching.Token))
                    {
                        LiveCompletion now = await live.CompleteAsync(Zorbia, Short, cancellationToken: stopWatching.Token);
                        output.WriteLine($"   new version {v.Id,-9} \"{Zorbia}\" →{now.Text}");
                    }
                }
                catch (OperationCanceledException)
                {
                }
            },
            CancellationToken.None);
        SnapshotInfo beforeTeaching = await live.SnapshotAsync("before corrections", cancellationToken: cancellationToken);
        await provider.GetRequiredService<ISnapshotStore>().SetAliasAsync("before-corrections", beforeTeaching.Id, cancellationToken);
        zorbiaBefore = (await live.CompleteAsync(Zorbia, Short, cancellationToken: cancellationToken)).Text;
        // Paused while they arrive, so the three are learned together in one batch (with a replayed earlier item).
        live.PauseLearning(actor: "demo");
        await TeachAsync(live, "alice", Zorbia, " Quux.", output, cancellationToken);
        await TeachAsync(live, "bob", Cat, " Tom.", output, cancellationToken);
        await TeachAsync(live, "carol", River, " the Zed.", output, cancellationToken);
        live.ResumeLearning(actor: "demo");
        await live.WaitForIdleAsync(cancellationToken: cancellationToken);
        await stopWatching.CancelAsync();
        await watcher;
        output.WriteLine("   after teaching:");
        check.That(await AskAsync(live, Zorbia, output, cancellationToken) == " Quux.", "the taught capital is answered");
        check.That(await AskAsync(live, Cat, output, cancellationToken) == " Tom.", "the taught name is answered");
        check.That(await AskAsync(live, Guard, output, cancellationToken) == guardAnswer, "the guard still passes");

        // 3. A preference (DPO): prefer a friendly greeting to a rude one.
        output.WriteLine();
        output.WriteLine("3. A preference (chosen over rejected, learned by DPO)");
        const string Greet = "Greet the visitor:";
        double before = await MarginAsync(live, Greet, cancellationToken);
        for (int i = 0; i < 4; i++)
        {
            await live.LearnAsync(new Preference { Prompt = Greet, Chosen = " Hello, friend.", Rejected = " Go away.", Source = "dave" }, cancellationToken);
        }

        await live.WaitForIdleAsync(cancellationToken: cancellationToken);
        double after = await MarginAsync(live, Greet, cancellationToken);
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"   log p(\" Hello, friend.\") − log p(\" Go away.\"): {before:+0.00;−0.00} before, {after:+0.00;−0.00} after"));
        check.That(after > before + 1, "the preferred answer gained");

        // 4. A poisoned stream: one source floods contradictions of the guard.
        output.WriteLine();
        output.WriteLine("4. A poisoned stream: mallory sends 20 contradictions of the guard");
        int refused = 0;
        string? reason = null;
        for (int i = 0; i < 20; i++)
        {
            LearnReceipt r = await live.LearnAsync(new Demonstration { Prompt = Guard, Completion = " five, obviously.", Source = "mallory" }, cancellationToken);
            if (!r.Accepted)
            {
                refused++;
                reason ??= $"{r.Rule}: {r.Message}";
            }
        }

        await live.WaitForIdleAsync(cancellationToken: cancellationToken);
        IQueryableLedger ledger = provider.GetRequiredService<IQueryableLedger>();
        LedgerEntry? refusal = await FirstAsync(ledger.QueryAsync(new LedgerQuery { Event = LedgerEvent.PromotionRefused }, cancellationToken));
        output.WriteLine($"   the gate refused {refused} of 20 ({reason})");
        output.WriteLine($"   the evaluator refused what got through: {refusal?.Message ?? "(no refusal recorded)"}");
        check.That(refused > 0, "the gate capped the flood");
        check.That(refusal is not null, "the evaluator refused a harmful candidate");
        check.That(await AskAsync(live, Guard, output, cancellationToken) == guardAnswer, "the guard still passes");

        // 5. Snapshot, rollback, forget.
        output.WriteLine();
        output.WriteLine("5. Snapshot, rollback and forgetting a source");
        string taught = await AskAsync(live, Zorbia, output, cancellationToken);
        SnapshotInfo snapshot = await live.SnapshotAsync("taught", cancellationToken: cancellationToken);
        await provider.GetRequiredService<ISnapshotStore>().SetAliasAsync("last-good", snapshot.Id, cancellationToken);
        output.WriteLine($"   snapshot {snapshot.Id} of {snapshot.Version.Id}, aliased last-good");
        AdapterVersion rolled = await live.RollbackAsync("before-corrections", reason: "demo: back to before the corrections", actor: "demo", cancellationToken: cancellationToken);
        output.WriteLine($"   rolled back to before-corrections, the snapshot of {beforeTeaching.Version.Id} (now {rolled.Id}):");
        check.That(await AskAsync(live, Zorbia, output, cancellationToken) == zorbiaBefore, "the answer from before the corrections is back");
        rolled = await live.RollbackAsync("last-good", reason: "demo: the taught state", actor: "demo", cancellationToken: cancellationToken);
        output.WriteLine($"   rolled back to last-good (now {rolled.Id}):");
        check.That(await AskAsync(live, Zorbia, output, cancellationToken) == taught, "the answer at last-good is back");
        ForgetReport forgot = await live.ForgetSourceAsync("alice", reason: "demo: alice asked to be forgotten", actor: "demo", cancellationToken: cancellationToken);
        ScopeForgetReport scope = forgot.Scopes[0];
        output.WriteLine($"   forgot alice: {scope.ItemsForgotten} item erased, scope rebuilt from {scope.RebuiltFrom ?? "its initial state"} by relearning {scope.ItemsRelearned} items, {scope.SnapshotsDeleted.Count} snapshot(s) holding her influence deleted; now {scope.Version.Id}");
        check.That(await AskAsync(live, Zorbia, output, cancellationToken) != " Quux.", "alice's fact is gone");
        check.That(await AskAsync(live, Cat, output, cancellationToken) == " Tom.", "bob's fact is kept");

        // 6. What is on disk.
        output.WriteLine();
        output.WriteLine("6. On disk");
        LedgerVerification chain = await ledger.VerifyChainAsync(cancellationToken);
        output.WriteLine($"   journal:   {Path.Combine(data, "journal")} ({Directory.GetFiles(Path.Combine(data, "journal")).Length} files)");
        output.WriteLine($"   snapshots: {Path.Combine(data, "snapshots")} ({(await provider.GetRequiredService<ISnapshotStore>().ListAsync(null, cancellationToken)).Count} kept)");
        output.WriteLine($"   ledger:    {Path.Combine(data, "ledger.db")} ({chain.Checked} entries, hash chain {(chain.Valid ? "verified" : "BROKEN: " + chain.Problem)})");
        check.That(chain.Valid, "the ledger's chain verifies");
        output.WriteLine();
        output.WriteLine(check.Failed == 0 ? $"demo: all {check.Passed} checks passed" : $"demo: {check.Failed} of {check.Passed + check.Failed} checks failed");
        return check.Failed == 0 ? 0 : 1;
    }

    private static ServiceProvider Build(string model, string data, IReadOnlyList<GuardExample> guards)
    {
        var services = new ServiceCollection();
        services.AddLiveLearning()
            .UseFileJournal(new FileFeedbackJournalOptions { Directory = Path.Combine(data, "journal") })
            .UseFileSnapshotStore(Path.Combine(data, "snapshots"))
            .UseSqliteLedger(Path.Combine(data, "ledger.db"))
            .AddGateRule(new InfluenceCapRule(new InfluenceCapOptions { MaxShare = 0.3, Window = 40, MinItems = 12 }))
            .UseRegressionEvaluator(new RegressionEvaluatorOptions { Guards = guards })
            .AddLoraModel("default", o =>
            {
                o.ModelDirectory = model;
                DemoModel.Configure(o);
            });
        return services.BuildServiceProvider();
    }

    private static async Task<string> AskAsync(ILiveModel model, string prompt, TextWriter output, CancellationToken cancellationToken)
    {
        LiveCompletion answer = await model.CompleteAsync(prompt, Short, cancellationToken: cancellationToken);
        output.WriteLine($"   {answer.Version.Id,-9} \"{prompt}\" →{answer.Text}");
        return answer.Text;
    }

    private static async Task TeachAsync(ILiveModel model, string source, string prompt, string completion, TextWriter output, CancellationToken cancellationToken)
    {
        LearnReceipt receipt = await model.LearnAsync(new Demonstration { Prompt = prompt, Completion = completion, Source = source }, cancellationToken);
        output.WriteLine($"   {source} teaches \"{prompt}\" →{completion} (item #{receipt.SequenceNumber}, {(receipt.Accepted ? "accepted" : "refused: " + receipt.Message)})");
    }

    private static async Task<double> MarginAsync(ILiveModel model, string prompt, CancellationToken cancellationToken) =>
        (await model.ScoreAsync(prompt, " Hello, friend.", cancellationToken: cancellationToken)).Score.LogLikelihood
        - (await model.ScoreAsync(prompt, " Go away.", cancellationToken: cancellationToken)).Score.LogLikelihood;

    private static async Task<LedgerEntry?> FirstAsync(IAsyncEnumerable<LedgerEntry> entries)
    {
        await foreach (LedgerEntry e in entries)
        {
            return e;
        }

        return null;
    }

    /// <summary>The demo's own checks: each claim it prints is verified, and a failed one says so.</summary>
    private sealed class Checks(TextWriter output)
    {
        public int Passed { get; private set; }

        public int Failed { get; private set; }

        public void That(bool condition, string claim)
        {
            if (condition)
            {
                Passed++;
                output.WriteLine($"     ✓ {claim}");
            }
            else
            {
                Failed++;
                output.WriteLine($"     ✗ {claim}");
            }
        }
    }
}
