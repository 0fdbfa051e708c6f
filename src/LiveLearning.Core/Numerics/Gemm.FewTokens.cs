using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace LiveLearning.Numerics;

/// <summary>
/// The forward product for a few tokens (2..16): the weight is streamed once per group of four tokens and dotted
/// with each token in registers, instead of filling a 32-token register tile that would be mostly padding.
/// </summary>
public static unsafe partial class Gemm
{
    /// <summary>Largest token count that takes the few-token path.</summary>
    private const int FewTokensMax = 16;

    /// <summary>Whether <see cref="FewTokens{TLoad}"/> handles this product (AVX-512 only; other widths use the tile).</summary>
    private static bool UseFewTokens(int tokens) => Vector512.IsHardwareAccelerated && tokens >= 2 && tokens <= FewTokensMax;

    private static void FewTokensCore(float* y, float* x, byte* w, WeightType type, int tokens, int outF, int inF, bool accumulate, ComputePool? pool)
    {
        switch (type)
        {
            case WeightType.F32:
                FewTokens<LoadF32>(y, x, w, 4, tokens, outF, inF, accumulate, pool);
                break;
            case WeightType.BF16:
                FewTokens<LoadBF16>(y, x, w, 2, tokens, outF, inF, accumulate, pool);
                break;
            default:
                FewTokens<LoadF16>(y, x, w, 2, tokens, outF, inF, accumulate, pool);
                break;
        }
    }

    private static void FewTokens<TLoad>(float* y, float* x, byte* w, int elementSize, int tokens, int outF, int inF, bool accumulate, ComputePool? pool)
        where TLoad : struct, IWeightLoad
    {
        int groups = (outF + GemvRows - 1) / GemvRows;
        var job = new FewTokensJob<TLoad>
        {
            Y = y,
            X = x,
            W = w,
            Tokens = tokens,
            Rows = outF,
            Cols = inF,
            RowBytes = (nint)inF * elementSize,
            Accumulate = accumulate,
            Groups = groups,
        };
        job.Items = ItemCount(groups, (long)tokens * outF * inF, pool);
        ComputePool.Run(pool, job.Items, ref job);
    }

    /// <summary>
    /// <c>y[t, r] (+)= Σ_i w[r, i]·x[t, i]</c> for <c>r &lt; TRows</c>, <c>t &lt; TTokens</c>: one accumulator per
    /// (row, token), 16 lanes, then a lane sum and a scalar tail. Every element gets the same operations whatever
    /// the grouping, so the thread split never changes a result.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void FewTokensKernel<TLoad, TRows, TTokens>(byte* w, nint rowBytes, float* x, nint ldx, int n, float* y, nint ldy, bool accumulate)
        where TLoad : struct, IWeightLoad
        where TRows : struct, IRows
        where TTokens : struct, IRows
    {
        byte* w0 = w, w1 = w + rowBytes, w2 = w + (2 * rowBytes), w3 = w + (3 * rowBytes);
        float* x0 = x, x1 = x + ldx, x2 = x + (2 * ldx), x3 = x + (3 * ldx);
        Vector512<float> c00 = default, c01 = default, c02 = default, c03 = default, c10 = default, c11 = default, c12 = default, c13 = default;
        Vector512<float> c20 = default, c21 = default, c22 = default, c23 = default, c30 = default, c31 = default, c32 = default, c33 = default;
        nint i = 0;
        for (; i <= n - 16; i += 16)
        {
            Vector512<float> a0 = Vector512.Load(x0 + i);
            Vector512<float> a1 = TTokens.Value > 1 ? Vector512.Load(x1 + i) : default;
            Vector512<float> a2 = TTokens.Value > 2 ? Vector512.Load(x2 + i) : default;
            Vector512<float> a3 = TTokens.Value > 3 ? Vector512.Load(x3 + i) : default;
            Vector512<float> b = TLoad.Load16(w0, i);
            c00 = Vector512.FusedMultiplyAdd(b, a0, c00);
            if (TTokens.Value > 1) { c01 = Vector512.FusedMultiplyAdd(b, a1, c01); }
            if (TTokens.Value > 2) { c02 = Vector512.FusedMultiplyAdd(b, a2, c02); }
            if (TTokens.Value > 3) { c03 = Vector512.FusedMultiplyAdd(b, a3, c03); }
            if (TRows.Value > 1)
            {
                b = TLoad.Load16(w1, i);
                c10 = Vector512.FusedMultiplyAdd(b, a0, c10);
                if (TTokens.Value > 1) { c11 = Vector512.FusedMultiplyAdd(b, a1, c11); }
                if (TTokens.Value > 2) { c12 = Vector512.FusedMultiplyAdd(b, a2, c12); }
                if (TTokens.Value > 3) { c13 = Vector512.FusedMultiplyAdd(b, a3, c13); }
            }

            if (TRows.Value > 2)
            {
                b = TLoad.Load16(w2, i);
                c20 = Vector512.FusedMultiplyAdd(b, a0, c20);
                if (TTokens.Value > 1) { c21 = Vector512.FusedMultiplyAdd(b, a1, c21); }
                if (TTokens.Value > 2) { c22 = Vector512.FusedMultiplyAdd(b, a2, c22); }
                if (TTokens.Value > 3) { c23 = Vector512.FusedMultiplyAdd(b, a3, c23); }
            }

            if (TRows.Value > 3)
            {
                b = TLoad.Load16(w3, i);
                c30 = Vector512.FusedMultiplyAdd(b, a0, c30);
                if (TTokens.Value > 1) { c31 = Vector512.FusedMultiplyAdd(b, a1, c31); }
                if (TTokens.Value > 2) { c32 = Vector512.FusedMultiplyAdd(b, a2, c32); }
                if (TTokens.Value > 3) { c33 = Vector512.FusedMultiplyAdd(b, a3, c33); }
            }
        }

        Finish<TLoad, TTokens>(c00, c01, c02, c03, w0, x, ldx, i, n, y, ldy, accumulate);
        if (TRows.Value > 1) { Finish<TLoad, TTokens>(c10, c11, c12, c13, w1, x, ldx, i, n, y + 1, ldy, accumulate); }
        if (TRows.Value > 2) { Finish<TLoad, TTokens>(c20, c21, c22, c23, w2, x, ldx, i, n, y + 2, ldy, accumulate); }
        if (TRows.Value > 3) { Finish<TLoad, TTokens>(c30, c31, c32, c33, w3, x, ldx, i, n, y + 3, ldy, accumulate); }
    }

    /// <summary>Lane sums, the scalar tail from <paramref name="i"/>, and the store of one weight row's outputs.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Finish<TLoad, TTokens>(Vector512<float> c0, Vector512<float> c1, Vector512<float> c2, Vector512<float> c3, byte* row, float* x, nint ldx, nint i, int n, float* y, nint ldy, bool accumulate)
        where TLoad : struct, IWeightLoad
        where TTokens : struct, IRows
    {
        for (int t = 0; t < TTokens.Value; t++)
        {
            float s = Vector512.Sum(t == 0 ? c0 : t == 1 ? c1 : t == 2 ? c2 : c3);
            float* xt = x + (t * ldx);
            for (nint j = i; j < n; j++)
            {
                s += TLoad.Load1(row, j) * xt[j];
            }

            float* d = y + (t * ldy);
            *d = accumulate ? *d + s : s;
        }
    }

    private struct FewTokensJob<TLoad> : IParallelJob
        where TLoad : struct, IWeightLoad
    {
        public float* Y;
        public float* X;
        public byte* W;
        public int Tokens;
        public int Rows;
        public int Cols;
        public nint RowBytes;
        public bool Accumulate;
        public int Groups;
        public int Items;

        public readonly void Execute(int index)
        {
            (int first, int last) = ComputePool.ItemRange(Groups, index, Items);
            for (int g = first; g < last; g++)
            {
                int r0 = g * GemvRows;
                byte* w = W + (r0 * RowBytes);
                int rows = Math.Min(GemvRows, Rows - r0);
                for (int t0 = 0; t0 < Tokens; t0 += 4)
                {
                    float* x = X + ((nint)t0 * Cols);
                    float* y = Y + ((nint)t0 * Rows) + r0;
                    switch (Math.Min(4, Tokens - t0))
                    {
                        case 4: Rows4<R4>(w, x, y, rows); break;
                        case 3: Rows4<R3>(w, x, y, rows); break;
                        case 2: Rows4<R2>(w, x, y, rows); break;
                        default: Rows4<R1>(w, x, y, rows); break;
                    }
                }
            }
        }

        private readonly void Rows4<TTokens>(byte* w, float* x, float* y, int rows)
            where TTokens : struct, IRows
        {
            switch (rows)
            {
                case 4: FewTokensKernel<TLoad, R4, TTokens>(w, RowBytes, x, Cols, Cols, y, Rows, Accumulate); break;
                case 3: FewTokensKernel<TLoad, R3, TTokens>(w, RowBytes, x, Cols, Cols, y, Rows, Accumulate); break;
                case 2: FewTokensKernel<TLoad, R2, TTokens>(w, RowBytes, x, Cols, Cols, y, Rows, Accumulate); break;
                default: FewTokensKernel<TLoad, R1, TTokens>(w, RowBytes, x, Cols, Cols, y, Rows, Accumulate); break;
            }
        }
    }
}
