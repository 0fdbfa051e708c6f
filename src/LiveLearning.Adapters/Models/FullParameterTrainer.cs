using System.Text.Json;
using System.Text.Json.Nodes;
using LiveLearning.Numerics;
using LiveLearning.Storage;

namespace LiveLearning.Models;

/// <summary>
/// Full-parameter training of a (small) model: every linear, norm, bias and embedding gets its gradient from the same
/// forward and backward passes the adapters use, and AdamW updates them in place. This is how a base model is
/// pretrained or fully fine-tuned in-process; the live loop keeps its base frozen and learns in adapters.
/// </summary>
/// <remarks>
/// The model is loaded with every tensor widened to float32 in memory (about 4 bytes per parameter, plus 8 for the
/// optimizer's moments and 4 for the gradient), so this is meant for models of up to some hundreds of millions of
/// parameters. A trainer is not thread-safe: run one step at a time, and do not serve <see cref="Model"/> during a step.
/// </remarks>
public sealed class FullParameterTrainer : IDisposable
{
    private static readonly IModelAdapter NoSlots = new EmptyAdapter();
    private readonly ParameterTensors _tensors;
    private readonly float[][] _m;
    private readonly float[][] _v;
    private readonly AdapterGradients _noGradients;

    private FullParameterTrainer(LlamaModel model, FullTrainingOptions options)
    {
        Model = model;
        Options = options;
        _tensors = model.Trainable ?? throw new InvalidOperationException("The model was not loaded for training.");
        _m = [.. _tensors.All.Select(t => new float[t.ValueArray.Length])];
        _v = [.. _tensors.All.Select(t => new float[t.ValueArray.Length])];
        _noGradients = new AdapterGradients(NoSlots, model.Config.NumLayers);
    }

    /// <summary>The model being trained. Its passes compute with the current parameters.</summary>
    public LlamaModel Model { get; }

    /// <summary>The optimizer settings.</summary>
    public FullTrainingOptions Options { get; }

    /// <summary>Every trainable tensor (tied embeddings appear once), with its values and last gradient.</summary>
    public IReadOnlyList<ModelTensor> Parameters => _tensors.All;

    /// <summary>Number of trainable parameters.</summary>
    public long ParameterCount => _tensors.All.Sum(t => (long)t.ValueArray.Length);

    /// <summary>Optimizer steps taken so far.</summary>
    public int StepCount { get; private set; }

    /// <summary>Loads a model directory for full-parameter training (every tensor widened to float32 in memory).</summary>
    /// <param name="directory">A model directory (config.json, safetensors, optional tokenizer files).</param>
    /// <param name="options">Optimizer settings, or the defaults.</param>
    /// <param name="modelOptions">Load options (threads, context length).</param>
    /// <returns>The trainer.</returns>
    /// <exception cref="ModelLoadException">A file or tensor is missing or does not fit the configuration.</exception>
    /// <exception cref="ModelConfigException">config.json is invalid.</exception>
    public static FullParameterTrainer Open(string directory, FullTrainingOptions? options = null, ModelOptions? modelOptions = null)
    {
        options ??= new FullTrainingOptions();
        options.Validate();
        LlamaModel model = LlamaModel.Load(directory, modelOptions, trainable: true);
        return new FullParameterTrainer(model, options);
    }

    /// <summary>
    /// Writes <c>model.safetensors</c> (float32) with freshly initialised weights for the config.json already in
    /// <paramref name="directory"/>: matrices and embeddings from N(0, <paramref name="initStd"/>²), the output
    /// projections (o_proj, down_proj) scaled by 1/√(2·layers) as GPT-2 does for the residual stream, norms 1, biases 0.
    /// The same seed gives the same bytes.
    /// </summary>
    /// <param name="directory">Directory holding config.json.</param>
    /// <param name="seed">Random seed.</param>
    /// <param name="initStd">Standard deviation of the weights.</param>
    /// <exception cref="ModelLoadException">config.json is missing.</exception>
    /// <exception cref="ModelConfigException">config.json is invalid.</exception>
    public static void WriteInitialWeights(string directory, int seed, float initStd = 0.02f)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        if (!(initStd > 0 && float.IsFinite(initStd)))
        {
            throw new ArgumentOutOfRangeException(nameof(initStd), initStd, "initStd must be positive and finite.");
        }

        string configPath = Path.Combine(directory, "config.json");
        if (!File.Exists(configPath))
        {
            throw new ModelLoadException(configPath, null, "config.json is missing from the model directory.");
        }

        ModelConfig config = ModelConfig.Load(configPath);
        var rng = new Random(seed);
        var entries = new List<SafeTensorsEntry>();
        int c = config.HiddenSize;
        int q = config.NumHeads * config.HeadDim;
        int kv = config.NumKvHeads * config.HeadDim;
        int inter = config.IntermediateSize;
        float residualStd = initStd / MathF.Sqrt(2f * Math.Max(1, config.NumLayers));

        void Normal(string name, int rows, int cols, float std)
        {
            var values = new float[(long)rows * cols];
            for (int i = 0; i < values.Length; i += 2)
            {
                // Box-Muller: two independent standard normals from two uniforms in (0, 1].
                double r = Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble()));
                double a = 2 * Math.PI * rng.NextDouble();
                values[i] = (float)(std * r * Math.Cos(a));
                if (i + 1 < values.Length)
                {
                    values[i + 1] = (float)(std * r * Math.Sin(a));
                }
            }

            entries.Add(SafeTensorsEntry.FromFloat32(name, values, rows, cols));
        }

        void Constant(string name, int length, float value)
        {
            var values = new float[length];
            Array.Fill(values, value);
            entries.Add(SafeTensorsEntry.FromFloat32(name, values, length));
        }

        Normal("model.embed_tokens.weight", config.VocabSize, c, initStd);
        for (int l = 0; l < config.NumLayers; l++)
        {
            Constant($"model.layers.{l}.input_layernorm.weight", c, 1f);
            Constant($"model.layers.{l}.post_attention_layernorm.weight", c, 1f);
            foreach (Projection p in ProjectionNames.All)
            {
                (int rows, int cols) = p switch
                {
                    Projection.QProj => (q, c),
                    Projection.KProj or Projection.VProj => (kv, c),
                    Projection.OProj => (c, q),
                    Projection.GateProj or Projection.UpProj => (inter, c),
                    _ => (c, inter),
                };
                string path = ProjectionNames.ModulePath(l, p);
                Normal(path + ".weight", rows, cols, p is Projection.OProj or Projection.DownProj ? residualStd : initStd);
                bool bias = p switch
                {
                    Projection.QProj or Projection.KProj or Projection.VProj => config.AttentionBias,
                    Projection.OProj => config.OutputProjectionBias,
                    _ => config.MlpBias,
                };
                if (bias)
                {
                    Constant(path + ".bias", rows, 0f);
                }
            }
        }

        Constant("model.norm.weight", c, 1f);
        if (!config.TieWordEmbeddings)
        {
            Normal("lm_head.weight", config.VocabSize, c, initStd);
        }

        SafeTensorsWriter.Write(Path.Combine(directory, "model.safetensors"), entries, new Dictionary<string, string> { ["format"] = "pt" });
    }

    /// <summary>
    /// Forward and backward pass: clears every tensor's <see cref="ModelTensor.Gradient"/> and writes the gradient of the
    /// loss (the batch-mean causal-LM cross-entropy, or <paramref name="objective"/>) into it. No parameter changes.
    /// </summary>
    /// <param name="batch">Training sequences (labels shifted by one inside, negative labels ignored).</param>
    /// <param name="objective">A sequence objective (DPO, KTO, per-item means), or <see langword="null"/> for the batch mean.</param>
    /// <returns>Loss, counted positions and activation bytes.</returns>
    public GradientResult ComputeGradients(IReadOnlyList<TrainingSequence> batch, SequenceObjective? objective = null)
    {
        ArgumentNullException.ThrowIfNull(batch);
        _tensors.ClearGradients();
        return Model.ComputeGradientsCore(batch, NoSlots, _noGradients, objective, _tensors);
    }

    /// <summary>
    /// One optimizer step: gradients of <paramref name="batch"/>, clipped to <see cref="FullTrainingOptions.MaxGradientNorm"/>,
    /// then AdamW on every tensor (weight decay on matrices and embeddings only). A batch whose loss or gradient is not
    /// finite changes nothing and is reported with <see cref="FullTrainingStep.Applied"/> false.
    /// </summary>
    /// <param name="batch">Training sequences.</param>
    /// <param name="learningRate">This step's learning rate (a schedule is the caller's), or the options' rate.</param>
    /// <param name="objective">A sequence objective, or <see langword="null"/> for the batch mean.</param>
    /// <returns>The step's loss and gradient norm.</returns>
    public FullTrainingStep Step(IReadOnlyList<TrainingSequence> batch, float? learningRate = null, SequenceObjective? objective = null)
    {
        float lr = learningRate ?? Options.LearningRate;
        if (!(lr >= 0 && float.IsFinite(lr)))
        {
            throw new ArgumentOutOfRangeException(nameof(learningRate), lr, "The learning rate must be finite and non-negative.");
        }

        GradientResult result = ComputeGradients(batch, objective);
        Memory<float>[] gradients = [.. _tensors.All.Select(t => (Memory<float>)t.GradientArray)];
        double norm = Options.MaxGradientNorm is { } max
            ? Optimizers.ClipByGlobalNorm(gradients, max)
            : Optimizers.GlobalNorm([.. gradients.Select(g => (ReadOnlyMemory<float>)g)]);
        if (!double.IsFinite(norm) || !float.IsFinite(result.Loss))
        {
            return new FullTrainingStep(result.Loss, norm, result.CountedPositions, Applied: false);
        }

        StepCount++;
        for (int i = 0; i < _tensors.All.Count; i++)
        {
            ModelTensor t = _tensors.All[i];
            float decay = t.IsMatrix ? Options.WeightDecay : 0f;
            Optimizers.AdamWStep(t.ValueArray, t.GradientArray, _m[i], _v[i], StepCount, lr, Options.Beta1, Options.Beta2, Options.Epsilon, decay);
        }

        return new FullTrainingStep(result.Loss, norm, result.CountedPositions, Applied: true);
    }

    /// <summary>
    /// Writes the current parameters as a model directory in the Hugging Face layout: <c>model.safetensors</c> in
    /// <paramref name="type"/>, config.json (with <c>torch_dtype</c> set to match) and the source directory's tokenizer
    /// and generation files. Each file is written atomically.
    /// </summary>
    /// <param name="directory">Target directory (created if needed; may be the source directory).</param>
    /// <param name="type">Storage precision of the weights.</param>
    public void Save(string directory, WeightType type = WeightType.BF16)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        Directory.CreateDirectory(directory);
        SafeTensorsDType dtype = SafeTensorsDTypes.FromWeightType(type);
        var entries = _tensors.All.Select(t => SafeTensorsEntry.FromFloats(t.Name, dtype, t.ValueArray, [.. t.Shape.Select(s => (long)s)]));
        SafeTensorsWriter.Write(Path.Combine(directory, "model.safetensors"), entries, new Dictionary<string, string> { ["format"] = "pt" });

        string source = Model.Directory;
        JsonNode config = JsonNode.Parse(File.ReadAllText(Path.Combine(source, "config.json")))!;
        config["torch_dtype"] = type switch
        {
            WeightType.BF16 => "bfloat16",
            WeightType.F16 => "float16",
            _ => "float32",
        };
        WriteAtomically(Path.Combine(directory, "config.json"), config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        if (Path.GetFullPath(source) != Path.GetFullPath(directory))
        {
            foreach (string name in (string[])["tokenizer.json", "tokenizer_config.json", "generation_config.json", "special_tokens_map.json"])
            {
                string from = Path.Combine(source, name);
                if (File.Exists(from))
                {
                    WriteAtomically(Path.Combine(directory, name), File.ReadAllText(from));
                }
            }
        }
    }

    /// <summary>Releases the model.</summary>
    public void Dispose() => Model.Dispose();

    private static void WriteAtomically(string path, string text)
    {
        string temporary = path + ".tmp";
        using (var stream = new FileStream(temporary, FileMode.Create, FileAccess.Write, FileShare.None))
        using (var writer = new StreamWriter(stream))
        {
            writer.Write(text);
            writer.Flush();
            stream.Flush(flushToDisk: true);
        }

        File.Move(temporary, path, overwrite: true);
    }

    private sealed class EmptyAdapter : IModelAdapter
    {
        public IAdapterSlot? GetSlot(int layer, Projection projection) => null;
    }
}

/// <summary>AdamW settings for <see cref="FullParameterTrainer"/>.</summary>
public sealed record FullTrainingOptions
{
    /// <summary>Learning rate when a step does not pass its own (default 1e-3).</summary>
    public float LearningRate { get; init; } = 1e-3f;

    /// <summary>First-moment decay (default 0.9).</summary>
    public float Beta1 { get; init; } = 0.9f;

    /// <summary>Second-moment decay (default 0.95, the usual choice for pretraining).</summary>
    public float Beta2 { get; init; } = 0.95f;

    /// <summary>Denominator epsilon (default 1e-8).</summary>
    public float Epsilon { get; init; } = 1e-8f;

    /// <summary>Decoupled weight decay on matrices and embeddings (default 0.1; norms and biases get none).</summary>
    public float WeightDecay { get; init; } = 0.1f;

    /// <summary>Clip the global gradient norm to this (default 1.0); <see langword="null"/> to not clip.</summary>
    public double? MaxGradientNorm { get; init; } = 1.0;

    internal void Validate()
    {
        static void Check(bool ok, string name, object value, string rule)
        {
            if (!ok)
            {
                throw new ArgumentOutOfRangeException(name, value, $"{name} {rule}.");
            }
        }

        Check(LearningRate >= 0 && float.IsFinite(LearningRate), nameof(LearningRate), LearningRate, "must be finite and non-negative");
        Check(Beta1 is >= 0 and < 1, nameof(Beta1), Beta1, "must be in [0, 1)");
        Check(Beta2 is >= 0 and < 1, nameof(Beta2), Beta2, "must be in [0, 1)");
        Check(Epsilon >= 0 && float.IsFinite(Epsilon), nameof(Epsilon), Epsilon, "must be finite and non-negative");
        Check(WeightDecay >= 0 && float.IsFinite(WeightDecay), nameof(WeightDecay), WeightDecay, "must be finite and non-negative");
        Check(MaxGradientNorm is null || (MaxGradientNorm > 0 && double.IsFinite(MaxGradientNorm.Value)), nameof(MaxGradientNorm), MaxGradientNorm ?? 0, "must be positive and finite, or null");
    }
}

/// <summary>What one <see cref="FullParameterTrainer.Step"/> did.</summary>
/// <param name="Loss">The batch loss before the update.</param>
/// <param name="GradientNorm">The global gradient norm before clipping.</param>
/// <param name="CountedPositions">Target positions in the batch.</param>
/// <param name="Applied">Whether the parameters were updated (false when the loss or gradient was not finite).</param>
public readonly record struct FullTrainingStep(float Loss, double GradientNorm, int CountedPositions, bool Applied);
