using System.Diagnostics;
using LiveLearning.Numerics;

namespace LiveLearning.Benchmarks.Perf;

/// <summary>
/// Cost of one fork-join dispatch on the compute pool: two items of fixed busy work (about 2 µs each) run on two
/// threads; the overhead is the measured time minus one item's time on one thread.
/// </summary>
internal sealed class DispatchPerf : IPerfProbe
{
    public int Order => 0;

    public void Run(PerfContext perf)
    {
        using var pool = new ComputePool(2);
        var job = new SpinJob { Iterations = 2000 };
        double one = PerfContext.MedianSeconds(() => job.Execute(0));
        double two = PerfContext.MedianSeconds(() => pool.For(2, ref job));
        perf.Report("pool_item_us", one * 1e6);
        perf.Report("pool_dispatch_2items_us", two * 1e6);
        perf.Report("pool_dispatch_overhead_us", (two - one) * 1e6);
    }

    private struct SpinJob : IParallelJob
    {
        public int Iterations;
        public long Sink;

        public void Execute(int index)
        {
            long acc = index;
            for (int i = 0; i < Iterations; i++)
            {
                acc = (acc * 6364136223846793005L) + 1442695040888963407L;
            }

            Interlocked.Add(ref Sink, acc & 1);
        }
    }
}
