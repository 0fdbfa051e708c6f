using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using LiveLearning.Models;
using LiveLearning.Numerics;

namespace LiveLearning.Benchmarks.Perf;

/// <summary>
/// End-to-end figures on a model of the SmolLM2-135M shape with random weights, F32 and BF16, 2 threads. Each
/// precision runs in a child process so its peak memory is its own.
/// </summary>
internal sealed class E2ePerf : IPerfProbe
{
    public int Order => 100;

    public void Run(PerfContext perf)
    {
        foreach (WeightType type in new[] { WeightType.F32, WeightType.BF16 })
        {
            string dir = E2eModels.Ensure(type);
            Dictionary<string, double> metrics = E2eWorker.RunInChild(dir, type);
            string suffix = type == WeightType.BF16 ? "_bf16" : string.Empty;
            perf.Report($"e2e_prefill64{suffix}_ms", metrics["prefill64_ms"]);
            perf.Report($"e2e_decode{suffix}_ms_per_token", metrics["decode_ms_per_token"]);
            if (type == WeightType.F32)
            {
                perf.Report("e2e_forward64_ms", metrics["forward64_ms"]);
                perf.Report("e2e_peak_rss_mb", metrics["peak_rss_mb"]);
                perf.Report("e2e_weights_mb", metrics["weights_mb"]);
            }
            else
            {
                perf.Report("e2e_peak_rss_bf16_mb", metrics["peak_rss_mb"]);
            }
        }
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

    public static Dictionary<string, double> RunInChild(string modelDir, WeightType type)
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
        using var model = LlamaModel.Load(dir, new ModelOptions { ThreadCount = 2, LoadTokenizer = false });
        var rng = new Random(7);
        int[] prompt64 = Enumerable.Range(0, 64).Select(_ => rng.Next(model.Config.VocabSize)).ToArray();
        int[] prompt32 = prompt64[..32];
        var metrics = new Dictionary<string, double>(StringComparer.Ordinal);

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
