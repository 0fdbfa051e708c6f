using System.Diagnostics;
using System.Globalization;
using System.Text.Json;

namespace LiveLearning.Benchmarks.Perf;

/// <summary>One group of figures for the <c>perf</c> command. Implementations are discovered by reflection.</summary>
internal interface IPerfProbe
{
    /// <summary>Order in which probes run (lower first).</summary>
    int Order { get; }

    /// <summary>Measures and reports figures through <paramref name="perf"/>.</summary>
    void Run(PerfContext perf);
}

/// <summary>Timing helpers and the collected metrics.</summary>
internal sealed class PerfContext
{
    private readonly Dictionary<string, double> _metrics = new(StringComparer.Ordinal);

    public IReadOnlyDictionary<string, double> Metrics => _metrics;

    /// <summary>Records a figure and prints it.</summary>
    public void Report(string name, double value)
    {
        _metrics[name] = Math.Round(value, 4);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {name,-40} {value,12:0.###}"));
    }

    /// <summary>
    /// Median seconds per call of <paramref name="action"/>: a warm-up, then <paramref name="samples"/> samples,
    /// each repeating the call until at least <paramref name="minSampleSeconds"/> has elapsed.
    /// </summary>
    public static double MedianSeconds(Action action, int samples = 11, double minSampleSeconds = 0.02, double warmupSeconds = 0.2)
    {
        ArgumentNullException.ThrowIfNull(action);
        var sw = Stopwatch.StartNew();
        int calls = 0;
        do
        {
            action();
            calls++;
        }
        while (sw.Elapsed.TotalSeconds < warmupSeconds || calls < 2);

        double perCall = sw.Elapsed.TotalSeconds / calls;
        int repeat = Math.Max(1, (int)Math.Ceiling(minSampleSeconds / Math.Max(perCall, 1e-9)));
        var times = new double[samples];
        for (int s = 0; s < samples; s++)
        {
            long start = Stopwatch.GetTimestamp();
            for (int r = 0; r < repeat; r++)
            {
                action();
            }

            times[s] = Stopwatch.GetElapsedTime(start).TotalSeconds / repeat;
        }

        Array.Sort(times);
        return times[samples / 2];
    }
}

/// <summary>The <c>perf</c> command: runs every probe and optionally writes <c>{"metrics": {...}}</c>.</summary>
internal static class PerfCommand
{
    public static int Run(string[] args)
    {
        string? json = null;
        string? filter = null;
        for (int i = 0; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--json" when i + 1 < args.Length:
                    json = args[++i];
                    break;
                case "--filter" when i + 1 < args.Length:
                    filter = args[++i];
                    break;
                default:
                    Console.Error.WriteLine($"unknown argument '{args[i]}'. Usage: perf [--json <file>] [--filter <probe-name-substring>]");
                    return 2;
            }
        }

        var probes = typeof(PerfCommand).Assembly.GetTypes()
            .Where(t => !t.IsAbstract && typeof(IPerfProbe).IsAssignableFrom(t))
            .Where(t => filter is null || t.Name.Contains(filter, StringComparison.OrdinalIgnoreCase))
            .Select(t => (IPerfProbe)Activator.CreateInstance(t)!)
            .OrderBy(p => p.Order)
            .ThenBy(p => p.GetType().Name, StringComparer.Ordinal)
            .ToList();

        Console.WriteLine($"perf: {probes.Count} probes, {LiveLearning.Numerics.SimdInfo.Describe()}");
        var context = new PerfContext();
        var total = Stopwatch.StartNew();
        foreach (IPerfProbe probe in probes)
        {
            Console.WriteLine(probe.GetType().Name);
            var watch = Stopwatch.StartNew();
            probe.Run(context);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  ({watch.Elapsed.TotalSeconds:0.0} s)"));
        }

        context.Report("perf_total_seconds", total.Elapsed.TotalSeconds);
        if (json is not null)
        {
            var payload = new Dictionary<string, object> { ["metrics"] = context.Metrics };
            string text = JsonSerializer.Serialize(payload, new JsonSerializerOptions { WriteIndented = true });
            string temp = json + ".tmp";
            File.WriteAllText(temp, text);
            File.Move(temp, json, overwrite: true);
            Console.WriteLine($"wrote {json}");
        }

        return 0;
    }
}
