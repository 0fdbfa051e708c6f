using System.Buffers;
using LiveLearning.Models;
using LiveLearning.Numerics;

namespace LiveLearning.Lora;

/// <summary>
/// Several adapters applied together (their deltas add up), e.g. an organisation adapter frozen under a trainable user
/// adapter. Only the trainable one receives gradients: the gradient buffer of each slot is the trainable slot's own
/// (<c>[dA | dB]</c>), so <see cref="LlamaModel.ComputeGradients(IReadOnlyList{TrainingSequence}, IModelAdapter, AdapterGradients)"/> with a stack trains the top adapter while the frozen
/// ones shape the forward pass and pass input gradients through.
/// </summary>
public sealed class StackedAdapter : IModelAdapter
{
    private readonly IAdapterSlot?[] _slots;

    /// <summary>Stacks <paramref name="frozen"/> (applied first, in order, never trained) and an optional trainable adapter.</summary>
    /// <param name="numLayers">Decoder layers of the model.</param>
    /// <param name="frozen">Adapters applied without gradients.</param>
    /// <param name="trainable">The adapter whose slots receive gradients, or null.</param>
    /// <exception cref="ArgumentException">Two slots on one projection have different shapes.</exception>
    public StackedAdapter(int numLayers, IReadOnlyList<IModelAdapter> frozen, IModelAdapter? trainable = null)
    {
        ArgumentNullException.ThrowIfNull(frozen);
        ArgumentOutOfRangeException.ThrowIfNegative(numLayers);
        NumLayers = numLayers;
        Frozen = frozen.ToArray();
        Trainable = trainable;
        _slots = new IAdapterSlot?[numLayers * ProjectionNames.Count];
        for (int l = 0; l < numLayers; l++)
        {
            foreach (Projection p in ProjectionNames.All)
            {
                IAdapterSlot[] below = Frozen.Select(a => (a ?? throw new ArgumentException("A frozen adapter is null.", nameof(frozen))).GetSlot(l, p)).OfType<IAdapterSlot>().ToArray();
                IAdapterSlot? top = trainable?.GetSlot(l, p);
                IAdapterSlot? slot = below.Length == 0 ? top : new StackedSlot(below, top, ProjectionNames.ModulePath(l, p));
                _slots[(l * ProjectionNames.Count) + (int)p] = slot;
            }
        }
    }

    /// <summary>Decoder layers.</summary>
    public int NumLayers { get; }

    /// <summary>The frozen adapters, bottom first.</summary>
    public IReadOnlyList<IModelAdapter> Frozen { get; }

    /// <summary>The trainable adapter, or null.</summary>
    public IModelAdapter? Trainable { get; }

    /// <inheritdoc />
    public IAdapterSlot? GetSlot(int layer, Projection projection) =>
        (uint)layer < (uint)NumLayers ? _slots[(layer * ProjectionNames.Count) + (int)projection] : null;

    /// <summary>Frozen slots then an optional trainable one on the same projection. Saved state: each slot's region in turn.</summary>
    private sealed class StackedSlot : IAdapterSlot
    {
        private readonly IAdapterSlot[] _frozen;
        private readonly IAdapterSlot? _top;

        public StackedSlot(IAdapterSlot[] frozen, IAdapterSlot? top, string module)
        {
            _frozen = frozen;
            _top = top;
            IAdapterSlot first = frozen[0];
            foreach (IAdapterSlot s in frozen.Append(top).OfType<IAdapterSlot>())
            {
                if (s.InFeatures != first.InFeatures || s.OutFeatures != first.OutFeatures)
                {
                    throw new ArgumentException($"Stacked slots on {module} have different shapes: [{s.OutFeatures}, {s.InFeatures}] vs [{first.OutFeatures}, {first.InFeatures}].", "frozen");
                }
            }

            InFeatures = first.InFeatures;
            OutFeatures = first.OutFeatures;
            SavedFloatsPerToken = frozen.Sum(s => s.SavedFloatsPerToken) + (top?.SavedFloatsPerToken ?? 0);
        }

        public int InFeatures { get; }

        public int OutFeatures { get; }

        public int ParameterCount => _top?.ParameterCount ?? 0;

        public int SavedFloatsPerToken { get; }

        public void Forward(Span<float> y, Span<float> saved, ReadOnlySpan<float> x, int tokens, bool training, ComputePool? pool)
        {
            int offset = 0;
            foreach (IAdapterSlot s in _frozen)
            {
                // Frozen slots see the same training flag (PEFT's train mode drops on every active adapter), so their
                // backward pass, which only feeds dx, matches their forward.
                s.Forward(y, saved.Slice(offset, tokens * s.SavedFloatsPerToken), x, tokens, training, pool);
                offset += tokens * s.SavedFloatsPerToken;
            }

            _top?.Forward(y, saved.Slice(offset, tokens * _top.SavedFloatsPerToken), x, tokens, training, pool);
        }

        public void Backward(Span<float> dx, Span<float> gradients, ReadOnlySpan<float> dy, ReadOnlySpan<float> x, ReadOnlySpan<float> saved, int tokens, ComputePool? pool)
        {
            if (gradients.Length != ParameterCount)
            {
                throw new ArgumentException($"The gradient buffer has {gradients.Length} values; the trainable slot has {ParameterCount} parameters.", nameof(gradients));
            }

            int offset = 0;
            foreach (IAdapterSlot s in _frozen)
            {
                // Frozen: only the input gradient matters; parameter gradients go to a discarded scratch buffer.
                int width = tokens * s.SavedFloatsPerToken;
                if (s is LoraLayer lora)
                {
                    lora.BackwardInputOnly(dx, dy, tokens, pool);
                }
                else if (!dx.IsEmpty)
                {
                    float[] scratch = ArrayPool<float>.Shared.Rent(Math.Max(1, s.ParameterCount));
                    try
                    {
                        s.Backward(dx, scratch.AsSpan(0, s.ParameterCount), dy, x, saved.Slice(offset, width), tokens, pool);
                    }
                    finally
                    {
                        ArrayPool<float>.Shared.Return(scratch);
                    }
                }

                offset += width;
            }

            _top?.Backward(dx, gradients, dy, x, saved.Slice(offset, tokens * _top.SavedFloatsPerToken), tokens, pool);
        }
    }
}
