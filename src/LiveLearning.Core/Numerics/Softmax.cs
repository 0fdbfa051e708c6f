using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

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
        NnChecks.Length(y.Length, x.Length, nameof(y), "x.Length");
        NnChecks.NoOverlap(y, x, nameof(y), nameof(x), allowIdentical: true);
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
        NnChecks.Length(y.Length, x.Length, nameof(y), "x.Length");
        NnChecks.NoOverlap(y, x, nameof(y), nameof(x), allowIdentical: true);
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
        const int Block = 1024;
        Span<float> scratch = e.IsEmpty ? stackalloc float[Block] : default;
        double total = 0;
        for (int start = 0; start < x.Length; start += Block)
        {
            int len = Math.Min(Block, x.Length - start);
            total += ExpShiftedSumBlock(e.IsEmpty ? scratch[..len] : e.Slice(start, len), x.Slice(start, len), shift);
        }

        return total;
    }

    /// <summary>e = exp(x − shift) element-wise; returns Σ e (float lanes, one block).</summary>
    private static float ExpShiftedSumBlock(Span<float> e, ReadOnlySpan<float> x, float shift)
    {
        ref float pe = ref MemoryMarshal.GetReference(e);
        ref float px = ref MemoryMarshal.GetReference(x);
        int n = x.Length;
        int i = 0;
        float sum = 0f;
        if (Vector512.IsHardwareAccelerated && n >= Vector512<float>.Count)
        {
            var vs = Vector512.Create(shift);
            var acc = Vector512<float>.Zero;
            for (; i <= n - Vector512<float>.Count; i += Vector512<float>.Count)
            {
                var v = FastExp.Exp(Vector512.LoadUnsafe(ref px, (nuint)i) - vs);
                acc += v;
                v.StoreUnsafe(ref pe, (nuint)i);
            }

            sum += Vector512.Sum(acc);
        }

        if (Vector256.IsHardwareAccelerated && n - i >= Vector256<float>.Count)
        {
            var vs = Vector256.Create(shift);
            var acc = Vector256<float>.Zero;
            for (; i <= n - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                var v = FastExp.Exp(Vector256.LoadUnsafe(ref px, (nuint)i) - vs);
                acc += v;
                v.StoreUnsafe(ref pe, (nuint)i);
            }

            sum += Vector256.Sum(acc);
        }

        if (Vector128.IsHardwareAccelerated && n - i >= Vector128<float>.Count)
        {
            var vs = Vector128.Create(shift);
            var acc = Vector128<float>.Zero;
            for (; i <= n - Vector128<float>.Count; i += Vector128<float>.Count)
            {
                var v = FastExp.Exp(Vector128.LoadUnsafe(ref px, (nuint)i) - vs);
                acc += v;
                v.StoreUnsafe(ref pe, (nuint)i);
            }

            sum += Vector128.Sum(acc);
        }

        for (; i < n; i++)
        {
            float v = MathF.Exp(Unsafe.Add(ref px, i) - shift);
            sum += v;
            Unsafe.Add(ref pe, i) = v;
        }

        return sum;
    }
}
