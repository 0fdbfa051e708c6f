using LiveLearning.Backends;
using LiveLearning.Storage;

namespace LiveLearning.Benchmarks.Perf;

/// <summary>
/// The durable snapshot store on a snapshot the size of SmolLM2-135M's r=8 adapter on q and v (30 layers: A [8, 576],
/// B [576, 8] and [192, 8]), its AdamW state (parameters and two moments) and a full default replay buffer (1024 items
/// of 64 token ids): the write (temporary directory, fsync of every file, rename) and the verified load, plaintext and
/// AES-GCM sealed. The safetensors serialisation of the same tensors in memory is the baseline in the same run.
/// </summary>
internal sealed class SnapshotPerf : IPerfProbe
{
    public int Order => 56;

    public void Run(PerfContext perf)
    {
        string dir = Path.Combine(Path.GetTempPath(), "ll-perf-snapshots-" + Guid.NewGuid().ToString("N"));
        try
        {
            Snapshot snapshot = MakeSnapshot();
            double serialize = PerfContext.MedianSeconds(() => SafeTensorsWriter.Serialize(snapshot.Trainer.Tensors.Select(t => SafeTensorsEntry.FromFloat32(t.Name, t.Values.Span, [.. t.Shape.Select(d => (long)d)]))), samples: 7);
            perf.Report("snapshot_serialize_baseline_ms", serialize * 1e3);
            Measure(perf, new FileSnapshotStore(Path.Combine(dir, "plain")), snapshot, string.Empty);
            using var key = new StorageKey(StorageKey.NewKey());
            Measure(perf, new FileSnapshotStore(Path.Combine(dir, "sealed"), key), snapshot, "_encrypted");
        }
        finally
        {
            if (Directory.Exists(dir))
            {
                Directory.Delete(dir, recursive: true);
            }
        }
    }

    private static void Measure(PerfContext perf, FileSnapshotStore store, Snapshot snapshot, string suffix)
    {
        int n = 0;
        double write = PerfContext.MedianSeconds(() => store.SaveAsync(snapshot with { Info = snapshot.Info with { Id = $"s{n++}" } }, CancellationToken.None).AsTask().GetAwaiter().GetResult(), samples: 7, minSampleSeconds: 0, warmupSeconds: 0);
        perf.Report($"snapshot_write{suffix}_ms", write * 1e3);
        double load = PerfContext.MedianSeconds(() => store.LoadAsync("s0", CancellationToken.None).AsTask().GetAwaiter().GetResult(), samples: 7, minSampleSeconds: 0, warmupSeconds: 0);
        perf.Report($"snapshot_load{suffix}_ms", load * 1e3);
    }

    private static Snapshot MakeSnapshot()
    {
        var rng = new Random(5);
        var weights = new List<NamedTensor>();
        for (int layer = 0; layer < 30; layer++)
        {
            foreach ((string module, int outFeatures) in new[] { ("q_proj", 576), ("v_proj", 192) })
            {
                weights.Add(Tensor(rng, $"base_model.model.model.layers.{layer}.self_attn.{module}.lora_A.weight", 8, 576));
                weights.Add(Tensor(rng, $"base_model.model.model.layers.{layer}.self_attn.{module}.lora_B.weight", outFeatures, 8));
            }
        }

        var trainer = new List<NamedTensor>();
        foreach (NamedTensor w in weights)
        {
            trainer.Add(w);
            trainer.Add(Tensor(rng, w.Name + ".exp_avg", w.Shape[0], w.Shape[1]));
            trainer.Add(Tensor(rng, w.Name + ".exp_avg_sq", w.Shape[0], w.Shape[1]));
        }

        var replay = new byte[1024 * ((64 * 4) + 64)];
        rng.NextBytes(replay);
        var version = new AdapterVersion { Id = "default@9", Scope = "default", Number = 9, ContentHash = "perf", CreatedAt = DateTimeOffset.UnixEpoch, Reason = "learned" };
        var info = new SnapshotInfo("s", "default", "perf", version, DateTimeOffset.UnixEpoch) { Model = "perf" };
        return new Snapshot(info, new AdapterWeightsData(weights, new Dictionary<string, string> { ["adapter_config.json"] = "{}" }), new TrainerState(9, trainer, new Dictionary<string, string>()), replay, 0);
    }

    private static NamedTensor Tensor(Random rng, string name, int rows, int cols)
    {
        var values = new float[rows * cols];
        for (int i = 0; i < values.Length; i++)
        {
            values[i] = (float)(rng.NextDouble() - 0.5);
        }

        return new NamedTensor(name, [rows, cols], values);
    }
}
