using System.Globalization;
using System.Text.Json;

namespace LiveLearning.Benchmarks.Quality;

/// <summary>
/// <c>quality [--json &lt;file&gt;] [--facts K]</c>: the learning-quality benchmark on the bundled base model, writing
/// <c>{"metrics": {...}}</c>. Experiment overrides (<c>--lr</c>, <c>--steps</c>, <c>--replay</c>, <c>--targets</c>)
/// replace one library default each; without them the benchmark measures the defaults.
/// </summary>
internal static class QualityCommand
{
    public static async Task<int> RunAsync(string[] args)
    {
        string? json = null;
        var settings = new QualitySettings();
        for (int i = 0; i < args.Length; i++)
        {
            string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value.");
            switch (args[i])
            {
                case "--json":
                    json = Value();
                    break;
                case "--facts":
                    settings = settings with { Facts = int.Parse(Value(), CultureInfo.InvariantCulture) };
                    break;
                case "--lr":
                    settings = settings with { LearningRate = float.Parse(Value(), CultureInfo.InvariantCulture) };
                    break;
                case "--steps":
                    settings = settings with { StepsPerItem = int.Parse(Value(), CultureInfo.InvariantCulture) };
                    break;
                case "--replay":
                    settings = settings with { ReplayRatio = double.Parse(Value(), CultureInfo.InvariantCulture) };
                    break;
                case "--rehearsal":
                    settings = settings with { RehearsalSamples = int.Parse(Value(), CultureInfo.InvariantCulture) };
                    break;
                case "--rehearsal-per-item":
                    settings = settings with { RehearsalPerItem = double.Parse(Value(), CultureInfo.InvariantCulture) };
                    break;
                case "--rehearsal-prompt":
                    settings = settings with { RehearsalPrompt = Value() };
                    break;
                case "--targets":
                    settings = settings with { TargetModules = Value().Split(',') };
                    break;
                default:
                    Console.Error.WriteLine($"unknown argument '{args[i]}'. Usage: quality [--json <file>] [--facts K] [--lr X --steps N --replay R --targets a,b]");
                    return 2;
            }
        }

        var bench = new QualityBench(settings, Console.Out);
        await bench.RunAsync(CancellationToken.None);
        if (json is not null)
        {
            await File.WriteAllTextAsync(json, JsonSerializer.Serialize(new { metrics = bench.Metrics }, new JsonSerializerOptions { WriteIndented = true }) + "\n");
        }

        return 0;
    }
}
