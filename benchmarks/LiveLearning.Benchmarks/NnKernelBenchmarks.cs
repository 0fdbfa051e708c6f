using System.Numerics.Tensors;
using BenchmarkDotNet.Attributes;
using LiveLearning.Numerics;

namespace LiveLearning.Benchmarks;

/// <summary>
/// The element-wise / row-wise neural-net kernels against the obvious composition of TensorPrimitives calls
/// (one pass per primitive) that they fuse. Run: <c>dotnet run -c Release --project benchmarks/LiveLearning.Benchmarks -- --filter '*NnKernel*'</c>.
/// </summary>
[MemoryDiagnoser]
public class NnKernelBenchmarks
{
    private const int Tokens = 16;
    private const int Dim = 2048;
    private const int Hidden = 5632;
    private const int Vocab = 32000;
    private const int CeTokens = 8;
    private const int Heads = 32;
    private const int HeadDim = 64;
    private const int AdamLength = 1 << 20;

    private float[] _x = [];
    private float[] _y = [];
    private float[] _weight = [];
    private float[] _rstd = [];
    private float[] _gate = [];
    private float[] _up = [];
    private float[] _act = [];
    private float[] _logits = [];
    private float[] _dLogits = [];
    private int[] _targets = [];
    private float[] _q = [];
    private int[] _positions = [];
    private RopeTable _rope = null!;
    private float[] _p = [];
    private float[] _g = [];
    private float[] _m = [];
    private float[] _v = [];
    private float[] _tmp = [];

    [GlobalSetup]
    public void Setup()
    {
        var rng = new Random(42);
        float[] Fill(int n, float scale)
        {
            var a = new float[n];
            for (int i = 0; i < n; i++)
            {
                a[i] = (float)((rng.NextDouble() * 2) - 1) * scale;
            }

            return a;
        }

        _x = Fill(Tokens * Dim, 2f);
        _y = new float[Tokens * Dim];
        _weight = Fill(Dim, 1f);
        _rstd = new float[Tokens];
        _gate = Fill(Tokens * Hidden, 4f);
        _up = Fill(Tokens * Hidden, 2f);
        _act = new float[Tokens * Hidden];
        _logits = Fill(CeTokens * Vocab, 8f);
        _dLogits = new float[CeTokens * Vocab];
        _targets = Enumerable.Range(0, CeTokens).Select(i => (i * 977) % Vocab).ToArray();
        _q = Fill(Tokens * Heads * HeadDim, 1f);
        _positions = Enumerable.Range(100, Tokens).ToArray();
        _rope = new RopeTable(RopeTable.DefaultInverseFrequencies(HeadDim, 10000), 4096);
        _p = Fill(AdamLength, 1f);
        _g = Fill(AdamLength, 1f);
        _m = new float[AdamLength];
        _v = new float[AdamLength];
        _tmp = new float[Math.Max(AdamLength, Vocab)];
    }

    [Benchmark]
    public void RmsNormForward() => RmsNorm.Forward(_y, _rstd, _x, _weight, Tokens, Dim, 1e-5f);

    [Benchmark]
    public void RmsNormForward_TensorPrimitives()
    {
        for (int t = 0; t < Tokens; t++)
        {
            ReadOnlySpan<float> row = _x.AsSpan(t * Dim, Dim);
            Span<float> y = _y.AsSpan(t * Dim, Dim);
            float r = 1f / MathF.Sqrt((TensorPrimitives.SumOfSquares(row) / Dim) + 1e-5f);
            TensorPrimitives.Multiply(row, r, y);
            TensorPrimitives.Multiply(y, _weight, y);
        }
    }

    [Benchmark]
    public void SwiGlu() => Activations.SwiGlu(_act, _gate, _up);

    [Benchmark]
    public void SwiGlu_TensorPrimitives()
    {
        TensorPrimitives.Sigmoid(_gate, _act);
        TensorPrimitives.Multiply(_act, _gate, _act);
        TensorPrimitives.Multiply(_act, _up, _act);
    }

    [Benchmark]
    public float CrossEntropyForwardBackward() => CrossEntropy.ForwardBackward(_dLogits, _logits, _targets, CeTokens, Vocab);

    [Benchmark]
    public float CrossEntropyForwardBackward_TensorPrimitives()
    {
        double loss = 0;
        for (int t = 0; t < CeTokens; t++)
        {
            ReadOnlySpan<float> row = _logits.AsSpan(t * Vocab, Vocab);
            Span<float> d = _dLogits.AsSpan(t * Vocab, Vocab);
            float max = TensorPrimitives.Max(row);
            TensorPrimitives.Subtract(row, max, d);
            TensorPrimitives.Exp(d, d);
            float sum = TensorPrimitives.Sum(d);
            loss += Math.Log(sum) + max - row[_targets[t]];
            TensorPrimitives.Multiply(d, 1f / (sum * CeTokens), d);
            d[_targets[t]] -= 1f / CeTokens;
        }

        return (float)(loss / CeTokens);
    }

    [Benchmark]
    public void RopeForward() => Rope.Forward(_q, _positions, Heads, HeadDim, _rope);

    [Benchmark]
    public void AdamW() => Optimizers.AdamWStep(_p, _g, _m, _v, 10, 1e-4f, weightDecay: 0f);

    [Benchmark]
    public void AdamW_TensorPrimitives()
    {
        // m = b1·m + (1−b1)·g ; v = b2·v + (1−b2)·g² ; p −= stepSize · m / (sqrt(v)·c + eps): one pass per primitive.
        const float b1 = 0.9f, b2 = 0.999f;
        float stepSize = (float)(1e-4 / (1 - Math.Pow(b1, 10)));
        float c = (float)(1 / Math.Sqrt(1 - Math.Pow(b2, 10)));
        Span<float> tmp = _tmp.AsSpan(0, AdamLength);
        TensorPrimitives.Multiply(_m, b1, _m);
        TensorPrimitives.MultiplyAdd(_g, 1 - b1, _m, _m);
        TensorPrimitives.Multiply(_g, _g, tmp);
        TensorPrimitives.Multiply(_v, b2, _v);
        TensorPrimitives.MultiplyAdd(tmp, 1 - b2, _v, _v);
        TensorPrimitives.Sqrt(_v, tmp);
        TensorPrimitives.Multiply(tmp, c, tmp);
        TensorPrimitives.Add(tmp, 1e-8f, tmp);
        TensorPrimitives.Divide(_m, tmp, tmp);
        TensorPrimitives.MultiplyAdd(tmp, -stepSize, _p, _p);
    }
}
