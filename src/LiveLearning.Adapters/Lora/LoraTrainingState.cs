using LiveLearning.Models;
using LiveLearning.Numerics;

namespace LiveLearning.Lora;

/// <summary>
/// The mutable side of training one LoRA adapter (single writer): flat parameter, gradient and optimizer-moment buffers
/// (llm.c style, one slice per slot: <c>[A | B]</c>), a step counter, and <see cref="Publish"/>, which copies the
/// parameters into a new immutable <see cref="LoraAdapter"/> version. Readers never see these buffers.
/// </summary>
/// <remarks>
/// Buffers are allocated when first needed: the moments at the first optimizer step, the gradients at the first pass.
/// <see cref="Trim"/> releases the gradients and the working parameters between bursts of steps (they come back from
/// the published version at the next step), so an idle adapter costs its published version and its moments.
/// </remarks>
public sealed class LoraTrainingState
{
    private readonly SlotInfo[] _slots;
    private readonly int _parameterCount;
    private float[]? _parameters;
    private float[]? _gradients;
    private float[]? _m;
    private float[]? _v;
    private AdapterGradients? _adapterGradients;
    private LoraAdapter? _trimmedTo;

    /// <summary>Starts training from <paramref name="initial"/> (its parameters are copied; its config is kept).</summary>
    /// <param name="initial">The starting version (e.g. <see cref="LoraAdapter.CreateFresh(LoraConfig, LlamaModel)"/> or a loaded one).</param>
    public LoraTrainingState(LoraAdapter initial)
    {
        ArgumentNullException.ThrowIfNull(initial);
        Config = initial.Config;
        NumLayers = initial.NumLayers;
        var slots = new List<SlotInfo>();
        int offset = 0;
        foreach ((int l, Projection p, LoraLayer lora) in initial.Entries())
        {
            slots.Add(new SlotInfo(l, p, offset, lora.Rank, lora.InFeatures, lora.OutFeatures, lora.Alpha, lora.UseRsLora, lora.Dropout));
            offset += lora.ParameterCount;
        }

        _slots = [.. slots];
        _parameterCount = offset;
        _parameters = new float[offset];
        CopyFrom(initial, _parameters);
    }

    /// <summary>The adapter's config (LoRA+ ratio, dropout, seed).</summary>
    public LoraConfig Config { get; }

    /// <summary>Decoder layers.</summary>
    public int NumLayers { get; }

    /// <summary>Optimizer steps taken (the warm-up schedule follows it).</summary>
    public int Step { get; private set; }

    /// <summary>
    /// Steps the optimizer moments have seen: equal to <see cref="Step"/> until <see cref="Reset"/> clears the moments,
    /// after which AdamW's bias correction starts again from 1, as for fresh moments.
    /// </summary>
    public int MomentStep { get; private set; }

    /// <summary>Number of trainable parameters.</summary>
    public int ParameterCount => _parameterCount;

    /// <summary>All parameters, slot after slot, each <c>[A | B]</c>.</summary>
    public ReadOnlySpan<float> Parameters => WorkingParameters();

    /// <summary>The gradients of the last <see cref="ComputeGradients(LlamaModel, IReadOnlyList{TrainingSequence}, IReadOnlyList{IModelAdapter}?)"/> (same layout; zero before any).</summary>
    public ReadOnlySpan<float> Gradients => _gradients ?? (ReadOnlySpan<float>)new float[_parameterCount];

    /// <summary>AdamW first moments, or the SGD momentum buffer (same layout as <see cref="Parameters"/>), for snapshots; zero before the first step.</summary>
    public ReadOnlySpan<float> FirstMoment => _m ?? (ReadOnlySpan<float>)new float[_parameterCount];

    /// <summary>AdamW second moments (same layout as <see cref="Parameters"/>; unused by SGD), for snapshots; zero before the first step.</summary>
    public ReadOnlySpan<float> SecondMoment => _v ?? (ReadOnlySpan<float>)new float[_parameterCount];

    /// <summary>Bytes of training state held now (working parameters, gradients, moments; whichever are allocated).</summary>
    public long StateBytes => sizeof(float) * ((long)(_parameters?.Length ?? 0) + (_gradients?.Length ?? 0) + (_m?.Length ?? 0) + (_v?.Length ?? 0));

    /// <summary>
    /// Forward + cross-entropy + backward with the current parameters; overwrites <see cref="Gradients"/>. Dropout
    /// (if configured) uses masks seeded by (config seed, step, slot), so a step is reproducible.
    /// </summary>
    /// <param name="model">The base model.</param>
    /// <param name="batch">Training sequences.</param>
    /// <param name="frozenBelow">Adapters applied under this one without training (stacking), or null.</param>
    /// <returns>The loss and counts.</returns>
    public GradientResult ComputeGradients(LlamaModel model, IReadOnlyList<TrainingSequence> batch, IReadOnlyList<IModelAdapter>? frozenBelow = null) =>
        ComputeGradients(model, batch, frozenBelow, objective: null);

    /// <summary>
    /// Like <see cref="ComputeGradients(LlamaModel, IReadOnlyList{TrainingSequence}, IReadOnlyList{IModelAdapter}?)"/>, under a
    /// per-sequence objective (see <see cref="LlamaModel.ComputeGradients(IReadOnlyList{TrainingSequence}, IModelAdapter, AdapterGradients, SequenceObjective?)"/>).
    /// </summary>
    /// <param name="model">The base model.</param>
    /// <param name="batch">Training sequences.</param>
    /// <param name="frozenBelow">Adapters applied under this one without training (stacking), or null.</param>
    /// <param name="objective">The weighting, or <see langword="null"/> for the batch mean.</param>
    /// <returns>The loss, counts and, with an objective, each sequence's log-likelihood.</returns>
    public GradientResult ComputeGradients(LlamaModel model, IReadOnlyList<TrainingSequence> batch, IReadOnlyList<IModelAdapter>? frozenBelow, SequenceObjective? objective)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (model.Config.NumLayers != NumLayers)
        {
            throw new ArgumentException($"The model has {model.Config.NumLayers} layers; this adapter was made for {NumLayers}.", nameof(model));
        }

        LoraAdapter view = TrainingView();
        IModelAdapter adapter = frozenBelow is { Count: > 0 } ? new StackedAdapter(NumLayers, frozenBelow, view) : view;

        // The gradient buffers are slices of the flat gradient buffer: a stack's slots carry exactly the trainable
        // slot's parameters, and frozen-only slots have none, so the view's layout serves stacked passes too.
        AdapterGradients gradients = GradientBuffers();
        gradients.Clear();
        return model.ComputeGradients(batch, adapter, gradients, objective);
    }

    /// <summary>Scales the gradients so their global L2 norm is at most <paramref name="maxNorm"/>; returns the norm before clipping.</summary>
    /// <param name="maxNorm">Largest allowed norm (finite, &gt; 0, or +∞ to only measure).</param>
    /// <returns>The norm before clipping (NaN or ∞ when a gradient is not finite; the gradients are then untouched).</returns>
    public double ClipGradients(double maxNorm)
    {
        Memory<float>[] all = [_gradients ?? []];
        return Optimizers.ClipByGlobalNorm(all, maxNorm);
    }

    /// <summary>
    /// One optimizer step on every parameter (AdamW or SGD with momentum, as <paramref name="options"/> says), at the
    /// warm-up learning rate of the next step; B's learning rate is multiplied by the LoRA+ ratio of the config.
    /// Clipping is <see cref="ClipGradients"/>'s job (or <see cref="TrainStep"/>'s).
    /// </summary>
    /// <param name="options">The optimizer settings.</param>
    /// <exception cref="ArgumentOutOfRangeException">A setting is out of range (nothing is changed).</exception>
    /// <exception cref="InvalidOperationException">A gradient is not finite (nothing is changed).</exception>
    public void ApplyOptimizer(OptimizerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        float[] gradients = _gradients ?? new float[_parameterCount];
        if (gradients.Length > 0 && !float.IsFinite(System.Numerics.Tensors.TensorPrimitives.MaxMagnitude(gradients)))
        {
            throw new InvalidOperationException("The gradients contain NaN or infinity; the step was refused and no parameter changed.");
        }

        float[] parameters = WorkingParameters();
        float[] firstMoment = _m ??= new float[_parameterCount];
        float[] secondMoment = options.Kind == OptimizerKind.AdamW ? _v ??= new float[_parameterCount] : [];
        int step = Step + 1;
        int momentStep = MomentStep + 1;
        float learningRate = options.LearningRateAt(step);
        float lrB = (float)(learningRate * Config.LoraPlusRatio);
        foreach (SlotInfo s in _slots)
        {
            Span<float> p = parameters.AsSpan(s.Offset, s.Length);
            Span<float> g = gradients.AsSpan(s.Offset, s.Length);
            Span<float> m = firstMoment.AsSpan(s.Offset, s.Length);
            int a = s.ALength;
            if (options.Kind == OptimizerKind.AdamW)
            {
                Span<float> v = secondMoment.AsSpan(s.Offset, s.Length);
                Optimizers.AdamWStep(p[..a], g[..a], m[..a], v[..a], momentStep, learningRate, options.Beta1, options.Beta2, options.Epsilon, options.WeightDecay);
                Optimizers.AdamWStep(p[a..], g[a..], m[a..], v[a..], momentStep, lrB, options.Beta1, options.Beta2, options.Epsilon, options.WeightDecay);
            }
            else
            {
                // The first moment buffer holds the momentum; the second is unused.
                bool nesterov = options.Nesterov && options.Momentum > 0;
                Optimizers.SgdMomentumStep(p[..a], g[..a], m[..a], momentStep == 1, learningRate, options.Momentum, 0f, options.WeightDecay, nesterov);
                Optimizers.SgdMomentumStep(p[a..], g[a..], m[a..], momentStep == 1, lrB, options.Momentum, 0f, options.WeightDecay, nesterov);
            }
        }

        Step = step;
        MomentStep = momentStep;
    }

    /// <summary>Gradients, clipping (when <see cref="OptimizerOptions.MaxGradNorm"/> is set), then the optimizer: one training step.</summary>
    /// <param name="model">The base model.</param>
    /// <param name="batch">Training sequences.</param>
    /// <param name="options">The optimizer settings (learning rate, warm-up, weight decay, clipping...).</param>
    /// <param name="frozenBelow">Frozen adapters under this one, or null.</param>
    /// <returns>The loss before the update.</returns>
    public float TrainStep(LlamaModel model, IReadOnlyList<TrainingSequence> batch, OptimizerOptions options, IReadOnlyList<IModelAdapter>? frozenBelow = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        GradientResult r = ComputeGradients(model, batch, frozenBelow);
        if (options.MaxGradNorm is double max)
        {
            ClipGradients(max);
        }

        ApplyOptimizer(options);
        return r.Loss;
    }

    /// <summary>
    /// Resumes training from a snapshot: the parameters of <paramref name="parameters"/>, the optimizer moments and the
    /// step count. Continuing from a restored state gives bit-for-bit the parameters of never having stopped.
    /// </summary>
    /// <param name="parameters">The adapter version saved with the snapshot.</param>
    /// <param name="firstMoment">Saved <see cref="FirstMoment"/>.</param>
    /// <param name="secondMoment">Saved <see cref="SecondMoment"/>.</param>
    /// <param name="step">Saved <see cref="Step"/>.</param>
    /// <param name="momentStep">Saved <see cref="MomentStep"/>, or <see langword="null"/> when it equals <paramref name="step"/>.</param>
    /// <returns>The state.</returns>
    /// <exception cref="ArgumentException">A moment buffer does not match the adapter's parameter count.</exception>
    public static LoraTrainingState Restore(LoraAdapter parameters, ReadOnlySpan<float> firstMoment, ReadOnlySpan<float> secondMoment, int step, int? momentStep = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(step);
        if (momentStep is < 0 || momentStep > step)
        {
            throw new ArgumentOutOfRangeException(nameof(momentStep), momentStep, $"momentStep must be in [0, step = {step}].");
        }
        var state = new LoraTrainingState(parameters);
        if (firstMoment.Length != state._parameterCount)
        {
            throw new ArgumentException($"firstMoment has {firstMoment.Length} values; the adapter has {state._parameterCount} parameters.", nameof(firstMoment));
        }

        if (secondMoment.Length != state._parameterCount)
        {
            throw new ArgumentException($"secondMoment has {secondMoment.Length} values; the adapter has {state._parameterCount} parameters.", nameof(secondMoment));
        }

        state._m = firstMoment.ToArray();
        state._v = secondMoment.ToArray();
        state.Step = step;
        state.MomentStep = momentStep ?? step;
        return state;
    }

    /// <summary>
    /// Sets the parameters to those of <paramref name="weights"/> and clears the optimizer moments (a rollback); the step
    /// count (and so the warm-up) is kept, and <see cref="MomentStep"/> starts again at 0 so AdamW's bias correction
    /// treats the moments as fresh.
    /// </summary>
    /// <param name="weights">An adapter with this state's slots and shapes.</param>
    /// <exception cref="ArgumentException">The adapter's slots or shapes differ.</exception>
    public void Reset(LoraAdapter weights)
    {
        ArgumentNullException.ThrowIfNull(weights);
        CheckLayout(weights);
        float[] parameters = _parameters ?? new float[_parameterCount];
        CopyFrom(weights, parameters);
        _parameters = parameters;
        _trimmedTo = null;
        _m = null;
        _v = null;
        MomentStep = 0;
    }

    /// <summary>
    /// Releases the gradients and the working parameters; <paramref name="published"/> must hold exactly the current
    /// parameters (the version last published), and the next step copies them back from it.
    /// </summary>
    /// <param name="published">The version equal to the current parameters.</param>
    /// <exception cref="ArgumentException">The adapter's slots or shapes differ.</exception>
    public void Trim(LoraAdapter published)
    {
        ArgumentNullException.ThrowIfNull(published);
        CheckLayout(published);
        _trimmedTo = published;
        _parameters = null;
        _gradients = null;
        _adapterGradients = null;
    }

    /// <summary>A new immutable adapter version holding a copy of the current parameters.</summary>
    /// <returns>The version.</returns>
    public LoraAdapter Publish()
    {
        if (_parameters is null && _trimmedTo is not null)
        {
            // Trimmed: the version it was trimmed to holds exactly these parameters, and stays trimmed.
            return _trimmedTo;
        }

        float[] parameters = WorkingParameters();
        var layers = new Dictionary<(int, Projection), LoraLayer>();
        foreach (SlotInfo s in _slots)
        {
            layers[(s.Layer, s.Projection)] = new LoraLayer(
                parameters.AsSpan(s.Offset, s.ALength), parameters.AsSpan(s.Offset + s.ALength, s.Length - s.ALength),
                s.In, s.Out, s.Rank, s.Alpha, s.RsLora, s.Dropout);
        }

        return new LoraAdapter(NumLayers, layers, Config);
    }

    private float[] WorkingParameters()
    {
        if (_parameters is null)
        {
            _parameters = new float[_parameterCount];
            CopyFrom(_trimmedTo!, _parameters);
            _trimmedTo = null;
        }

        return _parameters;
    }

    private AdapterGradients GradientBuffers()
    {
        if (_adapterGradients is null)
        {
            float[] flat = _gradients ??= new float[_parameterCount];
            _adapterGradients = new AdapterGradients(NumLayers, _slots.Select(s => (s.Layer, s.Projection, new Memory<float>(flat, s.Offset, s.Length))));
        }

        return _adapterGradients;
    }

    private void CopyFrom(LoraAdapter adapter, float[] destination)
    {
        foreach (SlotInfo s in _slots)
        {
            LoraLayer lora = adapter.GetLayer(s.Layer, s.Projection)!;
            lora.A.CopyTo(destination.AsSpan(s.Offset));
            lora.B.CopyTo(destination.AsSpan(s.Offset + s.ALength));
        }
    }

    private void CheckLayout(LoraAdapter adapter)
    {
        if (adapter.NumLayers != NumLayers || adapter.ModuleCount != _slots.Length)
        {
            throw new ArgumentException($"The adapter has {adapter.ModuleCount} modules over {adapter.NumLayers} layers; this state trains {_slots.Length} over {NumLayers}.", nameof(adapter));
        }

        foreach (SlotInfo s in _slots)
        {
            if (adapter.GetLayer(s.Layer, s.Projection) is not { } lora || lora.Rank != s.Rank || lora.InFeatures != s.In || lora.OutFeatures != s.Out)
            {
                throw new ArgumentException($"The adapter's {ProjectionNames.ModulePath(s.Layer, s.Projection)} is missing or has another shape than this state's (rank {s.Rank}, [{s.Out}, {s.In}]).", nameof(adapter));
            }
        }
    }

    /// <summary>Layers viewing the live parameter buffer (no copy), with this step's dropout seeds. Never published.</summary>
    private LoraAdapter TrainingView()
    {
        float[] parameters = WorkingParameters();
        var layers = new Dictionary<(int, Projection), LoraLayer>();
        for (int i = 0; i < _slots.Length; i++)
        {
            SlotInfo s = _slots[i];
            ulong seed = LoraLayer.Mix(Config.Seed ^ LoraLayer.Mix(((ulong)(uint)Step << 32) | (uint)i));
            var a = new ReadOnlyMemory<float>(parameters, s.Offset, s.ALength);
            var b = new ReadOnlyMemory<float>(parameters, s.Offset + s.ALength, s.Length - s.ALength);
            layers[(s.Layer, s.Projection)] = LoraLayer.View(a, b, s.In, s.Out, s.Rank, s.Alpha, s.RsLora, s.Dropout, seed);
        }

        return new LoraAdapter(NumLayers, layers, Config);
    }

    private readonly record struct SlotInfo(int Layer, Projection Projection, int Offset, int Rank, int In, int Out, double Alpha, bool RsLora, float Dropout)
    {
        public int ALength => Rank * In;

        public int Length => Rank * (In + Out);
    }
}
