using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace LiveLearning.Numerics;

/// <summary>
/// Element-wise activations of the Llama MLP: <c>silu(z) = z·σ(z) = z / (1 + e^(−z))</c> and
/// <c>SwiGLU(gate, up) = silu(gate) ⊙ up</c>, each with its backward (which accumulates into the gradients).
/// </summary>
public static class Activations
{
    /// <summary><c>y = silu(x)</c>.</summary>
    /// <param name="y">Output; same length as <paramref name="x"/>; may be exactly <paramref name="x"/> (in place).</param>
    /// <param name="x">Input.</param>
    /// <exception cref="ArgumentException">Lengths differ or the buffers partially overlap.</exception>
    public static void Silu(Span<float> y, ReadOnlySpan<float> x)
    {
        KernelChecks.Length(y.Length, x.Length, nameof(y), "x.Length");
        KernelChecks.NoOverlap(y, x, nameof(y), nameof(x), allowIdentical: true);
        Kernel<SiluOp>(y, x, x, default, default);
    }

    /// <summary><c>dx += dy · silu'(x)</c> with <c>silu'(x) = σ(x)·(1 + x·(1 − σ(x)))</c>.</summary>
    /// <param name="dx">Input gradient, accumulated into; must not overlap the inputs.</param>
    /// <param name="dy">Output gradient.</param>
    /// <param name="x">The forward input.</param>
    /// <exception cref="ArgumentException">Lengths differ or buffers overlap.</exception>
    public static void SiluBackward(Span<float> dx, ReadOnlySpan<float> dy, ReadOnlySpan<float> x)
    {
        KernelChecks.Length(dy.Length, dx.Length, nameof(dy), "dx.Length");
        KernelChecks.Length(x.Length, dx.Length, nameof(x), "dx.Length");
        KernelChecks.NoOverlap(dx, dy, nameof(dx), nameof(dy));
        KernelChecks.NoOverlap(dx, x, nameof(dx), nameof(x));
        Kernel<SiluBackwardOp>(dx, dy, x, default, default);
    }

    /// <summary><c>y = silu(gate) ⊙ up</c>.</summary>
    /// <param name="y">Output; may be exactly <paramref name="gate"/> or <paramref name="up"/> (in place), must not otherwise overlap them.</param>
    /// <param name="gate">Gate projection output.</param>
    /// <param name="up">Up projection output.</param>
    /// <exception cref="ArgumentException">Lengths differ or buffers partially overlap.</exception>
    public static void SwiGlu(Span<float> y, ReadOnlySpan<float> gate, ReadOnlySpan<float> up)
    {
        KernelChecks.Length(gate.Length, y.Length, nameof(gate), "y.Length");
        KernelChecks.Length(up.Length, y.Length, nameof(up), "y.Length");
        KernelChecks.NoOverlap(y, gate, nameof(y), nameof(gate), allowIdentical: true);
        KernelChecks.NoOverlap(y, up, nameof(y), nameof(up), allowIdentical: true);
        Kernel<SwiGluOp>(y, gate, up, default, default);
    }

    /// <summary>
    /// Accumulates the gradients of <see cref="SwiGlu"/>: <c>dUp += dy ⊙ silu(gate)</c>,
    /// <c>dGate += dy ⊙ up ⊙ σ(gate)·(1 + gate·(1 − σ(gate)))</c>.
    /// </summary>
    /// <param name="dGate">Gate gradient, accumulated into.</param>
    /// <param name="dUp">Up gradient, accumulated into.</param>
    /// <param name="dy">Output gradient.</param>
    /// <param name="gate">The forward gate input.</param>
    /// <param name="up">The forward up input.</param>
    /// <exception cref="ArgumentException">Lengths differ or an output overlaps another buffer.</exception>
    public static void SwiGluBackward(Span<float> dGate, Span<float> dUp, ReadOnlySpan<float> dy, ReadOnlySpan<float> gate, ReadOnlySpan<float> up)
    {
        KernelChecks.Length(dUp.Length, dGate.Length, nameof(dUp), "dGate.Length");
        KernelChecks.Length(dy.Length, dGate.Length, nameof(dy), "dGate.Length");
        KernelChecks.Length(gate.Length, dGate.Length, nameof(gate), "dGate.Length");
        KernelChecks.Length(up.Length, dGate.Length, nameof(up), "dGate.Length");
        KernelChecks.NoOverlap(dGate, dUp, nameof(dGate), nameof(dUp));
        KernelChecks.NoOverlap(dGate, dy, nameof(dGate), nameof(dy));
        KernelChecks.NoOverlap(dGate, gate, nameof(dGate), nameof(gate));
        KernelChecks.NoOverlap(dGate, up, nameof(dGate), nameof(up));
        KernelChecks.NoOverlap(dUp, dy, nameof(dUp), nameof(dy));
        KernelChecks.NoOverlap(dUp, gate, nameof(dUp), nameof(gate));
        KernelChecks.NoOverlap(dUp, up, nameof(dUp), nameof(up));
        Kernel<SwiGluBackwardOp>(dGate, dy, gate, up, dUp);
    }

    /// <summary>
    /// One element-wise pass shared by the four activations: reads <c>a</c>, <c>b</c> (and <c>c</c>), writes
    /// <c>o</c> (and <c>o2</c>). Each element is read before it is written, so exact aliasing is safe.
    /// </summary>
    private static void Kernel<TOp>(Span<float> o, ReadOnlySpan<float> a, ReadOnlySpan<float> b, ReadOnlySpan<float> c, Span<float> o2)
        where TOp : struct, IActivationOp
    {
        ref float po = ref MemoryMarshal.GetReference(o);
        ref float pa = ref MemoryMarshal.GetReference(a);
        ref float pb = ref MemoryMarshal.GetReference(b);
        ref float pc = ref MemoryMarshal.GetReference(c);
        ref float po2 = ref MemoryMarshal.GetReference(o2);
        int n = o.Length;
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            for (; i <= n - Vector512<float>.Count; i += Vector512<float>.Count)
            {
                TOp.Invoke(ref Unsafe.Add(ref po, i), ref Unsafe.Add(ref pa, i), ref Unsafe.Add(ref pb, i), ref Unsafe.Add(ref pc, i), ref Unsafe.Add(ref po2, i), Vector512<float>.Zero);
            }
        }

        if (Vector256.IsHardwareAccelerated)
        {
            for (; i <= n - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                TOp.Invoke(ref Unsafe.Add(ref po, i), ref Unsafe.Add(ref pa, i), ref Unsafe.Add(ref pb, i), ref Unsafe.Add(ref pc, i), ref Unsafe.Add(ref po2, i), Vector256<float>.Zero);
            }
        }

        if (Vector128.IsHardwareAccelerated)
        {
            for (; i <= n - Vector128<float>.Count; i += Vector128<float>.Count)
            {
                TOp.Invoke(ref Unsafe.Add(ref po, i), ref Unsafe.Add(ref pa, i), ref Unsafe.Add(ref pb, i), ref Unsafe.Add(ref pc, i), ref Unsafe.Add(ref po2, i), Vector128<float>.Zero);
            }
        }

        for (; i < n; i++)
        {
            TOp.Invoke(ref Unsafe.Add(ref po, i), ref Unsafe.Add(ref pa, i), ref Unsafe.Add(ref pb, i), ref Unsafe.Add(ref pc, i), ref Unsafe.Add(ref po2, i));
        }
    }

    /// <summary>One activation at scalar and each vector width (the vector argument only selects the width).</summary>
    private interface IActivationOp
    {
        static abstract void Invoke(ref float o, ref float a, ref float b, ref float c, ref float o2);

        static abstract void Invoke(ref float o, ref float a, ref float b, ref float c, ref float o2, Vector128<float> width);

        static abstract void Invoke(ref float o, ref float a, ref float b, ref float c, ref float o2, Vector256<float> width);

        static abstract void Invoke(ref float o, ref float a, ref float b, ref float c, ref float o2, Vector512<float> width);
    }

    /// <summary>o = a / (1 + e^(−a)).</summary>
    private readonly struct SiluOp : IActivationOp
    {
        public static void Invoke(ref float o, ref float a, ref float b, ref float c, ref float o2)
            => o = a / (1f + MathF.Exp(-a));

        public static void Invoke(ref float o, ref float a, ref float b, ref float c, ref float o2, Vector128<float> width)
        {
            var x = Vector128.LoadUnsafe(ref a);
            (x / (Vector128<float>.One + FastExp.Exp(-x))).StoreUnsafe(ref o);
        }

        public static void Invoke(ref float o, ref float a, ref float b, ref float c, ref float o2, Vector256<float> width)
        {
            var x = Vector256.LoadUnsafe(ref a);
            (x / (Vector256<float>.One + FastExp.Exp(-x))).StoreUnsafe(ref o);
        }

        public static void Invoke(ref float o, ref float a, ref float b, ref float c, ref float o2, Vector512<float> width)
        {
            var x = Vector512.LoadUnsafe(ref a);
            (x / (Vector512<float>.One + FastExp.Exp(-x))).StoreUnsafe(ref o);
        }
    }

    /// <summary>o += a · s·(1 + b·(1 − s)) with s = σ(b) (a = dy, b = x).</summary>
    private readonly struct SiluBackwardOp : IActivationOp
    {
        public static void Invoke(ref float o, ref float a, ref float b, ref float c, ref float o2)
        {
            float x = b;
            float s = 1f / (1f + MathF.Exp(-x));
            o += a * (s * (1f + (x * (1f - s))));
        }

        public static void Invoke(ref float o, ref float a, ref float b, ref float c, ref float o2, Vector128<float> width)
        {
            var x = Vector128.LoadUnsafe(ref b);
            var s = Vector128<float>.One / (Vector128<float>.One + FastExp.Exp(-x));
            (Vector128.LoadUnsafe(ref o) + (Vector128.LoadUnsafe(ref a) * (s * (Vector128<float>.One + (x * (Vector128<float>.One - s)))))).StoreUnsafe(ref o);
        }

        public static void Invoke(ref float o, ref float a, ref float b, ref float c, ref float o2, Vector256<float> width)
        {
            var x = Vector256.LoadUnsafe(ref b);
            var s = Vector256<float>.One / (Vector256<float>.One + FastExp.Exp(-x));
            (Vector256.LoadUnsafe(ref o) + (Vector256.LoadUnsafe(ref a) * (s * (Vector256<float>.One + (x * (Vector256<float>.One - s)))))).StoreUnsafe(ref o);
        }

        public static void Invoke(ref float o, ref float a, ref float b, ref float c, ref float o2, Vector512<float> width)
        {
            var x = Vector512.LoadUnsafe(ref b);
            var s = Vector512<float>.One / (Vector512<float>.One + FastExp.Exp(-x));
            (Vector512.LoadUnsafe(ref o) + (Vector512.LoadUnsafe(ref a) * (s * (Vector512<float>.One + (x * (Vector512<float>.One - s)))))).StoreUnsafe(ref o);
        }
    }

    /// <summary>o = a / (1 + e^(−a)) · b (a = gate, b = up).</summary>
    private readonly struct SwiGluOp : IActivationOp
    {
        public static void Invoke(ref float o, ref float a, ref float b, ref float c, ref float o2)
        {
            float g = a;
            o = g / (1f + MathF.Exp(-g)) * b;
        }

        public static void Invoke(ref float o, ref float a, ref float b, ref float c, ref float o2, Vector128<float> width)
        {
            var g = Vector128.LoadUnsafe(ref a);
            (g / (Vector128<float>.One + FastExp.Exp(-g)) * Vector128.LoadUnsafe(ref b)).StoreUnsafe(ref o);
        }

        public static void Invoke(ref float o, ref float a, ref float b, ref float c, ref float o2, Vector256<float> width)
        {
            var g = Vector256.LoadUnsafe(ref a);
            (g / (Vector256<float>.One + FastExp.Exp(-g)) * Vector256.LoadUnsafe(ref b)).StoreUnsafe(ref o);
        }

        public static void Invoke(ref float o, ref float a, ref float b, ref float c, ref float o2, Vector512<float> width)
        {
            var g = Vector512.LoadUnsafe(ref a);
            (g / (Vector512<float>.One + FastExp.Exp(-g)) * Vector512.LoadUnsafe(ref b)).StoreUnsafe(ref o);
        }
    }

    /// <summary>o (dGate) += a·c·s·(1 + b·(1 − s)); o2 (dUp) += a·b·s, with s = σ(b) (a = dy, b = gate, c = up).</summary>
    private readonly struct SwiGluBackwardOp : IActivationOp
    {
        public static void Invoke(ref float o, ref float a, ref float b, ref float c, ref float o2)
        {
            float g = b;
            float dy = a;
            float s = 1f / (1f + MathF.Exp(-g));
            o2 += dy * (g * s);
            o += dy * c * (s * (1f + (g * (1f - s))));
        }

        public static void Invoke(ref float o, ref float a, ref float b, ref float c, ref float o2, Vector128<float> width)
        {
            var g = Vector128.LoadUnsafe(ref b);
            var dy = Vector128.LoadUnsafe(ref a);
            var s = Vector128<float>.One / (Vector128<float>.One + FastExp.Exp(-g));
            (Vector128.LoadUnsafe(ref o2) + (dy * (g * s))).StoreUnsafe(ref o2);
            (Vector128.LoadUnsafe(ref o) + (dy * Vector128.LoadUnsafe(ref c) * (s * (Vector128<float>.One + (g * (Vector128<float>.One - s)))))).StoreUnsafe(ref o);
        }

        public static void Invoke(ref float o, ref float a, ref float b, ref float c, ref float o2, Vector256<float> width)
        {
            var g = Vector256.LoadUnsafe(ref b);
            var dy = Vector256.LoadUnsafe(ref a);
            var s = Vector256<float>.One / (Vector256<float>.One + FastExp.Exp(-g));
            (Vector256.LoadUnsafe(ref o2) + (dy * (g * s))).StoreUnsafe(ref o2);
            (Vector256.LoadUnsafe(ref o) + (dy * Vector256.LoadUnsafe(ref c) * (s * (Vector256<float>.One + (g * (Vector256<float>.One - s)))))).StoreUnsafe(ref o);
        }

        public static void Invoke(ref float o, ref float a, ref float b, ref float c, ref float o2, Vector512<float> width)
        {
            var g = Vector512.LoadUnsafe(ref b);
            var dy = Vector512.LoadUnsafe(ref a);
            var s = Vector512<float>.One / (Vector512<float>.One + FastExp.Exp(-g));
            (Vector512.LoadUnsafe(ref o2) + (dy * (g * s))).StoreUnsafe(ref o2);
            (Vector512.LoadUnsafe(ref o) + (dy * Vector512.LoadUnsafe(ref c) * (s * (Vector512<float>.One + (g * (Vector512<float>.One - s)))))).StoreUnsafe(ref o);
        }
    }
}
