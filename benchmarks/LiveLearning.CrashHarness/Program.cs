using System.Globalization;
using LiveLearning.CrashHarness;

// crash-harness run [--kills N] [--seed S] [--max-run-ms M]   kill a learning child N times; exit 1 if anything was lost
// crash-harness child <root> <model-dir> <tag>                (started by run)
if (args.Length >= 4 && args[0] == "child")
{
    return await Harness.ChildAsync(args[1], args[2], args[3]);
}

var options = new CrashOptions { Kills = 1000 };
for (int i = args.Length > 0 && args[0] == "run" ? 1 : 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--kills" when i + 1 < args.Length:
            options = options with { Kills = int.Parse(args[++i], CultureInfo.InvariantCulture) };
            break;
        case "--seed" when i + 1 < args.Length:
            options = options with { Seed = int.Parse(args[++i], CultureInfo.InvariantCulture) };
            break;
        case "--max-run-ms" when i + 1 < args.Length:
            options = options with { MaxRun = TimeSpan.FromMilliseconds(int.Parse(args[++i], CultureInfo.InvariantCulture)) };
            break;
        default:
            Console.Error.WriteLine($"unknown argument '{args[i]}'. Usage: run [--kills N] [--seed S] [--max-run-ms M]");
            return 2;
    }
}

var watch = System.Diagnostics.Stopwatch.StartNew();
CrashReport report = await Harness.RunAsync(options, Console.Out);
Console.WriteLine($"crash: {report} ({watch.Elapsed.TotalSeconds:0} s)");
foreach (string problem in report.Problems)
{
    Console.WriteLine($"  {problem}");
}

return report.Clean ? 0 : 1;
