using System.Buffers;

namespace LiveLearning.Numerics;

/// <summary>
/// Fused LoRA forward and backward passes for one adapted linear layer (ranks 1 to 128), following the PEFT layout:
/// <c>a</c> is <c>lora_A.weight</c> <c>[rank, in]</c>, <c>b</c> is <c>lora_B.weight</c> <c>[out, rank]</c>, activations are
/// <c>[tokens, features]</c>, all row-major float32.
/// </summary>
/// <remarks>
/// <para>The forward computes a token tile of <c>h = x·Aᵀ</c> and immediately applies B to that tile while it is hot, so
/// x is read once and y is read and written once. The backward computes <c>dH</c> for a token tile and folds it into
/// <c>dx</c> straight away; <c>dB</c> (a reduction over tokens) is split over the output features, and <c>dA</c> over the
/// input features once every <c>dH</c> row exists, all in one dispatch.</para>
/// <para>Work is split over tokens for per-token results and over feature columns for the reductions, and every
/// element is computed by the same operations wherever the split falls, so results are bitwise identical between
/// runs and for any thread count (including no pool).</para>
/// </remarks>
public static unsafe partial class LoraKernels
{
    /// <summary>The largest rank the kernels accept.</summary>
    public const int MaxRank = 128;

    // Below this many tokens the forward applies B without transposing it (the copy would cost more than it saves).
    private const int DotFormTokens = 4;

    // Below this many elements of B the [rank, out] copy is made on the calling thread rather than on the pool.
    private const int ParallelTransposeElements = 32 * 1024;

    /// <summary>
    /// LoRA forward: <c>h[t, r] = Σ_i x[t, i]·a[r, i]</c> (written) and <c>y[t, o] += scale · Σ_r h[t, r]·b[o, r]</c> (accumulated).
    /// </summary>
    /// <param name="y">Output <c>[tokens, outFeatures]</c>, accumulated into (usually already holds the base layer's output).</param>
    /// <param name="h">Output <c>[tokens, rank]</c>, overwritten with <c>x·Aᵀ</c>; keep it for <see cref="Backward"/>.</param>
    /// <param name="x">Input <c>[tokens, inFeatures]</c> (after any dropout).</param>
    /// <param name="a">LoRA A, <c>[rank, inFeatures]</c>.</param>
    /// <param name="b">LoRA B, <c>[outFeatures, rank]</c>.</param>
    /// <param name="tokens">Number of token rows.</param>
    /// <param name="inFeatures">Input features.</param>
    /// <param name="outFeatures">Output features.</param>
    /// <param name="rank">LoRA rank, 1 to <see cref="MaxRank"/>.</param>
    /// <param name="scale">The LoRA scaling (e.g. <c>alpha / rank</c>).</param>
    /// <param name="pool">Threads to use, or <see langword="null"/> to run on the calling thread.</param>
    /// <exception cref="ArgumentOutOfRangeException">A size is negative or <paramref name="rank"/> is outside 1 to <see cref="MaxRank"/>.</exception>
    /// <exception cref="ArgumentException">A span's length does not match the shapes, or an output overlaps another argument.</exception>
    public static void Forward(Span<float> y, Span<float> h, ReadOnlySpan<float> x, ReadOnlySpan<float> a, ReadOnlySpan<float> b, int tokens, int inFeatures, int outFeatures, int rank, float scale, ComputePool? pool = null)
    {
        ValidateForward(y, h, x, a, b, tokens, inFeatures, outFeatures, rank);
        if (tokens == 0)
        {
            return;
        }

        if (tokens < DotFormTokens && (tokens == 1 || rank >= VectorFloats))
        {
            // Decoding: too few tokens to pay for the [rank, out] copy of B; apply B as one short dot per output
            // (for a few tokens only when the rank fills a vector, else the dots run scalar and the copy wins).
            fixed (float* py = y, ph = h, px = x, pa = a, pb = b)
            {
                DotRows(ph, px, inFeatures, tokens, pa, rank, inFeatures, 1f);
                DotRows(py, ph, rank, tokens, pb, outFeatures, rank, scale, accumulate: true);
            }

            return;
        }

        int threads = pool?.ThreadCount ?? 1;
        float[] scratch = ArrayPool<float>.Shared.Rent(Math.Max(1, outFeatures * rank));
        try
        {
            fixed (float* py = y, ph = h, px = x, pa = a, pb = b, pbt = scratch)
            {
                TransposeB(pbt, pb, outFeatures, rank, threads, pool);
                int tile = TokenTile(tokens, threads);
                var job = new ForwardJob
                {
                    Y = py,
                    H = ph,
                    X = px,
                    A = pa,
                    Bt = pbt,
                    Tokens = tokens,
                    InFeatures = inFeatures,
                    OutFeatures = outFeatures,
                    Rank = rank,
                    Scale = scale,
                    Tile = tile,
                };
                ComputePool.Run(pool, CeilDiv(tokens, tile), ref job);
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(scratch);
        }
    }

    /// <summary>
    /// LoRA backward, given <paramref name="dy"/> and the forward's <paramref name="x"/> and <paramref name="h"/>:
    /// <c>dH = scale·dy·B</c> (written to <paramref name="dh"/>), <c>dB += scale·dyᵀ·h</c>, <c>dA += dHᵀ·x</c>,
    /// <c>dx += dH·A</c> (skipped when <paramref name="dx"/> is empty).
    /// </summary>
    /// <param name="dA">Gradient of A, <c>[rank, inFeatures]</c>, accumulated into.</param>
    /// <param name="dB">Gradient of B, <c>[outFeatures, rank]</c>, accumulated into.</param>
    /// <param name="dx">Gradient of x, <c>[tokens, inFeatures]</c>, accumulated into; empty to skip it.</param>
    /// <param name="dh">Scratch <c>[tokens, rank]</c>, overwritten with <c>dH</c>.</param>
    /// <param name="dy">Gradient of y, <c>[tokens, outFeatures]</c>.</param>
    /// <param name="x">The forward's input, <c>[tokens, inFeatures]</c>.</param>
    /// <param name="h">The forward's <c>h</c>, <c>[tokens, rank]</c>.</param>
    /// <param name="a">LoRA A, <c>[rank, inFeatures]</c>.</param>
    /// <param name="b">LoRA B, <c>[outFeatures, rank]</c>.</param>
    /// <param name="tokens">Number of token rows.</param>
    /// <param name="inFeatures">Input features.</param>
    /// <param name="outFeatures">Output features.</param>
    /// <param name="rank">LoRA rank, 1 to <see cref="MaxRank"/>.</param>
    /// <param name="scale">The LoRA scaling used in the forward.</param>
    /// <param name="pool">Threads to use, or <see langword="null"/> to run on the calling thread.</param>
    /// <exception cref="ArgumentOutOfRangeException">A size is negative or <paramref name="rank"/> is outside 1 to <see cref="MaxRank"/>.</exception>
    /// <exception cref="ArgumentException">A span's length does not match the shapes, or an output overlaps another argument.</exception>
    public static void Backward(Span<float> dA, Span<float> dB, Span<float> dx, Span<float> dh, ReadOnlySpan<float> dy, ReadOnlySpan<float> x, ReadOnlySpan<float> h, ReadOnlySpan<float> a, ReadOnlySpan<float> b, int tokens, int inFeatures, int outFeatures, int rank, float scale, ComputePool? pool = null)
    {
        ValidateBackward(dA, dB, dx, dh, dy, x, h, a, b, tokens, inFeatures, outFeatures, rank);
        if (tokens == 0)
        {
            return;
        }

        int threads = pool?.ThreadCount ?? 1;
        float[] scratch = ArrayPool<float>.Shared.Rent(Math.Max(1, outFeatures * rank));
        try
        {
            fixed (float* pdA = dA, pdB = dB, pdx = dx, pdh = dh, pdy = dy, px = x, ph = h, pa = a, pb = b, pbt = scratch)
            {
                TransposeB(pbt, pb, outFeatures, rank, threads, pool);
                int tile = TokenTile(tokens, threads);
                int oChunk = ColumnChunk(outFeatures, threads);
                int iChunk = ColumnChunk(inFeatures, threads);
                int tilesDone = 0;
                var job = new BackwardJob
                {
                    DA = pdA,
                    DB = pdB,
                    Dx = dx.IsEmpty ? null : pdx,
                    Dh = pdh,
                    Dy = pdy,
                    X = px,
                    H = ph,
                    A = pa,
                    Bt = pbt,
                    Tokens = tokens,
                    InFeatures = inFeatures,
                    OutFeatures = outFeatures,
                    Rank = rank,
                    Scale = scale,
                    Tile = tile,
                    TileCount = CeilDiv(tokens, tile),
                    OutChunk = oChunk,
                    OutChunkCount = CeilDiv(outFeatures, oChunk),
                    InChunk = iChunk,
                    TilesDone = &tilesDone,
                };
                ComputePool.Run(pool, job.TileCount + job.OutChunkCount + CeilDiv(inFeatures, iChunk), ref job);
            }
        }

        finally
        {
            ArrayPool<float>.Shared.Return(scratch);
        }
    }

    internal static void ValidateForward(ReadOnlySpan<float> y, ReadOnlySpan<float> h, ReadOnlySpan<float> x, ReadOnlySpan<float> a, ReadOnlySpan<float> b, int tokens, int inFeatures, int outFeatures, int rank)
    {
        ValidateSizes(tokens, inFeatures, outFeatures, rank);
        KernelChecks.Shape(y, tokens, outFeatures, nameof(y), "tokens*outFeatures");
        KernelChecks.Shape(h, tokens, rank, nameof(h), "tokens*rank");
        KernelChecks.Shape(x, tokens, inFeatures, nameof(x), "tokens*inFeatures");
        KernelChecks.Shape(a, rank, inFeatures, nameof(a), "rank*inFeatures");
        KernelChecks.Shape(b, outFeatures, rank, nameof(b), "outFeatures*rank");
        KernelChecks.SeparateOutput(y, h, nameof(y), nameof(h));
        KernelChecks.SeparateOutput(y, x, nameof(y), nameof(x));
        KernelChecks.SeparateOutput(y, a, nameof(y), nameof(a));
        KernelChecks.SeparateOutput(y, b, nameof(y), nameof(b));
        KernelChecks.SeparateOutput(h, x, nameof(h), nameof(x));
        KernelChecks.SeparateOutput(h, a, nameof(h), nameof(a));
        KernelChecks.SeparateOutput(h, b, nameof(h), nameof(b));
    }

    internal static void ValidateBackward(ReadOnlySpan<float> dA, ReadOnlySpan<float> dB, ReadOnlySpan<float> dx, ReadOnlySpan<float> dh, ReadOnlySpan<float> dy, ReadOnlySpan<float> x, ReadOnlySpan<float> h, ReadOnlySpan<float> a, ReadOnlySpan<float> b, int tokens, int inFeatures, int outFeatures, int rank)
    {
        ValidateSizes(tokens, inFeatures, outFeatures, rank);
        KernelChecks.Shape(dA, rank, inFeatures, nameof(dA), "rank*inFeatures");
        KernelChecks.Shape(dB, outFeatures, rank, nameof(dB), "outFeatures*rank");
        if (!dx.IsEmpty)
        {
            KernelChecks.Shape(dx, tokens, inFeatures, nameof(dx), "tokens*inFeatures (or 0 to skip dx)");
        }

        KernelChecks.Shape(dh, tokens, rank, nameof(dh), "tokens*rank");
        KernelChecks.Shape(dy, tokens, outFeatures, nameof(dy), "tokens*outFeatures");
        KernelChecks.Shape(x, tokens, inFeatures, nameof(x), "tokens*inFeatures");
        KernelChecks.Shape(h, tokens, rank, nameof(h), "tokens*rank");
        KernelChecks.Shape(a, rank, inFeatures, nameof(a), "rank*inFeatures");
        KernelChecks.Shape(b, outFeatures, rank, nameof(b), "outFeatures*rank");

        // Outputs may overlap neither each other nor any input.
        CheckOutputOverlaps(dA, nameof(dA), dB, dx, dh, dy, x, h, a, b);
        CheckOutputOverlaps(dB, nameof(dB), dA, dx, dh, dy, x, h, a, b);
        CheckOutputOverlaps(dx, nameof(dx), dA, dB, dh, dy, x, h, a, b);
        CheckOutputOverlaps(dh, nameof(dh), dA, dB, dx, dy, x, h, a, b);
    }

    private static void CheckOutputOverlaps(ReadOnlySpan<float> output, string name, ReadOnlySpan<float> o1, ReadOnlySpan<float> o2, ReadOnlySpan<float> o3, ReadOnlySpan<float> dy, ReadOnlySpan<float> x, ReadOnlySpan<float> h, ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        if (output.Overlaps(o1) || output.Overlaps(o2) || output.Overlaps(o3))
        {
            throw new ArgumentException($"{name} overlaps another gradient output; the outputs must be separate buffers.", name);
        }

        KernelChecks.SeparateOutput(output, dy, name, nameof(dy));
        KernelChecks.SeparateOutput(output, x, name, nameof(x));
        KernelChecks.SeparateOutput(output, h, name, nameof(h));
        KernelChecks.SeparateOutput(output, a, name, nameof(a));
        KernelChecks.SeparateOutput(output, b, name, nameof(b));
    }

    private static void ValidateSizes(int tokens, int inFeatures, int outFeatures, int rank)
    {
        KernelChecks.NonNegative(tokens, nameof(tokens));
        KernelChecks.NonNegative(inFeatures, nameof(inFeatures));
        KernelChecks.NonNegative(outFeatures, nameof(outFeatures));
        if (rank < 1 || rank > MaxRank)
        {
            throw new ArgumentOutOfRangeException(nameof(rank), rank, $"rank must be between 1 and {MaxRank}.");
        }
    }

    private static int CeilDiv(int value, int divisor) => (value + divisor - 1) / divisor;

    /// <summary>Tokens per work item: a multiple of 4 (the register block), about four items per thread, at most 64.</summary>
    private static int TokenTile(int tokens, int threads)
    {
        int tile = CeilDiv(tokens, 4 * threads);
        tile = (tile + 3) & ~3;
        return Math.Clamp(tile, 4, 64);
    }

    /// <summary>Columns per work item for the reductions over tokens: a multiple of 64 so every column keeps the same
    /// vector-or-tail treatment whatever the split.</summary>
    private static int ColumnChunk(int columns, int threads)
    {
        int chunk = CeilDiv(columns, 4 * threads);
        chunk = (chunk + 63) & ~63;
        return Math.Max(chunk, 64);
    }

    private static void TransposeB(float* bt, float* b, int outFeatures, int rank, int threads, ComputePool? pool)
    {
        if (pool is null || threads == 1 || outFeatures * rank < ParallelTransposeElements)
        {
            Transpose(bt, b, outFeatures, rank, 0, outFeatures);
            return;
        }

        int chunk = CeilDiv(outFeatures, 2 * threads);
        var job = new TransposeJob { Bt = bt, B = b, OutFeatures = outFeatures, Rank = rank, Chunk = chunk };
        pool.For(CeilDiv(outFeatures, chunk), ref job);
    }

    private struct TransposeJob : IParallelJob
    {
        public float* Bt;
        public float* B;
        public int OutFeatures;
        public int Rank;
        public int Chunk;

        public readonly void Execute(int index)
        {
            int o0 = index * Chunk;
            Transpose(Bt, B, OutFeatures, Rank, o0, Math.Min(OutFeatures, o0 + Chunk));
        }
    }

    private struct ForwardJob : IParallelJob
    {
        public float* Y;
        public float* H;
        public float* X;
        public float* A;
        public float* Bt;
        public int Tokens;
        public int InFeatures;
        public int OutFeatures;
        public int Rank;
        public float Scale;
        public int Tile;

        public readonly void Execute(int index)
        {
            int t0 = index * Tile;
            int rows = Math.Min(Tile, Tokens - t0);
            float* h = H + ((long)t0 * Rank);
            DotRows(h, X + ((long)t0 * InFeatures), InFeatures, rows, A, Rank, InFeatures, 1f);
            AddRowsTimesMatrix(Y + ((long)t0 * OutFeatures), OutFeatures, h, rows, Bt, Rank, OutFeatures, Scale);
        }
    }

    /// <summary>
    /// One dispatch for the whole backward. Items in index order: token tiles (dH, then dx from the hot dH tile),
    /// dB column chunks, dA column chunks. dA items wait for every tile to finish. This cannot deadlock as long as
    /// each thread runs the items it takes in increasing index order (the pool claims them from a shared counter,
    /// and runs them inline in order without a pool): a waiting thread never holds an unstarted tile.
    /// </summary>
    private struct BackwardJob : IParallelJob
    {
        public float* DA;
        public float* DB;
        public float* Dx;
        public float* Dh;
        public float* Dy;
        public float* X;
        public float* H;
        public float* A;
        public float* Bt;
        public int Tokens;
        public int InFeatures;
        public int OutFeatures;
        public int Rank;
        public float Scale;
        public int Tile;
        public int TileCount;
        public int OutChunk;
        public int OutChunkCount;
        public int InChunk;
        public int* TilesDone;

        public readonly void Execute(int index)
        {
            if (index < TileCount)
            {
                try
                {
                    int t0 = index * Tile;
                    int rows = Math.Min(Tile, Tokens - t0);
                    float* dh = Dh + ((long)t0 * Rank);
                    DotRows(dh, Dy + ((long)t0 * OutFeatures), OutFeatures, rows, Bt, Rank, OutFeatures, Scale);
                    if (Dx is not null)
                    {
                        AddRowsTimesMatrix(Dx + ((long)t0 * InFeatures), InFeatures, dh, rows, A, Rank, InFeatures, 1f);
                    }
                }
                finally
                {
                    // Counted even on failure so dA items never wait forever; the pool rethrows the exception.
                    Interlocked.Increment(ref *TilesDone);
                }

                return;
            }

            index -= TileCount;
            if (index < OutChunkCount)
            {
                // dB[o, r] += scale · Σ_t dy[t, o]·h[t, r] for a chunk of output features.
                int o0 = index * OutChunk;
                AccumulateProduct(DB, 0, transposed: true, H, Dy, OutFeatures, Tokens, Rank, o0, Math.Min(OutFeatures, o0 + OutChunk), Scale);
                return;
            }

            // dA[r, i] += Σ_t dH[t, r]·x[t, i] for a chunk of input features, once every dH row exists.
            var spin = default(SpinWait);
            while (Volatile.Read(ref *TilesDone) < TileCount)
            {
                spin.SpinOnce(sleep1Threshold: -1);
            }

            int i0 = (index - OutChunkCount) * InChunk;
            AccumulateProduct(DA, InFeatures, transposed: false, Dh, X, InFeatures, Tokens, Rank, i0, Math.Min(InFeatures, i0 + InChunk), 1f);
        }
    }
}
