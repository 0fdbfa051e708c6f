using BenchmarkDotNet.Attributes;
using LiveLearning.Numerics;

namespace LiveLearning.Benchmarks;

/// <summary>Causal GQA attention (SmolLM2 shape: 9 heads, 3 kv heads, headDim 64) on a 2-thread pool.</summary>
public class AttentionBenchmarks : IDisposable
{
    private const int Heads = 9;
    private const int KvHeads = 3;
    private const int HeadDim = 64;
    private const float Scale = 0.125f;

    private ComputePool? _pool;
    private float[] _q = [];
    private float[] _k = [];
    private float[] _v = [];
    private float[] _g = [];
    private float[] _o = [];
    private float[] _lse = [];
    private float[] _dq = [];
    private float[] _dk = [];
    private float[] _dv = [];

    /// <summary>Query tokens of the prefill benchmarks; also the cache length of the decode benchmark times 8.</summary>
    [Params(64, 256)]
    public int Tokens { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _pool = new ComputePool(2);
        int kvRows = Tokens * 8;
        var rng = new Random(42);
        _q = Fill(Tokens * Heads * HeadDim, rng);
        _k = Fill(kvRows * KvHeads * HeadDim, rng);
        _v = Fill(kvRows * KvHeads * HeadDim, rng);
        _g = Fill(_q.Length, rng);
        _o = new float[_q.Length];
        _lse = new float[Tokens * Heads];
        _dq = new float[_q.Length];
        _dk = new float[_k.Length];
        _dv = new float[_v.Length];
    }

    [GlobalCleanup]
    public void Dispose()
    {
        _pool?.Dispose();
        _pool = null;
        GC.SuppressFinalize(this);
    }

    [Benchmark]
    public float PrefillForward()
    {
        Attention.Forward(_o, _lse, _q, _k, _v, Tokens, 0, Tokens, Heads, KvHeads, HeadDim, Scale, _pool);
        return _o[0];
    }

    [Benchmark]
    public float PrefillForwardBackward()
    {
        Attention.Forward(_o, _lse, _q, _k, _v, Tokens, 0, Tokens, Heads, KvHeads, HeadDim, Scale, _pool);
        Attention.Backward(_dq, _dk, _dv, _g, _o, _lse, _q, _k, _v, Tokens, 0, Tokens, Heads, KvHeads, HeadDim, Scale, _pool);
        return _dq[0];
    }

    [Benchmark]
    public float DecodeOneToken()
    {
        int kvLength = Tokens * 8;
        Attention.Forward(_o.AsSpan(0, Heads * HeadDim), default, _q.AsSpan(0, Heads * HeadDim), _k, _v, 1, kvLength - 1, kvLength, Heads, KvHeads, HeadDim, Scale, _pool);
        return _o[0];
    }

    private static float[] Fill(int length, Random rng)
    {
        var data = new float[length];
        for (int i = 0; i < data.Length; i++)
        {
            data[i] = (float)((rng.NextDouble() * 2) - 1);
        }

        return data;
    }
}
