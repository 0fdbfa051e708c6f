using System.Buffers;
using System.Numerics.Tensors;
using LiveLearning.Numerics;

namespace LiveLearning.Models;

// What the forward pass keeps for the backward pass (per layer), and the pooled buffers both run on.
public sealed partial class LlamaModel
{
    /// <summary>Activations of one layer kept for the backward pass.</summary>
    private sealed class LayerTape
    {
        private readonly Segment[] _saved = new Segment[ProjectionNames.Count];
        private readonly int[] _savedLength = new int[ProjectionNames.Count];

        public LayerTape(LlamaModel model, int layer, int n, IModelAdapter adapter, bool full, Arena arena)
        {
            int c = model._hidden;

            // H2 (the MLP input) and M (the down_proj input) are read back only by adapter slots on gate/up and down:
            // without such slots (and without full-parameter training, whose weight gradients read them) the forward uses
            // scratch for them and the tape skips them.
            bool keepH2 = full || adapter.GetSlot(layer, Projection.GateProj) is not null || adapter.GetSlot(layer, Projection.UpProj) is not null;
            bool keepM = full || adapter.GetSlot(layer, Projection.DownProj) is not null;
            long total = (4L * n * c) + (2L * n) + (2L * n * model._qWidth) + (2L * n * model._kvWidth) + ((long)n * model._heads)
                + (2L * n * model._intermediate) + (keepH2 ? (long)n * c : 0) + (keepM ? (long)n * model._intermediate : 0);
            foreach (Projection p in ProjectionNames.All)
            {
                if (adapter.GetSlot(layer, p) is { } slot)
                {
                    _savedLength[(int)p] = n * slot.SavedFloatsPerToken;
                    total += _savedLength[(int)p];
                }
            }

            if (total > Array.MaxLength)
            {
                throw new ArgumentException($"The batch needs {total} floats of activations per layer; split it into smaller batches.", nameof(n));
            }

            // One block per layer (ArrayPool buckets then hold one array per layer instead of fifteen, so every rented
            // block is returned to the pool rather than dropped as garbage when a bucket overflows).
            Segment block = arena.RentArray((int)total);
            int offset = 0;
            Segment Take(int length)
            {
                var segment = new Segment(block.Array, offset, length);
                offset += length;
                return segment;
            }

            XIn = Take(n * c);
            H1 = Take(n * c);
            Rstd1 = Take(n);
            Q = Take(n * model._qWidth);
            K = Take(n * model._kvWidth);
            V = Take(n * model._kvWidth);
            O = Take(n * model._qWidth);
            Lse = Take(n * model._heads);
            XMid = Take(n * c);
            H2 = keepH2 ? Take(n * c) : default;
            Rstd2 = Take(n);
            Gate = Take(n * model._intermediate);
            Up = Take(n * model._intermediate);
            M = keepM ? Take(n * model._intermediate) : default;
            foreach (Projection p in ProjectionNames.All)
            {
                if (_savedLength[(int)p] > 0)
                {
                    _saved[(int)p] = Take(_savedLength[(int)p]);
                }
            }

            Bytes = sizeof(float) * total;
        }

        public Segment XIn { get; }

        public Segment H1 { get; }

        public Segment Rstd1 { get; }

        public Segment Q { get; }

        public Segment K { get; }

        public Segment V { get; }

        public Segment O { get; }

        public Segment Lse { get; }

        public Segment XMid { get; }

        public Segment H2 { get; }

        public Segment Rstd2 { get; }

        public Segment Gate { get; }

        public Segment Up { get; }

        public Segment M { get; }

        public long Bytes { get; }

        public Span<float> Saved(Projection p) => _saved[(int)p].Length == 0 ? Span<float>.Empty : _saved[(int)p].Span;
    }

    /// <summary>Everything the backward pass needs, for the layers at or above the lowest adapted one.</summary>
    private sealed class Tape
    {
        private readonly LayerTape?[] _layers;

        public Tape(LlamaModel model, BatchPlan plan, IModelAdapter adapter, int lowestLayer, bool full, Arena arena)
        {
            int n = plan.TotalTokens;
            LowestLayer = lowestLayer;
            _layers = new LayerTape?[model.Config.NumLayers];
            for (int l = lowestLayer; l < _layers.Length; l++)
            {
                _layers[l] = new LayerTape(model, l, n, adapter, full, arena);
                Bytes += _layers[l]!.Bytes;
            }

            FinalIn = arena.RentArray(n * model._hidden);
            FinalNormed = arena.RentArray(n * model._hidden);
            FinalRstd = arena.RentArray(n);
            Bytes += sizeof(float) * ((2L * n * model._hidden) + n);
        }

        public int LowestLayer { get; }

        public long Bytes { get; }

        public Segment FinalIn { get; }

        public Segment FinalNormed { get; }

        public Segment FinalRstd { get; }

        public LayerTape? Layer(int l) => _layers[l];
    }
}

/// <summary>A rented array and the length in use; converts to spans implicitly.</summary>
internal readonly record struct Segment(float[] Array, int Offset, int Length)
{
    public Segment(float[] array, int length)
        : this(array, 0, length)
    {
    }

    public Span<float> Span => Array.AsSpan(Offset, Length);

    public static implicit operator Span<float>(Segment s) => s.Span;

    public static implicit operator ReadOnlySpan<float>(Segment s) => s.Span;

    public Span<float> Slice(int start, int length) => Span.Slice(start, length);

    public void CopyTo(Span<float> destination) => Span.CopyTo(destination);
}

/// <summary>Scratch memory for one pass, rented from the shared array pool and returned when the pass ends.</summary>
internal sealed class Arena : IDisposable
{
    private readonly List<float[]> _rented = [];

    public Span<float> Rent(int length) => RentArray(length).Span;

    public Segment RentArray(int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        float[] a = ArrayPool<float>.Shared.Rent(Math.Max(1, length));
        _rented.Add(a);
        return new Segment(a, length);
    }

    public void Dispose()
    {
        foreach (float[] a in _rented)
        {
            ArrayPool<float>.Shared.Return(a);
        }

        _rented.Clear();
    }
}
