using LiveLearning.Lora;

namespace LiveLearning.Testing;

/// <summary>
/// The samples' model until a base model is bundled: small, random, in the real format (4 layers of 128, the test
/// tokenizer), and the settings that make one correction stick on it (a real base model learns with the defaults).
/// </summary>
public static class DemoModel
{
    /// <summary>The shape.</summary>
    public static ModelSpec Spec { get; } = new() { HiddenSize = 128, IntermediateSize = 256, Layers = 4, Heads = 4, KvHeads = 2, MaxPositionEmbeddings = 512, Seed = 7 };

    /// <summary>Writes the model (config.json, model.safetensors, tokenizer.json) unless it is already there.</summary>
    /// <param name="directory">Where.</param>
    public static void Ensure(string directory)
    {
        if (!File.Exists(Path.Combine(directory, "config.json")))
        {
            ModelWriter.WriteRandomWithTokenizer(directory, Spec);
        }
    }

    /// <summary>LoRA on every linear layer, a higher learning rate, many steps per item, one replayed item per new one.</summary>
    /// <param name="options">The model's options.</param>
    public static void Configure(LoraModelOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Lora = new LoraConfig { Rank = 8, Alpha = 16, TargetModules = ["all-linear"] };
        options.Live.Learner.Optimizer = new OptimizerOptions { LearningRate = 3e-3f };
        options.Live.Learner.StepsPerItem = 60;
        options.Live.Learner.PublishEvery = 20;
        options.Live.Replay.Ratio = 1;
    }
}
