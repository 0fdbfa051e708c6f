using LiveLearning.Lora;
using LiveLearning.Models;
using LiveLearning.Testing;
using NUnit.Framework;

namespace LiveLearning.Tests.Live;

/// <summary>
/// A small model in the real formats (config.json, model.safetensors, a byte-level BPE tokenizer.json with a ChatML
/// template), written once per test run, and live models over it.
/// </summary>
[SetUpFixture]
public sealed class LiveTestKit
{
    /// <summary>The shape: 2 layers of 64 features, 4 heads over 2 KV heads, the 350-token tokenizer, 512 positions.</summary>
    public static ModelSpec Spec { get; } = new() { HiddenSize = 64, IntermediateSize = 128, Layers = 2, Heads = 4, KvHeads = 2, MaxPositionEmbeddings = 512, Seed = 7 };

    private static readonly Lazy<string> Directory = new(() =>
    {
        string dir = Path.Combine(Path.GetTempPath(), "livelearning-live-" + Guid.NewGuid().ToString("N"));
        ModelWriter.WriteRandomWithTokenizer(dir, Spec);
        return dir;
    });

    /// <summary>LoRA on every linear layer, rank 8: enough capacity to memorise a few completions quickly.</summary>
    public static LoraConfig Lora { get; } = new() { Rank = 8, Alpha = 16, TargetModules = ["all-linear"] };

    public static string ModelDirectory => Directory.Value;

    /// <summary>A live model with the test defaults (AdamW at 1e-2, no replay unless asked), configured further by <paramref name="configure"/>.</summary>
    public static LiveModel Create(Action<LiveModelOptions>? configure = null, LiveModelServices? services = null, LoraConfig? lora = null, int threads = 2)
    {
        LlamaModel model = LlamaModel.Load(ModelDirectory, new ModelOptions { ThreadCount = threads });
        var backend = new LoraBackend(model, lora ?? Lora, ownsModel: true);
        var options = new LiveModelOptions();
        options.Learner.Optimizer = new OptimizerOptions { LearningRate = 1e-2f };
        options.Replay.Ratio = 0;
        configure?.Invoke(options);
        return new LiveModel(backend, options, services);
    }

    [OneTimeTearDown]
    public void RemoveModel()
    {
        if (Directory.IsValueCreated)
        {
            System.IO.Directory.Delete(Directory.Value, recursive: true);
        }
    }
}
