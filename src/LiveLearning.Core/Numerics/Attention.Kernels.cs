using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace LiveLearning.Numerics;

/// <summary>Work items and SIMD helpers of <see cref="Attention"/>.</summary>
public static partial class Attention
{
    /// <summary>Keys scored at once in the online softmax (scores live on the stack).</summary>
    private const int ScoreBlock = 256;

    /// <summary>Key rows per backward (kv head, key-block) work item.</summary>
    private const int BackwardKeyBlock = 16;

    /// <summary>Head dimensions up to this use stack scratch; larger ones a heap array.</summary>
    private const int MaxStackHeadDim = 1024;

    private unsafe struct ForwardJob : IParallelJob
    {
        public float* Output;
        public float* Lse;
        public float* Q;
        public float* K;
        public float* V;
        public int Tokens;
        public int StartPosition;
        public int Heads;
        public int KvHeads;
        public int HeadDim;
        public int Group;
        public int TileRows;
        public int Tiles;
        public float Scale;

        public void Execute(int index)
        {
            // Latest tiles (the most keys) first so dynamic claiming balances the causal triangle.
            int tile = Tiles - 1 - (index / Heads);
            int h = index % Heads;
            int d = HeadDim;
            int kvStride = KvHeads * d;
            float* kBase = K + ((long)(h / Group) * d);
            float* vBase = V + ((long)(h / Group) * d);
            int t0 = tile * TileRows;
            int t1 = Math.Min(Tokens, t0 + TileRows);
            float* scores = stackalloc float[ScoreBlock];
            Span<float> accSpan = d <= MaxStackHeadDim ? stackalloc float[d] : new float[d];
            fixed (float* acc = accSpan)
            {
                for (int t = t0; t < t1; t++)
                {
                    long row = ((long)t * Heads) + h;
                    float lse = ForwardRow(Output + (row * d), Q + (row * d), kBase, vBase, kvStride, StartPosition + t + 1, d, Scale, scores, acc);
                    if (Lse != null)
                    {
                        Lse[row] = lse;
                    }
                }
            }
        }
    }

    /// <summary>
    /// One query row against keys <c>0 … n−1</c> with an online softmax over blocks of <see cref="ScoreBlock"/>
    /// keys: scores, block max, rescale of the running sum and accumulator when the max grows, then
    /// <c>acc += p_j · v_j</c>. Writes <c>acc / l</c> and returns the log-sum-exp <c>m + log l</c>.
    /// </summary>
    private static unsafe float ForwardRow(float* o, float* q, float* kBase, float* vBase, int kvStride, int n, int d, float scale, float* s, float* acc)
    {
        new Span<float>(acc, d).Clear();
        float m = float.NegativeInfinity;
        float l = 0f;
        for (int j0 = 0; j0 < n; j0 += ScoreBlock)
        {
            int c = Math.Min(ScoreBlock, n - j0);
            float* k = kBase + ((long)j0 * kvStride);
            Scores(s, q, k, kvStride, c, d, scale);
            var block = new Span<float>(s, c);

            // MathF.Max propagates NaN, so a NaN score poisons the row instead of being skipped.
            float mNew = MathF.Max(m, TensorPrimitives.Max((ReadOnlySpan<float>)block));
            if (j0 > 0 && mNew != m)
            {
                float correction = MathF.Exp(m - mNew);
                l *= correction;
                ScaleInPlace(acc, correction, d);
            }

            m = mNew;
            TensorPrimitives.Subtract(block, m, block);
            TensorPrimitives.Exp(block, block);
            l += TensorPrimitives.Sum((ReadOnlySpan<float>)block);
            float* vr = vBase + ((long)j0 * kvStride);
            int i = 0;
            for (; i + 4 <= c; i += 4)
            {
                AddScaled4(acc, s[i], vr, s[i + 1], vr + kvStride, s[i + 2], vr + (2L * kvStride), s[i + 3], vr + (3L * kvStride), d);
                vr += 4L * kvStride;
            }

            for (; i < c; i++)
            {
                AddScaled(acc, s[i], vr, d);
                vr += kvStride;
            }
        }

        ScaleTo(o, acc, 1f / l, d);
        return m + MathF.Log(l);
    }

    /// <summary><c>s[i] = scale · (q · k_i)</c> for <c>c</c> key rows spaced <paramref name="stride"/> apart.</summary>
    private static unsafe void Scores(float* s, float* q, float* k, int stride, int c, int d, float scale)
    {
        int i = 0;
        for (; i + 4 <= c; i += 4)
        {
            Dot4(q, k, k + stride, k + (2L * stride), k + (3L * stride), d, out float a0, out float a1, out float a2, out float a3);
            s[i] = scale * a0;
            s[i + 1] = scale * a1;
            s[i + 2] = scale * a2;
            s[i + 3] = scale * a3;
            k += 4L * stride;
        }

        for (; i < c; i++)
        {
            s[i] = scale * Dot(q, k, d);
            k += stride;
        }
    }

    private unsafe struct BackwardArgs
    {
        public float* Dq;
        public float* Dk;
        public float* Dv;
        public float* DOut;
        public float* Lse;
        public float* D;
        public float* Q;
        public float* K;
        public float* V;
        public int Tokens;
        public int StartPosition;
        public int Heads;
        public int KvHeads;
        public int HeadDim;
        public int Group;
        public float Scale;
    }

    /// <summary>
    /// Owns key rows <c>[kb·B, (kb+1)·B)</c> of one kv head: for each key, sums <c>dv_j = Σ P·dO</c> and
    /// <c>dk_j = scale · Σ dS·q</c> over every query head of the group and every query that sees the key.
    /// </summary>
    private unsafe struct BackwardKvJob : IParallelJob
    {
        public BackwardArgs Args;
        public int KeyBlocks;

        public void Execute(int index)
        {
            ref readonly BackwardArgs a = ref Args;
            int kb = index / a.KvHeads;
            int g = index % a.KvHeads;
            int d = a.HeadDim;
            int kvStride = a.KvHeads * d;
            int qStride = a.Heads * d;
            int j0 = kb * BackwardKeyBlock;
            int j1 = Math.Min(a.StartPosition + a.Tokens, j0 + BackwardKeyBlock);
            float* s = stackalloc float[ScoreBlock];
            float* dps = stackalloc float[ScoreBlock];
            Span<float> scratch = d <= MaxStackHeadDim ? stackalloc float[2 * d] : new float[2 * d];
            fixed (float* dkAcc = scratch)
            {
                float* dvAcc = dkAcc + d;
                for (int j = j0; j < j1; j++)
                {
                    new Span<float>(dkAcc, 2 * d).Clear();
                    float* kj = a.K + ((long)j * kvStride) + ((long)g * d);
                    float* vj = a.V + ((long)j * kvStride) + ((long)g * d);
                    int tStart = Math.Max(0, j - a.StartPosition);
                    for (int h = g * a.Group; h < (g + 1) * a.Group; h++)
                    {
                        for (int t0 = tStart; t0 < a.Tokens; t0 += ScoreBlock)
                        {
                            int c = Math.Min(ScoreBlock, a.Tokens - t0);
                            float* q0 = a.Q + ((long)t0 * qStride) + ((long)h * d);
                            float* do0 = a.DOut + ((long)t0 * qStride) + ((long)h * d);
                            Scores(s, kj, q0, qStride, c, d, a.Scale);
                            Scores(dps, vj, do0, qStride, c, d, 1f);
                            for (int i = 0; i < c; i++)
                            {
                                s[i] -= a.Lse[((long)(t0 + i) * a.Heads) + h];
                            }

                            var block = new Span<float>(s, c);
                            TensorPrimitives.Exp(block, block);
                            for (int i = 0; i < c; i++)
                            {
                                float* qt = q0 + ((long)i * qStride);
                                float* dot = do0 + ((long)i * qStride);
                                float p = s[i];
                                float ds = p * (dps[i] - a.D[((long)(t0 + i) * a.Heads) + h]);
                                AddScaled(dvAcc, p, dot, d);
                                AddScaled(dkAcc, ds, qt, d);
                            }
                        }
                    }

                    AddScaled(a.Dk + ((long)j * kvStride) + ((long)g * d), a.Scale, dkAcc, d);
                    AddScaled(a.Dv + ((long)j * kvStride) + ((long)g * d), 1f, dvAcc, d);
                }
            }
        }
    }

    /// <summary>Owns the <c>dq</c> rows of one (head, query tile): <c>dq_t = scale · Σ_j dS_tj · k_j</c>.</summary>
    private unsafe struct BackwardQueryJob : IParallelJob
    {
        public BackwardArgs Args;
        public int TileRows;
        public int Tiles;

        public void Execute(int index)
        {
            ref readonly BackwardArgs a = ref Args;
            int tile = Tiles - 1 - (index / a.Heads);
            int h = index % a.Heads;
            int d = a.HeadDim;
            int kvStride = a.KvHeads * d;
            float* kBase = a.K + ((long)(h / a.Group) * d);
            float* vBase = a.V + ((long)(h / a.Group) * d);
            int t0 = tile * TileRows;
            int t1 = Math.Min(a.Tokens, t0 + TileRows);
            float* s = stackalloc float[ScoreBlock];
            float* dp = stackalloc float[ScoreBlock];
            Span<float> accSpan = d <= MaxStackHeadDim ? stackalloc float[d] : new float[d];
            fixed (float* acc = accSpan)
            {
                for (int t = t0; t < t1; t++)
                {
                    long row = ((long)t * a.Heads) + h;
                    float* qt = a.Q + (row * d);
                    float* dot = a.DOut + (row * d);
                    float lse = a.Lse[row];
                    float dRow = a.D[row];
                    int n = a.StartPosition + t + 1;
                    new Span<float>(acc, d).Clear();
                    for (int j0 = 0; j0 < n; j0 += ScoreBlock)
                    {
                        int c = Math.Min(ScoreBlock, n - j0);
                        float* k0 = kBase + ((long)j0 * kvStride);
                        Scores(s, qt, k0, kvStride, c, d, a.Scale);
                        Scores(dp, dot, vBase + ((long)j0 * kvStride), kvStride, c, d, 1f);
                        var block = new Span<float>(s, c);
                        TensorPrimitives.Subtract(block, lse, block);
                        TensorPrimitives.Exp(block, block);
                        for (int i = 0; i < c; i++)
                        {
                            s[i] *= dp[i] - dRow;
                        }

                        int ii = 0;
                        float* kr = k0;
                        for (; ii + 4 <= c; ii += 4)
                        {
                            AddScaled4(acc, s[ii], kr, s[ii + 1], kr + kvStride, s[ii + 2], kr + (2L * kvStride), s[ii + 3], kr + (3L * kvStride), d);
                            kr += 4L * kvStride;
                        }

                        for (; ii < c; ii++)
                        {
                            AddScaled(acc, s[ii], kr, d);
                            kr += kvStride;
                        }
                    }

                    AddScaled(a.Dq + (row * d), a.Scale, acc, d);
                }
            }
        }
    }

    /// <summary>Dot product of two length-<paramref name="n"/> vectors (widest accelerated width, scalar tail).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static unsafe float Dot(float* a, float* b, int n)
    {
        int i = 0;
        float sum = 0f;
        if (Vector512.IsHardwareAccelerated && n >= Vector512<float>.Count)
        {
            Vector512<float> acc = Vector512<float>.Zero;
            for (; i <= n - Vector512<float>.Count; i += Vector512<float>.Count)
            {
                acc = Vector512.MultiplyAddEstimate(Vector512.Load(a + i), Vector512.Load(b + i), acc);
            }

            sum = Vector512.Sum(acc);
        }

        if (Vector256.IsHardwareAccelerated && i <= n - Vector256<float>.Count)
        {
            Vector256<float> acc = Vector256<float>.Zero;
            for (; i <= n - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                acc = Vector256.MultiplyAddEstimate(Vector256.Load(a + i), Vector256.Load(b + i), acc);
            }

            sum += Vector256.Sum(acc);
        }

        if (Vector128.IsHardwareAccelerated && i <= n - Vector128<float>.Count)
        {
            Vector128<float> acc = Vector128<float>.Zero;
            for (; i <= n - Vector128<float>.Count; i += Vector128<float>.Count)
            {
                acc = Vector128.MultiplyAddEstimate(Vector128.Load(a + i), Vector128.Load(b + i), acc);
            }

            sum += Vector128.Sum(acc);
        }

        for (; i < n; i++)
        {
            sum += a[i] * b[i];
        }

        return sum;
    }

    /// <summary>Four dot products sharing <paramref name="q"/>: <c>rX = q · kX</c>.</summary>
    private static unsafe void Dot4(float* q, float* k0, float* k1, float* k2, float* k3, int n, out float r0, out float r1, out float r2, out float r3)
    {
        int i = 0;
        float s0 = 0f, s1 = 0f, s2 = 0f, s3 = 0f;
        if (Vector512.IsHardwareAccelerated && n >= Vector512<float>.Count)
        {
            Vector512<float> a0 = Vector512<float>.Zero, a1 = a0, a2 = a0, a3 = a0;
            for (; i <= n - Vector512<float>.Count; i += Vector512<float>.Count)
            {
                Vector512<float> x = Vector512.Load(q + i);
                a0 = Vector512.MultiplyAddEstimate(x, Vector512.Load(k0 + i), a0);
                a1 = Vector512.MultiplyAddEstimate(x, Vector512.Load(k1 + i), a1);
                a2 = Vector512.MultiplyAddEstimate(x, Vector512.Load(k2 + i), a2);
                a3 = Vector512.MultiplyAddEstimate(x, Vector512.Load(k3 + i), a3);
            }

            s0 = Vector512.Sum(a0);
            s1 = Vector512.Sum(a1);
            s2 = Vector512.Sum(a2);
            s3 = Vector512.Sum(a3);
        }

        if (Vector256.IsHardwareAccelerated && i <= n - Vector256<float>.Count)
        {
            Vector256<float> a0 = Vector256<float>.Zero, a1 = a0, a2 = a0, a3 = a0;
            for (; i <= n - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                Vector256<float> x = Vector256.Load(q + i);
                a0 = Vector256.MultiplyAddEstimate(x, Vector256.Load(k0 + i), a0);
                a1 = Vector256.MultiplyAddEstimate(x, Vector256.Load(k1 + i), a1);
                a2 = Vector256.MultiplyAddEstimate(x, Vector256.Load(k2 + i), a2);
                a3 = Vector256.MultiplyAddEstimate(x, Vector256.Load(k3 + i), a3);
            }

            s0 += Vector256.Sum(a0);
            s1 += Vector256.Sum(a1);
            s2 += Vector256.Sum(a2);
            s3 += Vector256.Sum(a3);
        }

        if (Vector128.IsHardwareAccelerated && i <= n - Vector128<float>.Count)
        {
            Vector128<float> a0 = Vector128<float>.Zero, a1 = a0, a2 = a0, a3 = a0;
            for (; i <= n - Vector128<float>.Count; i += Vector128<float>.Count)
            {
                Vector128<float> x = Vector128.Load(q + i);
                a0 = Vector128.MultiplyAddEstimate(x, Vector128.Load(k0 + i), a0);
                a1 = Vector128.MultiplyAddEstimate(x, Vector128.Load(k1 + i), a1);
                a2 = Vector128.MultiplyAddEstimate(x, Vector128.Load(k2 + i), a2);
                a3 = Vector128.MultiplyAddEstimate(x, Vector128.Load(k3 + i), a3);
            }

            s0 += Vector128.Sum(a0);
            s1 += Vector128.Sum(a1);
            s2 += Vector128.Sum(a2);
            s3 += Vector128.Sum(a3);
        }

        for (; i < n; i++)
        {
            float x = q[i];
            s0 += x * k0[i];
            s1 += x * k1[i];
            s2 += x * k2[i];
            s3 += x * k3[i];
        }

        r0 = s0;
        r1 = s1;
        r2 = s2;
        r3 = s3;
    }

    /// <summary><c>y += alpha · x</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void AddScaled(float* y, float alpha, float* x, int n)
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var va = Vector512.Create(alpha);
            for (; i <= n - Vector512<float>.Count; i += Vector512<float>.Count)
            {
                Vector512.MultiplyAddEstimate(va, Vector512.Load(x + i), Vector512.Load(y + i)).Store(y + i);
            }
        }

        if (Vector256.IsHardwareAccelerated)
        {
            var va = Vector256.Create(alpha);
            for (; i <= n - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                Vector256.MultiplyAddEstimate(va, Vector256.Load(x + i), Vector256.Load(y + i)).Store(y + i);
            }
        }

        if (Vector128.IsHardwareAccelerated)
        {
            var va = Vector128.Create(alpha);
            for (; i <= n - Vector128<float>.Count; i += Vector128<float>.Count)
            {
                Vector128.MultiplyAddEstimate(va, Vector128.Load(x + i), Vector128.Load(y + i)).Store(y + i);
            }
        }

        for (; i < n; i++)
        {
            y[i] += alpha * x[i];
        }
    }

    /// <summary><c>y += a0·x0 + a1·x1 + a2·x2 + a3·x3</c> (one load and store of <paramref name="y"/> per vector).</summary>
    private static unsafe void AddScaled4(float* y, float a0, float* x0, float a1, float* x1, float a2, float* x2, float a3, float* x3, int n)
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            Vector512<float> c0 = Vector512.Create(a0), c1 = Vector512.Create(a1), c2 = Vector512.Create(a2), c3 = Vector512.Create(a3);
            for (; i <= n - Vector512<float>.Count; i += Vector512<float>.Count)
            {
                Vector512<float> acc = Vector512.MultiplyAddEstimate(c0, Vector512.Load(x0 + i), Vector512.Load(y + i));
                acc = Vector512.MultiplyAddEstimate(c1, Vector512.Load(x1 + i), acc);
                acc = Vector512.MultiplyAddEstimate(c2, Vector512.Load(x2 + i), acc);
                Vector512.MultiplyAddEstimate(c3, Vector512.Load(x3 + i), acc).Store(y + i);
            }
        }

        if (Vector256.IsHardwareAccelerated)
        {
            Vector256<float> c0 = Vector256.Create(a0), c1 = Vector256.Create(a1), c2 = Vector256.Create(a2), c3 = Vector256.Create(a3);
            for (; i <= n - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                Vector256<float> acc = Vector256.MultiplyAddEstimate(c0, Vector256.Load(x0 + i), Vector256.Load(y + i));
                acc = Vector256.MultiplyAddEstimate(c1, Vector256.Load(x1 + i), acc);
                acc = Vector256.MultiplyAddEstimate(c2, Vector256.Load(x2 + i), acc);
                Vector256.MultiplyAddEstimate(c3, Vector256.Load(x3 + i), acc).Store(y + i);
            }
        }

        if (Vector128.IsHardwareAccelerated)
        {
            Vector128<float> c0 = Vector128.Create(a0), c1 = Vector128.Create(a1), c2 = Vector128.Create(a2), c3 = Vector128.Create(a3);
            for (; i <= n - Vector128<float>.Count; i += Vector128<float>.Count)
            {
                Vector128<float> acc = Vector128.MultiplyAddEstimate(c0, Vector128.Load(x0 + i), Vector128.Load(y + i));
                acc = Vector128.MultiplyAddEstimate(c1, Vector128.Load(x1 + i), acc);
                acc = Vector128.MultiplyAddEstimate(c2, Vector128.Load(x2 + i), acc);
                Vector128.MultiplyAddEstimate(c3, Vector128.Load(x3 + i), acc).Store(y + i);
            }
        }

        for (; i < n; i++)
        {
            y[i] += (a0 * x0[i]) + (a1 * x1[i]) + (a2 * x2[i]) + (a3 * x3[i]);
        }
    }

    /// <summary><c>y *= alpha</c>.</summary>
    private static unsafe void ScaleInPlace(float* y, float alpha, int n)
    {
        var span = new Span<float>(y, n);
        TensorPrimitives.Multiply(span, alpha, span);
    }

    /// <summary><c>y = alpha · x</c>.</summary>
    private static unsafe void ScaleTo(float* y, float* x, float alpha, int n)
        => TensorPrimitives.Multiply(new ReadOnlySpan<float>(x, n), alpha, new Span<float>(y, n));
}
