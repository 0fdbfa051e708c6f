using LiveLearning.Numerics;

namespace LiveLearning.Models;

/// <summary>
/// A trainable delta attached to one frozen linear projection: the model calls <see cref="Forward"/> right after the
/// frozen product, and <see cref="Backward"/> during the backward pass. LoRA is one implementation.
/// </summary>
/// <remarks>
/// Implementations must be immutable while any pass uses them (a published adapter version is never mutated), so one
/// slot may serve many concurrent forward passes. Per-pass state lives in the <c>saved</c> buffer the model provides,
/// and gradients go to the buffer the caller owns.
/// </remarks>
public interface IAdapterSlot
{
    /// <summary>Input features of the projection.</summary>
    int InFeatures { get; }

    /// <summary>Output features of the projection.</summary>
    int OutFeatures { get; }

    /// <summary>Number of trainable parameters (the length of the gradient buffer <see cref="Backward"/> accumulates into).</summary>
    int ParameterCount { get; }

    /// <summary>Floats per token this slot keeps from the forward pass for its backward pass (0 if none).</summary>
    int SavedFloatsPerToken { get; }

    /// <summary>Adds the slot's contribution: <c>y[t,:] += delta(x[t,:])</c>.</summary>
    /// <param name="y">Projection output <c>[tokens, OutFeatures]</c>, already holding the frozen product.</param>
    /// <param name="saved">Per-pass state <c>[tokens, SavedFloatsPerToken]</c> to fill for the backward pass.</param>
    /// <param name="x">Projection input <c>[tokens, InFeatures]</c>.</param>
    /// <param name="tokens">Number of tokens.</param>
    /// <param name="training">Whether this pass trains (e.g. enables dropout).</param>
    /// <param name="pool">Compute pool, or <see langword="null"/> for the calling thread.</param>
    void Forward(Span<float> y, Span<float> saved, ReadOnlySpan<float> x, int tokens, bool training, ComputePool? pool);

    /// <summary>Back-propagates <paramref name="dy"/>: accumulates parameter gradients and the input gradient.</summary>
    /// <param name="dx">Input gradient <c>[tokens, InFeatures]</c> to accumulate into, or empty when nothing reads it (the
    /// lowest adapted layer, whose input gradient would only reach the frozen embeddings): then only the parameter
    /// gradients are computed.</param>
    /// <param name="gradients">Parameter gradients (length <see cref="ParameterCount"/>) to accumulate into.</param>
    /// <param name="dy">Output gradient <c>[tokens, OutFeatures]</c>.</param>
    /// <param name="x">The forward input.</param>
    /// <param name="saved">The forward's saved state.</param>
    /// <param name="tokens">Number of tokens.</param>
    /// <param name="pool">Compute pool, or <see langword="null"/>.</param>
    void Backward(Span<float> dx, Span<float> gradients, ReadOnlySpan<float> dy, ReadOnlySpan<float> x, ReadOnlySpan<float> saved, int tokens, ComputePool? pool);
}

/// <summary>The set of adapter slots applied to a model for one pass: at most one slot per (layer, projection).</summary>
public interface IModelAdapter
{
    /// <summary>The slot attached to <paramref name="projection"/> of <paramref name="layer"/>, or <see langword="null"/>.</summary>
    /// <param name="layer">Layer index.</param>
    /// <param name="projection">Projection.</param>
    /// <returns>The slot or <see langword="null"/>.</returns>
    IAdapterSlot? GetSlot(int layer, Projection projection);
}

/// <summary>Gradient buffers for every slot of an adapter, laid out per (layer, projection).</summary>
public sealed class AdapterGradients
{
    private readonly Memory<float>[] _buffers;
    private readonly int _layers;

    /// <summary>Allocates zeroed gradient buffers sized for every slot <paramref name="adapter"/> has on a model of <paramref name="layers"/> layers.</summary>
    /// <param name="adapter">The adapter.</param>
    /// <param name="layers">Number of decoder layers.</param>
    public AdapterGradients(IModelAdapter adapter, int layers)
    {
        ArgumentNullException.ThrowIfNull(adapter);
        ArgumentOutOfRangeException.ThrowIfNegative(layers);
        _layers = layers;
        _buffers = new Memory<float>[layers * ProjectionNames.Count];
        for (int l = 0; l < layers; l++)
        {
            foreach (Projection p in ProjectionNames.All)
            {
                if (adapter.GetSlot(l, p) is { } slot)
                {
                    _buffers[Index(l, p)] = new float[slot.ParameterCount];
                }
            }
        }
    }

    /// <summary>Gradient buffers that are slices of one caller-owned flat buffer (a trainer's), so nothing is copied after a pass.</summary>
    /// <param name="layers">Number of decoder layers.</param>
    /// <param name="slots">Each slot's (layer, projection) and its slice; slices must not overlap.</param>
    internal AdapterGradients(int layers, IEnumerable<(int Layer, Projection Projection, Memory<float> Buffer)> slots)
    {
        _layers = layers;
        _buffers = new Memory<float>[layers * ProjectionNames.Count];
        foreach ((int layer, Projection projection, Memory<float> buffer) in slots)
        {
            _buffers[Index(layer, projection)] = buffer;
        }
    }

    /// <summary>The gradient buffer of one slot, or an empty span if that slot does not exist.</summary>
    /// <param name="layer">Layer index.</param>
    /// <param name="projection">Projection.</param>
    /// <returns>The buffer.</returns>
    public Span<float> Get(int layer, Projection projection) => _buffers[Index(layer, projection)].Span;

    /// <summary>All non-empty buffers (for global-norm clipping and optimizer steps).</summary>
    /// <returns>The buffers.</returns>
    public IEnumerable<Memory<float>> All()
    {
        foreach (Memory<float> b in _buffers)
        {
            if (!b.IsEmpty)
            {
                yield return b;
            }
        }
    }

    /// <summary>Sets every gradient to zero.</summary>
    public void Clear()
    {
        foreach (Memory<float> b in _buffers)
        {
            b.Span.Clear();
        }
    }

    private int Index(int layer, Projection projection)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(layer);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(layer, _layers);
        return (layer * ProjectionNames.Count) + (int)projection;
    }
}
