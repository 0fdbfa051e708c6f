using System.Diagnostics;
using System.Text;
using LiveLearning.Backends;
using LiveLearning.Lora;
using LiveLearning.Models;
using LiveLearning.Numerics;
using LiveLearning.Testing;

namespace LiveLearning.Benchmarks.Perf;

/// <summary>
/// The live loop at the SmolLM2-135M shape (random weights, the test tokenizer, r=8 α=16 LoRA on q_proj and v_proj, the
/// default live options), in a child process after a rest like the other end-to-end scenarios. Every ratio is against a
/// baseline measured in the same child: the bare 1×64 and 4×64 training steps, and idle decoding.
/// </summary>
internal sealed class LivePerf : IPerfProbe
{
    public int Order => 110;

    public void Run(PerfContext perf)
    {
        string dir = E2eModels.Ensure(WeightType.F32);
        if (!File.Exists(Path.Combine(dir, "tokenizer.json")))
        {
            ModelWriter.WriteTokenizer(dir);
        }

        Console.WriteLine("  resting 20 s, then the live loop (F32) in a child process ...");
        Thread.Sleep(TimeSpan.FromSeconds(20));
        Dictionary<string, double> live = E2eWorker.RunInChild(dir, WeightType.F32, E2eWorker.LiveMode);
        foreach ((string name, double value) in live)
        {
            perf.Report(name, value);
        }
    }
}

/// <summary>The child-process side of <see cref="LivePerf"/>.</summary>
internal static class LivePerfWorker
{
    private const int PromptTokens = 24;
    private const int SequenceTokens = 64;

    public static async Task<Dictionary<string, double>> MeasureAsync(string dir)
    {
        var metrics = new Dictionary<string, double>(StringComparer.Ordinal);
        using var model = LlamaModel.Load(dir, new ModelOptions { ThreadCount = 2 });
        var config = new LoraConfig { Rank = 8, Alpha = 16, TargetModules = ["q_proj", "v_proj"] };
        var backend = new LoraBackend(model, config, ownsModel: false);
        (string Prompt, string Completion)[] items = Corrections(backend, 200);

        // Baselines in this process: the bare training steps the loop is built on (as e2e_train64_ms and 4x64).
        var state = new LoraTrainingState(LoraAdapter.CreateFresh(config, model));
        TrainingSequence[] one = [Sequence(backend, items[0])];
        TrainingSequence[] four = [.. items.Skip(1).Take(4).Select(i => Sequence(backend, i))];
        var step = new OptimizerOptions { LearningRate = 1e-4f };
        double train64 = PerfContext.MedianSeconds(() => state.TrainStep(model, one, step), samples: 9, minSampleSeconds: 0, warmupSeconds: 1);
        double train4x64 = PerfContext.MedianSeconds(() => state.TrainStep(model, four, step), samples: 5, minSampleSeconds: 0, warmupSeconds: 1);
        metrics["live_baseline_train64_ms"] = 1e3 * train64;
        metrics["live_baseline_train4x64_items_per_s"] = 4 / train4x64;

        int next = 5;
        await using (var live = new LiveModel(backend, new LiveModelOptions(), ownsBackend: false))
        {
            // Latency: one 64-token correction at a time, from LearnAsync to the published version that includes it.
            List<double> latencies = await Latencies(live, items, next, 11);
            next += 11;
            metrics["learn_latency_ms"] = Median(latencies);
            metrics["learn_latency_ratio"] = metrics["learn_latency_ms"] / metrics["live_baseline_train64_ms"];

            // Throughput: a stream of 32 corrections offered as fast as LearnAsync returns; micro-batches form on their own.
            metrics["learn_items_per_s"] = await Throughput(live, items, next, 32);
            next += 32;
            metrics["learn_items_per_s_ratio"] = metrics["learn_items_per_s"] / metrics["live_baseline_train4x64_items_per_s"];
        }

        // The same latency with the durable journal (fsync per group), against the in-memory figure of this run.
        string journalDir = Path.Combine(Path.GetTempPath(), "ll-perf-live-journal-" + Guid.NewGuid().ToString("N"));
        try
        {
            await using var journal = new LiveLearning.Storage.FileFeedbackJournal(new LiveLearning.Storage.FileFeedbackJournalOptions { Directory = journalDir });
            await using var live = new LiveModel(backend, new LiveModelOptions(), new LiveModelServices { Journal = journal }, ownsBackend: false);
            metrics["learn_latency_durable_ms"] = Median(await Latencies(live, items, next, 11));
            next += 11;
            metrics["learn_latency_durable_ratio"] = metrics["learn_latency_durable_ms"] / metrics["learn_latency_ms"];
        }
        finally
        {
            Directory.Delete(journalDir, recursive: true);
        }

        // Restart: a snapshot, 100 journaled items after it, then a new model over the same files — restore the snapshot
        // and learn the 100 items again (in full batches) — against learning 100 items at the baseline 4x64 rate.
        string restartDir = Path.Combine(Path.GetTempPath(), "ll-perf-live-restart-" + Guid.NewGuid().ToString("N"));
        try
        {
            LiveModelServices Durable() => new()
            {
                Journal = new LiveLearning.Storage.FileFeedbackJournal(new LiveLearning.Storage.FileFeedbackJournalOptions { Directory = Path.Combine(restartDir, "journal") }),
                Snapshots = new LiveLearning.Storage.FileSnapshotStore(Path.Combine(restartDir, "snapshots")),
            };

            LiveModelServices first = Durable();
            await using (var live = new LiveModel(backend, new LiveModelOptions { Shutdown = ShutdownMode.Immediate }, first, ownsBackend: false))
            {
                await live.SnapshotAsync();
                live.PauseLearning();
                for (int i = 0; i < 100; i++)
                {
                    (string p, string c) = items[(next + i) % items.Length];
                    await live.LearnAsync(new Demonstration { Prompt = p, Completion = c });
                }

                // Stopped before learning them (Immediate): the restart has all 100 to learn.
            }

            await ((IAsyncDisposable)first.Journal!).DisposeAsync();
            LiveModelServices second = Durable();
            long started = System.Diagnostics.Stopwatch.GetTimestamp();
            await using (var live = new LiveModel(backend, new LiveModelOptions(), second, ownsBackend: false))
            {
                await live.WaitForIdleAsync();
                metrics["restart_recovery_ms"] = System.Diagnostics.Stopwatch.GetElapsedTime(started).TotalMilliseconds;
                metrics["restart_recovered_items"] = live.GetStatistics()["default"].Learned;
            }

            await ((IAsyncDisposable)second.Journal!).DisposeAsync();
            metrics["restart_recovery_ratio"] = metrics["restart_recovery_ms"] / (1e3 * 100 / metrics["live_baseline_train4x64_items_per_s"]);
        }
        finally
        {
            Directory.Delete(restartDir, recursive: true);
        }

        await using (var live = new LiveModel(backend, new LiveModelOptions { Replay = new ReplayOptions { Ratio = 0 } }, ownsBackend: false))
        {
            metrics["learn_items_per_s_no_replay"] = await Throughput(live, items, next, 32);
            next += 32;
        }

        // Serving while learning: decode ms/token idle and while a stream of corrections keeps the learner busy.
        foreach (LearningPriority priority in new[] { LearningPriority.Background, LearningPriority.Shared })
        {
            var options = new LiveModelOptions();
            options.Learner.Priority = priority;
            await using var live = new LiveModel(backend, options, ownsBackend: false);
            double idle = await DecodeMsPerToken(live, runs: 7);
            using var stop = new CancellationTokenSource();
            int offered = 0;
            Task feeder = Task.Run(async () =>
            {
                while (!stop.IsCancellationRequested)
                {
                    (string p, string c) = items[(next + offered++) % items.Length];
                    await live.LearnAsync(new Demonstration { Prompt = p, Completion = c });
                }
            });
            while (live.GetStatistics()["default"].Steps < 2)
            {
                await Task.Delay(10);
            }

            long stepsBefore = live.GetStatistics()["default"].Steps;
            double learning = await DecodeMsPerToken(live, runs: 7);
            long stepsDuring = live.GetStatistics()["default"].Steps - stepsBefore;
            await stop.CancelAsync();
            await feeder;
            string suffix = priority == LearningPriority.Background ? string.Empty : "_shared";
            metrics["serve_idle_decode_ms_per_token" + suffix] = idle;
            metrics["serve_while_learning_decode_ms_per_token" + suffix] = learning;
            metrics["serve_while_learning_slowdown_pct" + suffix] = 100 * ((learning / idle) - 1);
            metrics["serve_while_learning_steps" + suffix] = stepsDuring;
        }

        // Extra scopes at rest after learning one item each: adapter and optimizer state (each keeps its current version
        // only). A first scope warms the shared pools; eight more are measured together and the cost divided.
        await using (var live = new LiveModel(backend, new LiveModelOptions(), ownsBackend: false))
        {
            async Task AddScope(string name, int item)
            {
                live.CreateScope(new ScopeOptions { Name = name, VersionHistoryCapacity = 1 });
                await live.LearnAsync(new Demonstration { Prompt = items[item].Prompt, Completion = items[item].Completion, Scope = name });
                await live.WaitForIdleAsync(name);
            }

            await AddScope("warm", 0);
            long before = Managed();
            const int Scopes = 8;
            for (int i = 0; i < Scopes; i++)
            {
                await AddScope($"user-{i}", i + 1);
            }

            long after = Managed();
            long parameters = live.GetWeights(live.GetVersion("user-0").Id).ParameterCount;
            double adapterAndAdam = 3.0 * parameters * sizeof(float);
            double perScope = (after - before) / (double)Scopes;
            metrics["scope_extra_mb"] = perScope / 1e6;
            metrics["scope_adapter_and_optimizer_mb"] = adapterAndAdam / 1e6;
            metrics["scope_extra_ratio"] = perScope / adapterAndAdam;
            GC.KeepAlive(live);
        }

        metrics["live_peak_rss_mb"] = E2eWorker.PeakRssBytes() / 1e6;
        return metrics;
    }

    /// <summary>LearnAsync-to-published latencies (ms) of <paramref name="count"/> corrections one at a time; the first two warm up.</summary>
    private static async Task<List<double>> Latencies(LiveModel live, IReadOnlyList<(string Prompt, string Completion)> items, int next, int count)
    {
        var latencies = new List<double>();
        for (int i = 0; i < count; i++)
        {
            (string prompt, string completion) = items[next++];
            var published = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
            using var stop = new CancellationTokenSource();
            long target = long.MaxValue;
            Task watcher = Task.Run(async () =>
            {
                try
                {
                    await foreach (AdapterVersion v in live.WatchVersionsAsync(cancellationToken: stop.Token))
                    {
                        if (v.JournalPosition >= Volatile.Read(ref target))
                        {
                            published.TrySetResult(Stopwatch.GetTimestamp());
                        }
                    }
                }
                catch (OperationCanceledException)
                {
                }
            });
            await Task.Delay(50);
            long t0 = Stopwatch.GetTimestamp();
            LearnReceipt receipt = await live.LearnAsync(new Demonstration { Prompt = prompt, Completion = completion });
            Volatile.Write(ref target, receipt.SequenceNumber);
            if (live.Version.JournalPosition >= receipt.SequenceNumber)
            {
                published.TrySetResult(Stopwatch.GetTimestamp());
            }

            long t1 = await published.Task;
            await stop.CancelAsync();
            await watcher;
            if (i >= 2)
            {
                latencies.Add(Stopwatch.GetElapsedTime(t0, t1).TotalMilliseconds);
            }

            await live.WaitForIdleAsync();
        }


        return latencies;
    }

    private static async Task<double> Throughput(LiveModel live, (string Prompt, string Completion)[] items, int from, int count)
    {
        // Warm the learner first (the first steps of a model allocate its pooled buffers).
        await live.LearnAsync(new Demonstration { Prompt = items[0].Prompt, Completion = items[0].Completion });
        await live.WaitForIdleAsync();
        long t0 = Stopwatch.GetTimestamp();
        for (int i = 0; i < count; i++)
        {
            (string prompt, string completion) = items[from + i];
            await live.LearnAsync(new Demonstration { Prompt = prompt, Completion = completion });
        }

        await live.WaitForIdleAsync();
        return count / Stopwatch.GetElapsedTime(t0).TotalSeconds;
    }

    /// <summary>Median ms per generated token of 32-token greedy completions after a 32-token prompt, from the first token to the last.</summary>
    private static async Task<double> DecodeMsPerToken(LiveModel live, int runs)
    {
        var perToken = new List<double>();
        var options = new GenerationOptions { MaxTokens = 33, StopTokenIds = [] };
        for (int run = 0; run < runs; run++)
        {
            long first = 0;
            long last = 0;
            int tokens = 0;
            await foreach (LiveCompletionUpdate update in live.StreamAsync(PromptOf32Tokens(live, run), options))
            {
                if (update.CompletionTokens > tokens)
                {
                    last = Stopwatch.GetTimestamp();
                    first = tokens == 0 ? last : first;
                    tokens = update.CompletionTokens;
                }
            }

            perToken.Add(Stopwatch.GetElapsedTime(first, last).TotalMilliseconds / (tokens - 1));
        }

        return Median(perToken);
    }

    private static string PromptOf32Tokens(LiveModel live, int seed)
    {
        var text = new StringBuilder($"Request {seed}:");
        var rng = new Random(seed);
        while (live.Backend.EncodePrompt(text.ToString()).Count < 32)
        {
            text.Append((char)('a' + rng.Next(26)));
        }

        return text.ToString();
    }

    /// <summary>Corrections whose prompt is 24 tokens and whose completion, with its end token, is 40: 64-token sequences.</summary>
    private static (string Prompt, string Completion)[] Corrections(ILearningBackend backend, int count)
    {
        var rng = new Random(5);
        string Grow(Func<string, int> tokens, int wanted, string start)
        {
            var sb = new StringBuilder(start);
            while (tokens(sb.ToString()) < wanted)
            {
                sb.Append(rng.Next(4) == 0 ? ' ' : (char)('a' + rng.Next(26)));
            }

            return tokens(sb.ToString()) == wanted ? sb.ToString() : Grow(tokens, wanted, start);
        }

        return [.. Enumerable.Range(0, count).Select(i => (
            Grow(t => backend.EncodePrompt(t).Count, PromptTokens, $"Question {i}:"),
            Grow(t => backend.EncodeCompletion(t, PromptKind.Text, appendEnd: true).Count, SequenceTokens - PromptTokens, " Answer")))];
    }

    private static TrainingSequence Sequence(ILearningBackend backend, (string Prompt, string Completion) item) =>
        TrainingSequence.Completion(backend.EncodePrompt(item.Prompt), backend.EncodeCompletion(item.Completion, PromptKind.Text, appendEnd: true));

    private static long Managed()
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        return GC.GetTotalMemory(forceFullCollection: true);
    }

    private static double Median(List<double> values)
    {
        values.Sort();
        return values[values.Count / 2];
    }
}
