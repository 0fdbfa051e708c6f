using System.Runtime.CompilerServices;

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
    private static unsafe void Kernel<TOp>(Span<float> o, ReadOnlySpan<float> a, ReadOnlySpan<float> b, ReadOnlySpan<float> c, Span<float> o2)
        where TOp : struct, IActivationOp
    {
        fixed (float* po = o, pa = a, pb = b, pc = c, po2 = o2)
        {
            VecLoops.Map(new ActivationMap<TOp> { O = po, A = pa, B = pb, C = pc, O2 = po2 }, o.Length);
        }
    }

    /// <summary>e^(−x), with the library's exp on the scalar tail (<see cref="VecMath.ExpExactTail"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static TV ExpNegated<TV, TOps>(TV x)
        where TV : struct
        where TOps : struct, IVecOps<TV>
        => VecMath.ExpExactTail<TV, TOps>(TOps.Negate(x));

    /// <summary>Binds one activation to its buffers for <see cref="VecLoops.Map"/>.</summary>
    private unsafe struct ActivationMap<TOp> : IMapOp
        where TOp : struct, IActivationOp
    {
        public float* O;
        public float* A;
        public float* B;
        public float* C;
        public float* O2;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public readonly void Invoke<TV, TOps>(nint i)
            where TV : struct
            where TOps : struct, IVecOps<TV>
            => TOp.Invoke<TV, TOps>(O + i, A + i, B + i, C + i, O2 + i);
    }

    /// <summary>One activation at one position, written once for every width.</summary>
    private unsafe interface IActivationOp
    {
        static abstract void Invoke<TV, TOps>(float* o, float* a, float* b, float* c, float* o2)
            where TV : struct
            where TOps : struct, IVecOps<TV>;
    }

    /// <summary>o = a / (1 + e^(−a)).</summary>
    private readonly unsafe struct SiluOp : IActivationOp
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Invoke<TV, TOps>(float* o, float* a, float* b, float* c, float* o2)
            where TV : struct
            where TOps : struct, IVecOps<TV>
        {
            TV x = TOps.Load(a);
            TOps.Store(TOps.Divide(x, TOps.Add(TOps.Splat(1f), ExpNegated<TV, TOps>(x))), o);
        }
    }

    /// <summary>o += a · s·(1 + b·(1 − s)) with s = σ(b) (a = dy, b = x).</summary>
    private readonly unsafe struct SiluBackwardOp : IActivationOp
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Invoke<TV, TOps>(float* o, float* a, float* b, float* c, float* o2)
            where TV : struct
            where TOps : struct, IVecOps<TV>
        {
            TV one = TOps.Splat(1f);
            TV x = TOps.Load(b);
            TV s = TOps.Divide(one, TOps.Add(one, ExpNegated<TV, TOps>(x)));
            TV ds = TOps.Multiply(s, TOps.Add(one, TOps.Multiply(x, TOps.Subtract(one, s))));
            TOps.Store(TOps.Add(TOps.Load(o), TOps.Multiply(TOps.Load(a), ds)), o);
        }
    }

    /// <summary>o = a / (1 + e^(−a)) · b (a = gate, b = up).</summary>
    private readonly unsafe struct SwiGluOp : IActivationOp
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Invoke<TV, TOps>(float* o, float* a, float* b, float* c, float* o2)
            where TV : struct
            where TOps : struct, IVecOps<TV>
        {
            TV g = TOps.Load(a);
            TOps.Store(TOps.Multiply(TOps.Divide(g, TOps.Add(TOps.Splat(1f), ExpNegated<TV, TOps>(g))), TOps.Load(b)), o);
        }
    }

    /// <summary>o (dGate) += a·c·s·(1 + b·(1 − s)); o2 (dUp) += a·b·s, with s = σ(b) (a = dy, b = gate, c = up).</summary>
    private readonly unsafe struct SwiGluBackwardOp : IActivationOp
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Invoke<TV, TOps>(float* o, float* a, float* b, float* c, float* o2)
            where TV : struct
            where TOps : struct, IVecOps<TV>
        {
            TV one = TOps.Splat(1f);
            TV g = TOps.Load(b);
            TV dy = TOps.Load(a);
            TV s = TOps.Divide(one, TOps.Add(one, ExpNegated<TV, TOps>(g)));
            TOps.Store(TOps.Add(TOps.Load(o2), TOps.Multiply(dy, TOps.Multiply(g, s))), o2);
            TV ds = TOps.Multiply(s, TOps.Add(one, TOps.Multiply(g, TOps.Subtract(one, s))));
            TOps.Store(TOps.Add(TOps.Load(o), TOps.Multiply(TOps.Multiply(dy, TOps.Load(c)), ds)), o);
        }
    }
}
