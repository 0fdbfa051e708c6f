using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace LiveLearning.Numerics;

/// <content>
/// The backward key/value pass as register tiles. One work item owns <see cref="BackwardKeyBlock"/> keys of one kv
/// head; it transposes their keys and values once (<c>kᵀ, vᵀ [headDim, 16]</c>, zero past the last key), so a tile
/// of <see cref="ScoreTileRows"/> query rows gets its scores <c>S = q·kᵀ</c> and <c>dP = dO·vᵀ</c> as one vector of keys per
/// row, accumulated over the head dimension with a broadcast of each query element; then <c>P = exp(scale·S − lse)</c>,
/// <c>dS = P∘(dP − D)</c>, and the key and value gradients <c>dv_j += Σ_t P_tj·dO_t</c>, <c>dk_j += Σ_t dS_tj·q_t</c>
/// with each tile's rows added to an accumulator row in one pass.
/// </content>
/// <remarks>
/// Every score lane is one key's dot product summed over the head dimension in order, and every gradient element a
/// chain over (head, query) in order, whichever tile or code path (full tile or remainder) computes it; items are
/// fixed by the shape, so results do not depend on the number of threads.
/// </remarks>
public static partial class Attention
{
    /// <summary>Key rows per backward (kv head, key-block) work item: the lanes of one score vector row.</summary>
    private const int BackwardKeyBlock = 16;

    /// <summary>Query rows per backward score tile.</summary>
    private const int ScoreTileRows = 8;

    /// <summary>Head dimensions up to this keep the backward item's scratch on the stack (4·16·128 + 2·8·16 floats, about 33 KB).</summary>
    private const int MaxStackTileHeadDim = 128;

    /// <summary>
    /// Owns key rows <c>[kb·B, (kb+1)·B)</c> of one kv head: sums <c>dv_j = Σ P·dO</c> and <c>dk_j = scale · Σ dS·q</c>
    /// over every query head of the group and every query that sees the key, and stores dS for the query pass.
    /// </summary>
    private unsafe struct BackwardKvJob : IParallelJob
    {
        public BackwardArgs Args;

        public void Execute(int index)
        {
            if (Vector512.IsHardwareAccelerated)
            {
                Run<Vector512<float>, V512>(index);
            }
            else if (Vector256.IsHardwareAccelerated)
            {
                Run<Vector256<float>, V256>(index);
            }
            else if (Vector128.IsHardwareAccelerated)
            {
                Run<Vector128<float>, V128>(index);
            }
            else
            {
                Run<float, Scalar>(index);
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private readonly void Run<TV, TOps>(int index)
            where TV : struct
            where TOps : struct, IVecOps<TV>
        {
            const int keyBlock = BackwardKeyBlock;
            ref readonly BackwardArgs a = ref Args;
            int kb = index / a.KvHeads;
            int g = index % a.KvHeads;
            int d = a.HeadDim;
            int kvStride = a.KvHeads * d;
            int qStride = a.Heads * d;
            int j0 = kb * keyBlock;
            int c = Math.Min(a.StartPosition + a.Tokens, j0 + keyBlock) - j0;

            // Scratch: kᵀ and vᵀ [d, B], dk and dv accumulators [B, d], score tiles [ScoreTileRows, B] for P and dP/dS.
            int scratchLength = (4 * d * keyBlock) + (2 * ScoreTileRows * keyBlock);
            float[]? rented = d <= MaxStackTileHeadDim ? null : ArrayPool<float>.Shared.Rent(scratchLength);
            Span<float> scratch = rented is null ? stackalloc float[scratchLength] : rented.AsSpan(0, scratchLength);
            try
            {
                fixed (float* kt = scratch)
                {
                    float* vt = kt + (d * keyBlock);
                    float* dkAcc = vt + (d * keyBlock);
                    float* dvAcc = dkAcc + (d * keyBlock);
                    float* p = dvAcc + (d * keyBlock);
                    float* ds = p + (ScoreTileRows * keyBlock);
                    new Span<float>(kt, 4 * d * keyBlock).Clear();
                    float* k0 = a.K + ((long)j0 * kvStride) + ((long)g * d);
                    float* v0 = a.V + ((long)j0 * kvStride) + ((long)g * d);
                    for (int jj = 0; jj < c; jj++)
                    {
                        float* kr = k0 + ((long)jj * kvStride);
                        float* vr = v0 + ((long)jj * kvStride);
                        for (int e = 0; e < d; e++)
                        {
                            kt[(e * keyBlock) + jj] = kr[e];
                            vt[(e * keyBlock) + jj] = vr[e];
                        }
                    }

                    int tStart = Math.Max(0, j0 - a.StartPosition);
                    for (int h = g * a.Group; h < (g + 1) * a.Group; h++)
                    {
                        for (int t0 = tStart; t0 < a.Tokens; t0 += ScoreTileRows)
                        {
                            int rows = Math.Min(ScoreTileRows, a.Tokens - t0);
                            float* q0 = a.Q + ((long)t0 * qStride) + ((long)h * d);
                            float* do0 = a.DOut + ((long)t0 * qStride) + ((long)h * d);
                            ScoreTile<TV, TOps>(p, q0, qStride, rows, kt, d);
                            ScoreTile<TV, TOps>(ds, do0, qStride, rows, vt, d);
                            // P = exp(scale·S − lse) and dS = P∘(dP − D), a vector of keys per row. Lanes of keys a row does
                            // not see (past the causal diagonal or the block's last key) get values nobody reads: the
                            // accumulation below starts each key at its first visible row, and only visible dS is stored.
                            TV vScale = TOps.Splat(a.Scale);
                            for (int r = 0; r < rows; r++)
                            {
                                int t = t0 + r;
                                long row = ((long)t * a.Heads) + h;
                                float* pr = p + (r * keyBlock);
                                float* dr = ds + (r * keyBlock);
                                TV lse = TOps.Splat(-a.Lse[row]);
                                TV dRow = TOps.Splat(a.D[row]);
                                for (int v = 0; v < keyBlock; v += TOps.Count)
                                {
                                    TV e = TOps.Exp(TOps.Fma(vScale, TOps.Load(pr + v), lse));
                                    TOps.Store(e, pr + v);
                                    TOps.Store(TOps.Multiply(e, TOps.Subtract(TOps.Load(dr + v), dRow)), dr + v);
                                }

                                if (a.DsStore != null)
                                {
                                    int visible = Math.Min(c, a.StartPosition + t + 1 - j0);
                                    float* store = a.DsStore + ((((long)h * a.Tokens) + t) * a.Keys) + j0;
                                    for (int jj = 0; jj < visible; jj++)
                                    {
                                        store[jj] = dr[jj];
                                    }
                                }
                            }

                            // Row r sees key jj when j0 + jj ≤ startPosition + t0 + r.
                            int firstRowOfKey0 = j0 - a.StartPosition - t0;
                            AccumulateTile<TV, TOps>(dvAcc, p, do0, qStride, rows, c, firstRowOfKey0, d);
                            AccumulateTile<TV, TOps>(dkAcc, ds, q0, qStride, rows, c, firstRowOfKey0, d);
                        }
                    }

                    for (int jj = 0; jj < c; jj++)
                    {
                        long at = ((long)(j0 + jj) * kvStride) + ((long)g * d);
                        AddScaled(a.Dk + at, a.Scale, dkAcc + (jj * d), d);
                        AddScaled(a.Dv + at, 1f, dvAcc + (jj * d), d);
                    }
                }
            }
            finally
            {
                if (rented is not null)
                {
                    ArrayPool<float>.Shared.Return(rented);
                }
            }
        }
    }

    /// <summary>
    /// <c>dst[r, j] = Σ_e x_r[e] · xt[e, j]</c> for <paramref name="rows"/> rows <c>x_r = x + r·stride</c> and the
    /// <see cref="BackwardKeyBlock"/> columns of <paramref name="xt"/> (<c>[d, 16]</c>): one vector of keys per row,
    /// a broadcast of each row element, eight rows sharing each load of <paramref name="xt"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void ScoreTile<TV, TOps>(float* dst, float* x, long stride, int rows, float* xt, int d)
        where TV : struct
        where TOps : struct, IVecOps<TV>
    {
        const int keyBlock = BackwardKeyBlock;
        int w = TOps.Count;
        for (int v = 0; v < keyBlock; v += w)
        {
            int r = 0;
            if (rows == ScoreTileRows)
            {
                float* x0 = x;
                float* x1 = x0 + stride;
                float* x2 = x1 + stride;
                float* x3 = x2 + stride;
                float* x4 = x3 + stride;
                float* x5 = x4 + stride;
                float* x6 = x5 + stride;
                float* x7 = x6 + stride;
                TV a0 = TOps.Zero, a1 = TOps.Zero, a2 = TOps.Zero, a3 = TOps.Zero;
                TV a4 = TOps.Zero, a5 = TOps.Zero, a6 = TOps.Zero, a7 = TOps.Zero;
                float* col = xt + v;
                for (int e = 0; e < d; e++, col += keyBlock)
                {
                    TV k = TOps.Load(col);
                    a0 = TOps.Fma(TOps.Splat(x0[e]), k, a0);
                    a1 = TOps.Fma(TOps.Splat(x1[e]), k, a1);
                    a2 = TOps.Fma(TOps.Splat(x2[e]), k, a2);
                    a3 = TOps.Fma(TOps.Splat(x3[e]), k, a3);
                    a4 = TOps.Fma(TOps.Splat(x4[e]), k, a4);
                    a5 = TOps.Fma(TOps.Splat(x5[e]), k, a5);
                    a6 = TOps.Fma(TOps.Splat(x6[e]), k, a6);
                    a7 = TOps.Fma(TOps.Splat(x7[e]), k, a7);
                }

                TOps.Store(a0, dst + v);
                TOps.Store(a1, dst + keyBlock + v);
                TOps.Store(a2, dst + (2 * keyBlock) + v);
                TOps.Store(a3, dst + (3 * keyBlock) + v);
                TOps.Store(a4, dst + (4 * keyBlock) + v);
                TOps.Store(a5, dst + (5 * keyBlock) + v);
                TOps.Store(a6, dst + (6 * keyBlock) + v);
                TOps.Store(a7, dst + (7 * keyBlock) + v);
                r = ScoreTileRows;
            }

            for (; r < rows; r++)
            {
                float* xr = x + (r * stride);
                TV acc = TOps.Zero;
                float* col = xt + v;
                for (int e = 0; e < d; e++, col += keyBlock)
                {
                    acc = TOps.Fma(TOps.Splat(xr[e]), TOps.Load(col), acc);
                }

                TOps.Store(acc, dst + (r * keyBlock) + v);
            }
        }
    }

    /// <summary>
    /// Keys j and j+1 of <see cref="AccumulateTile{TV, TOps}"/> for a full tile whose rows all see both (head dimension a
    /// multiple of the vector width): the same per-element chains over the rows, each row vector loaded once for both.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void AccumulateTwoKeys<TV, TOps>(float* y0, float* y1, float* coef, float* x, long stride, int d)
        where TV : struct
        where TOps : struct, IVecOps<TV>
    {
        const int keyBlock = BackwardKeyBlock;
        float* x0 = x;
        float* x1 = x0 + stride;
        float* x2 = x1 + stride;
        float* x3 = x2 + stride;
        float* x4 = x3 + stride;
        float* x5 = x4 + stride;
        float* x6 = x5 + stride;
        float* x7 = x6 + stride;
        TV c0 = TOps.Splat(coef[0]), c1 = TOps.Splat(coef[keyBlock]), c2 = TOps.Splat(coef[2 * keyBlock]), c3 = TOps.Splat(coef[3 * keyBlock]);
        TV c4 = TOps.Splat(coef[4 * keyBlock]), c5 = TOps.Splat(coef[5 * keyBlock]), c6 = TOps.Splat(coef[6 * keyBlock]), c7 = TOps.Splat(coef[7 * keyBlock]);
        TV d0 = TOps.Splat(coef[1]), d1 = TOps.Splat(coef[keyBlock + 1]), d2 = TOps.Splat(coef[(2 * keyBlock) + 1]), d3 = TOps.Splat(coef[(3 * keyBlock) + 1]);
        TV d4 = TOps.Splat(coef[(4 * keyBlock) + 1]), d5 = TOps.Splat(coef[(5 * keyBlock) + 1]), d6 = TOps.Splat(coef[(6 * keyBlock) + 1]), d7 = TOps.Splat(coef[(7 * keyBlock) + 1]);
        for (int e = 0; e < d; e += TOps.Count)
        {
            TV a = TOps.Load(y0 + e);
            TV b = TOps.Load(y1 + e);
            TV v = TOps.Load(x0 + e);
            a = TOps.Fma(c0, v, a);
            b = TOps.Fma(d0, v, b);
            v = TOps.Load(x1 + e);
            a = TOps.Fma(c1, v, a);
            b = TOps.Fma(d1, v, b);
            v = TOps.Load(x2 + e);
            a = TOps.Fma(c2, v, a);
            b = TOps.Fma(d2, v, b);
            v = TOps.Load(x3 + e);
            a = TOps.Fma(c3, v, a);
            b = TOps.Fma(d3, v, b);
            v = TOps.Load(x4 + e);
            a = TOps.Fma(c4, v, a);
            b = TOps.Fma(d4, v, b);
            v = TOps.Load(x5 + e);
            a = TOps.Fma(c5, v, a);
            b = TOps.Fma(d5, v, b);
            v = TOps.Load(x6 + e);
            a = TOps.Fma(c6, v, a);
            b = TOps.Fma(d6, v, b);
            v = TOps.Load(x7 + e);
            TOps.Store(TOps.Fma(c7, v, a), y0 + e);
            TOps.Store(TOps.Fma(d7, v, b), y1 + e);
        }
    }

    /// <summary>
    /// <c>acc_j += Σ_r coef[r, j] · x_r</c> for the <paramref name="keys"/> accumulator rows <c>acc_j = acc + j·d</c>,
    /// over the rows <c>r ≥ firstRowOfKey0 + j</c> of the tile (the queries that see key j), in row order.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void AccumulateTile<TV, TOps>(float* acc, float* coef, float* x, long stride, int rows, int keys, int firstRowOfKey0, int d)
        where TV : struct
        where TOps : struct, IVecOps<TV>
    {
        const int keyBlock = BackwardKeyBlock;
        int w = TOps.Count;
        int dv = d - (d % w);
        for (int j = 0; j < keys; j++)
        {
            int first = Math.Max(0, firstRowOfKey0 + j);
            if (first >= rows)
            {
                break;
            }

            float* aj = acc + (j * d);
            if (firstRowOfKey0 + j + 1 <= 0 && rows == ScoreTileRows && j + 1 < keys && dv == d)
            {
                // Two keys per pass share each load of the eight rows.
                AccumulateTwoKeys<TV, TOps>(aj, aj + d, coef + j, x, stride, d);
                j++;
                continue;
            }

            for (int e = 0; e < dv; e += w)
            {
                TV y = TOps.Load(aj + e);
                for (int r = first; r < rows; r++)
                {
                    y = TOps.Fma(TOps.Splat(coef[(r * keyBlock) + j]), TOps.Load(x + (r * stride) + e), y);
                }

                TOps.Store(y, aj + e);
            }

            // The head dimension's remainder past the last full vector, one element at a time in the same row order.
            for (int e = dv; e < d; e++)
            {
                float y = aj[e];
                for (int r = first; r < rows; r++)
                {
                    y += coef[(r * keyBlock) + j] * x[(r * stride) + e];
                }

                aj[e] = y;
            }
        }
    }

    /// <summary>
    /// <c>dq_t += scale · Σ_j dS_tj · k_j</c> over the keys each row sees, for query rows <paramref name="t0"/> to
    /// <paramref name="t1"/> of head <paramref name="h"/>, from the dS the key pass stored: eight rows share each key
    /// vector load (their common keys first, then the diagonal), remaining rows one at a time with the same per-element
    /// chain over the keys in order.
    /// </summary>
    private static unsafe void StoredQueryRows(in BackwardArgs a, int h, int t0, int t1)
    {
        if (Vector512.IsHardwareAccelerated)
        {
            StoredQueryRows<Vector512<float>, V512>(a, h, t0, t1);
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            StoredQueryRows<Vector256<float>, V256>(a, h, t0, t1);
        }
        else if (Vector128.IsHardwareAccelerated)
        {
            StoredQueryRows<Vector128<float>, V128>(a, h, t0, t1);
        }
        else
        {
            StoredQueryRows<float, Scalar>(a, h, t0, t1);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void StoredQueryRows<TV, TOps>(in BackwardArgs a, int h, int t0, int t1)
        where TV : struct
        where TOps : struct, IVecOps<TV>
    {
        int d = a.HeadDim;
        int w = TOps.Count;
        int dv = d - (d % w);
        long kvStride = (long)a.KvHeads * d;
        float* kBase = a.K + ((long)(h / a.Group) * d);
        TV scale = TOps.Splat(a.Scale);
        int t = t0;
        for (; t + ScoreTileRows <= t1; t += ScoreTileRows)
        {
            float* s0 = a.DsStore + ((((long)h * a.Tokens) + t) * a.Keys);
            float* s1 = s0 + a.Keys;
            float* s2 = s1 + a.Keys;
            float* s3 = s2 + a.Keys;
            float* s4 = s3 + a.Keys;
            float* s5 = s4 + a.Keys;
            float* s6 = s5 + a.Keys;
            float* s7 = s6 + a.Keys;
            int n0 = a.StartPosition + t + 1;
            for (int e = 0; e < dv; e += w)
            {
                TV a0 = TOps.Zero, a1 = TOps.Zero, a2 = TOps.Zero, a3 = TOps.Zero;
                TV a4 = TOps.Zero, a5 = TOps.Zero, a6 = TOps.Zero, a7 = TOps.Zero;
                float* kj = kBase + e;
                int j = 0;
                for (; j < n0; j++, kj += kvStride)
                {
                    TV k = TOps.Load(kj);
                    a0 = TOps.Fma(TOps.Splat(s0[j]), k, a0);
                    a1 = TOps.Fma(TOps.Splat(s1[j]), k, a1);
                    a2 = TOps.Fma(TOps.Splat(s2[j]), k, a2);
                    a3 = TOps.Fma(TOps.Splat(s3[j]), k, a3);
                    a4 = TOps.Fma(TOps.Splat(s4[j]), k, a4);
                    a5 = TOps.Fma(TOps.Splat(s5[j]), k, a5);
                    a6 = TOps.Fma(TOps.Splat(s6[j]), k, a6);
                    a7 = TOps.Fma(TOps.Splat(s7[j]), k, a7);
                }

                // The diagonal: key n0 + i is seen by rows i + 1 and later.
                for (int i = 0; i < ScoreTileRows - 1; i++, j++, kj += kvStride)
                {
                    TV k = TOps.Load(kj);
                    if (i < 1)
                    {
                        a1 = TOps.Fma(TOps.Splat(s1[j]), k, a1);
                    }

                    if (i < 2)
                    {
                        a2 = TOps.Fma(TOps.Splat(s2[j]), k, a2);
                    }

                    if (i < 3)
                    {
                        a3 = TOps.Fma(TOps.Splat(s3[j]), k, a3);
                    }

                    if (i < 4)
                    {
                        a4 = TOps.Fma(TOps.Splat(s4[j]), k, a4);
                    }

                    if (i < 5)
                    {
                        a5 = TOps.Fma(TOps.Splat(s5[j]), k, a5);
                    }

                    if (i < 6)
                    {
                        a6 = TOps.Fma(TOps.Splat(s6[j]), k, a6);
                    }

                    a7 = TOps.Fma(TOps.Splat(s7[j]), k, a7);
                }

                float* dq = a.Dq + ((((long)t * a.Heads) + h) * d) + e;
                long qStride = (long)a.Heads * d;
                TOps.Store(TOps.Fma(scale, a0, TOps.Load(dq)), dq);
                TOps.Store(TOps.Fma(scale, a1, TOps.Load(dq + qStride)), dq + qStride);
                TOps.Store(TOps.Fma(scale, a2, TOps.Load(dq + (2 * qStride))), dq + (2 * qStride));
                TOps.Store(TOps.Fma(scale, a3, TOps.Load(dq + (3 * qStride))), dq + (3 * qStride));
                TOps.Store(TOps.Fma(scale, a4, TOps.Load(dq + (4 * qStride))), dq + (4 * qStride));
                TOps.Store(TOps.Fma(scale, a5, TOps.Load(dq + (5 * qStride))), dq + (5 * qStride));
                TOps.Store(TOps.Fma(scale, a6, TOps.Load(dq + (6 * qStride))), dq + (6 * qStride));
                TOps.Store(TOps.Fma(scale, a7, TOps.Load(dq + (7 * qStride))), dq + (7 * qStride));
            }

            for (int r = 0; r < ScoreTileRows; r++)
            {
                StoredQueryTail(a, h, t + r, dv);
            }
        }

        for (; t < t1; t++)
        {
            float* sr = a.DsStore + ((((long)h * a.Tokens) + t) * a.Keys);
            int n = a.StartPosition + t + 1;
            float* dq = a.Dq + ((((long)t * a.Heads) + h) * d);
            for (int e = 0; e < dv; e += w)
            {
                TV acc = TOps.Zero;
                float* kj = kBase + e;
                for (int j = 0; j < n; j++, kj += kvStride)
                {
                    acc = TOps.Fma(TOps.Splat(sr[j]), TOps.Load(kj), acc);
                }

                TOps.Store(TOps.Fma(scale, acc, TOps.Load(dq + e)), dq + e);
            }

            StoredQueryTail(a, h, t, dv);
        }
    }

    /// <summary>The head dimension's remainder (elements <paramref name="from"/> on) of one stored-dS query row.</summary>
    private static unsafe void StoredQueryTail(in BackwardArgs a, int h, int t, int from)
    {
        int d = a.HeadDim;
        long kvStride = (long)a.KvHeads * d;
        float* kBase = a.K + ((long)(h / a.Group) * d);
        float* sr = a.DsStore + ((((long)h * a.Tokens) + t) * a.Keys);
        int n = a.StartPosition + t + 1;
        float* dq = a.Dq + ((((long)t * a.Heads) + h) * d);
        for (int e = from; e < d; e++)
        {
            float acc = 0f;
            for (int j = 0; j < n; j++)
            {
                acc += sr[j] * kBase[(j * kvStride) + e];
            }

            dq[e] += a.Scale * acc;
        }
    }
}
