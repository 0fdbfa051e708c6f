using LiveLearning.Numerics;

namespace LiveLearning.Benchmarks.Perf;

/// <summary>Fused LoRA forward and forward+backward (with dx) against the unfused TensorPrimitives composition.</summary>
internal sealed class LoraPerf : IPerfProbe
{
    public int Order => 20;

    public void Run(PerfContext perf)
    {
        using var pool = new ComputePool(2);
        var small = new LoraProblem(64, 576, 576, 8);
        double fused = PerfContext.MedianSeconds(() =>
        {
            small.FusedForward(pool);
            small.FusedBackward(pool);
        });
        double fused1 = PerfContext.MedianSeconds(() =>
        {
            small.FusedForward(null);
            small.FusedBackward(null);
        });
        double unfused = PerfContext.MedianSeconds(() =>
        {
            small.UnfusedForward();
            small.UnfusedBackward();
        });
        double forward = PerfContext.MedianSeconds(() => small.FusedForward(pool));
        double forward1 = PerfContext.MedianSeconds(() => small.FusedForward(null));
        double backward = PerfContext.MedianSeconds(() => small.FusedBackward(pool));
        double backward1 = PerfContext.MedianSeconds(() => small.FusedBackward(null));
        perf.Report("lora_fwd_bwd_64x576_r8_us", fused * 1e6);
        perf.Report("lora_fwd_bwd_64x576_r8_1thread_us", fused1 * 1e6);
        perf.Report("lora_fwd_64x576_r8_us", forward * 1e6);
        perf.Report("lora_fwd_64x576_r8_1thread_us", forward1 * 1e6);
        perf.Report("lora_bwd_64x576_r8_us", backward * 1e6);
        perf.Report("lora_bwd_64x576_r8_1thread_us", backward1 * 1e6);
        perf.Report("lora_unfused_fwd_bwd_64x576_r8_us", unfused * 1e6);
        perf.Report("lora_fused_speedup_64x576_r8", unfused / fused);
        perf.Report("lora_fused_speedup_64x576_r8_1thread", unfused / fused1);

        var large = new LoraProblem(64, 4096, 4096, 16);
        double big = PerfContext.MedianSeconds(
            () =>
            {
                large.FusedForward(pool);
                large.FusedBackward(pool);
            },
            samples: 7);
        perf.Report("lora_fwd_bwd_64x4096_r16_us", big * 1e6);

        // 2·T·r·(in + out) FLOPs per product, four products in forward+backward with dx (h, y, dH, dB, dA, dx = 6).
        double flops = 6.0 * 2 * 64 * 16 * 4096;
        perf.Report("lora_fwd_bwd_64x4096_r16_gflops", flops / big / 1e9);
    }
}
