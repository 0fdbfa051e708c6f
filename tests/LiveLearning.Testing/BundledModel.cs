namespace LiveLearning.Testing;

/// <summary>
/// The project's own base model (<c>models/livelearning-base</c>: a 4-layer Llama pretrained on the synthetic world A
/// by <c>tools/LiveLearning.BaseModel</c>), copied beside the assemblies that use it.
/// </summary>
public static class BundledModel
{
    /// <summary>The world seed and sizes the bundled model was pretrained on (its training.json records them).</summary>
    public const int WorldSeed = 1;

    /// <summary>People in world A.</summary>
    public const int WorldAPeople = 300;

    /// <summary>People held out of pretraining.</summary>
    public const int NewPeople = 100;

    /// <summary>World-A facts with a changed value.</summary>
    public const int ChangedFacts = 100;

    /// <summary>The model directory.</summary>
    public static string Directory => Path.Combine(AppContext.BaseDirectory, "models", "livelearning-base");
}
