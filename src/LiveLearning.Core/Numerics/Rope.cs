using System.Runtime.CompilerServices;

namespace LiveLearning.Numerics;

/// <summary>
/// Precomputed rotary-embedding cosines and sines for positions <c>[0, MaxPositions)</c> and pairs
/// <c>j ∈ [0, HeadDim/2)</c>: <c>angle = position · inverseFrequencies[j]</c>, both values multiplied by the
/// attention scaling factor. Immutable, so one table can be shared by any number of threads.
/// </summary>
/// <remarks>
/// The angle is the float32 product <c>(float)position · inv_freq[j]</c>, as in the Hugging Face reference
/// (which multiplies float32 frequencies by float32 positions); its cosine and sine are computed in double
/// and rounded to float32.
/// </remarks>
public sealed class RopeTable
{
    private readonly float[] _cos;
    private readonly float[] _sin;

    /// <summary>Builds the table.</summary>
    /// <param name="inverseFrequencies">One frequency per rotated pair (<c>HeadDim / 2</c> values, at least one, all finite).</param>
    /// <param name="maxPositions">Number of positions covered (at least 1).</param>
    /// <param name="attentionScaling">Factor applied to cos and sin (1 for most models; the yarn-style attention factor otherwise).</param>
    /// <exception cref="ArgumentException"><paramref name="inverseFrequencies"/> is empty or holds a non-finite value.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="maxPositions"/> is less than 1, the table would be too large, or <paramref name="attentionScaling"/> is not finite.</exception>
    public RopeTable(ReadOnlySpan<float> inverseFrequencies, int maxPositions, float attentionScaling = 1f)
    {
        if (inverseFrequencies.IsEmpty)
        {
            throw new ArgumentException("inverseFrequencies must hold at least one frequency (headDim/2 values).", nameof(inverseFrequencies));
        }

        foreach (float f in inverseFrequencies)
        {
            if (!float.IsFinite(f))
            {
                throw new ArgumentException("inverseFrequencies must hold only finite values.", nameof(inverseFrequencies));
            }
        }

        KernelChecks.Positive(maxPositions, nameof(maxPositions));
        if ((long)maxPositions * inverseFrequencies.Length > Array.MaxLength)
        {
            throw new ArgumentOutOfRangeException(nameof(maxPositions), maxPositions, "maxPositions * headDim/2 is too large for one table.");
        }

        if (!float.IsFinite(attentionScaling))
        {
            throw new ArgumentOutOfRangeException(nameof(attentionScaling), attentionScaling, "attentionScaling must be finite.");
        }

        int half = inverseFrequencies.Length;
        HeadDim = half * 2;
        MaxPositions = maxPositions;
        _cos = new float[maxPositions * half];
        _sin = new float[maxPositions * half];
        for (int p = 0; p < maxPositions; p++)
        {
            for (int j = 0; j < half; j++)
            {
                float angle = (float)p * inverseFrequencies[j];
                _cos[(p * half) + j] = (float)(Math.Cos(angle) * attentionScaling);
                _sin[(p * half) + j] = (float)(Math.Sin(angle) * attentionScaling);
            }
        }
    }

    /// <summary>Head dimension the table rotates (twice the number of frequencies).</summary>
    public int HeadDim { get; }

    /// <summary>Number of positions covered; valid positions are <c>[0, MaxPositions)</c>.</summary>
    public int MaxPositions { get; }

    /// <summary>The default (unscaled) frequencies <c>inv_freq[j] = 1 / theta^(2j/headDim)</c>, computed in double then rounded.</summary>
    /// <param name="headDim">Head dimension (even, at least 2).</param>
    /// <param name="theta">RoPE base (<c>rope_theta</c>), finite and greater than 0.</param>
    /// <returns><c>headDim / 2</c> frequencies.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="headDim"/> is not an even number ≥ 2, or <paramref name="theta"/> is not a positive finite number.</exception>
    public static float[] DefaultInverseFrequencies(int headDim, double theta)
    {
        if (headDim < 2 || headDim % 2 != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(headDim), headDim, "headDim must be an even number of at least 2.");
        }

        if (!(theta > 0) || !double.IsFinite(theta))
        {
            throw new ArgumentOutOfRangeException(nameof(theta), theta, "theta must be a positive finite number.");
        }

        var result = new float[headDim / 2];
        for (int j = 0; j < result.Length; j++)
        {
            result[j] = (float)(1.0 / Math.Pow(theta, 2.0 * j / headDim));
        }

        return result;
    }

    /// <summary>Cosines of position <paramref name="position"/> (<c>HeadDim / 2</c> values).</summary>
    internal ReadOnlySpan<float> Cos(int position) => _cos.AsSpan(position * (HeadDim / 2), HeadDim / 2);

    /// <summary>Sines of position <paramref name="position"/> (<c>HeadDim / 2</c> values).</summary>
    internal ReadOnlySpan<float> Sin(int position) => _sin.AsSpan(position * (HeadDim / 2), HeadDim / 2);
}

/// <summary>
/// Rotary position embedding in the Hugging Face <c>rotate_half</c> convention: for <c>j &lt; d/2</c> the pair
/// <c>(x[j], x[j + d/2])</c> is rotated by the angle of <c>j</c> (not interleaved pairs <c>(2j, 2j+1)</c>).
/// </summary>
public static class Rope
{
    /// <summary>
    /// Rotates <paramref name="x"/> <c>[tokens, heads, headDim]</c> in place; token <c>t</c> uses position
    /// <c>positions[t]</c>: <c>out[j] = x[j]·cos − x[j+d/2]·sin</c>, <c>out[j+d/2] = x[j+d/2]·cos + x[j]·sin</c>.
    /// </summary>
    /// <param name="x">Queries or keys <c>[tokens, heads, headDim]</c>, rotated in place.</param>
    /// <param name="positions">Absolute position of each token (<c>[tokens]</c>), each in <c>[0, table.MaxPositions)</c>.</param>
    /// <param name="heads">Heads per token (at least 1).</param>
    /// <param name="headDim">Head dimension; must equal <see cref="RopeTable.HeadDim"/>.</param>
    /// <param name="table">Precomputed cos/sin.</param>
    /// <param name="pool">Optional pool: tokens are split over its threads (each token is rotated the same way either way).</param>
    /// <exception cref="ArgumentException">A length or the head dimension does not match.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A position is outside the table, or <paramref name="heads"/> is less than 1.</exception>
    public static void Forward(Span<float> x, ReadOnlySpan<int> positions, int heads, int headDim, RopeTable table, ComputePool? pool = null)
        => Apply(x, positions, heads, headDim, table, transpose: false, pool);

    /// <summary>
    /// Applies the transposed rotation in place (<c>dx = Rᵀ·dy</c>), the input gradient of <see cref="Forward"/>:
    /// <c>dx[j] = g[j]·cos + g[j+d/2]·sin</c>, <c>dx[j+d/2] = g[j+d/2]·cos − g[j]·sin</c>.
    /// Unlike the other backward kernels this one overwrites (it is in place).
    /// </summary>
    /// <param name="dx">On entry the gradient with respect to the rotated values, on exit with respect to the inputs; <c>[tokens, heads, headDim]</c>.</param>
    /// <param name="positions">Absolute position of each token (<c>[tokens]</c>).</param>
    /// <param name="heads">Heads per token (at least 1).</param>
    /// <param name="headDim">Head dimension; must equal <see cref="RopeTable.HeadDim"/>.</param>
    /// <param name="table">Precomputed cos/sin.</param>
    /// <param name="pool">Optional pool: tokens are split over its threads (each token is rotated the same way either way).</param>
    /// <exception cref="ArgumentException">A length or the head dimension does not match.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A position is outside the table, or <paramref name="heads"/> is less than 1.</exception>
    public static void Backward(Span<float> dx, ReadOnlySpan<int> positions, int heads, int headDim, RopeTable table, ComputePool? pool = null)
        => Apply(dx, positions, heads, headDim, table, transpose: true, pool);

    private static unsafe void Apply(Span<float> x, ReadOnlySpan<int> positions, int heads, int headDim, RopeTable table, bool transpose, ComputePool? pool)
    {
        ArgumentNullException.ThrowIfNull(table);
        KernelChecks.Positive(heads, nameof(heads));
        if (headDim != table.HeadDim)
        {
            throw new ArgumentException($"headDim is {headDim} but the table was built for head dimension {table.HeadDim}.", nameof(headDim));
        }

        int tokens = positions.Length;
        KernelChecks.Length(x.Length, (long)tokens * heads * headDim, transpose ? "dx" : nameof(x), "positions.Length*heads*headDim");
        for (int t = 0; t < tokens; t++)
        {
            if ((uint)positions[t] >= (uint)table.MaxPositions)
            {
                throw new ArgumentOutOfRangeException(nameof(positions), positions[t], $"positions[{t}] = {positions[t]} is outside [0, {table.MaxPositions}) covered by the table.");
            }
        }

        // The transposed rotation is the forward rotation with the sine negated.
        float sign = transpose ? -1f : 1f;
        long size = (long)tokens * heads * headDim;
        int items = ComputePool.RowItems(pool, tokens, size);
        if (items == 1)
        {
            RotateTokens(x, positions, heads, headDim, table, sign, 0, tokens);
            return;
        }

        fixed (float* px = x)
        fixed (int* pp = positions)
        {
            var job = new TokensJob { X = px, Positions = pp, Tokens = tokens, Heads = heads, HeadDim = headDim, Table = table, Sign = sign, Items = items };
            pool!.For(items, ref job);
        }
    }

    /// <summary>Rotates tokens <paramref name="t0"/> ≤ t &lt; <paramref name="t1"/>.</summary>
    private static void RotateTokens(Span<float> x, ReadOnlySpan<int> positions, int heads, int headDim, RopeTable table, float sign, int t0, int t1)
    {
        int half = headDim / 2;
        for (int t = t0; t < t1; t++)
        {
            ReadOnlySpan<float> cos = table.Cos(positions[t]);
            ReadOnlySpan<float> sin = table.Sin(positions[t]);
            for (int h = 0; h < heads; h++)
            {
                Span<float> head = x.Slice(((t * heads) + h) * headDim, headDim);
                RotateHead(head[..half], head[half..], cos, sin, sign);
            }
        }
    }

    /// <summary>Contiguous token ranges of one rotation (tokens are independent, so the split changes nothing).</summary>
    private unsafe struct TokensJob : IParallelJob
    {
        public float* X;
        public int* Positions;
        public int Tokens;
        public int Heads;
        public int HeadDim;
        public RopeTable Table;
        public float Sign;
        public int Items;

        public readonly void Execute(int index)
        {
            (int t0, int t1) = ComputePool.ItemRange(Tokens, index, Items);
            var x = new Span<float>(X, Tokens * Heads * HeadDim);
            RotateTokens(x, new ReadOnlySpan<int>(Positions, Tokens), Heads, HeadDim, Table, Sign, t0, t1);
        }
    }

    /// <summary>(a, b) ← (a·c − b·s·sign, b·c + a·s·sign), vectorised over the pair index.</summary>
    private static unsafe void RotateHead(Span<float> a, Span<float> b, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin, float sign)
    {
        fixed (float* pa = a, pb = b, pc = cos, ps = sin)
        {
            VecLoops.Map(new RotateOp { A = pa, B = pb, Cos = pc, Sin = ps, Sign = sign }, a.Length);
        }
    }

    /// <summary>One rotation step: with <c>s = sin·sign</c>, <c>a = a·c − b·s</c> and <c>b = b·c + a·s</c> (old a, b).</summary>
    private unsafe struct RotateOp : IMapOp
    {
        public float* A;
        public float* B;
        public float* Cos;
        public float* Sin;
        public float Sign;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public readonly void Invoke<TV, TOps>(nint i)
            where TV : struct
            where TOps : struct, IVecOps<TV>
        {
            TV x1 = TOps.Load(A + i);
            TV x2 = TOps.Load(B + i);
            TV c = TOps.Load(Cos + i);
            TV s = TOps.Multiply(TOps.Load(Sin + i), TOps.Splat(Sign));
            TOps.Store(TOps.Subtract(TOps.Multiply(x1, c), TOps.Multiply(x2, s)), A + i);
            TOps.Store(TOps.Add(TOps.Multiply(x2, c), TOps.Multiply(x1, s)), B + i);
        }
    }
}
