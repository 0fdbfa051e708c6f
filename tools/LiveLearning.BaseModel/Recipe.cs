using System.Globalization;

namespace LiveLearning.BaseModel;

/// <summary>Everything that decides the base model: the world, the tokenizer, the architecture and the training run.</summary>
public sealed record Recipe
{
    public int Seed { get; init; } = 1;

    public int WorldAPeople { get; init; } = 300;

    public int NewPeople { get; init; } = 100;

    public int ChangedFacts { get; init; } = 100;

    public int VocabularySize { get; init; } = 2048;

    public int Hidden { get; init; } = 256;

    public int Layers { get; init; } = 4;

    public int Heads { get; init; } = 4;

    public int KvHeads { get; init; } = 2;

    public int Intermediate { get; init; } = 768;

    public int Epochs { get; init; } = 60;

    public int BiographiesPerEpoch { get; init; } = 1;

    public int BatchDocuments { get; init; } = 16;

    public float PeakLearningRate { get; init; } = 2e-3f;

    public int WarmupSteps { get; init; } = 100;

    public int Threads { get; init; } = 0;

    /// <summary>Questions whose answers eval prints.</summary>
    public int Show { get; init; }

    /// <summary>The command-line form of this recipe (what the model card records).</summary>
    public string Arguments => string.Create(CultureInfo.InvariantCulture, $"--seed {Seed} --people {WorldAPeople} --epochs {Epochs} --hidden {Hidden} --layers {Layers} --heads {Heads} --kv-heads {KvHeads} --intermediate {Intermediate} --vocab {VocabularySize} --batch {BatchDocuments} --lr {PeakLearningRate} --bios {BiographiesPerEpoch}");

    public static Recipe Parse(IReadOnlyList<string> args, out string? output, out string? model)
    {
        var recipe = new Recipe();
        output = null;
        model = null;
        for (int i = 0; i < args.Count; i++)
        {
            string Value() => i + 1 < args.Count ? args[++i] : throw new ArgumentException($"{args[i]} needs a value.");
            int Int() => int.Parse(Value(), CultureInfo.InvariantCulture);
            recipe = args[i] switch
            {
                "--seed" => recipe with { Seed = Int() },
                "--people" => recipe with { WorldAPeople = Int() },
                "--epochs" => recipe with { Epochs = Int() },
                "--hidden" => recipe with { Hidden = Int() },
                "--layers" => recipe with { Layers = Int() },
                "--heads" => recipe with { Heads = Int() },
                "--kv-heads" => recipe with { KvHeads = Int() },
                "--intermediate" => recipe with { Intermediate = Int() },
                "--vocab" => recipe with { VocabularySize = Int() },
                "--batch" => recipe with { BatchDocuments = Int() },
                "--bios" => recipe with { BiographiesPerEpoch = Int() },
                "--threads" => recipe with { Threads = Int() },
                "--show" => recipe with { Show = Int() },
                "--lr" => recipe with { PeakLearningRate = float.Parse(Value(), CultureInfo.InvariantCulture) },
                "--out" => Set(recipe, out output, Value()),
                "--model" => Set(recipe, out model, Value()),
                _ => throw new ArgumentException($"Unknown option '{args[i]}'."),
            };
        }

        return recipe;
    }

    /// <summary>Learning rate at a step: linear warm-up, then cosine decay to a tenth of the peak.</summary>
    public float LearningRate(int step, int totalSteps)
    {
        if (step < WarmupSteps)
        {
            return PeakLearningRate * (step + 1) / WarmupSteps;
        }

        double progress = (double)(step - WarmupSteps) / Math.Max(1, totalSteps - WarmupSteps);
        return (float)(PeakLearningRate * (0.1 + (0.9 * 0.5 * (1 + Math.Cos(Math.PI * Math.Min(1, progress))))));
    }

    private static Recipe Set(Recipe recipe, out string? slot, string value)
    {
        slot = value;
        return recipe;
    }
}
