using System.Globalization;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Configs;
using LiveLearning.Numerics;

namespace LiveLearning.Benchmarks;

/// <summary>
/// Fused LoRA kernels against the unfused composition of <see cref="TensorPrimitives"/> calls (the baseline) at the
/// model's layer shapes. Forward+backward includes dx.
/// </summary>
[GroupBenchmarksBy(BenchmarkLogicalGroupRule.ByCategory)]
[CategoriesColumn]
public class LoraBenchmarks
{
    private LoraProblem _p = null!;
    private ComputePool _pool = null!;

    /// <summary>tokens x in x out.</summary>
    [Params("1x576x576", "64x576x576", "64x576x1536", "64x1536x576", "512x576x576", "1x4096x4096", "64x4096x4096")]
    public string Shape { get; set; } = "64x576x576";

    [Params(8, 16)]
    public int Rank { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        int[] s = Shape.Split('x').Select(v => int.Parse(v, CultureInfo.InvariantCulture)).ToArray();
        _p = new LoraProblem(s[0], s[1], s[2], Rank);
        _pool = new ComputePool(2);
    }

    [GlobalCleanup]
    public void Cleanup() => _pool.Dispose();

    [Benchmark(Baseline = true, Description = "Unfused (TensorPrimitives), 1 thread")]
    [BenchmarkCategory("Forward")]
    public void ForwardUnfused() => _p.UnfusedForward();

    [Benchmark(Description = "Fused, 1 thread")]
    [BenchmarkCategory("Forward")]
    public void ForwardFused1() => _p.FusedForward(null);

    [Benchmark(Description = "Fused, 2 threads")]
    [BenchmarkCategory("Forward")]
    public void ForwardFused2() => _p.FusedForward(_pool);

    [Benchmark(Baseline = true, Description = "Unfused (TensorPrimitives), 1 thread")]
    [BenchmarkCategory("ForwardBackward")]
    public void ForwardBackwardUnfused()
    {
        _p.UnfusedForward();
        _p.UnfusedBackward();
    }

    [Benchmark(Description = "Fused, 1 thread")]
    [BenchmarkCategory("ForwardBackward")]
    public void ForwardBackwardFused1()
    {
        _p.FusedForward(null);
        _p.FusedBackward(null);
    }

    [Benchmark(Description = "Fused, 2 threads")]
    [BenchmarkCategory("ForwardBackward")]
    public void ForwardBackwardFused2()
    {
        _p.FusedForward(_pool);
        _p.FusedBackward(_pool);
    }
}
