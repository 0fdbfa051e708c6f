using System.Diagnostics;
using System.Globalization;
using LiveLearning.Lora;
using LiveLearning.Models;
using LiveLearning.Storage;
using LiveLearning.Testing;

namespace LiveLearning.CrashHarness;

/// <summary>Settings of one crash run.</summary>
public sealed record CrashOptions
{
    /// <summary>Times the child is killed.</summary>
    public int Kills { get; init; } = 50;

    /// <summary>Seed of the kill times (each child's items carry it too).</summary>
    public int Seed { get; init; } = 1;

    /// <summary>Longest the child learns, after it served its first response, before it is killed.</summary>
    public TimeSpan MaxRun { get; init; } = TimeSpan.FromMilliseconds(700);

    /// <summary>Where the model, journal and snapshots live (a fresh temporary directory when null).</summary>
    public string? Directory { get; init; }
}

/// <summary>What a crash run found.</summary>
/// <param name="Kills">Children killed with SIGKILL.</param>
/// <param name="Acknowledged">Items whose LearnAsync returned accepted before the kill.</param>
/// <param name="JournalRecords">Records in the journal at the end.</param>
/// <param name="Lost">Acknowledged items missing from the journal after a restart (must be 0).</param>
/// <param name="Duplicated">Items present more than once (must be 0).</param>
/// <param name="UnreadableSnapshots">Snapshots that failed verification (must be 0).</param>
/// <param name="TornBytesCut">Bytes of torn journal tails cut on the opens after kills.</param>
/// <param name="FailedRestarts">Children that did not recover, serve and learn before their kill (must be 0).</param>
/// <param name="Problems">What went wrong, when anything did.</param>
public sealed record CrashReport(int Kills, long Acknowledged, long JournalRecords, long Lost, long Duplicated, int UnreadableSnapshots, long TornBytesCut, int FailedRestarts, IReadOnlyList<string> Problems)
{
    /// <summary>Nothing acknowledged was lost or doubled, every snapshot is sound and every restart worked.</summary>
    public bool Clean => Lost == 0 && Duplicated == 0 && UnreadableSnapshots == 0 && FailedRestarts == 0 && Problems.Count == 0;

    /// <inheritdoc />
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"kills survived {Kills - FailedRestarts}/{Kills}, acknowledged {Acknowledged}, journal records {JournalRecords}, lost {Lost}, duplicated {Duplicated}, unreadable snapshots {UnreadableSnapshots}, torn bytes cut {TornBytesCut}");
}

/// <summary>
/// The crash harness: a child process learns under load (four writers, each awaiting its item's durability, and a
/// snapshot every 250 ms, pruned to the newest three) and is killed with SIGKILL at a random point; after each kill the journal is opened (its
/// torn tail cut) and checked — every acknowledged item present exactly once — and every snapshot is verified; the
/// next child must recover, serve and acknowledge new items before it is killed in turn.
/// </summary>
public static class Harness
{
    /// <summary>The child's lines: "ready &lt;version&gt;" after recovery, "served" after its first response, "ack &lt;id&gt;" per item.</summary>
    internal const string Ready = "ready";
    internal const string Served = "served";
    internal const string Ack = "ack";

    /// <summary>The small model the children learn on: 2 layers of 64 features, the test tokenizer.</summary>
    internal static ModelSpec Spec { get; } = new() { HiddenSize = 64, IntermediateSize = 128, Layers = 2, Heads = 4, KvHeads = 2, MaxPositionEmbeddings = 512, Seed = 7 };

    /// <summary>Runs the harness.</summary>
    /// <param name="options">How many kills, and when.</param>
    /// <param name="log">Progress (one line per kill).</param>
    /// <param name="cancellationToken">Stops between kills.</param>
    /// <returns>The report.</returns>
    public static async Task<CrashReport> RunAsync(CrashOptions options, TextWriter log, CancellationToken cancellationToken = default)
    {
        string root = options.Directory ?? Path.Combine(Path.GetTempPath(), "livelearning-crash-" + Guid.NewGuid().ToString("N"));
        string modelDir = Path.Combine(root, "model");
        if (!File.Exists(Path.Combine(modelDir, "config.json")))
        {
            ModelWriter.WriteRandomWithTokenizer(modelDir, Spec);
        }

        var random = new Random(options.Seed);
        var acknowledged = new HashSet<string>(StringComparer.Ordinal);
        var seen = new JournalTally();
        var problems = new List<string>();
        long journalRecords = 0, lost = 0, duplicated = 0, torn = 0;
        int unreadable = 0, failedRestarts = 0;
        try
        {
            for (int kill = 1; kill <= options.Kills; kill++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                TimeSpan run = TimeSpan.FromMilliseconds(20 + (random.NextDouble() * (options.MaxRun.TotalMilliseconds - 20)));
                ChildRun child = await RunChildAsync(root, modelDir, $"{options.Seed}.{kill}", run, cancellationToken).ConfigureAwait(false);
                acknowledged.UnionWith(child.Acknowledged);
                if (child.Problem is not null)
                {
                    failedRestarts++;
                    problems.Add($"kill {kill}: {child.Problem}");
                }

                // After the kill: what a restart will find.
                Check check = await CheckAsync(root, acknowledged, seen, cancellationToken).ConfigureAwait(false);
                journalRecords = check.Records;
                lost = check.Lost;
                duplicated = check.Duplicated;
                unreadable = Math.Max(unreadable, check.UnreadableSnapshots.Count);
                torn += check.TornBytesCut;
                problems.AddRange(check.UnreadableSnapshots.Select(p => $"kill {kill}: snapshot {p}"));
                log.WriteLine(string.Create(CultureInfo.InvariantCulture, $"kill {kill,4}: after {run.TotalMilliseconds,4:0} ms, {child.Acknowledged.Count,4} acknowledged, journal {check.Records}, lost {check.Lost}, duplicated {check.Duplicated}, torn {check.TornBytesCut} B"));
                if (check.Lost > 0 || check.Duplicated > 0)
                {
                    problems.Add($"kill {kill}: {check.Lost} acknowledged items lost, {check.Duplicated} duplicated");
                    break;
                }
            }
        }
        finally
        {
            if (options.Directory is null)
            {
                System.IO.Directory.Delete(root, recursive: true);
            }
        }

        return new CrashReport(options.Kills, acknowledged.Count, journalRecords, lost, duplicated, unreadable, torn, failedRestarts, problems);
    }

    /// <summary>Starts a child, lets it serve and learn for <paramref name="run"/>, then kills it with SIGKILL.</summary>
    private static async Task<ChildRun> RunChildAsync(string root, string modelDir, string tag, TimeSpan run, CancellationToken cancellationToken)
    {
        string host = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } h ? h : "dotnet";
        var start = new ProcessStartInfo(host)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string arg in new[] { typeof(Harness).Assembly.Location, "child", root, modelDir, tag })
        {
            start.ArgumentList.Add(arg);
        }

        using Process child = Process.Start(start) ?? throw new InvalidOperationException("The child process did not start.");
        var acknowledged = new List<string>();
        var served = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Task<string> errors = child.StandardError.ReadToEndAsync(cancellationToken);
        Task reading = Task.Run(
            async () =>
            {
                while (await child.StandardOutput.ReadLineAsync(cancellationToken).ConfigureAwait(false) is { } line)
                {
                    if (line == Served)
                    {
                        served.TrySetResult();
                    }
                    else if (line.StartsWith(Ack + " ", StringComparison.Ordinal))
                    {
                        lock (acknowledged)
                        {
                            acknowledged.Add(line[(Ack.Length + 1)..]);
                        }
                    }
                }
            },
            cancellationToken);

        string? problem = null;
        Task first = await Task.WhenAny(served.Task, child.WaitForExitAsync(cancellationToken), Task.Delay(TimeSpan.FromSeconds(120), cancellationToken)).ConfigureAwait(false);
        if (first != served.Task)
        {
            problem = child.HasExited ? $"the child exited ({child.ExitCode}) before serving" : "the child did not serve within 120 s";
        }
        else
        {
            await Task.Delay(run, cancellationToken).ConfigureAwait(false);

            // Each child must acknowledge something too (proof that it keeps learning): wait up to 10 s for its first.
            for (int i = 0; i < 400 && Count(acknowledged) == 0; i++)
            {
                await Task.Delay(25, cancellationToken).ConfigureAwait(false);
            }
        }

        if (!child.HasExited)
        {
            child.Kill(entireProcessTree: false); // SIGKILL on Linux: no handler, no flush, no finally.
        }

        await child.WaitForExitAsync(cancellationToken).ConfigureAwait(false);
        await reading.ConfigureAwait(false);
        string stderr = await errors.ConfigureAwait(false);
        if (problem is null && acknowledged.Count == 0)
        {
            problem = "the child acknowledged no item";
        }

        if (problem is not null && stderr.Length > 0)
        {
            problem += ": " + stderr.Trim().Split('\n')[0];
        }

        return new ChildRun(acknowledged, problem);
    }

    /// <summary>
    /// Opens the journal (cutting a torn tail) and the snapshot store as a restart would, and checks them. Records
    /// already tallied are not read again: a durable record never changes (only a torn, unacknowledged tail is cut).
    /// </summary>
    private static async Task<Check> CheckAsync(string root, HashSet<string> acknowledged, JournalTally seen, CancellationToken cancellationToken)
    {
        long torn;
        await using (var journal = new FileFeedbackJournal(new FileFeedbackJournalOptions { Directory = Path.Combine(root, "journal") }))
        {
            torn = journal.TornBytesCut;
            await foreach (JournalRecord r in journal.ReadAsync(seen.Through, cancellationToken).ConfigureAwait(false))
            {
                seen.Records++;
                seen.Through = r.Sequence;
                foreach (string t in r.Tags)
                {
                    int n = seen.Counts.GetValueOrDefault(t) + 1;
                    seen.Counts[t] = n;
                    seen.Duplicated += n == 2 ? 1 : 0;
                }
            }
        }

        long lost = acknowledged.Count(a => !seen.Counts.ContainsKey(a));
        var store = new FileSnapshotStore(Path.Combine(root, "snapshots"));
        IReadOnlyList<(string Directory, string Problem)> bad = await store.VerifyAsync(cancellationToken).ConfigureAwait(false);
        return new Check(seen.Records, lost, seen.Duplicated, [.. bad.Select(b => $"{Path.GetFileName(b.Directory)}: {b.Problem}")], torn);
    }

    /// <summary>The child: recovers, serves once, then learns with four writers and snapshots until it is killed.</summary>
    internal static async Task<int> ChildAsync(string root, string modelDir, string tag)
    {
        LlamaModel model = LlamaModel.Load(modelDir, new ModelOptions { ThreadCount = 1 });
        var backend = new LoraBackend(model, new LoraConfig { Rank = 4, Alpha = 8, TargetModules = ["q_proj", "v_proj"] }, ownsModel: true);
        var options = new LiveModelOptions();
        options.Learner.Optimizer = new OptimizerOptions { LearningRate = 1e-3f };
        options.Outliers.Enabled = false;
        var services = new LiveModelServices
        {
            Journal = new FileFeedbackJournal(new FileFeedbackJournalOptions { Directory = Path.Combine(root, "journal") }),
            Snapshots = new FileSnapshotStore(Path.Combine(root, "snapshots")),
        };
        await using var live = new LiveModel(backend, options, services);

        // Recovery (the newest snapshot, then the journal after it) runs on the learner: wait for it before serving.
        await live.WaitForIdleAsync().ConfigureAwait(false);
        Console.Out.WriteLine($"{Ready} {live.GetStatistics()[options.DefaultScope].Version.Id}");
        await live.CompleteAsync("Item?", new GenerationOptions { MaxTokens = 2 }).ConfigureAwait(false);
        Console.Out.WriteLine(Served);
        Console.Out.Flush();

        var writers = Enumerable.Range(0, 4).Select(w => Task.Run(async () =>
        {
            for (long k = 0; ; k++)
            {
                string id = string.Create(CultureInfo.InvariantCulture, $"{tag}.{w}.{k}");
                LearnReceipt receipt = await live.LearnAsync(new Demonstration { Prompt = $"Item {id}?", Completion = " ok", Source = "crash", Tags = [id] }).ConfigureAwait(false);
                if (receipt.Accepted)
                {
                    lock (Console.Out)
                    {
                        Console.Out.WriteLine($"{Ack} {id}");
                        Console.Out.Flush();
                    }
                }
            }
        })).ToArray();
        var retention = new SnapshotRetention { KeepLast = 3 };
        Task snapshots = Task.Run(async () =>
        {
            while (true)
            {
                await Task.Delay(250).ConfigureAwait(false);
                await live.SnapshotAsync().ConfigureAwait(false);

                // Retention runs too (a kill may land inside a delete): the store keeps the newest three.
                await retention.PruneAsync(services.Snapshots, CancellationToken.None).ConfigureAwait(false);
            }
        });
        await Task.WhenAny([.. writers, snapshots]).ConfigureAwait(false);

        // Only a failure gets here (the harness kills the child otherwise).
        await Task.WhenAll([.. writers, snapshots]).ConfigureAwait(false);
        return 1;
    }

    private static int Count(List<string> acknowledged)
    {
        lock (acknowledged)
        {
            return acknowledged.Count;
        }
    }

    /// <summary>What the journal held at the last check: records, the item tags counted, and how far it was read.</summary>
    private sealed class JournalTally
    {
        public Dictionary<string, int> Counts { get; } = new(StringComparer.Ordinal);

        public long Records { get; set; }

        public long Through { get; set; }

        public long Duplicated { get; set; }
    }

    private sealed record ChildRun(List<string> Acknowledged, string? Problem);

    private sealed record Check(long Records, long Lost, long Duplicated, IReadOnlyList<string> UnreadableSnapshots, long TornBytesCut);
}
