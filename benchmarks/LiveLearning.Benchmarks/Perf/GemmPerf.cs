using System.Numerics.Tensors;
using LiveLearning.Numerics;

namespace LiveLearning.Benchmarks.Perf;

/// <summary>GEMM / GEMV throughput on the shapes of a small Llama (576 hidden, 1536 MLP) and a 4096 one, 2 threads.</summary>
internal sealed class GemmPerf : IPerfProbe
{
    public int Order => 10;

    public void Run(PerfContext perf)
    {
        using var pool = new ComputePool(2);
        Linear(perf, pool, 64, 576, 576, WeightType.F32, "gemm_64x576x576_gflops");
        Linear(perf, pool, 64, 576, 1536, WeightType.F32, "gemm_64x576x1536_gflops");
        Linear(perf, pool, 64, 1536, 576, WeightType.F32, "gemm_64x1536x576_gflops");
        Linear(perf, pool, 512, 576, 576, WeightType.F32, "gemm_512x576x576_gflops");
        Linear(perf, pool, 64, 4096, 4096, WeightType.F32, "gemm_64x4096x4096_gflops");
        Linear(perf, pool, 1, 576, 576, WeightType.F32, "gemm_1x576x576_gflops");
        Linear(perf, pool, 64, 576, 1536, WeightType.BF16, "gemm_64x576x1536_bf16_gflops");
        ColdLinear(perf, pool, 64, 576, 1536, WeightType.F32, "gemm_64x576x1536_cold_gflops");
        ColdLinear(perf, pool, 64, 576, 1536, WeightType.BF16, "gemm_64x576x1536_cold_bf16_gflops");
        Linear(perf, null, 64, 576, 1536, WeightType.F32, "gemm_64x576x1536_1thread_gflops");
        Linear(perf, pool, 4, 4096, 4096, WeightType.F32, "gemm_4x4096x4096_gflops");
        Linear(perf, pool, 8, 576, 1536, WeightType.F32, "gemm_8x576x1536_gflops");
        Gemv(perf, pool, 4096, 4096, WeightType.F32, "gemv_4096x4096_gbps");
        Gemv(perf, pool, 4096, 4096, WeightType.BF16, "gemv_4096x4096_bf16_gbps");
        Backward(perf, pool, 64, 576, 1536);
        Baseline(perf, pool, 64, 576, 1536);
    }

    private static WeightMatrix MakeWeight(int rows, int cols, WeightType type, int seed)
    {
        var rng = new Random(seed);
        if (type == WeightType.F32)
        {
            var data = new float[rows * cols];
            for (int i = 0; i < data.Length; i++)
            {
                data[i] = (float)(rng.NextDouble() - 0.5);
            }

            return WeightMatrix.FromF32(data, rows, cols);
        }

        var bits = new ushort[rows * cols];
        for (int i = 0; i < bits.Length; i++)
        {
            float v = (float)(rng.NextDouble() - 0.5);
            bits[i] = type == WeightType.BF16 ? Precision.SingleToBF16(v) : Precision.SingleToF16(v);
        }

        return WeightMatrix.From16Bit(bits, rows, cols, type);
    }

    private static float[] Data(int length, int seed)
    {
        var rng = new Random(seed);
        var data = new float[length];
        for (int i = 0; i < data.Length; i++)
        {
            data[i] = (float)(rng.NextDouble() - 0.5);
        }

        return data;
    }

    private static void Linear(PerfContext perf, ComputePool? pool, int tokens, int inF, int outF, WeightType type, string name)
    {
        WeightMatrix w = MakeWeight(outF, inF, type, 1);
        float[] x = Data(tokens * inF, 2);
        var y = new float[tokens * outF];
        double seconds = Time(() => Gemm.Linear(y, x, w, tokens, pool: pool), tokens * inF * (double)outF);
        perf.Report(name, 2.0 * tokens * inF * outF / seconds / 1e9);
    }

    /// <summary>
    /// The same product over 48 distinct weights in turn (170 MB as F32, 85 MB as BF16: far beyond the 32 MB L3), so each
    /// call streams its weight from memory as a prefill does, layer after layer.
    /// </summary>
    private static void ColdLinear(PerfContext perf, ComputePool? pool, int tokens, int inF, int outF, WeightType type, string name)
    {
        const int Copies = 48;
        WeightMatrix[] weights = Enumerable.Range(0, Copies).Select(i => MakeWeight(outF, inF, type, 100 + i)).ToArray();
        float[] x = Data(tokens * inF, 2);
        var y = new float[tokens * outF];
        int next = 0;
        double seconds = Time(() => Gemm.Linear(y, x, weights[next++ % Copies], tokens, pool: pool), tokens * inF * (double)outF);
        perf.Report(name, 2.0 * tokens * inF * outF / seconds / 1e9);
    }

    private static void Gemv(PerfContext perf, ComputePool pool, int rows, int cols, WeightType type, string name)
    {
        WeightMatrix w = MakeWeight(rows, cols, type, 3);
        float[] x = Data(cols, 4);
        var y = new float[rows];
        double seconds = Time(() => Gemm.Gemv(y, x, w, pool: pool), rows * (double)cols);
        perf.Report(name, w.Bytes.Length / seconds / 1e9);
    }

    private static void Backward(PerfContext perf, ComputePool pool, int tokens, int inF, int outF)
    {
        WeightMatrix w = MakeWeight(outF, inF, WeightType.F32, 5);
        float[] dy = Data(tokens * outF, 6);
        float[] x = Data(tokens * inF, 7);
        var dx = new float[tokens * inF];
        var dw = new float[outF * inF];
        double flops = 2.0 * tokens * inF * outF;
        double seconds = Time(() => Gemm.LinearBackwardInput(dx, dy, w, tokens, pool: pool), flops / 2);
        perf.Report($"gemm_backward_input_{tokens}x{inF}x{outF}_gflops", flops / seconds / 1e9);
        seconds = Time(() => Gemm.LinearBackwardWeight(dw, dy, x, tokens, outF, inF, accumulate: true, pool: pool), flops / 2);
        perf.Report($"gemm_backward_weight_{tokens}x{inF}x{outF}_gflops", flops / seconds / 1e9);
    }

    /// <summary>The obvious SIMD linear: one TensorPrimitives.Dot per output, rows split over the same pool.</summary>
    private static void Baseline(PerfContext perf, ComputePool pool, int tokens, int inF, int outF)
    {
        float[] w = Data(outF * inF, 8);
        float[] x = Data(tokens * inF, 9);
        var y = new float[tokens * outF];
        // TensorPrimitives ships precompiled; until tiering has re-jitted it (after enough calls), each call
        // goes through call counting, and two threads calling it at once run >10x slower. So: the
        // single-thread run first (it warms the method up), then the 2-thread one.
        double seconds = PerfContext.MedianSeconds(() => DotLinear.Run(y, x, w, tokens, outF, inF, null), samples: 5, minSampleSeconds: 0.02, warmupSeconds: 0.5);
        perf.Report($"gemm_baseline_tp_dot_{tokens}x{inF}x{outF}_1thread_gflops", 2.0 * tokens * inF * outF / seconds / 1e9);
        seconds = PerfContext.MedianSeconds(() => DotLinear.Run(y, x, w, tokens, outF, inF, pool), samples: 7, minSampleSeconds: 0.02, warmupSeconds: 0.3);
        perf.Report($"gemm_baseline_tp_dot_{tokens}x{inF}x{outF}_gflops", 2.0 * tokens * inF * outF / seconds / 1e9);
    }

    /// <summary>Shorter samples for big products so the whole probe takes a few seconds.</summary>
    private static double Time(Action action, double multiplyAdds)
        => multiplyAdds > 1e8
            ? PerfContext.MedianSeconds(action, samples: 7, minSampleSeconds: 0.02, warmupSeconds: 0.15)
            : PerfContext.MedianSeconds(action, samples: 9, minSampleSeconds: 0.015, warmupSeconds: 0.1);
}

/// <summary>Baseline linear: <c>y[t,o] = TensorPrimitives.Dot(x[t,:], w[o,:])</c>, tokens split over a pool.</summary>
internal static class DotLinear
{
    public static unsafe void Run(float[] y, float[] x, float[] w, int tokens, int outF, int inF, ComputePool? pool)
    {
        fixed (float* py = y)
        fixed (float* px = x)
        fixed (float* pw = w)
        {
            int items = Math.Min(tokens, pool?.ThreadCount ?? 1);
            var job = new Job { Y = py, X = px, W = pw, OutF = outF, InF = inF, Tokens = tokens, Items = items };
            ComputePool.Run(pool, items, ref job);
        }
    }

    private unsafe struct Job : IParallelJob
    {
        public float* Y;
        public float* X;
        public float* W;
        public int OutF;
        public int InF;
        public int Tokens;
        public int Items;

        public readonly void Execute(int index)
        {
            for (int t = Tokens * index / Items; t < Tokens * (index + 1) / Items; t++)
            {
                var x = new ReadOnlySpan<float>(X + ((nint)t * InF), InF);
                for (int o = 0; o < OutF; o++)
                {
                    Y[((nint)t * OutF) + o] = TensorPrimitives.Dot(x, new ReadOnlySpan<float>(W + ((nint)o * InF), InF));
                }
            }
        }
    }
}
