using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Diagnosers;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Running;
using LiveLearning.Benchmarks.Perf;

// Two entry points:
//   perf [--json <file>] [--filter <substring>]   quick machine-readable figures (PerfCommand)
//   quality [--json <file>]                        the learning-quality benchmark on the bundled base (QualityCommand)
//   anything else                                  BenchmarkDotNet (e.g. --filter '*Gemm*')
if (args.Length > 0 && args[0] == "perf")
{
    return PerfCommand.Run(args[1..]);
}

if (args.Length > 0 && args[0] == "quality")
{
    return await LiveLearning.Benchmarks.Quality.QualityCommand.RunAsync(args[1..]);
}

if (args.Length > 0 && args[0] == E2eWorker.Verb)
{
    return E2eWorker.Run(args[1..]);
}

var config = ManualConfig.Create(DefaultConfig.Instance)
    .AddJob(Job.ShortRun.WithId("short"))
    .AddDiagnoser(MemoryDiagnoser.Default)
    .WithOptions(ConfigOptions.JoinSummary);
BenchmarkSwitcher.FromAssembly(typeof(PerfCommand).Assembly).Run(args, config);
return 0;
