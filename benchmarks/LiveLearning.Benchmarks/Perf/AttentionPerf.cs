using LiveLearning.Numerics;

namespace LiveLearning.Benchmarks.Perf;

/// <summary>Causal GQA attention at the SmolLM2-135M shape (9 heads, 3 kv heads, headDim 64) on 2 threads.</summary>
internal sealed class AttentionPerf : IPerfProbe
{
    private const int Heads = 9;
    private const int KvHeads = 3;
    private const int HeadDim = 64;

    public int Order => 30;

    public void Run(PerfContext perf)
    {
        using var pool = new ComputePool(2);
        Measure(perf, pool, string.Empty);

        // The same on the calling thread alone: less sensitive to a busy machine than the 2-thread figures.
        Measure(perf, null, "_1t");
    }

    private static void Measure(PerfContext perf, ComputePool? pool, string suffix)
    {
        float scale = 1f / MathF.Sqrt(HeadDim);

        // Prefill: 64 tokens from position 0, forward only (inference) and forward + backward (training).
        const int tokens = 64;
        float[] q = Random(tokens * Heads * HeadDim, 1);
        float[] k = Random(tokens * KvHeads * HeadDim, 2);
        float[] v = Random(tokens * KvHeads * HeadDim, 3);
        float[] g = Random(tokens * Heads * HeadDim, 4);
        var o = new float[q.Length];
        var lse = new float[tokens * Heads];
        var dq = new float[q.Length];
        var dk = new float[k.Length];
        var dv = new float[v.Length];
        perf.Report($"attn_prefill64{suffix}_us", 1e6 * PerfContext.MedianSeconds(
            () => Attention.Forward(o, default, q, k, v, tokens, 0, tokens, Heads, KvHeads, HeadDim, scale, pool)));
        perf.Report($"attn_fwd_bwd64{suffix}_us", 1e6 * PerfContext.MedianSeconds(() =>
        {
            Attention.Forward(o, lse, q, k, v, tokens, 0, tokens, Heads, KvHeads, HeadDim, scale, pool);
            Attention.Backward(dq, dk, dv, g, o, lse, q, k, v, tokens, 0, tokens, Heads, KvHeads, HeadDim, scale, pool);
        }));

        // Decode: one token at position 511 against a 512-row cache.
        const int kvLength = 512;
        float[] q1 = Random(Heads * HeadDim, 5);
        float[] kc = Random(kvLength * KvHeads * HeadDim, 6);
        float[] vc = Random(kvLength * KvHeads * HeadDim, 7);
        var o1 = new float[q1.Length];
        perf.Report($"attn_decode_kv512{suffix}_us", 1e6 * PerfContext.MedianSeconds(
            () => Attention.Forward(o1, default, q1, kc, vc, 1, kvLength - 1, kvLength, Heads, KvHeads, HeadDim, scale, pool)));
    }

    private static float[] Random(int length, int seed)
    {
        var rng = new Random(seed);
        var data = new float[length];
        for (int i = 0; i < data.Length; i++)
        {
            data[i] = (float)((rng.NextDouble() * 2) - 1);
        }

        return data;
    }
}
