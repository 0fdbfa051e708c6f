using LiveLearning.Models;
using LiveLearning.Numerics;

namespace LiveLearning.Lora;

/// <summary>
/// One LoRA delta on a frozen linear layer: <c>y += scale · (x·Aᵀ)·Bᵀ</c> with <c>A</c> <c>[rank, in]</c> and
/// <c>B</c> <c>[out, rank]</c> (the PEFT <c>lora_A.weight</c> / <c>lora_B.weight</c> layout).
/// </summary>
/// <remarks>
/// The matrices are owned by the layer and never change once the layer is published in an adapter version, so any
/// number of passes may use it concurrently. Gradients are laid out <c>[dA (rank·in) | dB (out·rank)]</c>.
/// </remarks>
public sealed class LoraLayer : IAdapterSlot
{
    private readonly float[] _a;
    private readonly float[] _b;

    /// <summary>Creates a layer over copies of <paramref name="a"/> and <paramref name="b"/>.</summary>
    /// <param name="a">A, <c>[rank, inFeatures]</c> row-major.</param>
    /// <param name="b">B, <c>[outFeatures, rank]</c> row-major.</param>
    /// <param name="inFeatures">Input features.</param>
    /// <param name="outFeatures">Output features.</param>
    /// <param name="rank">Rank, 1–128.</param>
    /// <param name="scale">Scale (alpha / rank, or alpha / √rank with rsLoRA).</param>
    public LoraLayer(ReadOnlySpan<float> a, ReadOnlySpan<float> b, int inFeatures, int outFeatures, int rank, float scale)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(inFeatures, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(outFeatures, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(rank, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(rank, 128);
        if (a.Length != rank * inFeatures)
        {
            throw new ArgumentException($"A has {a.Length} values; [rank {rank}, in {inFeatures}] needs {rank * inFeatures}.", nameof(a));
        }

        if (b.Length != outFeatures * rank)
        {
            throw new ArgumentException($"B has {b.Length} values; [out {outFeatures}, rank {rank}] needs {outFeatures * rank}.", nameof(b));
        }

        if (!float.IsFinite(scale))
        {
            throw new ArgumentOutOfRangeException(nameof(scale), scale, "The scale must be finite.");
        }

        _a = a.ToArray();
        _b = b.ToArray();
        InFeatures = inFeatures;
        OutFeatures = outFeatures;
        Rank = rank;
        Scale = scale;
    }

    /// <inheritdoc />
    public int InFeatures { get; }

    /// <inheritdoc />
    public int OutFeatures { get; }

    /// <summary>The rank.</summary>
    public int Rank { get; }

    /// <summary>The scale applied to the delta.</summary>
    public float Scale { get; }

    /// <summary>A, <c>[rank, in]</c>.</summary>
    public ReadOnlySpan<float> A => _a;

    /// <summary>B, <c>[out, rank]</c>.</summary>
    public ReadOnlySpan<float> B => _b;

    /// <inheritdoc />
    public int ParameterCount => _a.Length + _b.Length;

    /// <inheritdoc />
    public int SavedFloatsPerToken => Rank;

    /// <inheritdoc />
    public void Forward(Span<float> y, Span<float> saved, ReadOnlySpan<float> x, int tokens, bool training, ComputePool? pool) =>
        LoraKernels.Forward(y, saved[..(tokens * Rank)], x, _a, _b, tokens, InFeatures, OutFeatures, Rank, Scale, pool);

    /// <inheritdoc />
    public void Backward(Span<float> dx, Span<float> gradients, ReadOnlySpan<float> dy, ReadOnlySpan<float> x, ReadOnlySpan<float> saved, int tokens, ComputePool? pool)
    {
        if (gradients.Length != ParameterCount)
        {
            throw new ArgumentException($"The gradient buffer has {gradients.Length} values; this layer has {ParameterCount} parameters.", nameof(gradients));
        }

        float[] dh = System.Buffers.ArrayPool<float>.Shared.Rent(Math.Max(1, tokens * Rank));
        try
        {
            LoraKernels.Backward(
                gradients[.._a.Length], gradients[_a.Length..], dx, dh.AsSpan(0, tokens * Rank),
                dy, x, saved[..(tokens * Rank)], _a, _b, tokens, InFeatures, OutFeatures, Rank, Scale, pool);
        }
        finally
        {
            System.Buffers.ArrayPool<float>.Shared.Return(dh);
        }
    }
}
