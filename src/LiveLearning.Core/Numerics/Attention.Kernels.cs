using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace LiveLearning.Numerics;

/// <summary>Work items and SIMD helpers of <see cref="Attention"/>.</summary>
public static partial class Attention
{
    /// <summary>Queries or keys scored at once in the backward (scores live on the stack).</summary>
    private const int ScoreBlock = 256;

    /// <summary>Keys per forward softmax block (the unit of the split decode path too).</summary>
    private const int KeyBlock = 64;

    /// <summary>
    /// Largest <c>heads · tokens · (startPosition + tokens)</c> for which the backward keeps dS from its key pass
    /// (4 Mi floats = 16 MiB) instead of recomputing scores in its query pass.
    /// </summary>
    internal const int MaxStoredScores = 1 << 22;

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

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
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
            float* scores = stackalloc float[QuadRows * KeyBlock];
            Span<float> scratch = d <= MaxStackHeadDim ? stackalloc float[2 * QuadRows * d] : new float[2 * QuadRows * d];
            fixed (float* run = scratch)
            {
                int t = t0;
                if (QuadRowsApply(d))
                {
                    for (; t + QuadRows <= t1; t += QuadRows)
                    {
                        long row = ((long)t * Heads) + h;
                        ForwardQuad(Output + (row * d), Q + (row * d), (long)Heads * d, kBase, vBase, kvStride, StartPosition + t + 1, d, Scale, scores, run, run + (QuadRows * d), Lse == null ? null : Lse + row, Heads);
                    }
                }

                for (; t < t1; t++)
                {
                    long row = ((long)t * Heads) + h;
                    float lse = ForwardRow(Output + (row * d), Q + (row * d), kBase, vBase, kvStride, StartPosition + t + 1, d, Scale, scores, run, run + d);
                    if (Lse != null)
                    {
                        Lse[row] = lse;
                    }
                }
            }
        }
    }

    /// <summary>
    /// One query row against keys <c>0 … n−1</c>: each block of <see cref="KeyBlock"/> keys yields a partial
    /// (block max, Σ exp, Σ exp·v) that is merged into the running (max, sum, accumulator) in key order.
    /// The split decode path (<see cref="DecodePartialJob"/>) computes the same partials on other threads and
    /// merges them in the same order, so both paths give identical bits. Writes <c>acc / l</c> and returns
    /// the log-sum-exp <c>m + log l</c>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe float ForwardRow(float* o, float* q, float* kBase, float* vBase, int kvStride, int n, int d, float scale, float* s, float* run, float* part)
    {
        float m = BlockPartial(run, q, kBase, vBase, kvStride, Math.Min(KeyBlock, n), d, scale, s, out float l);
        for (int j0 = KeyBlock; j0 < n; j0 += KeyBlock)
        {
            long offset = (long)j0 * kvStride;
            float bm = BlockPartial(part, q, kBase + offset, vBase + offset, kvStride, Math.Min(KeyBlock, n - j0), d, scale, s, out float bl);
            Merge(ref m, ref l, run, bm, bl, part, d);
        }

        return Finish(o, run, m, l, d);
    }

    /// <summary>Partial softmax of one query row over <paramref name="c"/> keys: returns the block max, sets
    /// <paramref name="sum"/> = Σ exp(s − max) and <paramref name="acc"/> = Σ exp(s − max)·v.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe float BlockPartial(float* acc, float* q, float* k, float* v, int kvStride, int c, int d, float scale, float* s, out float sum)
    {
        Scores(s, q, k, kvStride, c, d, scale);

        // A NaN score poisons the row through exp (NaN) whatever the max does with it.
        float m = MaxOf(s, c);
        sum = ExpShifted(s, c, m);
        new Span<float>(acc, d).Clear();
        AccumulateRows(acc, s, v, kvStride, c, d);
        return m;
    }

    /// <summary>Merges a block partial into the running state: rescales both to the larger max and adds.</summary>
    private static unsafe void Merge(ref float m, ref float l, float* run, float bm, float bl, float* part, int d)
    {
        float mNew = MathF.Max(m, bm);
        float a = MathF.Exp(m - mNew);
        float b = MathF.Exp(bm - mNew);
        l = (l * a) + (bl * b);
        ScaleInPlace(run, a, d);
        AddScaled(run, b, part, d);
        m = mNew;
    }

    private static unsafe float Finish(float* o, float* run, float m, float l, int d)
    {
        ScaleTo(o, run, 1f / l, d);
        return m + MathF.Log(l);
    }

    /// <summary>
    /// Split-key forward for few query rows (decode): item (kv head g, key block b) computes the block partial
    /// of every query row of the group's heads that sees block b, reusing the block's keys and values from
    /// cache across those heads. Partials go to <c>Partials[(row · Blocks + b) · (headDim + 2)]</c> as
    /// (max, sum, acc[headDim]).
    /// </summary>
    private unsafe struct DecodePartialJob : IParallelJob
    {
        public float* Partials;
        public float* Q;
        public float* K;
        public float* V;
        public int Tokens;
        public int StartPosition;
        public int Heads;
        public int KvHeads;
        public int HeadDim;
        public int Group;
        public int Blocks;
        public float Scale;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Execute(int index)
        {
            int g = index % KvHeads;
            int b = index / KvHeads;
            int d = HeadDim;
            int kvStride = KvHeads * d;
            int j0 = b * KeyBlock;
            long offset = ((long)j0 * kvStride) + ((long)g * d);
            float* s = stackalloc float[KeyBlock];
            for (int t = 0; t < Tokens; t++)
            {
                int n = StartPosition + t + 1;
                if (j0 >= n)
                {
                    continue;
                }

                int c = Math.Min(KeyBlock, n - j0);
                for (int h = g * Group; h < (g + 1) * Group; h++)
                {
                    long row = ((long)t * Heads) + h;
                    float* p = Partials + (((row * Blocks) + b) * (d + 2));
                    p[0] = BlockPartial(p + 2, Q + (row * d), K + offset, V + offset, kvStride, c, d, Scale, s, out float sum);
                    p[1] = sum;
                }
            }
        }
    }

    /// <summary>Merges the split-key partials of each query row in key order (same arithmetic as <see cref="ForwardRow"/>).</summary>
    private static unsafe void MergePartials(float* output, float* lse, float* partials, int tokens, int startPosition, int heads, int d, int blocks)
    {
        for (int t = 0; t < tokens; t++)
        {
            int rowBlocks = (startPosition + t + KeyBlock) / KeyBlock;
            for (int h = 0; h < heads; h++)
            {
                long row = ((long)t * heads) + h;
                float* p = partials + (row * blocks * (d + 2));
                float* run = p + 2;
                float m = p[0];
                float l = p[1];
                for (int b = 1; b < rowBlocks; b++)
                {
                    float* pb = p + ((long)b * (d + 2));
                    Merge(ref m, ref l, run, pb[0], pb[1], pb + 2, d);
                }

                float r = Finish(output + (row * d), run, m, l, d);
                if (lse != null)
                {
                    lse[row] = r;
                }
            }
        }
    }

    /// <summary><c>s[i] = scale · (q · k_i)</c> for <c>c</c> key rows spaced <paramref name="stride"/> apart.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void Scores(float* s, float* q, float* k, int stride, int c, int d, float scale)
    {
        int i = 0;
        for (; i + 4 <= c; i += 4)
        {
            Dot4(q, k, k + stride, k + (2L * stride), k + (3L * stride), d, s + i, scale);
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
        public float* DsStore;
        public int Keys;
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

    /// <summary>Owns the <c>dq</c> rows of one (head, query tile): <c>dq_t = scale · Σ_j dS_tj · k_j</c>.</summary>
    private unsafe struct BackwardQueryJob : IParallelJob
    {
        public BackwardArgs Args;
        public int TileRows;
        public int Tiles;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
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
            if (a.DsStore != null)
            {
                // dS was stored by the key pass: dq_t = scale · Σ_j dS_tj · k_j.
                StoredQueryRows(a, h, t0, t1);
                return;
            }

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
                        ExpShifted(s, c, lse);
                        for (int i = 0; i < c; i++)
                        {
                            s[i] *= dp[i] - dRow;
                        }

                        AccumulateRows(acc, s, k0, kvStride, c, d);
                    }

                    AddScaled(a.Dq + (row * d), a.Scale, acc, d);
                }
            }
        }
    }

    /// <summary>Dot product of two length-<paramref name="n"/> vectors (widest accelerated width, scalar tail).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static unsafe float Dot(float* a, float* b, int n)
        => VecLoops.Sum(new DotOp { A = a, B = b }, n);

    /// <summary>Four dot products sharing <paramref name="q"/>: <c>dst[X] = scale · (q · kX)</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void Dot4(float* q, float* k0, float* k1, float* k2, float* k3, int n, float* dst, float scale)
    {
        int i = 0;
        Vector128<float> c0 = Vector128<float>.Zero, c1 = c0, c2 = c0, c3 = c0;
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

            c0 = Fold(a0.GetLower() + a0.GetUpper());
            c1 = Fold(a1.GetLower() + a1.GetUpper());
            c2 = Fold(a2.GetLower() + a2.GetUpper());
            c3 = Fold(a3.GetLower() + a3.GetUpper());
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

            c0 += Fold(a0);
            c1 += Fold(a1);
            c2 += Fold(a2);
            c3 += Fold(a3);
        }

        float s0 = 0f, s1 = 0f, s2 = 0f, s3 = 0f;
        if (Vector128.IsHardwareAccelerated)
        {
            for (; i <= n - Vector128<float>.Count; i += Vector128<float>.Count)
            {
                Vector128<float> x = Vector128.Load(q + i);
                c0 = Vector128.MultiplyAddEstimate(x, Vector128.Load(k0 + i), c0);
                c1 = Vector128.MultiplyAddEstimate(x, Vector128.Load(k1 + i), c1);
                c2 = Vector128.MultiplyAddEstimate(x, Vector128.Load(k2 + i), c2);
                c3 = Vector128.MultiplyAddEstimate(x, Vector128.Load(k3 + i), c3);
            }

            if (Sse3.IsSupported)
            {
                // Transpose-and-add: one vector holding the four horizontal sums.
                Vector128<float> sums = Sse3.HorizontalAdd(Sse3.HorizontalAdd(c0, c1), Sse3.HorizontalAdd(c2, c3));
                if (i == n)
                {
                    (sums * Vector128.Create(scale)).Store(dst);
                    return;
                }

                s0 = sums.GetElement(0);
                s1 = sums.GetElement(1);
                s2 = sums.GetElement(2);
                s3 = sums.GetElement(3);
            }
            else
            {
                s0 = Vector128.Sum(c0);
                s1 = Vector128.Sum(c1);
                s2 = Vector128.Sum(c2);
                s3 = Vector128.Sum(c3);
            }
        }

        for (; i < n; i++)
        {
            float x = q[i];
            s0 += x * k0[i];
            s1 += x * k1[i];
            s2 += x * k2[i];
            s3 += x * k3[i];
        }

        dst[0] = scale * s0;
        dst[1] = scale * s1;
        dst[2] = scale * s2;
        dst[3] = scale * s3;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> Fold(Vector256<float> v) => v.GetLower() + v.GetUpper();

    /// <summary><c>acc += Σ_i coef[i] · x_i</c> over <paramref name="c"/> rows <c>x_i = x + i·stride</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void AccumulateRows(float* acc, float* coef, float* x, long stride, int c, int d)
    {
        int i = 0;
        for (; i + 4 <= c; i += 4)
        {
            AddScaled4(acc, coef[i], x, coef[i + 1], x + stride, coef[i + 2], x + (2 * stride), coef[i + 3], x + (3 * stride), d);
            x += 4 * stride;
        }

        for (; i < c; i++)
        {
            AddScaled(acc, coef[i], x, d);
            x += stride;
        }
    }

    /// <summary><c>y += alpha · x</c>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void AddScaled(float* y, float alpha, float* x, int n)
        => VecLoops.Map(new AddScaledOp { Y = y, Alpha = alpha, X = x }, n);

    /// <summary><c>y += a0·x0 + a1·x1 + a2·x2 + a3·x3</c> (one load and store of <paramref name="y"/> per vector).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
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
    private static unsafe void ScaleInPlace(float* y, float alpha, int n) => ScaleTo(y, y, alpha, n);

    /// <summary><c>y = alpha · x</c> (<paramref name="y"/> may equal <paramref name="x"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void ScaleTo(float* y, float* x, float alpha, int n)
    {
        // Hand-written instead of TensorPrimitives: these spans are short and called per row, where the
        // library's dispatch (and, before it tiers up, its unoptimised code) costs more than the arithmetic.
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var va = Vector512.Create(alpha);
            for (; i <= n - Vector512<float>.Count; i += Vector512<float>.Count)
            {
                (va * Vector512.Load(x + i)).Store(y + i);
            }
        }

        if (Vector256.IsHardwareAccelerated)
        {
            var va = Vector256.Create(alpha);
            for (; i <= n - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                (va * Vector256.Load(x + i)).Store(y + i);
            }
        }

        if (Vector128.IsHardwareAccelerated)
        {
            var va = Vector128.Create(alpha);
            for (; i <= n - Vector128<float>.Count; i += Vector128<float>.Count)
            {
                (va * Vector128.Load(x + i)).Store(y + i);
            }
        }

        for (; i < n; i++)
        {
            y[i] = alpha * x[i];
        }
    }

    /// <summary>Largest of <c>s[0..n)</c> (n ≥ 1). NaN handling is irrelevant to callers: exp of a NaN score poisons the row anyway.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe float MaxOf(float* s, int n)
    {
        int i = 0;
        float max = float.NegativeInfinity;
        if (Vector512.IsHardwareAccelerated && n >= Vector512<float>.Count)
        {
            Vector512<float> vm = Vector512.Load(s);
            for (i = Vector512<float>.Count; i <= n - Vector512<float>.Count; i += Vector512<float>.Count)
            {
                vm = Vector512.Max(vm, Vector512.Load(s + i));
            }

            max = HorizontalMax(Vector256.Max(vm.GetLower(), vm.GetUpper()));
        }
        else if (Vector256.IsHardwareAccelerated && n >= Vector256<float>.Count)
        {
            Vector256<float> vm = Vector256.Load(s);
            for (i = Vector256<float>.Count; i <= n - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                vm = Vector256.Max(vm, Vector256.Load(s + i));
            }

            max = HorizontalMax(vm);
        }

        for (; i < n; i++)
        {
            max = MathF.Max(max, s[i]);
        }

        return max;
    }

    private static float HorizontalMax(Vector256<float> v)
    {
        Vector128<float> m = Vector128.Max(v.GetLower(), v.GetUpper());
        float r = MathF.Max(m.GetElement(0), m.GetElement(1));
        return MathF.Max(r, MathF.Max(m.GetElement(2), m.GetElement(3)));
    }

    /// <summary>
    /// <c>s[i] = exp(s[i] − shift)</c> for <c>i &lt; n</c>; returns the sum. Arguments are expected ≤ ~0 (scores
    /// minus their max, or minus the row log-sum-exp); results below float range flush to 0 and NaN stays NaN.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static unsafe float ExpShifted(float* s, int n, float shift)
    {
        int i = 0;
        float sum = 0f;
        if (Vector512.IsHardwareAccelerated && n >= Vector512<float>.Count)
        {
            Vector512<float> acc = Vector512<float>.Zero;
            var vs = Vector512.Create(shift);
            for (; i <= n - Vector512<float>.Count; i += Vector512<float>.Count)
            {
                Vector512<float> e = FastExp.Exp(Vector512.Load(s + i) - vs);
                e.Store(s + i);
                acc += e;
            }

            sum = Vector512.Sum(acc);
        }

        if (Vector256.IsHardwareAccelerated && i <= n - Vector256<float>.Count)
        {
            Vector256<float> acc = Vector256<float>.Zero;
            var vs = Vector256.Create(shift);
            for (; i <= n - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                Vector256<float> e = FastExp.Exp(Vector256.Load(s + i) - vs);
                e.Store(s + i);
                acc += e;
            }

            sum += Vector256.Sum(acc);
        }

        if (Vector128.IsHardwareAccelerated && i <= n - Vector128<float>.Count)
        {
            Vector128<float> acc = Vector128<float>.Zero;
            var vs = Vector128.Create(shift);
            for (; i <= n - Vector128<float>.Count; i += Vector128<float>.Count)
            {
                Vector128<float> e = FastExp.Exp(Vector128.Load(s + i) - vs);
                e.Store(s + i);
                acc += e;
            }

            sum += Vector128.Sum(acc);
        }

        for (; i < n; i++)
        {
            float e = FastExp.Exp(s[i] - shift);
            s[i] = e;
            sum += e;
        }

        return sum;
    }

    /// <summary>acc + a·b (<see cref="IVecOps{TV}.Fma"/>: fused on vectors where the hardware has FMA, two roundings on the scalar tail).</summary>
    private unsafe struct DotOp : ISumOp
    {
        public float* A;
        public float* B;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public readonly TV Accumulate<TV, TOps>(TV acc, nint i)
            where TV : struct
            where TOps : struct, IVecOps<TV>
            => TOps.Fma(TOps.Load(A + i), TOps.Load(B + i), acc);
    }

    /// <summary>y = alpha·x + y (<see cref="IVecOps{TV}.Fma"/>, as <see cref="DotOp"/>).</summary>
    private unsafe struct AddScaledOp : IMapOp
    {
        public float* Y;
        public float* X;
        public float Alpha;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public readonly void Invoke<TV, TOps>(nint i)
            where TV : struct
            where TOps : struct, IVecOps<TV>
            => TOps.Store(TOps.Fma(TOps.Splat(Alpha), TOps.Load(X + i), TOps.Load(Y + i)), Y + i);
    }
}
