using System.CommandLine;
using System.Diagnostics;
using System.Globalization;

namespace LiveLearning.Cli;

internal static partial class LivelearnCli
{
    /// <summary><c>bench --model DIR</c>: serving and learning latency on this machine, medians over a few runs.</summary>
    private static Command BenchCommand(TextWriter output, TextWriter error)
    {
        Option<string> model = ModelOption();
        var runs = new Option<int>("--runs") { Description = "Runs per figure (the median is reported).", DefaultValueFactory = _ => 5 };
        var command = new Command("bench", "Time a completion (ms per generated token, first token) and a correction (LearnAsync to the published version) on a scratch copy of the data.") { model, runs };
        Handle(command, output, error, async (parsed, o, cancellationToken) =>
        {
            int n = Math.Max(1, parsed.GetValue(runs));
            string scratch = Path.Combine(Path.GetTempPath(), "livelearn-bench-" + Guid.NewGuid().ToString("N"));
            try
            {
                await using Workspace w = await Workspace.OpenAsync(parsed.GetValue(model)!, scratch, new LearningSettings(null, null), cancellationToken).ConfigureAwait(false);
                var first = new List<double>();
                var perToken = new List<double>();
                var learn = new List<double>();
                var generation = new GenerationOptions { MaxTokens = 16 };
                for (int i = 0; i <= n; i++)
                {
                    // Run 0 warms up (JIT, caches) and is not counted.
                    long start = Stopwatch.GetTimestamp();
                    double firstMs = 0;
                    int tokens = 0;
                    await foreach (LiveCompletionUpdate u in w.Model.StreamAsync($"Benchmark prompt number {i}:", generation, cancellationToken: cancellationToken).ConfigureAwait(false))
                    {
                        firstMs = tokens++ == 0 ? Stopwatch.GetElapsedTime(start).TotalMilliseconds : firstMs;
                    }

                    double totalMs = Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                    long before = Stopwatch.GetTimestamp();
                    await w.Model.LearnAsync(new Demonstration { Prompt = $"Benchmark question {i}?", Completion = $" Answer {i}.", Source = "bench" }, cancellationToken).ConfigureAwait(false);
                    await w.Model.WaitForIdleAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
                    double learnMs = Stopwatch.GetElapsedTime(before).TotalMilliseconds;
                    if (i > 0)
                    {
                        first.Add(firstMs);
                        perToken.Add(tokens > 1 ? (totalMs - firstMs) / (tokens - 1) : double.NaN);
                        learn.Add(learnMs);
                    }
                }

                (double First, double Token, double Learn) m = (Median(first), Median(perToken), Median(learn));
                if (o.Json)
                {
                    o.WriteJson(j =>
                    {
                        j.WriteNumber("runs", n);
                        j.WriteNumber("first_token_ms", m.First);
                        j.WriteNumber("decode_ms_per_token", double.IsFinite(m.Token) ? m.Token : -1);
                        j.WriteNumber("learn_latency_ms", m.Learn);
                    });
                }
                else
                {
                    await o.Out.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"medians of {n} runs: first token {m.First:0.0} ms, decode {m.Token:0.00} ms/token, correction to published version {m.Learn:0} ms")).ConfigureAwait(false);
                }
            }
            finally
            {
                if (Directory.Exists(scratch))
                {
                    Directory.Delete(scratch, recursive: true);
                }
            }

            return 0;
        });
        return command;
    }

    private static double Median(List<double> values)
    {
        var finite = values.Where(double.IsFinite).Order().ToList();
        return finite.Count == 0 ? double.NaN : finite[finite.Count / 2];
    }
}
