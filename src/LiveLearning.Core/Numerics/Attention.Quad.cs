using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace LiveLearning.Numerics;

/// <content>
/// The forward for four consecutive query rows of one head at once: their scores against each group of four keys come
/// from one 4×4 register tile (each key vector loaded once for the four rows), and their probability-weighted values
/// from one pass over each group's value rows. Every score and every output element goes through exactly the
/// operations <see cref="ForwardRow"/> applies to that row (same dot-product reduction, same key grouping, same
/// chain of fused multiply-adds), so a row's bits do not depend on whether it was computed in a quad, alone, or by the
/// split decode path. Used when the widest vectors are 512 bits and the head dimension is a multiple of 16 (the dot
/// products are then whole vectors; other shapes take the row path).
/// </content>
public static partial class Attention
{
    /// <summary>Query rows computed together by <see cref="ForwardQuad"/>.</summary>
    private const int QuadRows = 4;

    private static bool QuadRowsApply(int d) => Vector512.IsHardwareAccelerated && Sse3.IsSupported && d % Vector512<float>.Count == 0;

    /// <summary>
    /// <see cref="ForwardRow"/> for the four rows <c>q + r·qStride</c> (r = 0…3) that attend to <c>n0 + r</c> keys:
    /// writes their outputs (same stride) and, when <paramref name="lse"/> is not null, their log-sum-exp at
    /// <c>lse[r·lseStride]</c>. Scratch: <paramref name="s"/> [4, KeyBlock], <paramref name="run"/> and
    /// <paramref name="part"/> [4, d].
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void ForwardQuad(float* o, float* q, long qStride, float* kBase, float* vBase, int kvStride, int n0, int d, float scale, float* s, float* run, float* part, float* lse, int lseStride)
    {
        float* m = stackalloc float[QuadRows];
        float* l = stackalloc float[QuadRows];
        float* bm = stackalloc float[QuadRows];
        float* bl = stackalloc float[QuadRows];
        int* c = stackalloc int[QuadRows];
        for (int j0 = 0; j0 < n0 + QuadRows - 1; j0 += KeyBlock)
        {
            long offset = (long)j0 * kvStride;
            float* acc = j0 == 0 ? run : part;
            for (int r = 0; r < QuadRows; r++)
            {
                c[r] = Math.Clamp(n0 + r - j0, 0, KeyBlock);
            }

            // Keys every row sees, in whole groups of four: the same groups each row's own Scores/AccumulateRows form.
            int common = c[0] & ~3;
            float* k = kBase + offset;
            float* v = vBase + offset;
            for (int i = 0; i < common; i += 4)
            {
                Dot4x4(q, qStride, k + ((long)i * kvStride), kvStride, d, s + i, scale);
            }

            for (int r = 0; r < QuadRows; r++)
            {
                if (c[r] == 0)
                {
                    continue;
                }

                float* sr = s + (r * KeyBlock);
                Scores(sr + common, q + (r * qStride), k + ((long)common * kvStride), kvStride, c[r] - common, d, scale);
                bm[r] = MaxOf(sr, c[r]);
                bl[r] = ExpShifted(sr, c[r], bm[r]);
                new Span<float>(acc + (r * d), d).Clear();
            }

            for (int i = 0; i < common; i += 4)
            {
                AddScaled4x4(acc, d, s + i, v + ((long)i * kvStride), kvStride, d);
            }

            for (int r = 0; r < QuadRows; r++)
            {
                if (c[r] == 0)
                {
                    continue;
                }

                AccumulateRows(acc + (r * d), s + (r * KeyBlock) + common, v + ((long)common * kvStride), kvStride, c[r] - common, d);
                if (j0 == 0)
                {
                    m[r] = bm[r];
                    l[r] = bl[r];
                }
                else
                {
                    Merge(ref m[r], ref l[r], run + (r * d), bm[r], bl[r], part + (r * d), d);
                }
            }
        }

        for (int r = 0; r < QuadRows; r++)
        {
            float result = Finish(o + (r * qStride), run + (r * d), m[r], l[r], d);
            if (lse != null)
            {
                lse[r * lseStride] = result;
            }
        }
    }

    /// <summary>
    /// <see cref="Dot4"/> for four query rows at once: <c>s[r·KeyBlock + X] = scale · (q_r · kX)</c> for the four keys
    /// <c>k + X·kStride</c>, with Dot4's exact reduction (whole 512-bit vectors, <paramref name="n"/> a multiple of 16).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void Dot4x4(float* q, long qStride, float* k, long kStride, int n, float* s, float scale)
    {
        float* q1 = q + qStride;
        float* q2 = q1 + qStride;
        float* q3 = q2 + qStride;
        float* k1 = k + kStride;
        float* k2 = k1 + kStride;
        float* k3 = k2 + kStride;
        Vector512<float> a00 = Vector512<float>.Zero, a01 = a00, a02 = a00, a03 = a00;
        Vector512<float> a10 = a00, a11 = a00, a12 = a00, a13 = a00;
        Vector512<float> a20 = a00, a21 = a00, a22 = a00, a23 = a00;
        Vector512<float> a30 = a00, a31 = a00, a32 = a00, a33 = a00;
        for (int i = 0; i < n; i += Vector512<float>.Count)
        {
            Vector512<float> x0 = Vector512.Load(k + i), x1 = Vector512.Load(k1 + i), x2 = Vector512.Load(k2 + i), x3 = Vector512.Load(k3 + i);
            Vector512<float> y = Vector512.Load(q + i);
            a00 = Vector512.MultiplyAddEstimate(y, x0, a00);
            a01 = Vector512.MultiplyAddEstimate(y, x1, a01);
            a02 = Vector512.MultiplyAddEstimate(y, x2, a02);
            a03 = Vector512.MultiplyAddEstimate(y, x3, a03);
            y = Vector512.Load(q1 + i);
            a10 = Vector512.MultiplyAddEstimate(y, x0, a10);
            a11 = Vector512.MultiplyAddEstimate(y, x1, a11);
            a12 = Vector512.MultiplyAddEstimate(y, x2, a12);
            a13 = Vector512.MultiplyAddEstimate(y, x3, a13);
            y = Vector512.Load(q2 + i);
            a20 = Vector512.MultiplyAddEstimate(y, x0, a20);
            a21 = Vector512.MultiplyAddEstimate(y, x1, a21);
            a22 = Vector512.MultiplyAddEstimate(y, x2, a22);
            a23 = Vector512.MultiplyAddEstimate(y, x3, a23);
            y = Vector512.Load(q3 + i);
            a30 = Vector512.MultiplyAddEstimate(y, x0, a30);
            a31 = Vector512.MultiplyAddEstimate(y, x1, a31);
            a32 = Vector512.MultiplyAddEstimate(y, x2, a32);
            a33 = Vector512.MultiplyAddEstimate(y, x3, a33);
        }

        Vector128<float> vs = Vector128.Create(scale);
        (Sums4(a00, a01, a02, a03) * vs).Store(s);
        (Sums4(a10, a11, a12, a13) * vs).Store(s + KeyBlock);
        (Sums4(a20, a21, a22, a23) * vs).Store(s + (2 * KeyBlock));
        (Sums4(a30, a31, a32, a33) * vs).Store(s + (3 * KeyBlock));
    }

    /// <summary>The four horizontal sums, reduced exactly as <see cref="Dot4"/> reduces its 512-bit accumulators.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> Sums4(Vector512<float> a0, Vector512<float> a1, Vector512<float> a2, Vector512<float> a3)
    {
        Vector128<float> c0 = Fold(a0.GetLower() + a0.GetUpper());
        Vector128<float> c1 = Fold(a1.GetLower() + a1.GetUpper());
        Vector128<float> c2 = Fold(a2.GetLower() + a2.GetUpper());
        Vector128<float> c3 = Fold(a3.GetLower() + a3.GetUpper());
        return Sse3.HorizontalAdd(Sse3.HorizontalAdd(c0, c1), Sse3.HorizontalAdd(c2, c3));
    }

    /// <summary>
    /// <see cref="AddScaled4"/> for four accumulator rows at once: <c>y_r += Σ_X p[r·KeyBlock + X] · xX</c> for the four
    /// value rows <c>x + X·xStride</c>, each value vector loaded once for the four rows (512-bit vectors, <paramref name="n"/>
    /// a multiple of 16; the same fused chain per element as AddScaled4).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void AddScaled4x4(float* y, int yStride, float* p, float* x, long xStride, int n)
    {
        float* x1 = x + xStride;
        float* x2 = x1 + xStride;
        float* x3 = x2 + xStride;
        float* y1 = y + yStride;
        float* y2 = y1 + yStride;
        float* y3 = y2 + yStride;
        Vector512<float> p00 = Vector512.Create(p[0]), p01 = Vector512.Create(p[1]), p02 = Vector512.Create(p[2]), p03 = Vector512.Create(p[3]);
        float* pr = p + KeyBlock;
        Vector512<float> p10 = Vector512.Create(pr[0]), p11 = Vector512.Create(pr[1]), p12 = Vector512.Create(pr[2]), p13 = Vector512.Create(pr[3]);
        pr += KeyBlock;
        Vector512<float> p20 = Vector512.Create(pr[0]), p21 = Vector512.Create(pr[1]), p22 = Vector512.Create(pr[2]), p23 = Vector512.Create(pr[3]);
        pr += KeyBlock;
        Vector512<float> p30 = Vector512.Create(pr[0]), p31 = Vector512.Create(pr[1]), p32 = Vector512.Create(pr[2]), p33 = Vector512.Create(pr[3]);
        for (int i = 0; i < n; i += Vector512<float>.Count)
        {
            Vector512<float> v0 = Vector512.Load(x + i), v1 = Vector512.Load(x1 + i), v2 = Vector512.Load(x2 + i), v3 = Vector512.Load(x3 + i);
            Vector512<float> acc = Vector512.MultiplyAddEstimate(p00, v0, Vector512.Load(y + i));
            acc = Vector512.MultiplyAddEstimate(p01, v1, acc);
            acc = Vector512.MultiplyAddEstimate(p02, v2, acc);
            Vector512.MultiplyAddEstimate(p03, v3, acc).Store(y + i);
            acc = Vector512.MultiplyAddEstimate(p10, v0, Vector512.Load(y1 + i));
            acc = Vector512.MultiplyAddEstimate(p11, v1, acc);
            acc = Vector512.MultiplyAddEstimate(p12, v2, acc);
            Vector512.MultiplyAddEstimate(p13, v3, acc).Store(y1 + i);
            acc = Vector512.MultiplyAddEstimate(p20, v0, Vector512.Load(y2 + i));
            acc = Vector512.MultiplyAddEstimate(p21, v1, acc);
            acc = Vector512.MultiplyAddEstimate(p22, v2, acc);
            Vector512.MultiplyAddEstimate(p23, v3, acc).Store(y2 + i);
            acc = Vector512.MultiplyAddEstimate(p30, v0, Vector512.Load(y3 + i));
            acc = Vector512.MultiplyAddEstimate(p31, v1, acc);
            acc = Vector512.MultiplyAddEstimate(p32, v2, acc);
            Vector512.MultiplyAddEstimate(p33, v3, acc).Store(y3 + i);
        }
    }
}
