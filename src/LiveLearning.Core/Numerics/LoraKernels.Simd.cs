using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace LiveLearning.Numerics;

/// <content>
/// The three register-blocked building blocks of the fused LoRA passes, written once over a vector abstraction
/// and specialised by the JIT for <see cref="Vector512{T}"/>, <see cref="Vector256{T}"/>, <see cref="Vector128{T}"/>
/// and plain <see cref="float"/> (the scalar fallback).
/// </content>
/// <remarks>
/// Every output element is computed by the same sequence of operations whichever register block or work item it
/// falls in (a 4-wide block and the 1-wide remainder path run the same per-lane arithmetic, and column chunks are
/// multiples of the widest vector pair), so results do not depend on how the work was split across threads.
/// </remarks>
public static unsafe partial class LoraKernels
{
    /// <summary>Widest vector width available, in floats (1 when only scalar code runs).</summary>
    internal static int VectorFloats =>
        Vector512.IsHardwareAccelerated ? Vector512<float>.Count
        : Vector256.IsHardwareAccelerated ? Vector256<float>.Count
        : Vector128.IsHardwareAccelerated ? Vector128<float>.Count
        : 1;

    /// <summary>dst[t, r] = s · Σ_k x[t, k] · w[r, k] (or += when <paramref name="accumulate"/>) for t in [0, rows), r in [0, rank).</summary>
    private static void DotRows(float* dst, float* x, int ldx, int rows, float* w, int rank, int k, float s, bool accumulate = false)
    {
        if (Vector512.IsHardwareAccelerated)
        {
            DotRows<Vector512<float>, V512>(dst, x, ldx, rows, w, rank, k, s, accumulate);
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            DotRows<Vector256<float>, V256>(dst, x, ldx, rows, w, rank, k, s, accumulate);
        }
        else if (Vector128.IsHardwareAccelerated)
        {
            DotRows<Vector128<float>, V128>(dst, x, ldx, rows, w, rank, k, s, accumulate);
        }
        else
        {
            DotRows<float, Scalar>(dst, x, ldx, rows, w, rank, k, s, accumulate);
        }
    }

    /// <summary>y[t, j] += s · Σ_r hh[t, r] · w[r, j] for t in [0, rows), j in [0, n); hh is [rows, rank], w is [rank, n].</summary>
    private static void AddRowsTimesMatrix(float* y, int ldy, float* hh, int rows, float* w, int rank, int n, float s)
    {
        if (Vector512.IsHardwareAccelerated)
        {
            AddRowsTimesMatrix<Vector512<float>, V512>(y, ldy, hh, rows, w, rank, n, s);
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            AddRowsTimesMatrix<Vector256<float>, V256>(y, ldy, hh, rows, w, rank, n, s);
        }
        else if (Vector128.IsHardwareAccelerated)
        {
            AddRowsTimesMatrix<Vector128<float>, V128>(y, ldy, hh, rows, w, rank, n, s);
        }
        else
        {
            AddRowsTimesMatrix<float, Scalar>(y, ldy, hh, rows, w, rank, n, s);
        }
    }

    /// <summary>
    /// d[r, j] += s · Σ_t p[t, r] · q[t, j] for r in [0, rank), j in [j0, j1); p is [tokens, rank], q is [tokens, ldq].
    /// When <paramref name="transposed"/> the output is stored as d[j, r] ([n, rank], like LoRA B), else d[r, j] with row stride ldd.
    /// </summary>
    private static void AccumulateProduct(float* d, int ldd, bool transposed, float* p, float* q, int ldq, int tokens, int rank, int j0, int j1, float s)
    {
        if (Vector512.IsHardwareAccelerated)
        {
            AccumulateProduct<Vector512<float>, V512>(d, ldd, transposed, p, q, ldq, tokens, rank, j0, j1, s);
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            AccumulateProduct<Vector256<float>, V256>(d, ldd, transposed, p, q, ldq, tokens, rank, j0, j1, s);
        }
        else if (Vector128.IsHardwareAccelerated)
        {
            AccumulateProduct<Vector128<float>, V128>(d, ldd, transposed, p, q, ldq, tokens, rank, j0, j1, s);
        }
        else
        {
            AccumulateProduct<float, Scalar>(d, ldd, transposed, p, q, ldq, tokens, rank, j0, j1, s);
        }
    }

    private static void DotRows<TV, TOps>(float* dst, float* x, int ldx, int rows, float* w, int rank, int k, float s, bool accumulate)
        where TV : struct
        where TOps : struct, IVecOps<TV>
    {
        int width = TOps.Count;
        int kv = k - (k % width);
        int t = 0;
        for (; t + 4 <= rows; t += 4)
        {
            float* x0 = x + ((long)t * ldx);
            float* x1 = x0 + ldx;
            float* x2 = x1 + ldx;
            float* x3 = x2 + ldx;
            int r = 0;
            if (TOps.Count == 16)
            {
                // 32 registers: 16 accumulators, so each loaded vector feeds four FMAs.
                for (; r + 4 <= rank; r += 4)
                {
                    DotBlock4x4<TV, TOps>(dst + ((long)t * rank) + r, rank, x0, ldx, w + ((long)r * k), kv, k, s, accumulate);
                }
            }

            for (; r + 2 <= rank; r += 2)
            {
                float* w0 = w + ((long)r * k);
                float* w1 = w0 + k;
                TV c00 = TOps.Zero, c01 = TOps.Zero, c10 = TOps.Zero, c11 = TOps.Zero;
                TV c20 = TOps.Zero, c21 = TOps.Zero, c30 = TOps.Zero, c31 = TOps.Zero;
                for (int i = 0; i < kv; i += width)
                {
                    TV a0 = TOps.Load(w0 + i);
                    TV a1 = TOps.Load(w1 + i);
                    TV v = TOps.Load(x0 + i);
                    c00 = TOps.Fma(v, a0, c00);
                    c01 = TOps.Fma(v, a1, c01);
                    v = TOps.Load(x1 + i);
                    c10 = TOps.Fma(v, a0, c10);
                    c11 = TOps.Fma(v, a1, c11);
                    v = TOps.Load(x2 + i);
                    c20 = TOps.Fma(v, a0, c20);
                    c21 = TOps.Fma(v, a1, c21);
                    v = TOps.Load(x3 + i);
                    c30 = TOps.Fma(v, a0, c30);
                    c31 = TOps.Fma(v, a1, c31);
                }

                float* o = dst + ((long)t * rank) + r;
                Put(&o[0], FinishDot<TV, TOps>(c00, x0, w0, kv, k, s), accumulate);
                Put(&o[1], FinishDot<TV, TOps>(c01, x0, w1, kv, k, s), accumulate);
                Put(&o[rank], FinishDot<TV, TOps>(c10, x1, w0, kv, k, s), accumulate);
                Put(&o[rank + 1], FinishDot<TV, TOps>(c11, x1, w1, kv, k, s), accumulate);
                Put(&o[2 * rank], FinishDot<TV, TOps>(c20, x2, w0, kv, k, s), accumulate);
                Put(&o[(2 * rank) + 1], FinishDot<TV, TOps>(c21, x2, w1, kv, k, s), accumulate);
                Put(&o[3 * rank], FinishDot<TV, TOps>(c30, x3, w0, kv, k, s), accumulate);
                Put(&o[(3 * rank) + 1], FinishDot<TV, TOps>(c31, x3, w1, kv, k, s), accumulate);
            }

            for (; r < rank; r++)
            {
                for (int tt = t; tt < t + 4; tt++)
                {
                    Put(&dst[((long)tt * rank) + r], DotOne<TV, TOps>(x + ((long)tt * ldx), w + ((long)r * k), kv, k, s), accumulate);
                }
            }
        }

        for (; t < rows; t++)
        {
            float* xt = x + ((long)t * ldx);
            for (int r = 0; r < rank; r++)
            {
                Put(&dst[((long)t * rank) + r], DotOne<TV, TOps>(xt, w + ((long)r * k), kv, k, s), accumulate);
            }
        }
    }

    private static void DotBlock4x4<TV, TOps>(float* o, int rank, float* x0, int ldx, float* w0, int kv, int k, float s, bool accumulate)
        where TV : struct
        where TOps : struct, IVecOps<TV>
    {
        float* x1 = x0 + ldx;
        float* x2 = x1 + ldx;
        float* x3 = x2 + ldx;
        float* w1 = w0 + k;
        float* w2 = w1 + k;
        float* w3 = w2 + k;
        TV c00 = TOps.Zero, c01 = TOps.Zero, c02 = TOps.Zero, c03 = TOps.Zero;
        TV c10 = TOps.Zero, c11 = TOps.Zero, c12 = TOps.Zero, c13 = TOps.Zero;
        TV c20 = TOps.Zero, c21 = TOps.Zero, c22 = TOps.Zero, c23 = TOps.Zero;
        TV c30 = TOps.Zero, c31 = TOps.Zero, c32 = TOps.Zero, c33 = TOps.Zero;
        for (int i = 0; i < kv; i += TOps.Count)
        {
            TV a0 = TOps.Load(w0 + i);
            TV a1 = TOps.Load(w1 + i);
            TV a2 = TOps.Load(w2 + i);
            TV a3 = TOps.Load(w3 + i);
            TV v = TOps.Load(x0 + i);
            c00 = TOps.Fma(v, a0, c00);
            c01 = TOps.Fma(v, a1, c01);
            c02 = TOps.Fma(v, a2, c02);
            c03 = TOps.Fma(v, a3, c03);
            v = TOps.Load(x1 + i);
            c10 = TOps.Fma(v, a0, c10);
            c11 = TOps.Fma(v, a1, c11);
            c12 = TOps.Fma(v, a2, c12);
            c13 = TOps.Fma(v, a3, c13);
            v = TOps.Load(x2 + i);
            c20 = TOps.Fma(v, a0, c20);
            c21 = TOps.Fma(v, a1, c21);
            c22 = TOps.Fma(v, a2, c22);
            c23 = TOps.Fma(v, a3, c23);
            v = TOps.Load(x3 + i);
            c30 = TOps.Fma(v, a0, c30);
            c31 = TOps.Fma(v, a1, c31);
            c32 = TOps.Fma(v, a2, c32);
            c33 = TOps.Fma(v, a3, c33);
        }

        Put(&o[0], FinishDot<TV, TOps>(c00, x0, w0, kv, k, s), accumulate);
        Put(&o[1], FinishDot<TV, TOps>(c01, x0, w1, kv, k, s), accumulate);
        Put(&o[2], FinishDot<TV, TOps>(c02, x0, w2, kv, k, s), accumulate);
        Put(&o[3], FinishDot<TV, TOps>(c03, x0, w3, kv, k, s), accumulate);
        o += rank;
        Put(&o[0], FinishDot<TV, TOps>(c10, x1, w0, kv, k, s), accumulate);
        Put(&o[1], FinishDot<TV, TOps>(c11, x1, w1, kv, k, s), accumulate);
        Put(&o[2], FinishDot<TV, TOps>(c12, x1, w2, kv, k, s), accumulate);
        Put(&o[3], FinishDot<TV, TOps>(c13, x1, w3, kv, k, s), accumulate);
        o += rank;
        Put(&o[0], FinishDot<TV, TOps>(c20, x2, w0, kv, k, s), accumulate);
        Put(&o[1], FinishDot<TV, TOps>(c21, x2, w1, kv, k, s), accumulate);
        Put(&o[2], FinishDot<TV, TOps>(c22, x2, w2, kv, k, s), accumulate);
        Put(&o[3], FinishDot<TV, TOps>(c23, x2, w3, kv, k, s), accumulate);
        o += rank;
        Put(&o[0], FinishDot<TV, TOps>(c30, x3, w0, kv, k, s), accumulate);
        Put(&o[1], FinishDot<TV, TOps>(c31, x3, w1, kv, k, s), accumulate);
        Put(&o[2], FinishDot<TV, TOps>(c32, x3, w2, kv, k, s), accumulate);
        Put(&o[3], FinishDot<TV, TOps>(c33, x3, w3, kv, k, s), accumulate);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Put(float* destination, float value, bool accumulate) =>
        *destination = accumulate ? *destination + value : value;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float DotOne<TV, TOps>(float* x, float* w, int kv, int k, float s)
        where TV : struct
        where TOps : struct, IVecOps<TV>
    {
        TV c = TOps.Zero;
        for (int i = 0; i < kv; i += TOps.Count)
        {
            c = TOps.Fma(TOps.Load(x + i), TOps.Load(w + i), c);
        }

        return FinishDot<TV, TOps>(c, x, w, kv, k, s);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float FinishDot<TV, TOps>(TV c, float* x, float* w, int kv, int k, float s)
        where TV : struct
        where TOps : struct, IVecOps<TV>
    {
        float sum = TOps.Sum(c);
        for (int i = kv; i < k; i++)
        {
            sum += x[i] * w[i];
        }

        return sum * s;
    }

    private static void AddRowsTimesMatrix<TV, TOps>(float* y, int ldy, float* hh, int rows, float* w, int rank, int n, float s)
        where TV : struct
        where TOps : struct, IVecOps<TV>
    {
        int width = TOps.Count;
        TV vs = TOps.Splat(s);
        int t = 0;
        for (; t + 4 <= rows; t += 4)
        {
            float* y0 = y + ((long)t * ldy);
            float* y1 = y0 + ldy;
            float* y2 = y1 + ldy;
            float* y3 = y2 + ldy;
            float* h0 = hh + ((long)t * rank);
            float* h1 = h0 + rank;
            float* h2 = h1 + rank;
            float* h3 = h2 + rank;
            int j = 0;
            if (TOps.Count == 16)
            {
                for (; j + (4 * width) <= n; j += 4 * width)
                {
                    AddBlock4x4<TV, TOps>(y0 + j, ldy, h0, w + j, rank, n, vs);
                }
            }

            for (; j + (2 * width) <= n; j += 2 * width)
            {
                TV c00 = TOps.Zero, c01 = TOps.Zero, c10 = TOps.Zero, c11 = TOps.Zero;
                TV c20 = TOps.Zero, c21 = TOps.Zero, c30 = TOps.Zero, c31 = TOps.Zero;
                float* wr = w + j;
                for (int r = 0; r < rank; r++, wr += n)
                {
                    TV b0 = TOps.Load(wr);
                    TV b1 = TOps.Load(wr + width);
                    TV v = TOps.Splat(h0[r]);
                    c00 = TOps.Fma(v, b0, c00);
                    c01 = TOps.Fma(v, b1, c01);
                    v = TOps.Splat(h1[r]);
                    c10 = TOps.Fma(v, b0, c10);
                    c11 = TOps.Fma(v, b1, c11);
                    v = TOps.Splat(h2[r]);
                    c20 = TOps.Fma(v, b0, c20);
                    c21 = TOps.Fma(v, b1, c21);
                    v = TOps.Splat(h3[r]);
                    c30 = TOps.Fma(v, b0, c30);
                    c31 = TOps.Fma(v, b1, c31);
                }

                TOps.Store(TOps.Fma(vs, c00, TOps.Load(y0 + j)), y0 + j);
                TOps.Store(TOps.Fma(vs, c01, TOps.Load(y0 + j + width)), y0 + j + width);
                TOps.Store(TOps.Fma(vs, c10, TOps.Load(y1 + j)), y1 + j);
                TOps.Store(TOps.Fma(vs, c11, TOps.Load(y1 + j + width)), y1 + j + width);
                TOps.Store(TOps.Fma(vs, c20, TOps.Load(y2 + j)), y2 + j);
                TOps.Store(TOps.Fma(vs, c21, TOps.Load(y2 + j + width)), y2 + j + width);
                TOps.Store(TOps.Fma(vs, c30, TOps.Load(y3 + j)), y3 + j);
                TOps.Store(TOps.Fma(vs, c31, TOps.Load(y3 + j + width)), y3 + j + width);
            }

            for (; j + width <= n; j += width)
            {
                TV c0 = TOps.Zero, c1 = TOps.Zero, c2 = TOps.Zero, c3 = TOps.Zero;
                float* wr = w + j;
                for (int r = 0; r < rank; r++, wr += n)
                {
                    TV b0 = TOps.Load(wr);
                    c0 = TOps.Fma(TOps.Splat(h0[r]), b0, c0);
                    c1 = TOps.Fma(TOps.Splat(h1[r]), b0, c1);
                    c2 = TOps.Fma(TOps.Splat(h2[r]), b0, c2);
                    c3 = TOps.Fma(TOps.Splat(h3[r]), b0, c3);
                }

                TOps.Store(TOps.Fma(vs, c0, TOps.Load(y0 + j)), y0 + j);
                TOps.Store(TOps.Fma(vs, c1, TOps.Load(y1 + j)), y1 + j);
                TOps.Store(TOps.Fma(vs, c2, TOps.Load(y2 + j)), y2 + j);
                TOps.Store(TOps.Fma(vs, c3, TOps.Load(y3 + j)), y3 + j);
            }

            for (int tt = 0; tt < 4; tt++)
            {
                AddRowTail(y + ((long)(t + tt) * ldy), hh + ((long)(t + tt) * rank), w, rank, j, n, s);
            }
        }

        for (; t < rows; t++)
        {
            float* yt = y + ((long)t * ldy);
            float* ht = hh + ((long)t * rank);
            int j = 0;
            for (; j + width <= n; j += width)
            {
                TV c0 = TOps.Zero;
                float* wr = w + j;
                for (int r = 0; r < rank; r++, wr += n)
                {
                    c0 = TOps.Fma(TOps.Splat(ht[r]), TOps.Load(wr), c0);
                }

                TOps.Store(TOps.Fma(vs, c0, TOps.Load(yt + j)), yt + j);
            }

            AddRowTail(yt, ht, w, rank, j, n, s);
        }
    }

    private static void AddBlock4x4<TV, TOps>(float* y0, int ldy, float* h0, float* wr, int rank, int n, TV vs)
        where TV : struct
        where TOps : struct, IVecOps<TV>
    {
        int width = TOps.Count;
        float* h1 = h0 + rank;
        float* h2 = h1 + rank;
        float* h3 = h2 + rank;
        TV c00 = TOps.Zero, c01 = TOps.Zero, c02 = TOps.Zero, c03 = TOps.Zero;
        TV c10 = TOps.Zero, c11 = TOps.Zero, c12 = TOps.Zero, c13 = TOps.Zero;
        TV c20 = TOps.Zero, c21 = TOps.Zero, c22 = TOps.Zero, c23 = TOps.Zero;
        TV c30 = TOps.Zero, c31 = TOps.Zero, c32 = TOps.Zero, c33 = TOps.Zero;
        for (int r = 0; r < rank; r++, wr += n)
        {
            TV b0 = TOps.Load(wr);
            TV b1 = TOps.Load(wr + width);
            TV b2 = TOps.Load(wr + (2 * width));
            TV b3 = TOps.Load(wr + (3 * width));
            TV v = TOps.Splat(h0[r]);
            c00 = TOps.Fma(v, b0, c00);
            c01 = TOps.Fma(v, b1, c01);
            c02 = TOps.Fma(v, b2, c02);
            c03 = TOps.Fma(v, b3, c03);
            v = TOps.Splat(h1[r]);
            c10 = TOps.Fma(v, b0, c10);
            c11 = TOps.Fma(v, b1, c11);
            c12 = TOps.Fma(v, b2, c12);
            c13 = TOps.Fma(v, b3, c13);
            v = TOps.Splat(h2[r]);
            c20 = TOps.Fma(v, b0, c20);
            c21 = TOps.Fma(v, b1, c21);
            c22 = TOps.Fma(v, b2, c22);
            c23 = TOps.Fma(v, b3, c23);
            v = TOps.Splat(h3[r]);
            c30 = TOps.Fma(v, b0, c30);
            c31 = TOps.Fma(v, b1, c31);
            c32 = TOps.Fma(v, b2, c32);
            c33 = TOps.Fma(v, b3, c33);
        }

        AddScaled4<TV, TOps>(y0, width, vs, c00, c01, c02, c03);
        AddScaled4<TV, TOps>(y0 + ldy, width, vs, c10, c11, c12, c13);
        AddScaled4<TV, TOps>(y0 + (2 * ldy), width, vs, c20, c21, c22, c23);
        AddScaled4<TV, TOps>(y0 + (3 * ldy), width, vs, c30, c31, c32, c33);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void AddScaled4<TV, TOps>(float* y, int width, TV vs, TV c0, TV c1, TV c2, TV c3)
        where TV : struct
        where TOps : struct, IVecOps<TV>
    {
        TOps.Store(TOps.Fma(vs, c0, TOps.Load(y)), y);
        TOps.Store(TOps.Fma(vs, c1, TOps.Load(y + width)), y + width);
        TOps.Store(TOps.Fma(vs, c2, TOps.Load(y + (2 * width))), y + (2 * width));
        TOps.Store(TOps.Fma(vs, c3, TOps.Load(y + (3 * width))), y + (3 * width));
    }

    private static void AddRowTail(float* yt, float* ht, float* w, int rank, int j0, int n, float s)
    {
        for (int j = j0; j < n; j++)
        {
            float c = 0f;
            for (int r = 0; r < rank; r++)
            {
                c += ht[r] * w[((long)r * n) + j];
            }

            yt[j] += s * c;
        }
    }

    private static void AccumulateProduct<TV, TOps>(float* d, int ldd, bool transposed, float* p, float* q, int ldq, int tokens, int rank, int j0, int j1, float s)
        where TV : struct
        where TOps : struct, IVecOps<TV>
    {
        int width = TOps.Count;
        TV vs = TOps.Splat(s);
        float* lanes = stackalloc float[64];
        int r = 0;
        for (; r + 4 <= rank; r += 4)
        {
            int j = j0;
            if (TOps.Count == 16)
            {
                for (; j + (4 * width) <= j1; j += 4 * width)
                {
                    ProductBlock4x4<TV, TOps>(d, ldd, transposed, p, q, ldq, tokens, rank, r, j, vs, lanes, s);
                }
            }

            for (; j + (2 * width) <= j1; j += 2 * width)
            {
                TV c00 = TOps.Zero, c01 = TOps.Zero, c10 = TOps.Zero, c11 = TOps.Zero;
                TV c20 = TOps.Zero, c21 = TOps.Zero, c30 = TOps.Zero, c31 = TOps.Zero;
                float* pt = p + r;
                float* qt = q + j;
                for (int t = 0; t < tokens; t++, pt += rank, qt += ldq)
                {
                    TV b0 = TOps.Load(qt);
                    TV b1 = TOps.Load(qt + width);
                    TV v = TOps.Splat(pt[0]);
                    c00 = TOps.Fma(v, b0, c00);
                    c01 = TOps.Fma(v, b1, c01);
                    v = TOps.Splat(pt[1]);
                    c10 = TOps.Fma(v, b0, c10);
                    c11 = TOps.Fma(v, b1, c11);
                    v = TOps.Splat(pt[2]);
                    c20 = TOps.Fma(v, b0, c20);
                    c21 = TOps.Fma(v, b1, c21);
                    v = TOps.Splat(pt[3]);
                    c30 = TOps.Fma(v, b0, c30);
                    c31 = TOps.Fma(v, b1, c31);
                }

                Emit<TV, TOps>(d, ldd, transposed, rank, r, j, c00, vs, lanes, s);
                Emit<TV, TOps>(d, ldd, transposed, rank, r, j + width, c01, vs, lanes, s);
                Emit<TV, TOps>(d, ldd, transposed, rank, r + 1, j, c10, vs, lanes, s);
                Emit<TV, TOps>(d, ldd, transposed, rank, r + 1, j + width, c11, vs, lanes, s);
                Emit<TV, TOps>(d, ldd, transposed, rank, r + 2, j, c20, vs, lanes, s);
                Emit<TV, TOps>(d, ldd, transposed, rank, r + 2, j + width, c21, vs, lanes, s);
                Emit<TV, TOps>(d, ldd, transposed, rank, r + 3, j, c30, vs, lanes, s);
                Emit<TV, TOps>(d, ldd, transposed, rank, r + 3, j + width, c31, vs, lanes, s);
            }

            for (; j + width <= j1; j += width)
            {
                TV c0 = TOps.Zero, c1 = TOps.Zero, c2 = TOps.Zero, c3 = TOps.Zero;
                float* pt = p + r;
                float* qt = q + j;
                for (int t = 0; t < tokens; t++, pt += rank, qt += ldq)
                {
                    TV b0 = TOps.Load(qt);
                    c0 = TOps.Fma(TOps.Splat(pt[0]), b0, c0);
                    c1 = TOps.Fma(TOps.Splat(pt[1]), b0, c1);
                    c2 = TOps.Fma(TOps.Splat(pt[2]), b0, c2);
                    c3 = TOps.Fma(TOps.Splat(pt[3]), b0, c3);
                }

                Emit<TV, TOps>(d, ldd, transposed, rank, r, j, c0, vs, lanes, s);
                Emit<TV, TOps>(d, ldd, transposed, rank, r + 1, j, c1, vs, lanes, s);
                Emit<TV, TOps>(d, ldd, transposed, rank, r + 2, j, c2, vs, lanes, s);
                Emit<TV, TOps>(d, ldd, transposed, rank, r + 3, j, c3, vs, lanes, s);
            }

            for (int rr = r; rr < r + 4; rr++)
            {
                ProductTail(d, ldd, transposed, p, q, ldq, tokens, rank, rr, j, j1, s);
            }
        }

        for (; r < rank; r++)
        {
            int j = j0;
            for (; j + width <= j1; j += width)
            {
                TV c0 = TOps.Zero;
                float* pt = p + r;
                float* qt = q + j;
                for (int t = 0; t < tokens; t++, pt += rank, qt += ldq)
                {
                    c0 = TOps.Fma(TOps.Splat(pt[0]), TOps.Load(qt), c0);
                }

                Emit<TV, TOps>(d, ldd, transposed, rank, r, j, c0, vs, lanes, s);
            }

            ProductTail(d, ldd, transposed, p, q, ldq, tokens, rank, r, j, j1, s);
        }
    }

    private static void ProductBlock4x4<TV, TOps>(float* d, int ldd, bool transposed, float* p, float* q, int ldq, int tokens, int rank, int r, int j, TV vs, float* lanes, float s)
        where TV : struct
        where TOps : struct, IVecOps<TV>
    {
        int width = TOps.Count;
        TV c00 = TOps.Zero, c01 = TOps.Zero, c02 = TOps.Zero, c03 = TOps.Zero;
        TV c10 = TOps.Zero, c11 = TOps.Zero, c12 = TOps.Zero, c13 = TOps.Zero;
        TV c20 = TOps.Zero, c21 = TOps.Zero, c22 = TOps.Zero, c23 = TOps.Zero;
        TV c30 = TOps.Zero, c31 = TOps.Zero, c32 = TOps.Zero, c33 = TOps.Zero;
        float* pt = p + r;
        float* qt = q + j;
        for (int t = 0; t < tokens; t++, pt += rank, qt += ldq)
        {
            TV b0 = TOps.Load(qt);
            TV b1 = TOps.Load(qt + width);
            TV b2 = TOps.Load(qt + (2 * width));
            TV b3 = TOps.Load(qt + (3 * width));
            TV v = TOps.Splat(pt[0]);
            c00 = TOps.Fma(v, b0, c00);
            c01 = TOps.Fma(v, b1, c01);
            c02 = TOps.Fma(v, b2, c02);
            c03 = TOps.Fma(v, b3, c03);
            v = TOps.Splat(pt[1]);
            c10 = TOps.Fma(v, b0, c10);
            c11 = TOps.Fma(v, b1, c11);
            c12 = TOps.Fma(v, b2, c12);
            c13 = TOps.Fma(v, b3, c13);
            v = TOps.Splat(pt[2]);
            c20 = TOps.Fma(v, b0, c20);
            c21 = TOps.Fma(v, b1, c21);
            c22 = TOps.Fma(v, b2, c22);
            c23 = TOps.Fma(v, b3, c23);
            v = TOps.Splat(pt[3]);
            c30 = TOps.Fma(v, b0, c30);
            c31 = TOps.Fma(v, b1, c31);
            c32 = TOps.Fma(v, b2, c32);
            c33 = TOps.Fma(v, b3, c33);
        }

        Emit<TV, TOps>(d, ldd, transposed, rank, r, j, c00, vs, lanes, s);
        Emit<TV, TOps>(d, ldd, transposed, rank, r, j + width, c01, vs, lanes, s);
        Emit<TV, TOps>(d, ldd, transposed, rank, r, j + (2 * width), c02, vs, lanes, s);
        Emit<TV, TOps>(d, ldd, transposed, rank, r, j + (3 * width), c03, vs, lanes, s);
        Emit<TV, TOps>(d, ldd, transposed, rank, r + 1, j, c10, vs, lanes, s);
        Emit<TV, TOps>(d, ldd, transposed, rank, r + 1, j + width, c11, vs, lanes, s);
        Emit<TV, TOps>(d, ldd, transposed, rank, r + 1, j + (2 * width), c12, vs, lanes, s);
        Emit<TV, TOps>(d, ldd, transposed, rank, r + 1, j + (3 * width), c13, vs, lanes, s);
        Emit<TV, TOps>(d, ldd, transposed, rank, r + 2, j, c20, vs, lanes, s);
        Emit<TV, TOps>(d, ldd, transposed, rank, r + 2, j + width, c21, vs, lanes, s);
        Emit<TV, TOps>(d, ldd, transposed, rank, r + 2, j + (2 * width), c22, vs, lanes, s);
        Emit<TV, TOps>(d, ldd, transposed, rank, r + 2, j + (3 * width), c23, vs, lanes, s);
        Emit<TV, TOps>(d, ldd, transposed, rank, r + 3, j, c30, vs, lanes, s);
        Emit<TV, TOps>(d, ldd, transposed, rank, r + 3, j + width, c31, vs, lanes, s);
        Emit<TV, TOps>(d, ldd, transposed, rank, r + 3, j + (2 * width), c32, vs, lanes, s);
        Emit<TV, TOps>(d, ldd, transposed, rank, r + 3, j + (3 * width), c33, vs, lanes, s);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Emit<TV, TOps>(float* d, int ldd, bool transposed, int rank, int r, int j, TV c, TV vs, float* lanes, float s)
        where TV : struct
        where TOps : struct, IVecOps<TV>
    {
        if (!transposed)
        {
            float* dst = d + ((long)r * ldd) + j;
            TOps.Store(TOps.Fma(vs, c, TOps.Load(dst)), dst);
            return;
        }

        TOps.Store(c, lanes);
        float* col = d + ((long)j * rank) + r;
        for (int l = 0; l < TOps.Count; l++, col += rank)
        {
            *col += s * lanes[l];
        }
    }

    private static void ProductTail(float* d, int ldd, bool transposed, float* p, float* q, int ldq, int tokens, int rank, int r, int j0, int j1, float s)
    {
        for (int j = j0; j < j1; j++)
        {
            float c = 0f;
            for (int t = 0; t < tokens; t++)
            {
                c += p[((long)t * rank) + r] * q[((long)t * ldq) + j];
            }

            float* dst = transposed ? d + ((long)j * rank) + r : d + ((long)r * ldd) + j;
            *dst += s * c;
        }
    }

    /// <summary>bt[r, o] = b[o, r] for o in [o0, o1): LoRA B ([out, rank]) in the [rank, out] layout the passes stream over.</summary>
    private static void Transpose(float* bt, float* b, int outFeatures, int rank, int o0, int o1)
    {
        // Blocks of 16 outputs: each of the rank destination rows gets one whole cache line per block. Walking
        // o one at a time instead would write rank streams a whole row apart, which alias in L1 for large out.
        const int block = 16;
        int o = o0;
        for (; o + block <= o1; o += block)
        {
            float* src = b + ((long)o * rank);
            for (int r = 0; r < rank; r++)
            {
                float* dst = bt + ((long)r * outFeatures) + o;
                float* col = src + r;
                for (int j = 0; j < block; j++)
                {
                    dst[j] = col[(long)j * rank];
                }
            }
        }

        for (; o < o1; o++)
        {
            float* row = b + ((long)o * rank);
            for (int r = 0; r < rank; r++)
            {
                bt[((long)r * outFeatures) + o] = row[r];
            }
        }
    }
}
