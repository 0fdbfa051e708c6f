using LiveLearning.Numerics;

namespace LiveLearning.Benchmarks.Perf;

/// <summary>Cost of one fork-join dispatch on the compute pool with trivial work items.</summary>
internal sealed class DispatchPerf : IPerfProbe
{
    public int Order => 0;

    public void Run(PerfContext perf)
    {
        using var pool = new ComputePool(2);
        var job = new NoopJob();
        double seconds = PerfContext.MedianSeconds(() => pool.For(2, ref job));
        perf.Report("pool_dispatch_2items_us", seconds * 1e6);
    }

    private struct NoopJob : IParallelJob
    {
        public int Sum;

        public void Execute(int index) => Interlocked.Add(ref Sum, index);
    }
}
