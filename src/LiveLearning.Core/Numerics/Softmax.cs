using System.Numerics.Tensors;
using System.Runtime.CompilerServices;

namespace LiveLearning.Numerics;

/// <summary>Numerically stable softmax and log-softmax of one row (the row maximum is subtracted first).</summary>
public static class Softmax
{
    /// <summary><c>y = exp(x − max x) / Σ exp(x − max x)</c>. A NaN anywhere in the row makes the whole row NaN.</summary>
    /// <param name="y">Output; same length as <paramref name="x"/>; may be exactly <paramref name="x"/> (in place).</param>
    /// <param name="x">Input row.</param>
    /// <exception cref="ArgumentException">Lengths differ or the buffers partially overlap.</exception>
    public static void Forward(Span<float> y, ReadOnlySpan<float> x)
    {
        KernelChecks.Length(y.Length, x.Length, nameof(y), "x.Length");
        KernelChecks.NoOverlap(y, x, nameof(y), nameof(x), allowIdentical: true);
        if (x.IsEmpty)
        {
            return;
        }

        float max = TensorPrimitives.Max(x);
        double sum = ExpShiftedSum(y, x, max);
        TensorPrimitives.Multiply(y, (float)(1.0 / sum), y);
    }

    /// <summary><c>y = x − max x − log Σ exp(x − max x)</c>. A NaN anywhere in the row makes the whole row NaN.</summary>
    /// <param name="y">Output; same length as <paramref name="x"/>; may be exactly <paramref name="x"/> (in place).</param>
    /// <param name="x">Input row.</param>
    /// <exception cref="ArgumentException">Lengths differ or the buffers partially overlap.</exception>
    public static void LogSoftmax(Span<float> y, ReadOnlySpan<float> x)
    {
        KernelChecks.Length(y.Length, x.Length, nameof(y), "x.Length");
        KernelChecks.NoOverlap(y, x, nameof(y), nameof(x), allowIdentical: true);
        if (x.IsEmpty)
        {
            return;
        }

        float max = TensorPrimitives.Max(x);
        double sum = ExpShiftedSum(default, x, max);
        TensorPrimitives.Subtract(x, max, y);
        TensorPrimitives.Subtract(y, (float)Math.Log(sum), y);
    }

    /// <summary>
    /// Returns Σ exp(x − shift) (vector partial sums flushed to a double every block); when <paramref name="e"/>
    /// is not empty, also stores each exp(x − shift) there (<paramref name="e"/> may be exactly <paramref name="x"/>).
    /// </summary>
    internal static double ExpShiftedSum(Span<float> e, ReadOnlySpan<float> x, float shift)
    {
        const int block = 1024;
        Span<float> scratch = e.IsEmpty ? stackalloc float[block] : default;
        double total = 0;
        for (int start = 0; start < x.Length; start += block)
        {
            int len = Math.Min(block, x.Length - start);
            total += ExpShiftedSumBlock(e.IsEmpty ? scratch[..len] : e.Slice(start, len), x.Slice(start, len), shift);
        }

        return total;
    }

    /// <summary>e = exp(x − shift) element-wise; returns Σ e (float lanes, one block).</summary>
    private static unsafe float ExpShiftedSumBlock(Span<float> e, ReadOnlySpan<float> x, float shift)
    {
        fixed (float* pe = e, px = x)
        {
            return VecLoops.Sum(new ExpShiftedOp { E = pe, X = px, Shift = shift }, x.Length);
        }
    }

    /// <summary>
    /// Stores <c>v = exp(x − shift)</c> and adds it to the accumulator: <see cref="FastExp"/> on the vector steps,
    /// <see cref="MathF.Exp"/> on the scalar tail.
    /// </summary>
    private unsafe struct ExpShiftedOp : ISumOp
    {
        public float* E;
        public float* X;
        public float Shift;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public readonly TV Accumulate<TV, TOps>(TV acc, nint i)
            where TV : struct
            where TOps : struct, IVecOps<TV>
        {
            TV ev = VecMath.ExpExactTail<TV, TOps>(TOps.Subtract(TOps.Load(X + i), TOps.Splat(Shift)));
            TOps.Store(ev, E + i);
            return TOps.Add(acc, ev);
        }
    }
}
