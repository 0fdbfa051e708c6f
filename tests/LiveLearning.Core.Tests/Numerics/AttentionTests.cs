using LiveLearning.Numerics;
using NUnit.Framework;

namespace LiveLearning.Tests.Numerics;

/// <summary>
/// Causal GQA attention against the double-precision <see cref="AttentionReference"/>, against finite differences,
/// and for the KV-cache, threading, NaN, bounds and argument contracts.
/// </summary>
/// <remarks>
/// Tolerances: forward outputs are convex combinations of values in [-1, 1], so they are compared with an absolute
/// 2e-5 (float32 dot products and exp over up to ~800 keys); log-sum-exp with 2e-5·(1 + |ref|); gradients with
/// 1e-4 scaled by the largest reference magnitude of the tensor (they sum up to tokens·group terms).
/// </remarks>
[TestFixture]
[Category("Kernels")]
public sealed class AttentionTests
{
    private const float OutputTolerance = 2e-5f;
    private const float GradientTolerance = 1e-4f;

    private static readonly (int Heads, int KvHeads)[] HeadCombos = [(1, 1), (4, 4), (4, 2), (9, 3), (8, 1)];
    private static readonly int[] HeadDims = [1, 3, 8, 16, 64, 65, 128];
    private static readonly int[] TokenCounts = [1, 2, 5, 17, 64];
    private static readonly int[] StartPositions = [0, 3, 31];

    private static IEnumerable<TestCaseData> HeadsAndDims()
    {
        foreach ((int heads, int kvHeads) in HeadCombos)
        {
            foreach (int d in HeadDims)
            {
                yield return new TestCaseData(heads, kvHeads, d).SetArgDisplayNames($"H{heads}_KV{kvHeads}_d{d}");
            }
        }
    }

    [TestCaseSource(nameof(HeadsAndDims))]
    public void ForwardMatchesReferenceForEveryTokenCountAndStartPosition(int heads, int kvHeads, int headDim)
    {
        foreach (int tokens in TokenCounts)
        {
            foreach (int start in StartPositions)
            {
                var c = new Case(heads, kvHeads, headDim, tokens, start, start + tokens + 2, seed: (tokens * 131) + start);
                (float[] expected, float[] expectedLse) = c.ReferenceForward();
                (float[] actual, float[] lse) = c.Forward(null);
                AssertClose(actual, expected, OutputTolerance, $"output, {c}");
                AssertLseClose(lse, expectedLse, c.ToString());
            }
        }
    }

    [TestCaseSource(nameof(HeadsAndDims))]
    public void BackwardMatchesReferenceForEveryTokenCountAndStartPosition(int heads, int kvHeads, int headDim)
    {
        foreach (int tokens in TokenCounts)
        {
            foreach (int start in StartPositions)
            {
                var c = new Case(heads, kvHeads, headDim, tokens, start, start + tokens + 2, seed: (tokens * 71) + start + 5);
                c.AssertBackwardMatchesReference(null);
            }
        }
    }

    [Test]
    public void ForwardAndBackwardMatchReferenceForEveryHeadDimLength()
    {
        foreach (int d in TestData.KernelLengths.Where(n => n > 0))
        {
            var c = new Case(4, 2, d, tokens: 3, start: 2, kvLength: 6, seed: d);
            (float[] expected, float[] expectedLse) = c.ReferenceForward();
            (float[] actual, float[] lse) = c.Forward(null);
            AssertClose(actual, expected, OutputTolerance, $"output, {c}");
            AssertLseClose(lse, expectedLse, c.ToString());
            c.AssertBackwardMatchesReference(null);
        }
    }

    [TestCase(1, 700, 9, 3, 64)]
    [TestCase(3, 530, 4, 2, 65)]
    [TestCase(300, 0, 2, 1, 16)]
    public void LongRowsSpanningSeveralKeyBlocksMatchReference(int tokens, int start, int heads, int kvHeads, int headDim)
    {
        // Rows longer than one 256-key score block exercise the online-softmax rescaling; large scores make the
        // running max change between blocks.
        var c = new Case(heads, kvHeads, headDim, tokens, start, start + tokens, seed: 17, qScale: 6f);
        (float[] expected, float[] expectedLse) = c.ReferenceForward();
        (float[] actual, float[] lse) = c.Forward(null);
        AssertClose(actual, expected, OutputTolerance, $"output, {c}");
        AssertLseClose(lse, expectedLse, c.ToString());
        c.AssertBackwardMatchesReference(null);
    }

    [TestCase(false)]
    [TestCase(true)]
    public void PrefillThenIncrementalDecodeEqualsFullComputation(bool twoThreads)
    {
        // With two threads the one-token steps past the first key block take the split-key decode path.
        using var pool = twoThreads ? new ComputePool(2) : null;
        const int heads = 9, kvHeads = 3, d = 64, total = 150;
        var full = new Case(heads, kvHeads, d, total, 0, total, seed: 3);
        (float[] expected, float[] expectedLse) = full.Forward(null);
        var output = new float[expected.Length];
        var lse = new float[expectedLse.Length];
        int rowSize = heads * d;

        // Prefill 7 tokens, then decode one token at a time up to 140, then a chunk of 10: the cache grows each call.
        var chunks = new List<(int Start, int Tokens)> { (0, 7) };
        for (int p = 7; p < 140; p++)
        {
            chunks.Add((p, 1));
        }

        chunks.Add((140, 10));
        foreach ((int start, int tokens) in chunks)
        {
            int kvLength = start + tokens;
            Attention.Forward(
                output.AsSpan(start * rowSize, tokens * rowSize),
                lse.AsSpan(start * heads, tokens * heads),
                full.Q.AsSpan(start * rowSize, tokens * rowSize),
                full.K.AsSpan(0, kvLength * kvHeads * d),
                full.V.AsSpan(0, kvLength * kvHeads * d),
                tokens,
                start,
                kvLength,
                heads,
                kvHeads,
                d,
                full.Scale,
                pool);
        }

        // Each row is computed by the same code over the same keys, so the results are identical, not just close.
        Assert.That(output, Is.EqualTo(expected));
        Assert.That(lse, Is.EqualTo(expectedLse));
    }

    /// <summary>
    /// A chunk of rows (computed four consecutive rows at a time where the vectors allow) equals the same rows computed
    /// one call per row, bit for bit, including quads whose first row ends exactly at a key-block boundary. The quads
    /// need 512-bit vectors and a head dimension that is a multiple of 16 (d = 20 here always takes the row path);
    /// without AVX-512 every case compares the row path with itself.
    /// </summary>
    [TestCase(4, 2, 64, 4, 63)]
    [TestCase(4, 2, 64, 9, 60)]
    [TestCase(9, 3, 32, 70, 125)]
    [TestCase(2, 1, 48, 6, 0)]
    [TestCase(2, 2, 20, 7, 62)]
    public void RowsComputedTogetherEqualRowsComputedOneAtATime(int heads, int kvHeads, int d, int tokens, int start)
    {
        var c = new Case(heads, kvHeads, d, tokens, start, start + tokens, seed: 29);
        (float[] together, float[] togetherLse) = c.Forward(null);
        int rowSize = heads * d;
        var alone = new float[together.Length];
        var aloneLse = new float[togetherLse.Length];
        for (int t = 0; t < tokens; t++)
        {
            int kvLength = start + t + 1;
            Attention.Forward(
                alone.AsSpan(t * rowSize, rowSize), aloneLse.AsSpan(t * heads, heads), c.Q.AsSpan(t * rowSize, rowSize),
                c.K.AsSpan(0, kvLength * kvHeads * d), c.V.AsSpan(0, kvLength * kvHeads * d), 1, start + t, kvLength, heads, kvHeads, d, c.Scale);
        }

        Assert.That(together, Is.EqualTo(alone));
        Assert.That(togetherLse, Is.EqualTo(aloneLse));
    }

    [TestCase(9, 3, 64, 64, 0)]
    [TestCase(9, 3, 64, 1, 511)]
    [TestCase(8, 1, 16, 17, 31)]
    public void ResultsDoNotDependOnThreadCount(int heads, int kvHeads, int headDim, int tokens, int start)
    {
        var c = new Case(heads, kvHeads, headDim, tokens, start, start + tokens, seed: 11);
        using var one = new ComputePool(1);
        using var two = new ComputePool(2);
        (float[] o0, float[] l0) = c.Forward(null);
        (float[] o1, float[] l1) = c.Forward(one);
        (float[] o2, float[] l2) = c.Forward(two);
        Assert.That(o1, Is.EqualTo(o0));
        Assert.That(o2, Is.EqualTo(o0));
        Assert.That(l1, Is.EqualTo(l0));
        Assert.That(l2, Is.EqualTo(l0));

        (float[] dq0, float[] dk0, float[] dv0) = c.Backward(null, o0, l0);
        (float[] dq1, float[] dk1, float[] dv1) = c.Backward(one, o0, l0);
        (float[] dq2, float[] dk2, float[] dv2) = c.Backward(two, o0, l0);
        Assert.That(dq1, Is.EqualTo(dq0));
        Assert.That(dq2, Is.EqualTo(dq0));
        Assert.That(dk1, Is.EqualTo(dk0));
        Assert.That(dk2, Is.EqualTo(dk0));
        Assert.That(dv1, Is.EqualTo(dv0));
        Assert.That(dv2, Is.EqualTo(dv0));
    }

    [TestCase(9, 3, 64, 17, 31)]
    [TestCase(4, 2, 65, 5, 300)]
    [TestCase(8, 1, 3, 64, 0)]
    public void BackwardThatRecomputesScoresInsteadOfStoringThemMatchesReferenceAtAnyThreadCount(int heads, int kvHeads, int headDim, int tokens, int start)
    {
        // Long sequences (heads·tokens·keys above Attention.MaxStoredScores) recompute P and dP in the query pass.
        var c = new Case(heads, kvHeads, headDim, tokens, start, start + tokens, seed: 31);
        (float[] o, float[] l) = c.Forward(null);
        var rq = new float[c.Q.Length];
        var rk = new float[c.K.Length];
        var rv = new float[c.V.Length];
        AttentionReference.Backward(rq, rk, rv, c.G, o, l, c.Q, c.K, c.V, tokens, start, c.KvLength, heads, kvHeads, headDim, c.Scale);
        using var two = new ComputePool(2);
        float[]? first = null;
        foreach (ComputePool? pool in new[] { null, two })
        {
            var dq = new float[c.Q.Length];
            var dk = new float[c.K.Length];
            var dv = new float[c.V.Length];
            Attention.Backward(dq, dk, dv, c.G, o, l, c.Q, c.K, c.V, tokens, start, c.KvLength, heads, kvHeads, headDim, c.Scale, pool, maxStoredScores: 0);
            AssertGradientClose(dq, rq, $"dq, {c}");
            AssertGradientClose(dk, rk, $"dk, {c}");
            AssertGradientClose(dv, rv, $"dv, {c}");
            float[] all = [.. dq, .. dk, .. dv];
            if (first is null)
            {
                first = all;
            }
            else
            {
                Assert.That(all, Is.EqualTo(first), "2 threads vs 1");
            }
        }
    }

    [TestCase(4, 2, 5, 3, 2)]
    [TestCase(9, 3, 3, 4, 0)]
    [TestCase(8, 1, 2, 1, 3)]
    [TestCase(1, 1, 7, 6, 1)]
    public void BackwardMatchesCentralFiniteDifferencesOfWeightedOutputSum(int heads, int kvHeads, int headDim, int tokens, int start)
    {
        // L = Σ out · g, evaluated in double from the reference forward; central differences with step 1e-2
        // (the float-rounded step is used as the denominator). Truncation error is O(h²) ≈ 1e-4 relative.
        int kvLength = start + tokens + 1;
        var c = new Case(heads, kvHeads, headDim, tokens, start, kvLength, seed: 23, qScale: 1.5f);
        float[] g = TestData.Uniform(c.Q.Length, 99);
        (float[] o, float[] l) = c.Forward(null);
        (float[] dq, float[] dk, float[] dv) = c.Backward(null, o, l, g);

        double Loss()
        {
            var output = new float[c.Q.Length];
            AttentionReference.Forward(output, default, c.Q, c.K, c.V, tokens, start, kvLength, heads, kvHeads, headDim, c.Scale);
            double sum = 0;
            for (int i = 0; i < output.Length; i++)
            {
                sum += (double)output[i] * g[i];
            }

            return sum;
        }

        void Check(float[] x, float[] grad, string name)
        {
            const double step = 1e-2;
            for (int i = 0; i < x.Length; i++)
            {
                float saved = x[i];
                float plus = (float)(saved + step);
                float minus = (float)(saved - step);
                x[i] = plus;
                double lp = Loss();
                x[i] = minus;
                double lm = Loss();
                x[i] = saved;
                double fd = (lp - lm) / ((double)plus - minus);
                Assert.That(grad[i], Is.EqualTo(fd).Within(1e-3 * (1 + Math.Abs(fd))), $"{name}[{i}], {c}");
            }
        }

        Check(c.Q, dq, "dq");
        Check(c.K, dk, "dk");
        Check(c.V, dv, "dv");

        // Key rows no query can see get exactly zero gradient.
        int firstUnseen = (start + tokens) * kvHeads * headDim;
        Assert.That(dk.AsSpan(firstUnseen).ToArray(), Is.All.EqualTo(0f));
        Assert.That(dv.AsSpan(firstUnseen).ToArray(), Is.All.EqualTo(0f));
    }

    [Test]
    public void BackwardAccumulatesIntoExistingGradients()
    {
        var c = new Case(4, 2, 8, 5, 3, 8, seed: 5);
        (float[] o, float[] l) = c.Forward(null);
        (float[] dq, float[] dk, float[] dv) = c.Backward(null, o, l);
        (float[] dq2, float[] dk2, float[] dv2) = c.Backward(null, o, l, initial: 1f);
        for (int i = 0; i < dq.Length; i++)
        {
            Assert.That(dq2[i], Is.EqualTo(dq[i] + 1f).Within(1e-6f * (1 + Math.Abs(dq[i]))));
        }

        for (int i = 0; i < dk.Length; i++)
        {
            Assert.That(dk2[i], Is.EqualTo(dk[i] + 1f).Within(1e-6f * (1 + Math.Abs(dk[i]))));
            Assert.That(dv2[i], Is.EqualTo(dv[i] + 1f).Within(1e-6f * (1 + Math.Abs(dv[i]))));
        }
    }

    [Test]
    public void NaNInQueryPoisonsOnlyItsOwnRow()
    {
        var c = new Case(4, 2, 8, 5, 3, 8, seed: 1);
        int t = 2, h = 3;
        c.Q[(((t * 4) + h) * 8) + 5] = float.NaN;
        (float[] o, float[] lse) = c.Forward(null);
        for (int row = 0; row < 5 * 4; row++)
        {
            bool poisoned = row == (t * 4) + h;
            float[] values = o.AsSpan(row * 8, 8).ToArray();
            Assert.That(values, poisoned ? Is.All.NaN : Is.All.Not.NaN, $"row {row}");
            Assert.That(float.IsNaN(lse[row]), Is.EqualTo(poisoned), $"lse row {row}");
        }
    }

    [Test]
    public void NaNInValuePropagatesToEveryQueryThatSeesItAndNoOther()
    {
        // Value row 4 of kv head 1 (query heads 2, 3). Queries at positions 3..7 (t = 0..4); those at position ≥ 4 see it.
        var c = new Case(4, 2, 8, 5, 3, 8, seed: 2);
        c.V[(((4 * 2) + 1) * 8) + 0] = float.NaN;
        (float[] o, float[] l) = c.Forward(null);
        for (int t = 0; t < 5; t++)
        {
            for (int h = 0; h < 4; h++)
            {
                bool sees = h / 2 == 1 && 3 + t >= 4;
                float first = o[((t * 4) + h) * 8];
                Assert.That(float.IsNaN(first), Is.EqualTo(sees), $"t={t} h={h}");
            }
        }

        (float[] dq, float[] dk, float[] dv) = c.Backward(null, o, l);
        // dv = Pᵀ·dOutput does not depend on v, so it stays finite; dq and dk go through dP = dOutput·vᵀ.
        Assert.That(dv, Is.All.Not.NaN, "dv");
        Assert.That(dq.Any(float.IsNaN), Is.True, "dq");
        Assert.That(dk.Any(float.IsNaN), Is.True, "dk");
    }

    [Test]
    public void NaNInUpstreamGradientReachesAllThreeGradients()
    {
        var c = new Case(4, 2, 8, 5, 3, 8, seed: 4);
        (float[] o, float[] l) = c.Forward(null);
        float[] g = TestData.Uniform(o.Length, 8);
        g[(((1 * 4) + 0) * 8) + 2] = float.NaN; // t = 1, head 0 (kv head 0), position 4
        (float[] dq, float[] dk, float[] dv) = c.Backward(null, o, l, g);
        Assert.That(float.IsNaN(dq[((1 * 4) + 0) * 8]), Is.True, "dq of the poisoned row");
        Assert.That(float.IsNaN(dq[((1 * 4) + 2) * 8]), Is.False, "dq of a head in the other group");
        Assert.That(float.IsNaN(dv[(((4 * 2) + 0) * 8) + 2]), Is.True, "dv of a key the row sees, in the poisoned element");
        Assert.That(float.IsNaN(dv[(((4 * 2) + 0) * 8) + 3]), Is.False, "dv of a key the row sees, in another element");
        Assert.That(float.IsNaN(dk[((0 * 2) + 0) * 8]), Is.True, "dk of a key the row sees");
        Assert.That(float.IsNaN(dv[((0 * 2) + 1) * 8]), Is.False, "dv of the other kv head");
    }

    [TestCase(1, 5, false)]
    [TestCase(7, 0, false)]
    [TestCase(3, 300, false)]
    [TestCase(1, 200, true)]
    [TestCase(2, 64, true)]
    public void NeverReadsFutureOrBeyondKvLengthAndWritesOnlyItsRows(int tokens, int start, bool twoThreads)
    {
        using var pool = twoThreads ? new ComputePool(2) : null;
        // k/v buffers hold 3 rows past startPosition + tokens that are masked (inside kvLength) and 5 more past
        // kvLength (a cache with spare capacity): all NaN, so a single read of them would poison the output.
        const int heads = 4, kvHeads = 2, d = 17;
        int kvLength = start + tokens + 3;
        int capacity = kvLength + 5;
        var c = new Case(heads, kvHeads, d, tokens, start, kvLength, seed: 9);
        int kvRow = kvHeads * d;
        int seen = (start + tokens) * kvRow;
        var k = TestData.Guarded(capacity * kvRow, float.NaN);
        var v = TestData.Guarded(capacity * kvRow, float.NaN);
        c.K.AsSpan(0, seen).CopyTo(k.Span);
        c.V.AsSpan(0, seen).CopyTo(v.Span);

        var output = TestData.Guarded(c.Q.Length);
        var lse = TestData.Guarded(tokens * heads);
        Attention.Forward(output.Span, lse.Span, c.Q, k.Span, v.Span, tokens, start, kvLength, heads, kvHeads, d, c.Scale, pool);
        output.AssertGuardsIntact();
        lse.AssertGuardsIntact();
        Assert.That(output.ToArray(), Is.All.Not.NaN);
        (float[] expected, _) = c.ReferenceForward();
        AssertClose(output.ToArray(), expected, OutputTolerance, c.ToString());

        var dq = TestData.Guarded(c.Q.Length);
        var dk = TestData.Guarded(capacity * kvRow, 0.5f);
        var dv = TestData.Guarded(capacity * kvRow, 0.5f);
        float[] g = TestData.Uniform(c.Q.Length, 4);
        Attention.Backward(dq.Span, dk.Span, dv.Span, g, output.Span, lse.Span, c.Q, k.Span, v.Span, tokens, start, kvLength, heads, kvHeads, d, c.Scale, pool);
        dq.AssertGuardsIntact();
        dk.AssertGuardsIntact();
        dv.AssertGuardsIntact();
        k.AssertGuardsIntact();
        v.AssertGuardsIntact();
        Assert.That(dq.ToArray(), Is.All.Not.NaN);
        Assert.That(dk.Span[..seen].ToArray(), Is.All.Not.NaN);
        Assert.That(dv.Span[..seen].ToArray(), Is.All.Not.NaN);
        Assert.That(dk.Span[seen..].ToArray(), Is.All.EqualTo(0.5f), "dk rows no query sees are untouched");
        Assert.That(dv.Span[seen..].ToArray(), Is.All.EqualTo(0.5f), "dv rows no query sees are untouched");
    }

    [Test]
    public unsafe void VectorisedExpMatchesMathExpAcrossTheSoftmaxRangeAndKeepsSpecialValues()
    {
        // The kernel's exp sees scores minus their max (≤ 0) or minus the log-sum-exp (≤ ~0). Every length
        // covers every vector remainder; relative tolerance 3e-7 (a couple of ulp).
        foreach (int n in TestData.KernelLengths)
        {
            float[] x = TestData.Uniform(n, n + 7, 50f);
            for (int i = 0; i < n; i++)
            {
                x[i] -= 48f;
            }

            if (n > 3)
            {
                x[0] = float.NaN;
                x[1] = float.NegativeInfinity;
                x[2] = -100f;
                x[3] = 0f;
            }

            float[] e = (float[])x.Clone();
            float sum;
            fixed (float* p = e)
            {
                sum = Attention.ExpShifted(p, n, 0f);
            }

            double expectedSum = 0;
            for (int i = 0; i < n; i++)
            {
                double expected = Math.Exp(x[i]);
                if (float.IsNaN(x[i]))
                {
                    Assert.That(e[i], Is.NaN);
                    continue;
                }

                if (x[i] < -87.3f)
                {
                    Assert.That(e[i], Is.Zero, $"exp({x[i]}) flushes to zero");
                    continue;
                }

                expectedSum += expected;
                Assert.That(e[i], Is.EqualTo(expected).Within(3e-7 * expected), $"exp({x[i]}), n={n}");
            }

            if (n > 3)
            {
                Assert.That(sum, Is.NaN, "the sum carries the NaN");
            }
            else
            {
                Assert.That(sum, Is.EqualTo(expectedSum).Within(1e-6 * (1 + expectedSum)));
            }
        }
    }

    [Test]
    public void ZeroTokensWritesNothing()
    {
        var k = new float[12];
        var output = TestData.Guarded(0);
        Attention.Forward(output.Span, default, default, k, k, 0, 3, 3, 2, 1, 4, 0.5f);
        output.AssertGuardsIntact();
        var dk = new float[12];
        Attention.Backward(default, dk, new float[12], default, default, default, default, k, k, 0, 3, 3, 2, 1, 4, 0.5f);
        Assert.That(dk, Is.All.EqualTo(0f));
    }

    [Test]
    public void LogSumExpMayBeOmitted()
    {
        var c = new Case(4, 2, 8, 5, 3, 8, seed: 6);
        (float[] expected, _) = c.Forward(null);
        var output = new float[expected.Length];
        Attention.Forward(output, default, c.Q, c.K, c.V, 5, 3, 8, 4, 2, 8, c.Scale);
        Assert.That(output, Is.EqualTo(expected));
    }

    [Test]
    public void ForwardRejectsBadArgumentsNamingTheParameterBeforeWriting()
    {
        const int t = 3, s = 2, kv = 5, h = 4, kvh = 2, d = 4;
        var q = new float[t * h * d];
        var k = new float[kv * kvh * d];
        var v = new float[kv * kvh * d];
        var o = new float[t * h * d];
        var lse = new float[t * h];
        o.AsSpan().Fill(7f);

        void Expect(string param, TestDelegate call)
        {
            var ex = Assert.Throws(Is.InstanceOf<ArgumentException>(), call);
            Assert.That(((ArgumentException)ex!).ParamName, Is.EqualTo(param));
            Assert.That(o, Is.All.EqualTo(7f), $"output written before {param} was rejected");
        }

        Expect("heads", () => Attention.Forward(o, lse, q, k, v, t, s, kv, 3, kvh, d, 1f));
        Expect("kvLength", () => Attention.Forward(o, lse, q, k, v, t, s, 4, h, kvh, d, 1f));
        Expect("tokens", () => Attention.Forward(o, lse, q, k, v, -1, s, kv, h, kvh, d, 1f));
        Expect("startPosition", () => Attention.Forward(o, lse, q, k, v, t, -1, kv, h, kvh, d, 1f));
        Expect("kvHeads", () => Attention.Forward(o, lse, q, k, v, t, s, kv, h, 0, d, 1f));
        Expect("headDim", () => Attention.Forward(o, lse, q, k, v, t, s, kv, h, kvh, 0, 1f));
        Expect("output", () => Attention.Forward(o.AsSpan(1), lse, q, k, v, t, s, kv, h, kvh, d, 1f));
        Expect("q", () => Attention.Forward(o, lse, q.AsSpan(1), k, v, t, s, kv, h, kvh, d, 1f));
        Expect("k", () => Attention.Forward(o, lse, q, k.AsSpan(1), v, t, s, kv, h, kvh, d, 1f));
        Expect("v", () => Attention.Forward(o, lse, q, k, v.AsSpan(1), t, s, kv, h, kvh, d, 1f));
        Expect("logSumExp", () => Attention.Forward(o, lse.AsSpan(1), q, k, v, t, s, kv, h, kvh, d, 1f));
        Expect("output", () => Attention.Forward(o, lse, o, k, v, t, s, kv, h, kvh, d, 1f));
        var big = new float[o.Length + k.Length];
        Expect("output", () => Attention.Forward(big.AsSpan(0, o.Length), lse, q, big.AsSpan(o.Length - 1, k.Length), v, t, s, kv, h, kvh, d, 1f));
        Expect("logSumExp", () => Attention.Forward(o, q.AsSpan(0, lse.Length), q, k, v, t, s, kv, h, kvh, d, 1f));
    }

    [Test]
    public void BackwardRejectsBadArgumentsNamingTheParameterBeforeWriting()
    {
        const int t = 3, s = 2, kv = 5, h = 4, kvh = 2, d = 4;
        var q = new float[t * h * d];
        var k = new float[kv * kvh * d];
        var v = new float[kv * kvh * d];
        var o = new float[t * h * d];
        var g = new float[t * h * d];
        var lse = new float[t * h];
        var dq = new float[t * h * d];
        var dk = new float[kv * kvh * d];
        var dv = new float[kv * kvh * d];
        dq.AsSpan().Fill(7f);
        dk.AsSpan().Fill(7f);
        dv.AsSpan().Fill(7f);

        void Expect(string param, TestDelegate call)
        {
            var ex = Assert.Throws(Is.InstanceOf<ArgumentException>(), call);
            Assert.That(((ArgumentException)ex!).ParamName, Is.EqualTo(param));
            Assert.That(dq.Concat(dk).Concat(dv), Is.All.EqualTo(7f), $"gradient written before {param} was rejected");
        }

        Expect("heads", () => Attention.Backward(dq, dk, dv, g, o, lse, q, k, v, t, s, kv, 6, 4, d, 1f));
        Expect("kvLength", () => Attention.Backward(dq, dk, dv, g, o, lse, q, k, v, t, s, 4, h, kvh, d, 1f));
        Expect("dq", () => Attention.Backward(dq.AsSpan(1), dk, dv, g, o, lse, q, k, v, t, s, kv, h, kvh, d, 1f));
        Expect("dk", () => Attention.Backward(dq, dk.AsSpan(1), dv, g, o, lse, q, k, v, t, s, kv, h, kvh, d, 1f));
        Expect("dv", () => Attention.Backward(dq, dk, dv.AsSpan(1), g, o, lse, q, k, v, t, s, kv, h, kvh, d, 1f));
        Expect("dOutput", () => Attention.Backward(dq, dk, dv, g.AsSpan(1), o, lse, q, k, v, t, s, kv, h, kvh, d, 1f));
        Expect("output", () => Attention.Backward(dq, dk, dv, g, o.AsSpan(1), lse, q, k, v, t, s, kv, h, kvh, d, 1f));
        Expect("logSumExp", () => Attention.Backward(dq, dk, dv, g, o, default, q, k, v, t, s, kv, h, kvh, d, 1f));
        Expect("q", () => Attention.Backward(dq, dk, dv, g, o, lse, q.AsSpan(1), k, v, t, s, kv, h, kvh, d, 1f));
        Expect("k", () => Attention.Backward(dq, dk, dv, g, o, lse, q, k.AsSpan(1), v, t, s, kv, h, kvh, d, 1f));
        Expect("v", () => Attention.Backward(dq, dk, dv, g, o, lse, q, k, v.AsSpan(1), t, s, kv, h, kvh, d, 1f));
        Expect("dq", () => Attention.Backward(dq, dk, dv, g, o, lse, dq, k, v, t, s, kv, h, kvh, d, 1f));
        Expect("dk", () => Attention.Backward(dq, dk, dk, g, o, lse, q, k, v, t, s, kv, h, kvh, d, 1f));
        Expect("dv", () => Attention.Backward(dq, dk, dv, g, o, lse, q, k, dv, t, s, kv, h, kvh, d, 1f));
    }

    private static void AssertClose(float[] actual, float[] expected, float tolerance, string what)
    {
        Assert.That(actual, Has.Length.EqualTo(expected.Length), what);
        for (int i = 0; i < expected.Length; i++)
        {
            if (!(Math.Abs(actual[i] - expected[i]) <= tolerance))
            {
                Assert.Fail($"{what}: element {i} is {actual[i]} but the reference says {expected[i]} (tolerance {tolerance})");
            }
        }
    }

    private static void AssertLseClose(float[] actual, float[] expected, string what)
    {
        for (int i = 0; i < expected.Length; i++)
        {
            float tol = OutputTolerance * (1 + Math.Abs(expected[i]));
            if (!(Math.Abs(actual[i] - expected[i]) <= tol))
            {
                Assert.Fail($"log-sum-exp, {what}: element {i} is {actual[i]} but the reference says {expected[i]}");
            }
        }
    }

    private static void AssertGradientClose(float[] actual, float[] expected, string what)
    {
        float max = 1f;
        foreach (float e in expected)
        {
            max = Math.Max(max, Math.Abs(e));
        }

        AssertClose(actual, expected, GradientTolerance * max, what);
    }

    /// <summary>One attention problem with seeded inputs; k/v hold exactly kvLength rows.</summary>
    private sealed class Case
    {
        public Case(int heads, int kvHeads, int headDim, int tokens, int start, int kvLength, int seed, float qScale = 2f)
        {
            Heads = heads;
            KvHeads = kvHeads;
            HeadDim = headDim;
            Tokens = tokens;
            Start = start;
            KvLength = kvLength;
            Scale = 1f / MathF.Sqrt(headDim);
            Q = TestData.Uniform(tokens * heads * headDim, seed, qScale);
            K = TestData.Uniform(kvLength * kvHeads * headDim, seed + 1000);
            V = TestData.Uniform(kvLength * kvHeads * headDim, seed + 2000);
            G = TestData.Uniform(tokens * heads * headDim, seed + 3000);
        }

        public int Heads { get; }

        public int KvHeads { get; }

        public int HeadDim { get; }

        public int Tokens { get; }

        public int Start { get; }

        public int KvLength { get; }

        public float Scale { get; }

        public float[] Q { get; }

        public float[] K { get; }

        public float[] V { get; }

        public float[] G { get; }

        public (float[] Output, float[] Lse) Forward(ComputePool? pool)
        {
            var o = new float[Q.Length];
            var lse = new float[Tokens * Heads];
            Attention.Forward(o, lse, Q, K, V, Tokens, Start, KvLength, Heads, KvHeads, HeadDim, Scale, pool);
            return (o, lse);
        }

        public (float[] Output, float[] Lse) ReferenceForward()
        {
            var o = new float[Q.Length];
            var lse = new float[Tokens * Heads];
            AttentionReference.Forward(o, lse, Q, K, V, Tokens, Start, KvLength, Heads, KvHeads, HeadDim, Scale);
            return (o, lse);
        }

        public (float[] Dq, float[] Dk, float[] Dv) Backward(ComputePool? pool, float[] output, float[] lse, float[]? g = null, float initial = 0f)
        {
            var dq = new float[Q.Length];
            var dk = new float[K.Length];
            var dv = new float[V.Length];
            dq.AsSpan().Fill(initial);
            dk.AsSpan().Fill(initial);
            dv.AsSpan().Fill(initial);
            Attention.Backward(dq, dk, dv, g ?? G, output, lse, Q, K, V, Tokens, Start, KvLength, Heads, KvHeads, HeadDim, Scale, pool);
            return (dq, dk, dv);
        }

        public void AssertBackwardMatchesReference(ComputePool? pool)
        {
            (float[] o, float[] lse) = Forward(pool);
            (float[] dq, float[] dk, float[] dv) = Backward(pool, o, lse);
            var rq = new float[Q.Length];
            var rk = new float[K.Length];
            var rv = new float[V.Length];
            AttentionReference.Backward(rq, rk, rv, G, o, lse, Q, K, V, Tokens, Start, KvLength, Heads, KvHeads, HeadDim, Scale);
            AssertGradientClose(dq, rq, $"dq, {this}");
            AssertGradientClose(dk, rk, $"dk, {this}");
            AssertGradientClose(dv, rv, $"dv, {this}");
        }

        public override string ToString() => $"heads={Heads} kvHeads={KvHeads} headDim={HeadDim} tokens={Tokens} start={Start} kvLength={KvLength}";
    }
}
