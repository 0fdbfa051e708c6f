using BenchmarkDotNet.Attributes;
using LiveLearning.Benchmarks.Perf;
using LiveLearning.Numerics;

namespace LiveLearning.Benchmarks;

/// <summary>
/// <see cref="Gemm.Linear(Span{float}, ReadOnlySpan{float}, in WeightMatrix, int, bool, ComputePool?)"/> on the
/// shapes of a small Llama (576 hidden, 1536 MLP) and a 4096 one, 2 threads, against the obvious SIMD composition
/// (one TensorPrimitives.Dot per output on the same pool). Shapes are "tokens,in,out".
/// </summary>
[MemoryDiagnoser]
public class GemmBenchmarks
{
    private ComputePool _pool = null!;
    private float[] _x = [];
    private float[] _w = [];
    private float[] _y = [];
    private ushort[] _wBf16 = [];
    private WeightMatrix _weight;
    private WeightMatrix _weightBf16;
    private int _tokens;
    private int _in;
    private int _out;

    /// <summary>(tokens, in, out).</summary>
    [Params("1,576,576", "64,576,576", "64,576,1536", "64,1536,576", "512,576,576", "1,4096,4096", "64,4096,4096")]
    public string Shape { get; set; } = "64,576,576";

    [GlobalSetup]
    public void Setup()
    {
        int[] parts = [.. Shape.Split(',').Select(int.Parse)];
        (_tokens, _in, _out) = (parts[0], parts[1], parts[2]);
        var rng = new Random(42);
        _x = [.. Enumerable.Range(0, _tokens * _in).Select(_ => (float)(rng.NextDouble() - 0.5))];
        _w = [.. Enumerable.Range(0, _out * _in).Select(_ => (float)(rng.NextDouble() - 0.5))];
        _wBf16 = [.. _w.Select(Precision.SingleToBF16)];
        _y = new float[_tokens * _out];
        _weight = WeightMatrix.FromF32(_w, _out, _in);
        _weightBf16 = WeightMatrix.From16Bit(_wBf16, _out, _in, WeightType.BF16);
        _pool = new ComputePool(2);
    }

    [GlobalCleanup]
    public void Cleanup() => _pool.Dispose();

    [Benchmark(Baseline = true, Description = "TensorPrimitives.Dot per output")]
    public void DotPerOutput() => DotLinear.Run(_y, _x, _w, _tokens, _out, _in, _pool);

    [Benchmark(Description = "Gemm.Linear F32")]
    public void LinearF32() => Gemm.Linear(_y, _x, _weight, _tokens, pool: _pool);

    [Benchmark(Description = "Gemm.Linear BF16")]
    public void LinearBf16() => Gemm.Linear(_y, _x, _weightBf16, _tokens, pool: _pool);

    [Benchmark(Description = "Gemm.Linear F32, 1 thread")]
    public void LinearF32SingleThread() => Gemm.Linear(_y, _x, _weight, _tokens);
}
