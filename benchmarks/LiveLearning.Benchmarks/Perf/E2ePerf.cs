using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using LiveLearning.Lora;
using LiveLearning.Models;
using LiveLearning.Numerics;
using LiveLearning.Testing;

namespace LiveLearning.Benchmarks.Perf;

/// <summary>
/// End-to-end figures on a model of the SmolLM2-135M shape with random weights, F32 and BF16, 2 threads. Each
/// scenario (F32 inference, BF16 inference, LoRA training) runs in a child process so its peak memory is its own, and
/// each child starts after a rest: this VM kind slows its cores for 10-20 s after sustained load on both (a 10 s busy
/// loop made the next prefill 141 ms against 91 ms 20 s later), so without it a scenario's figures would depend on the
/// one that ran before it. Training runs last, being the longest load.
/// </summary>
internal sealed class E2ePerf : IPerfProbe
{
    private static readonly TimeSpan Rest = TimeSpan.FromSeconds(20);

    public int Order => 100;

    public void Run(PerfContext perf)
    {
        string f32Dir = E2eModels.Ensure(WeightType.F32);
        string bf16Dir = E2eModels.Ensure(WeightType.BF16);

        // Each group is reported as soon as its child is done, so a later failure keeps the earlier figures.
        Dictionary<string, double> f32 = RunRested(f32Dir, WeightType.F32);
        perf.Report("e2e_prefill64_ms", f32["prefill64_ms"]);
        perf.Report("e2e_decode_ms_per_token", f32["decode_ms_per_token"]);
        perf.Report("e2e_forward64_ms", f32["forward64_ms"]);
        perf.Report("e2e_peak_rss_mb", f32["peak_rss_mb"]);
        perf.Report("e2e_weights_mb", f32["weights_mb"]);

        Dictionary<string, double> bf16 = RunRested(bf16Dir, WeightType.BF16);
        perf.Report("e2e_prefill64_bf16_ms", bf16["prefill64_ms"]);
        perf.Report("e2e_decode_bf16_ms_per_token", bf16["decode_ms_per_token"]);
        perf.Report("e2e_peak_rss_bf16_mb", bf16["peak_rss_mb"]);

        // LoRA figures in a process of their own (load, prefill overhead, 1×64 steps, then 4×64 steps), so its peak RSS
        // is that of a training process, like the per-scenario PyTorch anchors.
        Dictionary<string, double> lora = RunRested(f32Dir, WeightType.F32, E2eWorker.LoraMode);
        perf.Report("lora_overhead_prefill_pct", lora["lora_overhead_prefill_pct"]);
        perf.Report("e2e_train64_ms", lora["train64_ms"]);
        perf.Report("e2e_train4x64_tokens_per_s", lora["train4x64_tokens_per_s"]);
        perf.Report("e2e_train64_peak_rss_mb", lora["train64_peak_rss_mb"]);
        perf.Report("e2e_train4x64_peak_rss_mb", lora["train4x64_peak_rss_mb"]);
    }

    private static Dictionary<string, double> RunRested(string dir, WeightType type, string? mode = null)
    {
        Console.WriteLine($"  resting {Rest.TotalSeconds:0} s, then {(mode is null ? "inference" : "LoRA training")} ({type}) in a child process ...");
        Thread.Sleep(Rest);
        return E2eWorker.RunInChild(dir, type, mode);
    }
}

/// <summary>Random SmolLM2-135M-shaped model directories, generated once into the temp folder and reused.</summary>
internal static class E2eModels
{
    public static string Ensure(WeightType type)
    {
        string dir = Path.Combine(Path.GetTempPath(), "livelearning-perf", $"smollm2-135m-shape-{type.ToString().ToLowerInvariant()}");
        string marker = Path.Combine(dir, "complete");
        if (!File.Exists(marker))
        {
            Console.WriteLine($"  generating {dir} ...");
            ModelWriter.WriteRandom(dir, ModelSpec.SmolLM2_135M with { WeightType = type, Seed = 42 });
            File.WriteAllText(marker, "ok");
        }

        return dir;
    }
}

/// <summary>The child-process side: loads the model, measures, prints one JSON line.</summary>
internal static class E2eWorker
{
    public const string Verb = "e2e-worker";

    public const string LoraMode = "lora";

    public const string LiveMode = "live";

    public static Dictionary<string, double> RunInChild(string modelDir, WeightType type, string? mode = null)
    {
        string exe = Environment.ProcessPath ?? "dotnet";
        var psi = new ProcessStartInfo(exe) { RedirectStandardOutput = true, UseShellExecute = false };
        if (string.Equals(Path.GetFileNameWithoutExtension(exe), "dotnet", StringComparison.OrdinalIgnoreCase))
        {
            psi.ArgumentList.Add(typeof(E2eWorker).Assembly.Location);
        }

        psi.ArgumentList.Add(Verb);
        psi.ArgumentList.Add(modelDir);
        psi.ArgumentList.Add(type.ToString());
        if (mode is not null)
        {
            psi.ArgumentList.Add(mode);
        }

        using Process process = Process.Start(psi) ?? throw new InvalidOperationException("could not start the e2e worker");
        string output = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        string? line = output.Split('\n').LastOrDefault(l => l.StartsWith('{'));
        if (process.ExitCode != 0 || line is null)
        {
            throw new InvalidOperationException($"e2e worker failed (exit {process.ExitCode}): {output}");
        }

        return JsonSerializer.Deserialize<Dictionary<string, double>>(line)!;
    }

    public static int Run(string[] args)
    {
        string dir = args[0];
        if (args.Length > 2 && args[2] == LiveMode)
        {
            Console.WriteLine(JsonSerializer.Serialize(LivePerfWorker.MeasureAsync(dir).GetAwaiter().GetResult()));
            return 0;
        }

        using var model = LlamaModel.Load(dir, new ModelOptions { ThreadCount = 2, LoadTokenizer = false });
        var rng = new Random(7);
        int[] prompt64 = Enumerable.Range(0, 64).Select(_ => rng.Next(model.Config.VocabSize)).ToArray();
        int[] prompt32 = prompt64[..32];
        var metrics = new Dictionary<string, double>(StringComparer.Ordinal);
        if (args.Length > 2 && args[2] == LoraMode)
        {
            MeasureLora(model, prompt64, metrics);
            Console.WriteLine(JsonSerializer.Serialize(metrics));
            return 0;
        }


        // Prefill for generation: logits of the last position only, into an emptied cache (a server reuses its caches).
        KvCache prefillCache = model.CreateCache(128);
        float[] lastLogits = new float[model.Config.VocabSize];
        float[] allLogits = new float[64 * model.Config.VocabSize];
        metrics["prefill64_ms"] = 1e3 * PerfContext.MedianSeconds(
            () =>
            {
                prefillCache.Clear();
                model.ForwardInto(prompt64, lastLogits, prefillCache, allPositions: false);
            },
            samples: 9,
            minSampleSeconds: 0,
            warmupSeconds: 1);

        // Scoring/training-style forward: logits at every position.
        metrics["forward64_ms"] = 1e3 * PerfContext.MedianSeconds(() => model.ForwardInto(prompt64, allLogits, null, allPositions: true), samples: 9, minSampleSeconds: 0, warmupSeconds: 0.5);

        // Greedy decoding of 32 tokens after a 32-token prompt, KV cache; only the decode steps are timed.
        var perToken = new List<double>();
        KvCache cache = model.CreateCache(64);
        int[] next = new int[1];
        for (int run = 0; run < 7; run++)
        {
            cache.Clear();
            model.ForwardInto(prompt32, lastLogits, cache);
            var sw = Stopwatch.StartNew();
            for (int i = 0; i < 32; i++)
            {
                next[0] = ArgMax(lastLogits);
                model.ForwardInto(next, lastLogits, cache);
            }

            perToken.Add(sw.Elapsed.TotalMilliseconds / 32);
        }

        perToken.Sort();
        metrics["decode_ms_per_token"] = perToken[perToken.Count / 2];
        metrics["weights_mb"] = model.WeightBytes / 1e6;
        metrics["peak_rss_mb"] = PeakRssBytes() / 1e6;
        Console.WriteLine(JsonSerializer.Serialize(metrics));
        return 0;
    }

    /// <summary>
    /// LoRA figures: prefill overhead of r=8 adapters on q_proj and v_proj (nonzero B) versus none, and training steps
    /// (forward + cross-entropy + backward + AdamW on the adapter, r=8 α=16 on q_proj and v_proj) at 1×64 and 4×64 tokens.
    /// </summary>
    private static void MeasureLora(LlamaModel model, int[] prompt64, Dictionary<string, double> metrics)
    {
        var config = new LoraConfig { Rank = 8, Alpha = 16, TargetModules = ["q_proj", "v_proj"], Seed = 1 };
        var state = new LoraTrainingState(LoraAdapter.CreateFresh(config, model));
        var batch1 = new[] { TrainingSequence.AllTokens(prompt64) };
        var rng = new Random(11);
        TrainingSequence[] batch4 = Enumerable.Range(0, 4)
            .Select(_ => TrainingSequence.AllTokens(Enumerable.Range(0, 64).Select(_ => rng.Next(model.Config.VocabSize)).ToArray()))
            .ToArray();

        // A few steps first, so B is nonzero (a zero-B adapter would not exercise the delta's effect on the output).
        for (int i = 0; i < 3; i++)
        {
            state.TrainStep(model, batch1, new OptimizerOptions { LearningRate = 1e-3f, MaxGradNorm = null });
        }

        // Peak RSS of this process after the 1×64 phase, then after the 4×64 phase (which keeps what the first left in the array pool).
        metrics["train64_ms"] = 1e3 * PerfContext.MedianSeconds(() => state.TrainStep(model, batch1, new OptimizerOptions { LearningRate = 1e-4f, MaxGradNorm = null }), samples: 9, minSampleSeconds: 0, warmupSeconds: 1);
        metrics["train64_peak_rss_mb"] = PeakRssBytes() / 1e6;
        double step4 = PerfContext.MedianSeconds(() => state.TrainStep(model, batch4, new OptimizerOptions { LearningRate = 1e-4f, MaxGradNorm = null }), samples: 5, minSampleSeconds: 0, warmupSeconds: 1);
        metrics["train4x64_tokens_per_s"] = 4 * 64 / step4;
        metrics["train4x64_peak_rss_mb"] = PeakRssBytes() / 1e6;

        // Prefill overhead, after the training peaks so its buffers do not count.
        LoraAdapter adapter = state.Publish();
        metrics["lora_overhead_prefill_pct"] = PrefillOverheadPct(model, prompt64, adapter);
    }

    /// <summary>
    /// Median over 21 adjacent pairs of (prefill with adapter / prefill without) − 1, in percent: each pair runs
    /// back to back, so load from other processes mostly cancels in the ratio. Each variant reuses one cleared cache.
    /// </summary>
    private static double PrefillOverheadPct(LlamaModel model, int[] prompt64, LoraAdapter adapter)
    {
        var ratios = new List<double>();
        KvCache baseCache = model.CreateCache(128);
        KvCache loraCache = model.CreateCache(128);
        for (int i = 0; i < 23; i++)
        {
            baseCache.Clear();
            loraCache.Clear();
            long t0 = Stopwatch.GetTimestamp();
            model.Forward(prompt64, baseCache, allPositions: false);
            long t1 = Stopwatch.GetTimestamp();
            model.Forward(prompt64, loraCache, allPositions: false, adapter);
            long t2 = Stopwatch.GetTimestamp();
            if (i >= 2)
            {
                ratios.Add((double)(t2 - t1) / (t1 - t0));
            }
        }

        ratios.Sort();
        return 100 * (ratios[ratios.Count / 2] - 1);
    }

    private static int ArgMax(float[] v)
    {
        int best = 0;
        for (int i = 1; i < v.Length; i++)
        {
            if (v[i] > v[best])
            {
                best = i;
            }
        }

        return best;
    }

    /// <summary>Peak resident set size (VmHWM on Linux; the process's peak working set elsewhere).</summary>
    internal static long PeakRssBytes()
    {
        const string status = "/proc/self/status";
        if (File.Exists(status))
        {
            foreach (string line in File.ReadLines(status))
            {
                if (line.StartsWith("VmHWM:", StringComparison.Ordinal))
                {
                    string kb = line["VmHWM:".Length..].Trim().Split(' ')[0];
                    return long.Parse(kb, CultureInfo.InvariantCulture) * 1024;
                }
            }
        }

        return Process.GetCurrentProcess().PeakWorkingSet64;
    }
}
