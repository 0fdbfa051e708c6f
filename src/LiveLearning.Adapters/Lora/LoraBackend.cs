using System.Runtime.CompilerServices;
using LiveLearning.Backends;
using LiveLearning.Models;
using LiveLearning.Tokenization;
using Microsoft.Extensions.AI;

namespace LiveLearning.Lora;

/// <summary>
/// The live loop's engine for LoRA adapters over a frozen <see cref="LlamaModel"/>: the model's tokenizer and chat
/// template for text, its kernels for scoring, generation and training, and one <see cref="LoraTrainingState"/> per scope.
/// </summary>
/// <remarks>Thread-safe (the model is immutable and every pass takes its adapter stack as an argument). Learning runs on
/// the background lane of the model's compute pool (<see cref="EnterLearningPriority"/>), so serving keeps priority.</remarks>
public sealed class LoraBackend : ILearningBackend
{
    private readonly bool _ownsModel;
    private readonly Tokenizer _tokenizer;
    private readonly int? _endOfTurn;
    private readonly int? _endOfText;

    /// <summary>Creates the backend.</summary>
    /// <param name="model">The base model; it needs its tokenizer (tokenizer.json).</param>
    /// <param name="config">The LoRA configuration of every scope's adapter (its seed is replaced by each scope's).</param>
    /// <param name="ownsModel">Whether disposing the backend disposes the model.</param>
    /// <exception cref="ArgumentException">The model has no tokenizer, or the config targets nothing in it.</exception>
    public LoraBackend(LlamaModel model, LoraConfig config, bool ownsModel = false)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(config);
        Model = model;
        Config = config;
        _ownsModel = ownsModel;
        _tokenizer = model.Tokenizer ?? throw new ArgumentException($"The model in {model.Directory} has no tokenizer (tokenizer.json); a live model needs one to read feedback text.", nameof(model));
        _endOfTurn = model.ChatTemplate is { } template ? _tokenizer.TokenToId(template.EndOfTurnToken) : null;
        _endOfText = model.StopTokenIds.Count > 0 ? model.StopTokenIds[0] : _tokenizer.EosTokenId;

        // Fail now, not at the first scope: the config must adapt something in this model.
        _ = LoraAdapter.CreateFresh(config, model);
    }

    /// <summary>The base model.</summary>
    public LlamaModel Model { get; }

    /// <summary>The LoRA configuration of every scope.</summary>
    public LoraConfig Config { get; }

    /// <inheritdoc />
    public string ModelId => Path.GetFileName(Path.TrimEndingDirectorySeparator(Model.Directory));

    /// <inheritdoc />
    public int ContextLength => Model.ContextLength;

    /// <inheritdoc />
    public bool SupportsChat => Model.ChatTemplate is not null;

    /// <inheritdoc />
    public IReadOnlyList<int> EncodePrompt(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        return _tokenizer.Encode(text, addSpecialTokens: true, allowSpecialTokens: false);
    }

    /// <inheritdoc />
    public IReadOnlyList<int> EncodeChatPrompt(IReadOnlyList<ChatMessage> messages)
    {
        ChatTemplate template = Model.ChatTemplate ?? throw new NotSupportedException($"The model in {Model.Directory} has no chat template this library understands; use text prompts.");
        return template.EncodePrompt(_tokenizer, messages, addGenerationPrompt: true);
    }

    /// <inheritdoc />
    public IReadOnlyList<int> EncodeCompletion(string completion, PromptKind kind, bool appendEnd)
    {
        ArgumentNullException.ThrowIfNull(completion);
        IReadOnlyList<int> ids = _tokenizer.Encode(completion, addSpecialTokens: false, allowSpecialTokens: false);
        int? end = kind == PromptKind.Chat ? _endOfTurn ?? _endOfText : _endOfText;
        return appendEnd && end is int id ? [.. ids, id] : ids;
    }

    /// <inheritdoc />
    public IAdapterTrainer CreateTrainer(TrainerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return new LoraTrainer(Model, LoraAdapter.CreateFresh(Config with { Seed = options.Seed }, Model));
    }

    /// <inheritdoc />
    public IAdapterWeights ImportWeights(AdapterWeightsData data)
    {
        try
        {
            return new LoraWeights(LoraAdapter.Import(data, Model));
        }
        catch (ModelLoadException ex)
        {
            throw new FormatException(ex.Message, ex);
        }
    }

    /// <inheritdoc />
    public CompletionScore Score(IReadOnlyList<int> prompt, IReadOnlyList<int> completion, IReadOnlyList<IAdapterWeights> adapters) =>
        Model.Score(prompt, completion, Stack(adapters));

    /// <inheritdoc />
    public async IAsyncEnumerable<GeneratedToken> GenerateAsync(IReadOnlyList<int> prompt, PromptKind kind, GenerationOptions options, IReadOnlyList<IAdapterWeights> adapters, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(options);
        GenerationOptions effective = options;
        if (options.StopTokenIds is null)
        {
            var stops = new HashSet<int>(Model.StopTokenIds);
            if (kind == PromptKind.Chat && _endOfTurn is int end)
            {
                stops.Add(end);
            }

            effective = options.Clone();
            effective.StopTokenIds = stops;
        }

        IModelAdapter? adapter = Stack(adapters);
        TokenStreamDecoder decoder = _tokenizer.CreateStreamDecoder(skipSpecialTokens: true);
        await foreach (int id in Model.GenerateTokensAsync(prompt, effective, adapter, cancellationToken).ConfigureAwait(false))
        {
            yield return new GeneratedToken(id, decoder.Append(id));
        }

        string rest = decoder.Flush();
        if (rest.Length > 0)
        {
            yield return new GeneratedToken(-1, rest);
        }
    }

    /// <inheritdoc />
    public IDisposable EnterLearningPriority(double share) => Model.Pool.EnterBackground(share);

    /// <inheritdoc />
    public void Dispose()
    {
        if (_ownsModel)
        {
            Model.Dispose();
        }
    }

    /// <summary>The adapter a pass applies for a stack: none, the one adapter, or the frozen ones under the top one.</summary>
    internal IModelAdapter? Stack(IReadOnlyList<IAdapterWeights> adapters)
    {
        ArgumentNullException.ThrowIfNull(adapters);
        return adapters.Count switch
        {
            0 => null,
            1 => Lora(adapters[0]),
            _ => new StackedAdapter(Model.Config.NumLayers, [.. adapters.Take(adapters.Count - 1).Select(Lora)], Lora(adapters[^1])),
        };
    }

    internal static LoraAdapter Lora(IAdapterWeights weights) =>
        (weights as LoraWeights)?.Adapter ?? throw new ArgumentException($"{weights?.GetType().Name ?? "null"} is not LoRA weights of this backend.", nameof(weights));
}

/// <summary>A published LoRA version as the live loop holds it.</summary>
/// <param name="Adapter">The immutable adapter.</param>
public sealed record LoraWeights(LoraAdapter Adapter) : IAdapterWeights
{
    /// <inheritdoc />
    public long ParameterCount => Adapter.ParameterCount;

    /// <inheritdoc />
    public AdapterWeightsData Export() => Adapter.Export();
}

/// <summary>One scope's trainer: a <see cref="LoraTrainingState"/> and the live loop's objectives mapped onto the engine.</summary>
internal sealed class LoraTrainer(LlamaModel model, LoraAdapter initial) : IAdapterTrainer
{
    private const string FirstMoment = "optimizer.first_moment";
    private const string SecondMoment = "optimizer.second_moment";
    private const string MomentStep = "optimizer.moment_step";

    // The scope's own config (seed, LoRA+ ratio): adapter_config.json holds neither, so a restore must not take it from there.
    private readonly LoraConfig _config = initial.Config;

    private LoraTrainingState _state = new(initial);

    public long ParameterCount => _state.ParameterCount;

    public long StateBytes => _state.StateBytes;

    public long Step => _state.Step;

    public TrainingStepResult ComputeGradients(IReadOnlyList<TrainingExample> batch, ObjectiveOptions objectives, IReadOnlyList<IAdapterWeights> frozenBelow)
    {
        ArgumentNullException.ThrowIfNull(batch);
        ArgumentNullException.ThrowIfNull(objectives);
        ArgumentNullException.ThrowIfNull(frozenBelow);
        if (batch.Count == 0)
        {
            throw new ArgumentException("A step needs at least one example.", nameof(batch));
        }

        var sequences = new List<TrainingSequence>(TrainingObjectives.SequenceCount(batch));
        foreach (TrainingExample e in batch)
        {
            sequences.Add(TrainingSequence.Completion(e.Prompt, e.Completion));
            if (e.Objective == TrainingObjective.Preference)
            {
                sequences.Add(TrainingSequence.Completion(e.Prompt, e.Rejected ?? throw new ArgumentException("A preference example needs Rejected.", nameof(batch))));
            }
        }

        IReadOnlyList<IModelAdapter>? frozen = frozenBelow.Count == 0 ? null : [.. frozenBelow.Select(LoraBackend.Lora)];
        GradientResult result = _state.ComputeGradients(model, sequences, frozen, new Objective(batch, objectives));
        var scores = new ExampleScore[batch.Count];
        int s = 0;
        for (int i = 0; i < batch.Count; i++)
        {
            TrainingExample e = batch[i];
            bool pair = e.Objective == TrainingObjective.Preference;
            scores[i] = new ExampleScore(result.SequenceLogLikelihoods[s], e.Completion.Count, pair ? result.SequenceLogLikelihoods[s + 1] : 0, pair ? e.Rejected!.Count : 0);
            s += pair ? 2 : 1;
        }

        return new TrainingStepResult(result.Loss, scores, result.ActivationBytes);
    }

    public double ClipGradients(double maxNorm) => _state.ClipGradients(maxNorm);

    public void ApplyOptimizer(OptimizerOptions options) => _state.ApplyOptimizer(options);

    public IAdapterWeights Publish() => new LoraWeights(_state.Publish());

    public void Trim(IAdapterWeights published) => _state.Trim(LoraBackend.Lora(published));

    public void Reset(IAdapterWeights weights) => _state.Reset(LoraBackend.Lora(weights));

    public TrainerState Capture()
    {
        AdapterWeightsData weights = _state.Publish().Export();
        int n = _state.ParameterCount;
        NamedTensor[] tensors = [.. weights.Tensors, new(FirstMoment, [n], _state.FirstMoment.ToArray()), new(SecondMoment, [n], _state.SecondMoment.ToArray())];
        var metadata = new Dictionary<string, string>(weights.Metadata) { [MomentStep] = _state.MomentStep.ToString(System.Globalization.CultureInfo.InvariantCulture) };
        return new TrainerState(_state.Step, tensors, metadata);
    }

    public void Restore(TrainerState state)
    {
        ArgumentNullException.ThrowIfNull(state);
        NamedTensor first = state.Tensors.FirstOrDefault(t => t.Name == FirstMoment) ?? throw new FormatException($"The trainer state has no '{FirstMoment}' tensor.");
        NamedTensor second = state.Tensors.FirstOrDefault(t => t.Name == SecondMoment) ?? throw new FormatException($"The trainer state has no '{SecondMoment}' tensor.");
        var weights = new AdapterWeightsData([.. state.Tensors.Where(t => t != first && t != second)], state.Metadata);
        LoraAdapter adapter;
        try
        {
            LoraAdapter imported = LoraAdapter.Import(weights, model);
            adapter = new LoraAdapter(imported.NumLayers, imported.Entries().ToDictionary(e => (e.Layer, e.Projection), e => e.Lora), _config);
        }
        catch (ModelLoadException ex)
        {
            throw new FormatException(ex.Message, ex);
        }

        if (state.Step is < 0 or > int.MaxValue)
        {
            throw new FormatException($"The trainer state's step {state.Step} is out of range.");
        }

        int? momentStep = null;
        if (state.Metadata.TryGetValue(MomentStep, out string? text))
        {
            momentStep = int.TryParse(text, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int parsed)
                ? parsed
                : throw new FormatException($"The trainer state's '{MomentStep}' is not a step count: '{text}'.");
        }

        try
        {
            _state = LoraTrainingState.Restore(adapter, first.Values.Span, second.Values.Span, (int)state.Step, momentStep);
        }
        catch (ArgumentException ex)
        {
            throw new FormatException(ex.Message, ex);
        }
    }

    /// <summary>The live loop's objectives (per-item means, DPO, KTO) as per-sequence weights for the engine.</summary>
    private sealed class Objective(IReadOnlyList<TrainingExample> batch, ObjectiveOptions options) : SequenceObjective
    {
        public override bool NeedsLogLikelihoods { get; } = TrainingObjectives.NeedsLogLikelihoods(batch);

        public override double Weigh(ReadOnlySpan<double> logLikelihoods, ReadOnlySpan<int> countedTokens, Span<float> weights) =>
            TrainingObjectives.Weigh(batch, options, logLikelihoods, countedTokens, weights);
    }
}
