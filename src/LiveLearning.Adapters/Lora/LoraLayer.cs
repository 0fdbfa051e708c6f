using System.Buffers;
using LiveLearning.Models;
using LiveLearning.Numerics;

namespace LiveLearning.Lora;

/// <summary>
/// One LoRA delta on a frozen linear layer: <c>y += scale · (dropout(x)·Aᵀ)·Bᵀ</c> with <c>A</c> <c>[rank, in]</c> and
/// <c>B</c> <c>[out, rank]</c> (the PEFT <c>lora_A.weight</c> / <c>lora_B.weight</c> layout).
/// </summary>
/// <remarks>
/// <para>The matrices are owned by the layer and never change once the layer is published in an adapter version, so any
/// number of passes may use it concurrently. Gradients are laid out <c>[dA (rank·in) | dB (out·rank)]</c>.</para>
/// <para>Dropout applies only in training passes. The mask is a pure function of (<see cref="DropoutSeed"/>, token,
/// feature), so a pass is reproducible and the backward pass regenerates the mask instead of storing it; the dropped
/// input is kept in the pass's saved state (<see cref="SavedFloatsPerToken"/> = rank + in when dropout is on).</para>
/// </remarks>
public sealed class LoraLayer : IAdapterSlot
{
    // Below this many multiply-adds a LoRA pass runs on the calling thread (see PoolFor).
    private const long InlineWork = 1L << 21;

    private readonly ReadOnlyMemory<float> _a;
    private readonly ReadOnlyMemory<float> _b;

    /// <summary>Creates a layer over copies of <paramref name="a"/> and <paramref name="b"/> with a given scale (alpha = scale·rank).</summary>
    /// <param name="a">A, <c>[rank, inFeatures]</c> row-major.</param>
    /// <param name="b">B, <c>[outFeatures, rank]</c> row-major.</param>
    /// <param name="inFeatures">Input features.</param>
    /// <param name="outFeatures">Output features.</param>
    /// <param name="rank">Rank, 1–128.</param>
    /// <param name="scale">Scale (alpha / rank, or alpha / √rank with rsLoRA).</param>
    public LoraLayer(ReadOnlySpan<float> a, ReadOnlySpan<float> b, int inFeatures, int outFeatures, int rank, float scale)
        : this(Validated(a, b, inFeatures, outFeatures, rank), inFeatures, outFeatures, rank, (double)scale * rank, false, 0f, CheckedScale(scale))
    {
    }

    /// <summary>Creates a layer over copies of <paramref name="a"/> and <paramref name="b"/> with PEFT's alpha and rsLoRA scaling.</summary>
    /// <param name="a">A, <c>[rank, inFeatures]</c> row-major.</param>
    /// <param name="b">B, <c>[outFeatures, rank]</c> row-major.</param>
    /// <param name="inFeatures">Input features.</param>
    /// <param name="outFeatures">Output features.</param>
    /// <param name="rank">Rank, 1–128.</param>
    /// <param name="alpha"><c>lora_alpha</c> of this module (finite, &gt; 0).</param>
    /// <param name="useRsLora">Scale by α/√r instead of α/r.</param>
    /// <param name="dropout">Dropout probability while training, in [0, 1).</param>
    public LoraLayer(ReadOnlySpan<float> a, ReadOnlySpan<float> b, int inFeatures, int outFeatures, int rank, double alpha, bool useRsLora, float dropout = 0f)
        : this(Validated(a, b, inFeatures, outFeatures, rank), inFeatures, outFeatures, rank, CheckedAlpha(alpha), useRsLora, CheckedDropout(dropout), null)
    {
    }

    private LoraLayer((float[] A, float[] B) m, int inFeatures, int outFeatures, int rank, double alpha, bool useRsLora, float dropout, float? scale)
        : this(m.A, m.B, inFeatures, outFeatures, rank, alpha, useRsLora, 1f, dropout, 0, scale)
    {
    }

    private LoraLayer(ReadOnlyMemory<float> a, ReadOnlyMemory<float> b, int inFeatures, int outFeatures, int rank, double alpha, bool useRsLora, float multiplier, float dropout, ulong dropoutSeed, float? scale)
    {
        _a = a;
        _b = b;
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        Rank = rank;
        Alpha = alpha;
        UseRsLora = useRsLora;
        Multiplier = multiplier;
        Dropout = dropout;
        DropoutSeed = dropoutSeed;
        Scale = scale ?? (float)(multiplier * LoraConfig.Scale(alpha, rank, useRsLora));
        if (!float.IsFinite(Scale))
        {
            throw new ArgumentOutOfRangeException(nameof(multiplier), Scale, "The scale must be finite.");
        }
    }

    /// <inheritdoc />
    public int InFeatures { get; }

    /// <inheritdoc />
    public int OutFeatures { get; }

    /// <summary>The rank.</summary>
    public int Rank { get; }

    /// <summary>The module's <c>lora_alpha</c>.</summary>
    public double Alpha { get; }

    /// <summary>Whether the scale is α/√r (rsLoRA) rather than α/r.</summary>
    public bool UseRsLora { get; }

    /// <summary>A runtime multiplier on top of PEFT's scaling (PEFT <c>set_scale</c>); not part of the file format.</summary>
    public float Multiplier { get; }

    /// <summary>The scale applied to the delta: multiplier · α/r (or α/√r).</summary>
    public float Scale { get; }

    /// <summary>Dropout probability in training passes.</summary>
    public float Dropout { get; }

    /// <summary>Seed of the dropout masks of this layer.</summary>
    public ulong DropoutSeed { get; }

    /// <summary>A, <c>[rank, in]</c>.</summary>
    public ReadOnlySpan<float> A => _a.Span;

    /// <summary>B, <c>[out, rank]</c>.</summary>
    public ReadOnlySpan<float> B => _b.Span;

    /// <summary><see cref="A"/> as memory (a read-only view, no copy), for exports.</summary>
    public ReadOnlyMemory<float> AMemory => _a;

    /// <summary><see cref="B"/> as memory (a read-only view, no copy), for exports.</summary>
    public ReadOnlyMemory<float> BMemory => _b;

    /// <inheritdoc />
    public int ParameterCount => _a.Length + _b.Length;

    /// <inheritdoc />
    public int SavedFloatsPerToken => Dropout > 0 ? Rank + InFeatures : Rank;

    /// <summary>A layer sharing this one's matrices with the scale multiplied by <paramref name="multiplier"/>.</summary>
    /// <param name="multiplier">Finite multiplier (replaces the current one).</param>
    /// <returns>The layer.</returns>
    public LoraLayer WithMultiplier(float multiplier)
    {
        if (!float.IsFinite(multiplier))
        {
            throw new ArgumentOutOfRangeException(nameof(multiplier), multiplier, "The scale multiplier must be finite.");
        }

        return new LoraLayer(_a, _b, InFeatures, OutFeatures, Rank, Alpha, UseRsLora, multiplier, Dropout, DropoutSeed, null);
    }

    /// <summary>A layer sharing this one's matrices with another dropout probability and mask seed.</summary>
    /// <param name="dropout">Dropout in [0, 1).</param>
    /// <param name="seed">Mask seed.</param>
    /// <returns>The layer.</returns>
    public LoraLayer WithDropout(float dropout, ulong seed) =>
        new(_a, _b, InFeatures, OutFeatures, Rank, Alpha, UseRsLora, Multiplier, CheckedDropout(dropout), seed, null);

    /// <summary>A layer over the given memory without copying (the training view over the optimizer's flat buffer).</summary>
    internal static LoraLayer View(ReadOnlyMemory<float> a, ReadOnlyMemory<float> b, int inFeatures, int outFeatures, int rank, double alpha, bool useRsLora, float dropout, ulong seed) =>
        new(a, b, inFeatures, outFeatures, rank, alpha, useRsLora, 1f, dropout, seed, null);

    /// <inheritdoc />
    public void Forward(Span<float> y, Span<float> saved, ReadOnlySpan<float> x, int tokens, bool training, ComputePool? pool)
    {
        pool = PoolFor(tokens, pool);
        int width = SavedFloatsPerToken;
        if (saved.Length < tokens * width)
        {
            throw new ArgumentException($"saved has {saved.Length} values; {tokens} tokens need {tokens * width}.", nameof(saved));
        }

        Span<float> h = saved[..(tokens * Rank)];
        if (Dropout > 0)
        {
            // Training: the dropped input goes to the saved state (the backward pass needs it). Inference: nothing is
            // dropped and the extra saved space is unused (a backward pass needs a training forward).
            if (training)
            {
                if (x.Length != tokens * InFeatures)
                {
                    throw new ArgumentException($"x has {x.Length} values but tokens*inFeatures = {tokens * InFeatures}.", nameof(x));
                }

                Span<float> dropped = saved.Slice(tokens * Rank, tokens * InFeatures);
                ApplyDropout(dropped, x, tokens);
                LoraKernels.Forward(y, h, dropped, A, B, tokens, InFeatures, OutFeatures, Rank, Scale, pool);
                return;
            }
        }

        LoraKernels.Forward(y, h, x, A, B, tokens, InFeatures, OutFeatures, Rank, Scale, pool);
    }

    /// <inheritdoc />
    public void Backward(Span<float> dx, Span<float> gradients, ReadOnlySpan<float> dy, ReadOnlySpan<float> x, ReadOnlySpan<float> saved, int tokens, ComputePool? pool)
    {
        if (gradients.Length != ParameterCount)
        {
            throw new ArgumentException($"The gradient buffer has {gradients.Length} values; this layer has {ParameterCount} parameters.", nameof(gradients));
        }

        if (saved.Length < tokens * SavedFloatsPerToken)
        {
            throw new ArgumentException($"saved has {saved.Length} values; {tokens} tokens need {tokens * SavedFloatsPerToken}.", nameof(saved));
        }

        pool = PoolFor(tokens, pool);
        int aLength = _a.Length;
        float[] dh = ArrayPool<float>.Shared.Rent(Math.Max(1, tokens * Rank));
        try
        {
            ReadOnlySpan<float> h = saved[..(tokens * Rank)];
            if (Dropout <= 0)
            {
                LoraKernels.Backward(
                    gradients[..aLength], gradients[aLength..], dx, dh.AsSpan(0, tokens * Rank),
                    dy, x, h, A, B, tokens, InFeatures, OutFeatures, Rank, Scale, pool);
                return;
            }

            // dL/dx = mask/(1-p) ⊙ dL/d(dropped x): compute the dropped-input gradient apart, then fold the mask in.
            ReadOnlySpan<float> dropped = saved.Slice(tokens * Rank, tokens * InFeatures);
            bool wantDx = !dx.IsEmpty;
            float[] dDropped = ArrayPool<float>.Shared.Rent(wantDx ? Math.Max(1, tokens * InFeatures) : 1);
            try
            {
                Span<float> dd = wantDx ? dDropped.AsSpan(0, tokens * InFeatures) : Span<float>.Empty;
                dd.Clear();
                LoraKernels.Backward(
                    gradients[..aLength], gradients[aLength..], dd, dh.AsSpan(0, tokens * Rank),
                    dy, dropped, h, A, B, tokens, InFeatures, OutFeatures, Rank, Scale, pool);
                if (wantDx)
                {
                    if (dx.Length != tokens * InFeatures)
                    {
                        throw new ArgumentException($"dx has {dx.Length} values but tokens*inFeatures = {tokens * InFeatures}.", nameof(dx));
                    }

                    AccumulateMasked(dx, dd, tokens);
                }
            }
            finally
            {
                ArrayPool<float>.Shared.Return(dDropped);
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(dh);
        }
    }

    /// <summary>
    /// Input gradient only (a frozen layer in a stack): <c>dx += mask ⊙ (scale·dy·B)·A</c>, without the parameter
    /// gradients (two small GEMMs instead of the full LoRA backward).
    /// </summary>
    internal void BackwardInputOnly(Span<float> dx, ReadOnlySpan<float> dy, int tokens, ComputePool? pool)
    {
        if (dx.IsEmpty || tokens == 0)
        {
            return;
        }

        pool = PoolFor(tokens, pool);

        float[] dh = ArrayPool<float>.Shared.Rent(tokens * Rank);
        float[] dd = ArrayPool<float>.Shared.Rent(Dropout > 0 ? tokens * InFeatures : 1);
        try
        {
            Span<float> dH = dh.AsSpan(0, tokens * Rank);

            // dH = dy·B ([tokens, out]·[out, rank]), then scaled; d(input) = dH·A ([tokens, rank]·[rank, in]).
            Gemm.LinearBackwardInput(dH, dy, B, tokens, OutFeatures, Rank, accumulate: false, pool);
            System.Numerics.Tensors.TensorPrimitives.Multiply(dH, Scale, dH);
            if (Dropout <= 0)
            {
                Gemm.LinearBackwardInput(dx, dH, A, tokens, Rank, InFeatures, accumulate: true, pool);
                return;
            }

            Span<float> dDropped = dd.AsSpan(0, tokens * InFeatures);
            Gemm.LinearBackwardInput(dDropped, dH, A, tokens, Rank, InFeatures, accumulate: false, pool);
            AccumulateMasked(dx, dDropped, tokens);
        }
        finally
        {
            ArrayPool<float>.Shared.Return(dh);
            ArrayPool<float>.Shared.Return(dd);
        }
    }

    /// <summary>Whether input feature <paramref name="feature"/> of token <paramref name="token"/> is kept by the dropout mask.</summary>
    /// <param name="token">Token row.</param>
    /// <param name="feature">Input feature.</param>
    /// <returns>True when kept.</returns>
    public bool Keeps(int token, int feature)
    {
        ulong bits = Mix(DropoutSeed ^ Mix(((ulong)(uint)token << 32) | (uint)feature));
        double u = (bits >> 11) * (1.0 / (1UL << 53));
        return u >= Dropout;
    }

    /// <summary>
    /// The pool for a pass over <paramref name="tokens"/> tokens, or null (calling thread) when the work, about
    /// tokens·rank·(in + out) multiply-adds, is smaller than a fork-join costs: a 64-token prefill with r=8 on a 576-wide
    /// projection is ~0.6 M, microseconds of work. The kernels give bitwise the same result either way.
    /// </summary>
    private ComputePool? PoolFor(int tokens, ComputePool? pool) =>
        (long)tokens * Rank * (InFeatures + OutFeatures) < InlineWork ? null : pool;

    /// <summary>SplitMix64 finaliser: a well-mixed 64-bit hash.</summary>
    internal static ulong Mix(ulong z)
    {
        z += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    private void ApplyDropout(Span<float> dropped, ReadOnlySpan<float> x, int tokens)
    {
        float keepScale = 1f / (1f - Dropout);
        for (int t = 0; t < tokens; t++)
        {
            int row = t * InFeatures;
            for (int i = 0; i < InFeatures; i++)
            {
                dropped[row + i] = Keeps(t, i) ? x[row + i] * keepScale : 0f;
            }
        }
    }

    private void AccumulateMasked(Span<float> dx, ReadOnlySpan<float> dDropped, int tokens)
    {
        float keepScale = 1f / (1f - Dropout);
        for (int t = 0; t < tokens; t++)
        {
            int row = t * InFeatures;
            for (int i = 0; i < InFeatures; i++)
            {
                if (Keeps(t, i))
                {
                    dx[row + i] += dDropped[row + i] * keepScale;
                }
            }
        }
    }

    private static (float[] A, float[] B) Validated(ReadOnlySpan<float> a, ReadOnlySpan<float> b, int inFeatures, int outFeatures, int rank)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(inFeatures, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(outFeatures, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(rank, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(rank, LoraKernels.MaxRank);
        if (a.Length != rank * inFeatures)
        {
            throw new ArgumentException($"A has {a.Length} values; [rank {rank}, in {inFeatures}] needs {rank * inFeatures}.", nameof(a));
        }

        if (b.Length != outFeatures * rank)
        {
            throw new ArgumentException($"B has {b.Length} values; [out {outFeatures}, rank {rank}] needs {outFeatures * rank}.", nameof(b));
        }

        return (a.ToArray(), b.ToArray());
    }

    private static float CheckedScale(float scale) =>
        float.IsFinite(scale) ? scale : throw new ArgumentOutOfRangeException(nameof(scale), scale, "The scale must be finite.");

    private static double CheckedAlpha(double alpha) =>
        double.IsFinite(alpha) && alpha > 0 ? alpha : throw new ArgumentOutOfRangeException(nameof(alpha), alpha, "Alpha must be finite and greater than 0.");

    private static float CheckedDropout(float dropout) =>
        dropout >= 0 && dropout < 1 ? dropout : throw new ArgumentOutOfRangeException(nameof(dropout), dropout, "Dropout must be in [0, 1).");
}
