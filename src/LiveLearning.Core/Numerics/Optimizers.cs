using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace LiveLearning.Numerics;

/// <summary>
/// Optimizer update kernels with PyTorch semantics (<c>torch.optim.AdamW</c>, <c>torch.optim.SGD</c>) and global
/// gradient-norm clipping (<c>torch.nn.utils.clip_grad_norm_</c>). Each update is one fused pass over the buffers.
/// </summary>
public static class Optimizers
{
    /// <summary>
    /// One AdamW step (decoupled weight decay, bias correction): <c>p −= lr·wd·p</c>; <c>m = β1·m + (1−β1)·g</c>;
    /// <c>v = β2·v + (1−β2)·g²</c>; <c>p −= lr · (m / (1−β1^step)) / (sqrt(v / (1−β2^step)) + ε)</c>.
    /// </summary>
    /// <param name="parameters">Parameters, updated in place.</param>
    /// <param name="gradients">Gradients (same length).</param>
    /// <param name="m">First-moment state (same length), updated; zero before step 1.</param>
    /// <param name="v">Second-moment state (same length), updated; zero before step 1.</param>
    /// <param name="step">1-based step number (after incrementing, as PyTorch counts).</param>
    /// <param name="learningRate">Learning rate (finite, ≥ 0).</param>
    /// <param name="beta1">First-moment decay in [0, 1).</param>
    /// <param name="beta2">Second-moment decay in [0, 1).</param>
    /// <param name="epsilon">Added to the denominator (finite, ≥ 0).</param>
    /// <param name="weightDecay">Decoupled weight decay (finite, ≥ 0).</param>
    /// <exception cref="ArgumentException">Lengths differ or buffers overlap.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A hyper-parameter or <paramref name="step"/> is out of range.</exception>
    public static void AdamWStep(Span<float> parameters, ReadOnlySpan<float> gradients, Span<float> m, Span<float> v, int step, float learningRate, float beta1 = 0.9f, float beta2 = 0.999f, float epsilon = 1e-8f, float weightDecay = 0.01f)
    {
        KernelChecks.Length(gradients.Length, parameters.Length, nameof(gradients), "parameters.Length");
        KernelChecks.Length(m.Length, parameters.Length, nameof(m), "parameters.Length");
        KernelChecks.Length(v.Length, parameters.Length, nameof(v), "parameters.Length");
        KernelChecks.Positive(step, nameof(step));
        KernelChecks.FiniteNonNegative(learningRate, nameof(learningRate));
        KernelChecks.UnitInterval(beta1, nameof(beta1));
        KernelChecks.UnitInterval(beta2, nameof(beta2));
        KernelChecks.FiniteNonNegative(epsilon, nameof(epsilon));
        KernelChecks.FiniteNonNegative(weightDecay, nameof(weightDecay));
        KernelChecks.NoOverlap(parameters, gradients, nameof(parameters), nameof(gradients));
        KernelChecks.NoOverlap(parameters, m, nameof(parameters), nameof(m));
        KernelChecks.NoOverlap(parameters, v, nameof(parameters), nameof(v));
        KernelChecks.NoOverlap(m, gradients, nameof(m), nameof(gradients));
        KernelChecks.NoOverlap(m, v, nameof(m), nameof(v));
        KernelChecks.NoOverlap(v, gradients, nameof(v), nameof(gradients));

        // Scalars as PyTorch forms them: decay factor 1 − lr·wd, step size lr / bc1, denominator sqrt(v)/sqrt(bc2) + eps.
        double bc1 = 1 - Math.Pow(beta1, step);
        double bc2 = 1 - Math.Pow(beta2, step);
        var k = new AdamConstants
        {
            Decay = (float)(1 - ((double)learningRate * weightDecay)),
            Beta1 = beta1,
            OneMinusBeta1 = 1 - beta1,
            Beta2 = beta2,
            OneMinusBeta2 = 1 - beta2,
            StepSize = (float)(learningRate / bc1),
            InvSqrtBc2 = (float)(1 / Math.Sqrt(bc2)),
            Epsilon = epsilon,
        };

        unsafe
        {
            fixed (float* pp = parameters, pg = gradients, pm = m, pv = v)
            {
                VecLoops.Map(new AdamWOp { K = k, P = pp, G = pg, M = pm, V = pv }, parameters.Length);
            }
        }
    }

    /// <summary>
    /// One SGD step with PyTorch semantics: <c>g += wd·p</c>; if momentum ≠ 0,
    /// <c>buf = firstStep ? g : momentum·buf + (1 − dampening)·g</c> and <c>g = nesterov ? g + momentum·buf : buf</c>;
    /// <c>p −= lr·g</c>.
    /// </summary>
    /// <param name="parameters">Parameters, updated in place.</param>
    /// <param name="gradients">Gradients (same length); not modified.</param>
    /// <param name="momentumBuffer">Momentum state (same length), updated; may be empty when <paramref name="momentum"/> is 0.</param>
    /// <param name="firstStep">True on the first step (the buffer is initialised to the gradient, without dampening).</param>
    /// <param name="learningRate">Learning rate (finite, ≥ 0).</param>
    /// <param name="momentum">Momentum factor (finite, ≥ 0).</param>
    /// <param name="dampening">Dampening of the gradient in the momentum update (finite).</param>
    /// <param name="weightDecay">L2 penalty added to the gradient (finite, ≥ 0).</param>
    /// <param name="nesterov">Nesterov momentum (requires momentum &gt; 0 and dampening = 0, as in PyTorch).</param>
    /// <exception cref="ArgumentException">Lengths differ, buffers overlap, or the Nesterov conditions are not met.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A hyper-parameter is out of range.</exception>
    public static void SgdMomentumStep(Span<float> parameters, ReadOnlySpan<float> gradients, Span<float> momentumBuffer, bool firstStep, float learningRate, float momentum = 0.9f, float dampening = 0f, float weightDecay = 0f, bool nesterov = false)
    {
        KernelChecks.Length(gradients.Length, parameters.Length, nameof(gradients), "parameters.Length");
        KernelChecks.FiniteNonNegative(learningRate, nameof(learningRate));
        KernelChecks.FiniteNonNegative(momentum, nameof(momentum));
        KernelChecks.FiniteNonNegative(weightDecay, nameof(weightDecay));
        if (!float.IsFinite(dampening))
        {
            throw new ArgumentOutOfRangeException(nameof(dampening), dampening, "dampening must be finite.");
        }

        if (nesterov && (momentum <= 0 || dampening != 0))
        {
            throw new ArgumentException("Nesterov momentum requires momentum > 0 and dampening = 0.", nameof(nesterov));
        }

        bool useMomentum = momentum != 0;
        if (useMomentum || !momentumBuffer.IsEmpty)
        {
            KernelChecks.Length(momentumBuffer.Length, parameters.Length, nameof(momentumBuffer), useMomentum ? "parameters.Length" : "parameters.Length (or 0 without momentum)");
        }

        KernelChecks.NoOverlap(parameters, gradients, nameof(parameters), nameof(gradients));
        KernelChecks.NoOverlap(parameters, momentumBuffer, nameof(parameters), nameof(momentumBuffer));
        KernelChecks.NoOverlap(momentumBuffer, gradients, nameof(momentumBuffer), nameof(gradients));

        unsafe
        {
            fixed (float* pp = parameters, pg = gradients, pb = momentumBuffer)
            {
                var op = new SgdOp
                {
                    P = pp,
                    G = pg,
                    B = pb,
                    LearningRate = learningRate,
                    Momentum = momentum,
                    Mix = 1f - dampening,
                    WeightDecay = weightDecay,
                    UseMomentum = useMomentum,
                    FirstStep = firstStep,
                    Nesterov = nesterov,
                };
                VecLoops.Map(op, parameters.Length);
            }
        }
    }

    /// <summary>The L2 norm of all gradient buffers taken together, <c>sqrt(Σ_buffers Σ_i g_i²)</c>, accumulated in double.</summary>
    /// <param name="gradients">The gradient buffers.</param>
    /// <returns>The global norm (NaN or +∞ when a gradient is NaN or infinite, or the sum overflows).</returns>
    public static double GlobalNorm(ReadOnlySpan<ReadOnlyMemory<float>> gradients)
    {
        double sum = 0;
        foreach (ReadOnlyMemory<float> g in gradients)
        {
            sum += SumOfSquaresDouble(g.Span);
        }

        return Math.Sqrt(sum);
    }

    /// <summary>
    /// Scales all gradient buffers in place by <c>min(1, maxNorm / (norm + 1e-6))</c>, like PyTorch's
    /// <c>clip_grad_norm_</c>. When the norm is NaN or infinite the gradients are left untouched, so the caller can
    /// refuse the step.
    /// </summary>
    /// <param name="gradients">The gradient buffers (must not overlap each other).</param>
    /// <param name="maxNorm">Largest allowed global norm (&gt; 0; +∞ disables clipping).</param>
    /// <returns>The global norm before clipping.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="maxNorm"/> is not &gt; 0.</exception>
    /// <exception cref="ArgumentException">Two gradient buffers overlap.</exception>
    public static double ClipByGlobalNorm(ReadOnlySpan<Memory<float>> gradients, double maxNorm)
    {
        if (!(maxNorm > 0))
        {
            throw new ArgumentOutOfRangeException(nameof(maxNorm), maxNorm, "maxNorm must be greater than 0.");
        }

        for (int a = 0; a < gradients.Length; a++)
        {
            for (int b = a + 1; b < gradients.Length; b++)
            {
                if (gradients[a].Span.Overlaps(gradients[b].Span))
                {
                    throw new ArgumentException($"gradients[{a}] and gradients[{b}] overlap; each buffer would be scaled twice.", nameof(gradients));
                }
            }
        }

        double sum = 0;
        foreach (Memory<float> g in gradients)
        {
            sum += SumOfSquaresDouble(g.Span);
        }

        double norm = Math.Sqrt(sum);
        if (!double.IsFinite(norm))
        {
            return norm;
        }

        double scale = maxNorm / (norm + 1e-6);
        if (scale < 1)
        {
            foreach (Memory<float> g in gradients)
            {
                TensorPrimitives.Multiply(g.Span, (float)scale, g.Span);
            }
        }

        return norm;
    }

    /// <summary>Σ x² with every product and partial sum in double (lanes widened from float).</summary>
    internal static double SumOfSquaresDouble(ReadOnlySpan<float> x)
    {
        ref float px = ref MemoryMarshal.GetReference(x);
        int n = x.Length;
        int i = 0;
        double sum = 0;
        if (Vector512.IsHardwareAccelerated && n >= Vector512<float>.Count)
        {
            var acc = Vector512<double>.Zero;
            for (; i <= n - Vector512<float>.Count; i += Vector512<float>.Count)
            {
                (Vector512<double> lo, Vector512<double> hi) = Vector512.Widen(Vector512.LoadUnsafe(ref px, (nuint)i));
                acc += (lo * lo) + (hi * hi);
            }

            sum += Vector512.Sum(acc);
        }

        if (Vector256.IsHardwareAccelerated && n - i >= Vector256<float>.Count)
        {
            var acc = Vector256<double>.Zero;
            for (; i <= n - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                (Vector256<double> lo, Vector256<double> hi) = Vector256.Widen(Vector256.LoadUnsafe(ref px, (nuint)i));
                acc += (lo * lo) + (hi * hi);
            }

            sum += Vector256.Sum(acc);
        }

        if (Vector128.IsHardwareAccelerated && n - i >= Vector128<float>.Count)
        {
            var acc = Vector128<double>.Zero;
            for (; i <= n - Vector128<float>.Count; i += Vector128<float>.Count)
            {
                (Vector128<double> lo, Vector128<double> hi) = Vector128.Widen(Vector128.LoadUnsafe(ref px, (nuint)i));
                acc += (lo * lo) + (hi * hi);
            }

            sum += Vector128.Sum(acc);
        }

        for (; i < n; i++)
        {
            double v = Unsafe.Add(ref px, i);
            sum += v * v;
        }

        return sum;
    }

    private struct AdamConstants
    {
        public float Decay;
        public float Beta1;
        public float OneMinusBeta1;
        public float Beta2;
        public float OneMinusBeta2;
        public float StepSize;
        public float InvSqrtBc2;
        public float Epsilon;
    }

    /// <summary>
    /// One AdamW element: <c>m = β1·m + (1−β1)·g</c>, <c>v = β2·v + (1−β2)·g·g</c>,
    /// <c>p = p·decay − stepSize·(m / (√v·invSqrtBc2 + ε))</c>, every multiply and add rounded separately.
    /// </summary>
    private unsafe struct AdamWOp : IMapOp
    {
        public AdamConstants K;
        public float* P;
        public float* G;
        public float* M;
        public float* V;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public readonly void Invoke<TV, TOps>(nint i)
            where TV : struct
            where TOps : struct, IVecOps<TV>
        {
            TV g = TOps.Load(G + i);
            TV mm = TOps.Add(TOps.Multiply(TOps.Splat(K.Beta1), TOps.Load(M + i)), TOps.Multiply(TOps.Splat(K.OneMinusBeta1), g));
            TV vv = TOps.Add(TOps.Multiply(TOps.Splat(K.Beta2), TOps.Load(V + i)), TOps.Multiply(TOps.Multiply(TOps.Splat(K.OneMinusBeta2), g), g));
            TV denom = TOps.Add(TOps.Multiply(TOps.Sqrt(vv), TOps.Splat(K.InvSqrtBc2)), TOps.Splat(K.Epsilon));
            TV p = TOps.Multiply(TOps.Load(P + i), TOps.Splat(K.Decay));
            p = TOps.Subtract(p, TOps.Multiply(TOps.Splat(K.StepSize), TOps.Divide(mm, denom)));
            TOps.Store(mm, M + i);
            TOps.Store(vv, V + i);
            TOps.Store(p, P + i);
        }
    }

    /// <summary>
    /// One SGD element: <c>g += wd·p</c>; with momentum <c>buf = first ? g : μ·buf + (1 − dampening)·g</c> and
    /// <c>g = nesterov ? g + μ·buf : buf</c>; <c>p −= lr·g</c>, every multiply and add rounded separately.
    /// </summary>
    private unsafe struct SgdOp : IMapOp
    {
        public float* P;
        public float* G;
        public float* B;
        public float LearningRate;
        public float Momentum;
        public float Mix;
        public float WeightDecay;
        public bool UseMomentum;
        public bool FirstStep;
        public bool Nesterov;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public readonly void Invoke<TV, TOps>(nint i)
            where TV : struct
            where TOps : struct, IVecOps<TV>
        {
            TV p = TOps.Load(P + i);
            TV g = TOps.Add(TOps.Load(G + i), TOps.Multiply(TOps.Splat(WeightDecay), p));
            if (UseMomentum)
            {
                TV buf = FirstStep ? g : TOps.Add(TOps.Multiply(TOps.Splat(Momentum), TOps.Load(B + i)), TOps.Multiply(TOps.Splat(Mix), g));
                TOps.Store(buf, B + i);
                g = Nesterov ? TOps.Add(g, TOps.Multiply(TOps.Splat(Momentum), buf)) : buf;
            }

            TOps.Store(TOps.Subtract(p, TOps.Multiply(TOps.Splat(LearningRate), g)), P + i);
        }
    }
}
