using System.Buffers;

namespace LiveLearning.Numerics;

/// <summary>
/// Causal softmax attention with grouped-query attention (GQA), forward and backward, reading keys and values
/// from a KV cache. Computed in float32 with an online (flash-attention style) softmax over key blocks, so no
/// <c>[heads, tokens, kvLength]</c> score matrix is ever stored.
/// </summary>
/// <remarks>
/// <para>Layouts (row-major): queries and outputs <c>[tokens, heads, headDim]</c>, keys and values
/// <c>[kvLength, kvHeads, headDim]</c>, log-sum-exp <c>[tokens, heads]</c>. The query of token <c>t</c> sits at
/// absolute position <c>startPosition + t</c> and attends to key rows <c>0 … startPosition + t</c> (causal mask);
/// query head <c>h</c> reads kv head <c>h / (heads / kvHeads)</c> (Hugging Face <c>repeat_kv</c>: consecutive
/// blocks of query heads share one kv head).</para>
/// <para>Key and value rows at or beyond <c>startPosition + tokens</c> are never read (they are masked for every
/// query), so <c>k</c> and <c>v</c> may be a cache with spare capacity.</para>
/// <para>With 512-bit vectors and a head dimension that is a multiple of 16 the forward computes four consecutive
/// query rows of a head together (each key loaded once for the four), with the one-row path's exact arithmetic, so a
/// row's result does not depend on which rows it was computed with.</para>
/// <para>With a <see cref="ComputePool"/> the forward runs (head, query-tile) items in parallel; the backward runs
/// (kv head, key-block) items that own their <c>dk</c>/<c>dv</c> rows and then (head, query-tile) items that own
/// their <c>dq</c> rows (reusing the dS the first pass stored when <c>heads · tokens · (startPosition + tokens)</c>
/// is at most 4 Mi floats, else recomputing it). Every value is computed by one item in a fixed order, so results
/// do not depend on the number of threads. With few query rows (decode) the forward instead runs
/// (kv head, 64-key block) items and merges their partial softmaxes per row in key order, bit-identical to the
/// row-parallel path.</para>
/// </remarks>
public static partial class Attention
{
    /// <summary>
    /// <c>output = softmax(scale · q·kᵀ + causal mask) · v</c> per query head, and optionally the row log-sum-exp of
    /// the scaled scores (kept by training for <c>Backward</c>).
    /// </summary>
    /// <param name="output">Result <c>[tokens, heads, headDim]</c> (overwritten). Must not overlap any input.</param>
    /// <param name="logSumExp">Empty, or <c>[tokens, heads]</c>: receives <c>log Σ_j exp(scale · q·k_j)</c> over the attended keys.</param>
    /// <param name="q">Queries <c>[tokens, heads, headDim]</c> at absolute positions <c>startPosition … startPosition + tokens − 1</c>.</param>
    /// <param name="k">Keys <c>[kvLength, kvHeads, headDim]</c> (at least that many elements; rows ≥ <c>startPosition + tokens</c> are not read).</param>
    /// <param name="v">Values, same layout as <paramref name="k"/>.</param>
    /// <param name="tokens">Number of query tokens (≥ 0).</param>
    /// <param name="startPosition">Absolute position of the first query (≥ 0).</param>
    /// <param name="kvLength">Rows in the KV cache (≥ <c>startPosition + tokens</c>).</param>
    /// <param name="heads">Query heads (a positive multiple of <paramref name="kvHeads"/>).</param>
    /// <param name="kvHeads">Key/value heads (≥ 1).</param>
    /// <param name="headDim">Elements per head (≥ 1).</param>
    /// <param name="scale">Score scale, usually <c>1/sqrt(headDim)</c>.</param>
    /// <param name="pool">Optional pool to run on; <see langword="null"/> runs on the calling thread.</param>
    /// <exception cref="ArgumentException">A span has the wrong length, or an output overlaps an input; the parameter name says which.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A shape argument is out of range.</exception>
    public static unsafe void Forward(
        Span<float> output,
        Span<float> logSumExp,
        ReadOnlySpan<float> q,
        ReadOnlySpan<float> k,
        ReadOnlySpan<float> v,
        int tokens,
        int startPosition,
        int kvLength,
        int heads,
        int kvHeads,
        int headDim,
        float scale,
        ComputePool? pool = null)
    {
        Shape shape = ValidateShape(tokens, startPosition, kvLength, heads, kvHeads, headDim);
        KernelChecks.Length(output.Length, shape.QueryCount, nameof(output), "tokens*heads*headDim");
        KernelChecks.Length(q.Length, shape.QueryCount, nameof(q), "tokens*heads*headDim");
        KernelChecks.AtLeast(k.Length, shape.KvCount, nameof(k), "kvLength*kvHeads*headDim");
        KernelChecks.AtLeast(v.Length, shape.KvCount, nameof(v), "kvLength*kvHeads*headDim");
        if (!logSumExp.IsEmpty)
        {
            KernelChecks.Length(logSumExp.Length, shape.RowCount, nameof(logSumExp), "tokens*heads (or empty)");
        }

        KernelChecks.NoOverlapAny(output, nameof(output), q, k, v, logSumExp);
        KernelChecks.NoOverlapAny(logSumExp, nameof(logSumExp), q, k, v);
        if (tokens == 0)
        {
            return;
        }

        if (pool is not null && pool.ThreadCount > 1 && shape.RowCount < 8 * pool.ThreadCount && startPosition + tokens > KeyBlock)
        {
            ForwardSplitKeys(output, logSumExp, q, k, v, tokens, startPosition, heads, kvHeads, headDim, scale, pool);
            return;
        }

        fixed (float* pOut = output)
        fixed (float* pLse = logSumExp)
        fixed (float* pQ = q)
        fixed (float* pK = k)
        fixed (float* pV = v)
        {
            int tileRows = ForwardTileRows(tokens, heads, pool);
            int tiles = (tokens + tileRows - 1) / tileRows;
            var job = new ForwardJob
            {
                Output = pOut,
                Lse = logSumExp.IsEmpty ? null : pLse,
                Q = pQ,
                K = pK,
                V = pV,
                Tokens = tokens,
                StartPosition = startPosition,
                Heads = heads,
                KvHeads = kvHeads,
                HeadDim = headDim,
                Group = heads / kvHeads,
                TileRows = tileRows,
                Tiles = tiles,
                Scale = scale,
            };
            ComputePool.Run(pool, heads * tiles, ref job);
        }
    }

    /// <summary>
    /// Forward for too few query rows to occupy the pool (decode): parallel over (kv head, key block), then a
    /// merge per row. Gives the same bits as the row-parallel path.
    /// </summary>
    private static unsafe void ForwardSplitKeys(Span<float> output, Span<float> logSumExp, ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, int tokens, int startPosition, int heads, int kvHeads, int headDim, float scale, ComputePool pool)
    {
        int blocks = (startPosition + tokens + KeyBlock - 1) / KeyBlock;
        int partialCount = checked(tokens * heads * blocks * (headDim + 2));
        float[] rented = ArrayPool<float>.Shared.Rent(partialCount);
        try
        {
            fixed (float* pOut = output)
            fixed (float* pLse = logSumExp)
            fixed (float* pQ = q)
            fixed (float* pK = k)
            fixed (float* pV = v)
            fixed (float* pPartials = rented)
            {
                var job = new DecodePartialJob
                {
                    Partials = pPartials,
                    Q = pQ,
                    K = pK,
                    V = pV,
                    Tokens = tokens,
                    StartPosition = startPosition,
                    Heads = heads,
                    KvHeads = kvHeads,
                    HeadDim = headDim,
                    Group = heads / kvHeads,
                    Blocks = blocks,
                    Scale = scale,
                };
                pool.For(kvHeads * blocks, ref job);
                MergePartials(pOut, logSumExp.IsEmpty ? null : pLse, pPartials, tokens, startPosition, heads, headDim, blocks);
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(rented);
        }
    }

    /// <summary>
    /// Gradients of <see cref="Forward"/>: ACCUMULATES (+=) into <paramref name="dq"/>, <paramref name="dk"/> and
    /// <paramref name="dv"/>. Probabilities are recomputed from <paramref name="logSumExp"/>, and
    /// <c>D = rowsum(dOutput ∘ output)</c> replaces <c>rowsum(dP ∘ P)</c>.
    /// </summary>
    /// <param name="dq">Query gradient <c>[tokens, heads, headDim]</c> (accumulated).</param>
    /// <param name="dk">Key gradient <c>[kvLength, kvHeads, headDim]</c> (at least that many elements; only rows
    /// <c>&lt; startPosition + tokens</c> change). For GQA a kv head's gradient is the sum over its query heads.</param>
    /// <param name="dv">Value gradient, same layout as <paramref name="dk"/>.</param>
    /// <param name="dOutput">Upstream gradient of the output <c>[tokens, heads, headDim]</c>.</param>
    /// <param name="output">The forward output.</param>
    /// <param name="logSumExp">The forward log-sum-exp <c>[tokens, heads]</c> (required).</param>
    /// <param name="q">Queries, as given to the forward.</param>
    /// <param name="k">Keys, as given to the forward.</param>
    /// <param name="v">Values, as given to the forward.</param>
    /// <param name="tokens">Number of query tokens (≥ 0).</param>
    /// <param name="startPosition">Absolute position of the first query (≥ 0).</param>
    /// <param name="kvLength">Rows in the KV cache (≥ <c>startPosition + tokens</c>).</param>
    /// <param name="heads">Query heads (a positive multiple of <paramref name="kvHeads"/>).</param>
    /// <param name="kvHeads">Key/value heads (≥ 1).</param>
    /// <param name="headDim">Elements per head (≥ 1).</param>
    /// <param name="scale">Score scale used by the forward.</param>
    /// <param name="pool">Optional pool to run on; <see langword="null"/> runs on the calling thread.</param>
    /// <exception cref="ArgumentException">A span has the wrong length, or a gradient overlaps another span; the parameter name says which.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A shape argument is out of range.</exception>
    public static unsafe void Backward(
        Span<float> dq,
        Span<float> dk,
        Span<float> dv,
        ReadOnlySpan<float> dOutput,
        ReadOnlySpan<float> output,
        ReadOnlySpan<float> logSumExp,
        ReadOnlySpan<float> q,
        ReadOnlySpan<float> k,
        ReadOnlySpan<float> v,
        int tokens,
        int startPosition,
        int kvLength,
        int heads,
        int kvHeads,
        int headDim,
        float scale,
        ComputePool? pool = null)
        => Backward(dq, dk, dv, dOutput, output, logSumExp, q, k, v, tokens, startPosition, kvLength, heads, kvHeads, headDim, scale, pool, MaxStoredScores);

    /// <summary><see cref="Backward(Span{float}, Span{float}, Span{float}, ReadOnlySpan{float}, ReadOnlySpan{float}, ReadOnlySpan{float}, ReadOnlySpan{float}, ReadOnlySpan{float}, ReadOnlySpan{float}, int, int, int, int, int, int, float, ComputePool?)"/>
    /// with the dS-storage limit as a parameter, so tests can force the recomputing path.</summary>
    internal static unsafe void Backward(
        Span<float> dq,
        Span<float> dk,
        Span<float> dv,
        ReadOnlySpan<float> dOutput,
        ReadOnlySpan<float> output,
        ReadOnlySpan<float> logSumExp,
        ReadOnlySpan<float> q,
        ReadOnlySpan<float> k,
        ReadOnlySpan<float> v,
        int tokens,
        int startPosition,
        int kvLength,
        int heads,
        int kvHeads,
        int headDim,
        float scale,
        ComputePool? pool,
        int maxStoredScores)
    {
        Shape shape = ValidateShape(tokens, startPosition, kvLength, heads, kvHeads, headDim);
        KernelChecks.Length(dq.Length, shape.QueryCount, nameof(dq), "tokens*heads*headDim");
        KernelChecks.AtLeast(dk.Length, shape.KvCount, nameof(dk), "kvLength*kvHeads*headDim");
        KernelChecks.AtLeast(dv.Length, shape.KvCount, nameof(dv), "kvLength*kvHeads*headDim");
        KernelChecks.Length(dOutput.Length, shape.QueryCount, nameof(dOutput), "tokens*heads*headDim");
        KernelChecks.Length(output.Length, shape.QueryCount, nameof(output), "tokens*heads*headDim");
        KernelChecks.Length(logSumExp.Length, shape.RowCount, nameof(logSumExp), "tokens*heads");
        KernelChecks.Length(q.Length, shape.QueryCount, nameof(q), "tokens*heads*headDim");
        KernelChecks.AtLeast(k.Length, shape.KvCount, nameof(k), "kvLength*kvHeads*headDim");
        KernelChecks.AtLeast(v.Length, shape.KvCount, nameof(v), "kvLength*kvHeads*headDim");
        KernelChecks.NoOverlapAny(dq, nameof(dq), dk, dv, dOutput, output, logSumExp, q, k, v);
        KernelChecks.NoOverlapAny(dk, nameof(dk), dv, dOutput, output, logSumExp, q, k, v);
        KernelChecks.NoOverlapAny(dv, nameof(dv), dOutput, output, logSumExp, q, k, v);
        if (tokens == 0)
        {
            return;
        }

        int keys = startPosition + tokens;
        long storedScores = (long)heads * tokens * keys;
        float[] rented = ArrayPool<float>.Shared.Rent(shape.RowCount);
        float[]? dsStore = storedScores <= maxStoredScores ? ArrayPool<float>.Shared.Rent((int)storedScores) : null;
        try
        {
            fixed (float* pDq = dq)
            fixed (float* pDk = dk)
            fixed (float* pDv = dv)
            fixed (float* pDo = dOutput)
            fixed (float* pO = output)
            fixed (float* pLse = logSumExp)
            fixed (float* pQ = q)
            fixed (float* pK = k)
            fixed (float* pV = v)
            fixed (float* pD = rented)
            fixed (float* pDs = dsStore)
            {
                // D[t, h] = dOutput[t, h] · output[t, h] (equals Σ_j P_j dP_j).
                for (int r = 0; r < shape.RowCount; r++)
                {
                    pD[r] = Dot(pDo + ((long)r * headDim), pO + ((long)r * headDim), headDim);
                }

                var common = new BackwardArgs
                {
                    Dq = pDq,
                    Dk = pDk,
                    Dv = pDv,
                    DOut = pDo,
                    Lse = pLse,
                    D = pD,
                    DsStore = pDs,
                    Keys = keys,
                    Q = pQ,
                    K = pK,
                    V = pV,
                    Tokens = tokens,
                    StartPosition = startPosition,
                    Heads = heads,
                    KvHeads = kvHeads,
                    HeadDim = headDim,
                    Group = heads / kvHeads,
                    Scale = scale,
                };

                int keyBlocks = (keys + BackwardKeyBlock - 1) / BackwardKeyBlock;
                var kvJob = new BackwardKvJob { Args = common };
                ComputePool.Run(pool, kvHeads * keyBlocks, ref kvJob);

                int tileRows = ForwardTileRows(tokens, heads, pool);
                int tiles = (tokens + tileRows - 1) / tileRows;
                var qJob = new BackwardQueryJob { Args = common, TileRows = tileRows, Tiles = tiles };
                ComputePool.Run(pool, heads * tiles, ref qJob);
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(rented);
            if (dsStore is not null)
            {
                ArrayPool<float>.Shared.Return(dsStore);
            }
        }
    }

    /// <summary>Query rows per forward work item: small tiles when there are few heads to spread over the threads.</summary>
    private static int ForwardTileRows(int tokens, int heads, ComputePool? pool)
    {
        if (pool is null || pool.ThreadCount == 1)
        {
            return tokens;
        }

        // Aim for at least ~8 items per thread so the causal imbalance (later rows see more keys) evens out.
        int wanted = pool.ThreadCount * 8;
        int tilesPerHead = Math.Max(1, (wanted + heads - 1) / heads);
        return Math.Max(4, (tokens + tilesPerHead - 1) / tilesPerHead);
    }

    private readonly record struct Shape(int QueryCount, int KvCount, int RowCount);

    private static Shape ValidateShape(int tokens, int startPosition, int kvLength, int heads, int kvHeads, int headDim)
    {
        KernelChecks.NonNegative(tokens, nameof(tokens));
        KernelChecks.NonNegative(startPosition, nameof(startPosition));
        KernelChecks.NonNegative(kvLength, nameof(kvLength));
        ArgumentOutOfRangeException.ThrowIfLessThan(heads, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(kvHeads, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(headDim, 1);
        if (heads % kvHeads != 0)
        {
            throw new ArgumentException($"heads ({heads}) must be a multiple of kvHeads ({kvHeads}).", nameof(heads));
        }

        if ((long)startPosition + tokens > kvLength)
        {
            throw new ArgumentOutOfRangeException(nameof(kvLength), kvLength, $"kvLength ({kvLength}) must be at least startPosition + tokens = {(long)startPosition + tokens}.");
        }

        long queryCount = (long)tokens * heads * headDim;
        long kvCount = (long)kvLength * kvHeads * headDim;
        if (queryCount > Array.MaxLength || kvCount > Array.MaxLength)
        {
            throw new ArgumentOutOfRangeException(nameof(tokens), "tokens*heads*headDim or kvLength*kvHeads*headDim exceeds the largest span length.");
        }

        return new Shape((int)queryCount, (int)kvCount, tokens * heads);
    }
}
