using LiveLearning.Storage;

namespace LiveLearning.Benchmarks.Perf;

/// <summary>
/// safetensors costs: opening (mmap + full header validation) a checkpoint shaped like a 30-layer model with 273
/// tensors, widening a BF16 tensor to float32, and the atomic write.
/// </summary>
internal sealed class SafeTensorsPerf : IPerfProbe
{
    public int Order => 50;

    public void Run(PerfContext perf)
    {
        string dir = Path.Combine(Path.GetTempPath(), "ll-perf-safetensors-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            var entries = new List<SafeTensorsEntry>();
            var rng = new Random(7);
            var small = new byte[64 * 64 * 2];
            rng.NextBytes(small);
            for (int layer = 0; layer < 30; layer++)
            {
                foreach (string name in new[] { "input_layernorm", "post_attention_layernorm", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj" })
                {
                    entries.Add(new SafeTensorsEntry($"model.layers.{layer}.{name}.weight", SafeTensorsDType.BF16, [64, 64], small));
                }
            }

            var big = new byte[4096 * 2048 * 2]; // 16 MiB BF16 [4096, 2048]
            rng.NextBytes(big);
            entries.Add(new SafeTensorsEntry("model.embed_tokens.weight", SafeTensorsDType.BF16, [4096, 2048], big));
            entries.Add(new SafeTensorsEntry("model.norm.weight", SafeTensorsDType.BF16, [64], small.AsMemory(0, 128)));
            entries.Add(new SafeTensorsEntry("lm_head.weight", SafeTensorsDType.BF16, [64, 64], small));
            string path = Path.Combine(dir, "model.safetensors");

            double write = PerfContext.MedianSeconds(() => SafeTensorsWriter.Write(path, entries), samples: 5, minSampleSeconds: 0, warmupSeconds: 0);
            perf.Report("safetensors_write_19MB_ms", write * 1e3);

            double open = PerfContext.MedianSeconds(() => SafeTensorsFile.Open(path).Dispose());
            perf.Report("safetensors_open_273_tensors_us", open * 1e6);

            using SafeTensorsFile file = SafeTensorsFile.Open(path);
            double widen = PerfContext.MedianSeconds(() => file.ReadAsFloat32("model.embed_tokens.weight"), samples: 7);
            perf.Report("safetensors_bf16_to_f32_16MB_GBps", big.Length / widen / 1e9);
            var destination = new float[4096 * 2048];
            double widenInto = PerfContext.MedianSeconds(
                () => LiveLearning.Numerics.Precision.WidenBF16(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ushort>(file.GetBytes("model.embed_tokens.weight").Span), destination),
                samples: 7);
            perf.Report("safetensors_bf16_widen_preallocated_GBps", big.Length / widenInto / 1e9);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
