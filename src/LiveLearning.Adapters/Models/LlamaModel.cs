using System.Buffers;
using System.Numerics.Tensors;
using LiveLearning.Numerics;
using LiveLearning.Storage;
using LiveLearning.Tokenization;

namespace LiveLearning.Models;

/// <summary>
/// A frozen Llama-family decoder (<c>llama</c>, <c>mistral</c>, <c>qwen2</c>) loaded from a Hugging Face model directory
/// (config.json + safetensors, optionally tokenizer.json) and run by the library's own kernels.
/// </summary>
/// <remarks>
/// <para>Weights stay in their stored precision (BF16 stays BF16, memory-mapped) and are widened inside the kernels.</para>
/// <para>Thread-safety: the model is immutable after loading; any number of passes may run concurrently, each with its
/// own <see cref="KvCache"/> (a cache belongs to one caller at a time). Adapters are passed per call, so one pass can
/// use an adapter version while another version is being trained.</para>
/// </remarks>
public sealed partial class LlamaModel : IDisposable
{
    private readonly SafeTensorsCheckpoint _checkpoint;
    private readonly LlamaWeights _weights;
    private readonly ComputePool _pool;
    private readonly RopeTable _rope;
    private readonly int _hidden;
    private readonly int _heads;
    private readonly int _kvHeads;
    private readonly int _headDim;
    private readonly int _qWidth;
    private readonly int _kvWidth;
    private readonly int _intermediate;
    private readonly int _vocab;
    private readonly float _eps;
    private readonly float _attentionScale;
    private readonly int? _slidingWindow;

    private LlamaModel(string directory, ModelConfig config, SafeTensorsCheckpoint checkpoint, LlamaWeights weights, ModelOptions options, Tokenizer? tokenizer, ChatTemplate? chatTemplate, IReadOnlyList<int> stopTokenIds)
    {
        Directory = directory;
        Config = config;
        _checkpoint = checkpoint;
        _weights = weights;
        Tokenizer = tokenizer;
        ChatTemplate = chatTemplate;
        StopTokenIds = stopTokenIds;
        _hidden = config.HiddenSize;
        _heads = config.NumHeads;
        _kvHeads = config.NumKvHeads;
        _headDim = config.HeadDim;
        _qWidth = _heads * _headDim;
        _kvWidth = _kvHeads * _headDim;
        _intermediate = config.IntermediateSize;
        _vocab = config.VocabSize;
        _eps = (float)config.RmsNormEps;
        _attentionScale = 1f / MathF.Sqrt(_headDim);

        // The smallest sliding window of any layer (null when every layer attends to the whole prefix). Sequences
        // that stay within it compute exactly what full causal attention computes.
        _slidingWindow = Enumerable.Range(0, config.NumLayers).Select(config.SlidingWindowForLayer).Where(w => w is not null).Min();
        int configured = config.MaxPositionEmbeddings > 0 ? config.MaxPositionEmbeddings : 32768;
        ContextLength = options.ContextLength ?? Math.Min(configured, 32768);
        if (ContextLength < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(options), ContextLength, "ContextLength must be at least 1.");
        }

        // Within the context length the dynamic-NTK variant equals the default frequencies (it only rescales past
        // max_position_embeddings), so one table serves every supported scaling type.
        _rope = new RopeTable(RopeFrequencies.InverseFrequencies(config, ContextLength), ContextLength, RopeFrequencies.AttentionScaling(config));
        _pool = new ComputePool(options.ThreadCount);
    }

    /// <summary>The directory the model was loaded from.</summary>
    public string Directory { get; }

    /// <summary>The parsed configuration.</summary>
    public ModelConfig Config { get; }

    /// <summary>The tokenizer from <c>tokenizer.json</c>, when present and requested.</summary>
    public Tokenizer? Tokenizer { get; }

    /// <summary>The chat template from <c>tokenizer_config.json</c>, when present and understood.</summary>
    public ChatTemplate? ChatTemplate { get; }

    /// <summary>End-of-sequence ids (config.json and generation_config.json); generation stops on them by default.</summary>
    public IReadOnlyList<int> StopTokenIds { get; }

    /// <summary>Longest supported sequence (prompt plus generated tokens).</summary>
    public int ContextLength { get; }

    /// <summary>Threads the kernels use.</summary>
    public int ThreadCount => _pool.ThreadCount;

    /// <summary>
    /// The model's compute pool. Passes run on its foreground lane; work inside <see cref="ComputePool.EnterBackground(double)"/>
    /// (a learner's training steps) runs on the background lane and yields to every serving pass.
    /// </summary>
    public ComputePool Pool => _pool;

    /// <summary>Bytes of frozen weights referenced, in their stored precision.</summary>
    public long WeightBytes => _weights.StorageBytes;

    /// <summary>Loads a model directory: config.json, model.safetensors (or a sharded index), tokenizer files if present.</summary>
    /// <param name="directory">The directory as downloaded from a model hub.</param>
    /// <param name="options">Load options.</param>
    /// <returns>The model.</returns>
    /// <exception cref="ModelLoadException">A required file or tensor is missing or does not fit the configuration.</exception>
    /// <exception cref="ModelConfigException">config.json is invalid or describes an unsupported model.</exception>
    /// <exception cref="SafeTensorsFormatException">A weights file is malformed.</exception>
    public static LlamaModel Load(string directory, ModelOptions? options = null) => Load(directory, options, trainable: false);

    /// <summary>Loads a model directory; with <paramref name="trainable"/>, every tensor widened into its own float32
    /// array that full-parameter training updates in place.</summary>
    internal static LlamaModel Load(string directory, ModelOptions? options, bool trainable)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        options ??= new ModelOptions();
        if (!System.IO.Directory.Exists(directory))
        {
            throw new ModelLoadException(directory, null, "the model directory does not exist.");
        }

        string configPath = Path.Combine(directory, "config.json");
        if (!File.Exists(configPath))
        {
            throw new ModelLoadException(configPath, null, "config.json is missing from the model directory.");
        }

        ModelConfig config = ModelConfig.Load(configPath);
        SafeTensorsCheckpoint checkpoint = SafeTensorsCheckpoint.Open(directory);
        try
        {
            LlamaWeights weights = LlamaWeights.Load(checkpoint, config, directory, trainable);
            if (trainable)
            {
                // Every tensor was copied into its own array: nothing reads the mapping any more, and releasing it lets
                // a trainer save over the files it was loaded from.
                checkpoint.Dispose();
            }

            Tokenizer? tokenizer = null;
            ChatTemplate? template = null;
            string tokenizerPath = Path.Combine(directory, "tokenizer.json");
            if (options.LoadTokenizer && File.Exists(tokenizerPath))
            {
                string tokenizerConfig = Path.Combine(directory, "tokenizer_config.json");
                tokenizer = Tokenizer.Load(tokenizerPath, File.Exists(tokenizerConfig) ? tokenizerConfig : null);
                if (File.Exists(tokenizerConfig))
                {
                    template = TryLoadChatTemplate(tokenizerConfig);
                }
            }

            return new LlamaModel(directory, config, checkpoint, weights, options, tokenizer, template, ReadStopTokens(directory, config));
        }
        catch
        {
            checkpoint.Dispose();
            throw;
        }
    }

    /// <summary>The [out, in] shape of a projection in this model.</summary>
    /// <param name="projection">The projection.</param>
    /// <returns>Output and input features.</returns>
    public (int OutFeatures, int InFeatures) ProjectionShape(Projection projection) => projection switch
    {
        Projection.QProj => (_qWidth, _hidden),
        Projection.KProj or Projection.VProj => (_kvWidth, _hidden),
        Projection.OProj => (_hidden, _qWidth),
        Projection.GateProj or Projection.UpProj => (_intermediate, _hidden),
        Projection.DownProj => (_hidden, _intermediate),
        _ => throw new ArgumentOutOfRangeException(nameof(projection), projection, "Unknown projection."),
    };

    /// <summary>Creates an empty KV cache for one sequence.</summary>
    /// <param name="initialCapacity">Positions to allocate up front (it grows on demand).</param>
    /// <returns>The cache.</returns>
    public KvCache CreateCache(int initialCapacity = 256) =>
        new(Config.NumLayers, _kvWidth, ContextLength, Math.Min(initialCapacity, ContextLength));

    /// <summary>
    /// Runs <paramref name="tokenIds"/> through the model, appending them to <paramref name="cache"/> (positions continue
    /// from <see cref="KvCache.Length"/>), and returns logits.
    /// </summary>
    /// <param name="tokenIds">New tokens of the sequence.</param>
    /// <param name="cache">The sequence's cache, or <see langword="null"/> to run the tokens as a whole sequence from position 0.</param>
    /// <param name="allPositions">True for logits at every position (<c>[tokens, vocab]</c>); false for the last position only (<c>[vocab]</c>).</param>
    /// <param name="adapter">Adapter to apply, or <see langword="null"/> for the base model.</param>
    /// <returns>The logits, row-major.</returns>
    public float[] Forward(IReadOnlyList<int> tokenIds, KvCache? cache = null, bool allPositions = false, IModelAdapter? adapter = null)
    {
        ArgumentNullException.ThrowIfNull(tokenIds);
        int rows = allPositions ? tokenIds.Count : Math.Min(1, tokenIds.Count);
        if ((long)rows * _vocab > Array.MaxLength)
        {
            throw new ArgumentException($"Logits for {rows} positions exceed the largest array; request fewer positions.", nameof(tokenIds));
        }

        float[] logits = new float[rows * _vocab];
        ForwardInto(tokenIds, logits, cache, allPositions, adapter);
        return logits;
    }

    /// <summary>
    /// Like <see cref="Forward(IReadOnlyList{int}, KvCache?, bool, IModelAdapter?)"/>, but writes the logits into
    /// <paramref name="logits"/> (<c>[tokens, vocab]</c> or <c>[vocab]</c>), so a decode or scoring loop allocates no logits or
    /// activations per call: activations come from a shared array pool, and what is allocated is the pass's bookkeeping
    /// (the batch plan: about 1 KB for a one-token decode step, plus 8 bytes per token; measured by a test).
    /// </summary>
    /// <param name="tokenIds">New tokens of the sequence.</param>
    /// <param name="logits">Destination; exactly the size of the requested logits.</param>
    /// <param name="cache">The sequence's cache, or <see langword="null"/>.</param>
    /// <param name="allPositions">Logits for every position or the last only.</param>
    /// <param name="adapter">Adapter to apply, or <see langword="null"/>.</param>
    public void ForwardInto(IReadOnlyList<int> tokenIds, Span<float> logits, KvCache? cache = null, bool allPositions = false, IModelAdapter? adapter = null)
    {
        var plan = Plan([new ForwardSequence(tokenIds, cache, allPositions)], requireFresh: false, adapter);
        int n = tokenIds.Count;
        int[] rows = allPositions ? Enumerable.Range(0, n).ToArray() : n == 0 ? [] : [n - 1];
        if (logits.Length != rows.Length * _vocab)
        {
            throw new ArgumentException($"logits has {logits.Length} elements but {rows.Length} position(s) x vocab {_vocab} = {rows.Length * _vocab}.", nameof(logits));
        }

        using var pass = _pool.EnterForegroundPass();
        using var arena = new Arena();
        RunForward(plan, tape: null, rows, logits, arena);
        cache?.Advance(n);
    }

    /// <summary>
    /// Runs several sequences in one pass: the linear layers process all their tokens together, attention runs per
    /// sequence against that sequence's cache.
    /// </summary>
    /// <param name="sequences">The sequences (each with its own cache or none).</param>
    /// <param name="adapter">Adapter for sequences that do not name their own (<see cref="ForwardSequence.Adapter"/>), or <see langword="null"/>.</param>
    /// <returns>Per sequence: logits for every position or the last one, as each requested.</returns>
    public float[][] ForwardBatch(IReadOnlyList<ForwardSequence> sequences, IModelAdapter? adapter = null)
    {
        ArgumentNullException.ThrowIfNull(sequences);
        var plan = Plan(sequences, requireFresh: false, adapter);
        var rows = new List<int>();
        foreach (PlannedSequence s in plan.Sequences)
        {
            if (s.Source.AllPositions)
            {
                for (int t = 0; t < s.Length; t++)
                {
                    rows.Add(s.Offset + t);
                }
            }
            else if (s.Length > 0)
            {
                rows.Add(s.Offset + s.Length - 1);
            }
        }

        using var pass = _pool.EnterForegroundPass();
        using var arena = new Arena();
        if ((long)rows.Count * _vocab > Array.MaxLength)
        {
            throw new ArgumentException($"Logits for {rows.Count} positions exceed the largest array; request fewer positions.", nameof(sequences));
        }

        float[] logits = new float[rows.Count * _vocab];
        RunForward(plan, tape: null, rows.ToArray(), logits, arena);

        var result = new float[plan.Sequences.Length][];
        int row = 0;
        foreach (PlannedSequence s in plan.Sequences)
        {
            int count = s.Source.AllPositions ? s.Length : Math.Min(1, s.Length);
            result[s.Index] = logits.AsSpan(row * _vocab, count * _vocab).ToArray();
            row += count;
            s.Source.Cache?.Advance(s.Length);
        }

        return result;
    }

    /// <summary>Log-likelihood of <paramref name="completionIds"/> following <paramref name="promptIds"/>.</summary>
    /// <param name="promptIds">Prompt tokens (at least one).</param>
    /// <param name="completionIds">Completion tokens.</param>
    /// <param name="adapter">Adapter to apply, or <see langword="null"/> for the base model.</param>
    /// <returns>The score.</returns>
    public CompletionScore Score(IReadOnlyList<int> promptIds, IReadOnlyList<int> completionIds, IModelAdapter? adapter = null)
    {
        ArgumentNullException.ThrowIfNull(promptIds);
        ArgumentNullException.ThrowIfNull(completionIds);
        if (promptIds.Count == 0)
        {
            throw new ArgumentException("Scoring needs at least one prompt token (the first completion token is predicted from it).", nameof(promptIds));
        }

        int[] ids = [.. promptIds, .. completionIds];
        var plan = Plan([new ForwardSequence(ids, null, true)], requireFresh: true, adapter);
        int p = promptIds.Count;
        int[] rows = Enumerable.Range(p - 1, completionIds.Count).ToArray();
        using var pass = _pool.EnterForegroundPass();
        using var arena = new Arena();
        float[] logits = new float[rows.Length * _vocab];
        RunForward(plan, tape: null, rows, logits, arena);
        float[] logProbs = new float[rows.Length];
        CrossEntropy.TargetLogProbabilities(logProbs, logits, ids.AsSpan(p), rows.Length, _vocab, _pool);
        double sum = 0;
        foreach (float lp in logProbs)
        {
            sum += lp;
        }

        return new CompletionScore(sum, logProbs);
    }

    /// <summary>
    /// Forward and backward pass for training: mean causal-LM cross-entropy over the batch (labels shifted by one,
    /// negative labels ignored), with adapter-parameter gradients accumulated into <paramref name="gradients"/>.
    /// The frozen weights receive no gradient.
    /// </summary>
    /// <param name="batch">Training sequences (each runs from position 0).</param>
    /// <param name="adapter">The adapter whose slots receive gradients.</param>
    /// <param name="gradients">Gradient buffers matching <paramref name="adapter"/>; accumulated into.</param>
    /// <returns>Loss, counted positions and the bytes of activations kept for the backward pass.</returns>
    public GradientResult ComputeGradients(IReadOnlyList<TrainingSequence> batch, IModelAdapter adapter, AdapterGradients gradients) =>
        ComputeGradients(batch, adapter, gradients, objective: null);

    /// <summary>
    /// Forward and backward pass for training under <paramref name="objective"/>: each sequence's summed cross-entropy is
    /// weighted by the objective (DPO, KTO, per-item means...), or, without one, the mean over all counted positions of
    /// the batch as in <see cref="ComputeGradients(IReadOnlyList{TrainingSequence}, IModelAdapter, AdapterGradients)"/>.
    /// </summary>
    /// <param name="batch">Training sequences (each runs from position 0).</param>
    /// <param name="adapter">The adapter whose slots receive gradients.</param>
    /// <param name="gradients">Gradient buffers matching <paramref name="adapter"/>; accumulated into.</param>
    /// <param name="objective">The weighting, or <see langword="null"/> for the batch mean.</param>
    /// <returns>Loss (the objective's value), counted positions, activation bytes and, with an objective, each sequence's log-likelihood.</returns>
    public GradientResult ComputeGradients(IReadOnlyList<TrainingSequence> batch, IModelAdapter adapter, AdapterGradients gradients, SequenceObjective? objective)
    {
        ArgumentNullException.ThrowIfNull(batch);
        ArgumentNullException.ThrowIfNull(adapter);
        ArgumentNullException.ThrowIfNull(gradients);
        return ComputeGradientsCore(batch, adapter, gradients, objective, full: null);
    }

    /// <summary>The trainable tensors when the model was loaded for full-parameter training, else <see langword="null"/>.</summary>
    internal ParameterTensors? Trainable => _weights.Trainable;

    /// <summary>
    /// The training pass: adapter-slot gradients into <paramref name="gradients"/> and, with <paramref name="full"/>,
    /// every weight's gradient into its tensor (the backward then runs down to the embeddings).
    /// </summary>
    internal GradientResult ComputeGradientsCore(IReadOnlyList<TrainingSequence> batch, IModelAdapter adapter, AdapterGradients gradients, SequenceObjective? objective, ParameterTensors? full)
    {
        var sequences = new ForwardSequence[batch.Count];
        for (int i = 0; i < batch.Count; i++)
        {
            TrainingSequence s = batch[i] ?? throw new ArgumentException($"Sequence {i} is null.", nameof(batch));
            if (s.InputIds is null || s.Labels is null || s.Labels.Count != s.InputIds.Count)
            {
                throw new ArgumentException($"Sequence {i}: Labels must have the same length as InputIds.", nameof(batch));
            }

            sequences[i] = new ForwardSequence(s.InputIds, null, true, adapter);
        }

        var plan = Plan(sequences, requireFresh: true, adapter);
        int n = plan.TotalTokens;

        // Targets: the logit at t predicts label t+1 of the same sequence; the last position of each sequence has none.
        int[] targets = new int[n];
        int counted = 0;
        foreach (PlannedSequence s in plan.Sequences)
        {
            IReadOnlyList<int> labels = batch[s.Index].Labels;
            for (int t = 0; t < s.Length; t++)
            {
                int target = t + 1 < s.Length ? labels[t + 1] : -1;
                if (target >= _vocab)
                {
                    throw new ArgumentOutOfRangeException(nameof(batch), target, $"Sequence {s.Index}: label {target} at position {t + 1} is outside the vocabulary ({_vocab}).");
                }

                targets[s.Offset + t] = target < 0 ? -1 : target;
                counted += target < 0 ? 0 : 1;
            }
        }

        int lowest = full is null ? LowestAdaptedLayer(adapter) : 0;
        using var pass = _pool.EnterForegroundPass();
        using var arena = new Arena();
        var tape = new Tape(this, plan, adapter, lowest, full is not null, arena);
        int[] rows = Enumerable.Range(0, n).ToArray();
        RunForward(plan, tape, rows, Span<float>.Empty, arena);
        bool backward = lowest < Config.NumLayers && counted > 0;
        Span<float> dNormed = arena.Rent(n * _hidden);
        double[] logLikelihoods = objective is null ? [] : new double[plan.Sequences.Length];
        float loss = objective is null
            ? LossAndHeadGradient(dNormed, tape.FinalNormed, targets, counted, backward, full, arena)
            : (float)WeightedLossAndHeadGradient(dNormed, tape.FinalNormed, targets, plan.Sequences, objective, backward, logLikelihoods, full, arena);
        if (backward)
        {
            Backward(plan, adapter, gradients, tape, dNormed, full, arena);
        }

        return new GradientResult(loss, counted, tape.Bytes) { SequenceLogLikelihoods = logLikelihoods };
    }

    /// <summary>Stops the model's compute threads and releases the memory-mapped weights.</summary>
    public void Dispose()
    {
        _pool.Dispose();
        _checkpoint.Dispose();
    }

    private static ChatTemplate? TryLoadChatTemplate(string path)
    {
        try
        {
            return ChatTemplate.Load(path);
        }
        catch (TokenizerFormatException)
        {
            // No template, or one the library does not understand: chat formatting is unavailable, plain text works.
            return null;
        }
    }

    private static int[] ReadStopTokens(string directory, ModelConfig config)
    {
        var ids = new SortedSet<int>(config.EosTokenIds);
        string generationConfig = Path.Combine(directory, "generation_config.json");
        if (File.Exists(generationConfig))
        {
            try
            {
                using var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllText(generationConfig));
                if (doc.RootElement.ValueKind == System.Text.Json.JsonValueKind.Object && doc.RootElement.TryGetProperty("eos_token_id", out var eos))
                {
                    if (eos.ValueKind == System.Text.Json.JsonValueKind.Number && eos.TryGetInt32(out int one))
                    {
                        ids.Add(one);
                    }
                    else if (eos.ValueKind == System.Text.Json.JsonValueKind.Array)
                    {
                        foreach (var e in eos.EnumerateArray())
                        {
                            if (e.ValueKind == System.Text.Json.JsonValueKind.Number && e.TryGetInt32(out int id))
                            {
                                ids.Add(id);
                            }
                        }
                    }
                }
            }
            catch (System.Text.Json.JsonException ex)
            {
                throw new ModelLoadException(generationConfig, "eos_token_id", $"generation_config.json is not valid JSON: {ex.Message}", ex);
            }
        }

        return [.. ids];
    }

    private int LowestAdaptedLayer(IModelAdapter adapter)
    {
        for (int l = 0; l < Config.NumLayers; l++)
        {
            foreach (Projection p in ProjectionNames.All)
            {
                if (adapter.GetSlot(l, p) is not null)
                {
                    return l;
                }
            }
        }

        return Config.NumLayers;
    }
}
