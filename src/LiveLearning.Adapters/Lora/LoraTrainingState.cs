using LiveLearning.Models;
using LiveLearning.Numerics;

namespace LiveLearning.Lora;

/// <summary>
/// The mutable side of training one LoRA adapter (single writer): flat parameter, gradient and AdamW moment buffers
/// (llm.c style, one slice per slot: <c>[A | B]</c>), a step counter, and <see cref="Publish"/>, which copies the
/// parameters into a new immutable <see cref="LoraAdapter"/> version. Readers never see these buffers.
/// </summary>
public sealed class LoraTrainingState
{
    private readonly SlotInfo[] _slots;
    private readonly float[] _parameters;
    private readonly float[] _gradients;
    private readonly float[] _m;
    private readonly float[] _v;
    private AdapterGradients? _adapterGradients;

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
        _parameters = new float[offset];
        _gradients = new float[offset];
        _m = new float[offset];
        _v = new float[offset];
        foreach (SlotInfo s in _slots)
        {
            LoraLayer lora = initial.GetLayer(s.Layer, s.Projection)!;
            lora.A.CopyTo(_parameters.AsSpan(s.Offset));
            lora.B.CopyTo(_parameters.AsSpan(s.Offset + s.ALength));
        }
    }

    /// <summary>The adapter's config (LoRA+ ratio, dropout, seed).</summary>
    public LoraConfig Config { get; }

    /// <summary>Decoder layers.</summary>
    public int NumLayers { get; }

    /// <summary>Optimizer steps taken.</summary>
    public int Step { get; private set; }

    /// <summary>All parameters, slot after slot, each <c>[A | B]</c>.</summary>
    public ReadOnlySpan<float> Parameters => _parameters;

    /// <summary>The gradients of the last <see cref="ComputeGradients"/> (same layout).</summary>
    public ReadOnlySpan<float> Gradients => _gradients;

    /// <summary>AdamW first moments, or the SGD momentum buffer (same layout as <see cref="Parameters"/>), for snapshots.</summary>
    public ReadOnlySpan<float> FirstMoment => _m;

    /// <summary>AdamW second moments (same layout as <see cref="Parameters"/>; unused by SGD), for snapshots.</summary>
    public ReadOnlySpan<float> SecondMoment => _v;

    /// <summary>Bytes of training state (parameters, gradients, two moments).</summary>
    public long StateBytes => 4L * sizeof(float) * _parameters.Length;

    /// <summary>
    /// Forward + cross-entropy + backward with the current parameters; overwrites <see cref="Gradients"/>. Dropout
    /// (if configured) uses masks seeded by (config seed, step, slot), so a step is reproducible.
    /// </summary>
    /// <param name="model">The base model.</param>
    /// <param name="batch">Training sequences.</param>
    /// <param name="frozenBelow">Adapters applied under this one without training (stacking), or null.</param>
    /// <returns>The loss and counts.</returns>
    public GradientResult ComputeGradients(LlamaModel model, IReadOnlyList<TrainingSequence> batch, IReadOnlyList<IModelAdapter>? frozenBelow = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (model.Config.NumLayers != NumLayers)
        {
            throw new ArgumentException($"The model has {model.Config.NumLayers} layers; this adapter was made for {NumLayers}.", nameof(model));
        }

        LoraAdapter view = TrainingView();
        IModelAdapter adapter = frozenBelow is { Count: > 0 } ? new StackedAdapter(NumLayers, frozenBelow, view) : view;

        // One gradient buffer set for every step: a stack's slots carry exactly the trainable slot's parameters, and
        // frozen-only slots have none (an empty buffer), so the view's layout serves stacked passes too.
        AdapterGradients gradients = _adapterGradients ??= new AdapterGradients(view, NumLayers);
        gradients.Clear();
        GradientResult result = model.ComputeGradients(batch, adapter, gradients);
        foreach (SlotInfo s in _slots)
        {
            gradients.Get(s.Layer, s.Projection).CopyTo(_gradients.AsSpan(s.Offset, s.Length));
        }

        return result;
    }

    /// <summary>Scales the gradients so their global L2 norm is at most <paramref name="maxNorm"/>; returns the norm before clipping.</summary>
    /// <param name="maxNorm">Largest allowed norm (finite, &gt; 0).</param>
    /// <returns>The norm before clipping.</returns>
    public double ClipGradients(double maxNorm)
    {
        Memory<float>[] all = [_gradients];
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
        if (_gradients.Length > 0 && !float.IsFinite(System.Numerics.Tensors.TensorPrimitives.MaxMagnitude(_gradients)))
        {
            throw new InvalidOperationException("The gradients contain NaN or infinity; the step was refused and no parameter changed.");
        }

        int step = Step + 1;
        float learningRate = options.LearningRateAt(step);
        float lrB = (float)(learningRate * Config.LoraPlusRatio);
        foreach (SlotInfo s in _slots)
        {
            Span<float> p = _parameters.AsSpan(s.Offset, s.Length);
            Span<float> g = _gradients.AsSpan(s.Offset, s.Length);
            Span<float> m = _m.AsSpan(s.Offset, s.Length);
            Span<float> v = _v.AsSpan(s.Offset, s.Length);
            int a = s.ALength;
            if (options.Kind == OptimizerKind.AdamW)
            {
                Optimizers.AdamWStep(p[..a], g[..a], m[..a], v[..a], step, learningRate, options.Beta1, options.Beta2, options.Epsilon, options.WeightDecay);
                Optimizers.AdamWStep(p[a..], g[a..], m[a..], v[a..], step, lrB, options.Beta1, options.Beta2, options.Epsilon, options.WeightDecay);
            }
            else
            {
                // The first moment buffer holds the momentum; the second is unused.
                Optimizers.SgdMomentumStep(p[..a], g[..a], m[..a], step == 1, learningRate, options.Momentum, 0f, options.WeightDecay, options.Nesterov && options.Momentum > 0);
                Optimizers.SgdMomentumStep(p[a..], g[a..], m[a..], step == 1, lrB, options.Momentum, 0f, options.WeightDecay, options.Nesterov && options.Momentum > 0);
            }
        }

        Step = step;
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
    /// Resumes training from a snapshot: the parameters of <paramref name="parameters"/>, the AdamW moments and the step
    /// count. Continuing from a restored state gives bit-for-bit the parameters of never having stopped.
    /// </summary>
    /// <param name="parameters">The adapter version saved with the snapshot.</param>
    /// <param name="firstMoment">Saved <see cref="FirstMoment"/>.</param>
    /// <param name="secondMoment">Saved <see cref="SecondMoment"/>.</param>
    /// <param name="step">Saved <see cref="Step"/>.</param>
    /// <returns>The state.</returns>
    /// <exception cref="ArgumentException">A moment buffer does not match the adapter's parameter count.</exception>
    public static LoraTrainingState Restore(LoraAdapter parameters, ReadOnlySpan<float> firstMoment, ReadOnlySpan<float> secondMoment, int step)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(step);
        var state = new LoraTrainingState(parameters);
        if (firstMoment.Length != state._m.Length)
        {
            throw new ArgumentException($"firstMoment has {firstMoment.Length} values; the adapter has {state._m.Length} parameters.", nameof(firstMoment));
        }

        if (secondMoment.Length != state._v.Length)
        {
            throw new ArgumentException($"secondMoment has {secondMoment.Length} values; the adapter has {state._v.Length} parameters.", nameof(secondMoment));
        }

        firstMoment.CopyTo(state._m);
        secondMoment.CopyTo(state._v);
        state.Step = step;
        return state;
    }

    /// <summary>A new immutable adapter version holding a copy of the current parameters.</summary>
    /// <returns>The version.</returns>
    public LoraAdapter Publish()
    {
        var layers = new Dictionary<(int, Projection), LoraLayer>();
        foreach (SlotInfo s in _slots)
        {
            layers[(s.Layer, s.Projection)] = new LoraLayer(
                _parameters.AsSpan(s.Offset, s.ALength), _parameters.AsSpan(s.Offset + s.ALength, s.Length - s.ALength),
                s.In, s.Out, s.Rank, s.Alpha, s.RsLora, s.Dropout);
        }

        return new LoraAdapter(NumLayers, layers, Config);
    }

    /// <summary>Layers viewing the live parameter buffer (no copy), with this step's dropout seeds. Never published.</summary>
    private LoraAdapter TrainingView()
    {
        var layers = new Dictionary<(int, Projection), LoraLayer>();
        for (int i = 0; i < _slots.Length; i++)
        {
            SlotInfo s = _slots[i];
            ulong seed = LoraLayer.Mix(Config.Seed ^ LoraLayer.Mix(((ulong)(uint)Step << 32) | (uint)i));
            var a = new ReadOnlyMemory<float>(_parameters, s.Offset, s.ALength);
            var b = new ReadOnlyMemory<float>(_parameters, s.Offset + s.ALength, s.Length - s.ALength);
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
