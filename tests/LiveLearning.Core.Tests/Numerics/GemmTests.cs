using LiveLearning.Numerics;
using NUnit.Framework;

namespace LiveLearning.Tests.Numerics;

/// <summary>
/// The GEMM/GEMV kernels against the scalar double-precision oracle (<see cref="GemmReference"/>) over shapes that
/// hit every register-tile and panel remainder (8x32 with AVX-512, 6x16 with AVX2, 4x8 otherwise) and the K-block
/// edge, with F32/F16/BF16 weights, accumulate on and off, sentinel guards, and thread-count determinism.
/// Tolerance: |got - expected| &lt;= 1e-5 * (Σ|terms| + |initial|) + 1e-6 per element.
/// </summary>
[TestFixture]
[Category("Kernels")]
public sealed class GemmTests
{
    // Every remainder of 8 and 32 (and 6, 16, 4) below 68, plus 0.
    private static readonly int[] Dims = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 15, 16, 17, 31, 32, 33, 47, 63, 64, 65, 67];
    private static readonly int[] Tokens = [.. Enumerable.Range(0, 18), 31, 32, 33, 64, 65];
    private static readonly int[] SmallDims = [1, 3, 16, 17, 31, 33, 67];
    private static readonly int[] SmallTokens = [0, 1, 2, 3, 5, 8, 9, 17, 33];
    private static readonly WeightType[] Types = [WeightType.F32, WeightType.F16, WeightType.BF16];

    private static IEnumerable<(int T, int In, int Out)> LinearShapes(WeightType type)
    {
        // Every (in, out) pair with four token counts, rotating through the token list, so every token count
        // meets every remainder of in and out several times without running the full cube.
        int[] tokens = type == WeightType.F32 ? Tokens : SmallTokens;
        int[] dims = type == WeightType.F32 ? Dims : SmallDims;
        int pair = 0;
        foreach (int i in dims)
        {
            foreach (int o in dims)
            {
                for (int j = 0; j < 4; j++)
                {
                    yield return (tokens[(pair + (j * 5)) % tokens.Length], i, o);
                }

                pair++;
            }
        }

        // Large odd sizes, a K beyond several K-blocks, and a token count with a full panel plus remainder.
        yield return (3, 577, 1537);
        yield return (33, 4099, 19);
        yield return (70, 129, 75);
        yield return (2, 19, 4099);
    }

    [TestCaseSource(nameof(Types))]
    public void LinearMatchesReferenceForEveryRemainderShape(WeightType type)
    {
        int n = 0;
        foreach ((int t, int i, int o) in LinearShapes(type))
        {
            CheckLinear(t, i, o, type, accumulate: (n++ & 1) == 1, pool: null, useSpanOverload: type == WeightType.F32 && (n & 2) == 2);
        }
    }

    [TestCaseSource(nameof(Types))]
    public void LinearBackwardInputMatchesReferenceForEveryRemainderShape(WeightType type)
    {
        int n = 0;
        foreach ((int t, int i, int o) in LinearShapes(type))
        {
            CheckBackwardInput(t, i, o, type, accumulate: (n++ & 1) == 1, pool: null, useSpanOverload: type == WeightType.F32 && (n & 2) == 2);
        }
    }

    [Test]
    public void LinearBackwardWeightMatchesReferenceForEveryRemainderShape()
    {
        int n = 0;
        foreach ((int t, int i, int o) in LinearShapes(WeightType.F32))
        {
            CheckBackwardWeight(t, i, o, accumulate: (n++ & 1) == 1, pool: null);
        }

        CheckBackwardWeight(4099, 37, 19, accumulate: true, pool: null);
        CheckBackwardWeight(385, 33, 9, accumulate: false, pool: null);
    }

    [TestCaseSource(nameof(Types))]
    public void GemvMatchesReferenceForEveryKernelLength(WeightType type)
    {
        int n = 0;
        foreach (int cols in TestData.KernelLengths)
        {
            foreach (int rows in new[] { 0, 1, 4, 5, 7 })
            {
                CheckGemv(rows, cols, type, accumulate: (n++ & 1) == 1, pool: null);
            }
        }

        CheckGemv(1537, 577, type, accumulate: false, pool: null);
    }

    [TestCaseSource(nameof(Types))]
    public void TwoThreadsGiveBitwiseTheSameResultsAsOne(WeightType type)
    {
        using var pool = new ComputePool(2);
        (int T, int In, int Out)[] shapes = [(37, 300, 203), (64, 96, 160), (2, 520, 300), (5, 300, 203), (8, 77, 1000), (9, 257, 1000)];
        foreach ((int t, int i, int o) in shapes)
        {
            float[] single = CheckLinear(t, i, o, type, accumulate: false, pool: null, useSpanOverload: false);
            float[] both = CheckLinear(t, i, o, type, accumulate: false, pool: pool, useSpanOverload: false);
            AssertBitwiseEqual(both, single, $"Linear {type} ({t},{i},{o})");

            single = CheckBackwardInput(t, i, o, type, accumulate: true, pool: null, useSpanOverload: false);
            both = CheckBackwardInput(t, i, o, type, accumulate: true, pool: pool, useSpanOverload: false);
            AssertBitwiseEqual(both, single, $"LinearBackwardInput {type} ({t},{i},{o})");

            if (type == WeightType.F32)
            {
                single = CheckBackwardWeight(t, i, o, accumulate: true, pool: null);
                both = CheckBackwardWeight(t, i, o, accumulate: true, pool: pool);
                AssertBitwiseEqual(both, single, $"LinearBackwardWeight ({t},{i},{o})");
            }
        }

        float[] gemv1 = CheckGemv(203, 1500, type, accumulate: false, pool: null);
        float[] gemv2 = CheckGemv(203, 1500, type, accumulate: false, pool: pool);
        AssertBitwiseEqual(gemv2, gemv1, $"Gemv {type}");
    }

    [Test]
    public void BackwardKernelsMatchCentralFiniteDifferencesOfTheForwardLoss()
    {
        const int tokens = 3, inF = 5, outF = 4;
        float[] x = TestData.Uniform(tokens * inF, 11);
        float[] w = TestData.Uniform(outF * inF, 12);
        float[] g = TestData.Uniform(tokens * outF, 13);

        // L(x, w) = Σ_t,o g[t,o]·(x·wᵀ)[t,o], evaluated in double.
        double Loss(double[] xs, double[] ws)
        {
            double l = 0;
            for (int t = 0; t < tokens; t++)
            {
                for (int o = 0; o < outF; o++)
                {
                    double s = 0;
                    for (int i = 0; i < inF; i++)
                    {
                        s += xs[(t * inF) + i] * ws[(o * inF) + i];
                    }

                    l += g[(t * outF) + o] * s;
                }
            }

            return l;
        }

        var dx = new float[tokens * inF];
        var dw = new float[outF * inF];
        Gemm.LinearBackwardInput(dx, g, w, tokens, outF, inF);
        Gemm.LinearBackwardWeight(dw, g, x, tokens, outF, inF);

        const double h = 1e-3;
        double[] xd = [.. x.Select(v => (double)v)];
        double[] wd = [.. w.Select(v => (double)v)];
        for (int k = 0; k < xd.Length; k++)
        {
            double keep = xd[k];
            xd[k] = keep + h;
            double plus = Loss(xd, wd);
            xd[k] = keep - h;
            double minus = Loss(xd, wd);
            xd[k] = keep;
            Assert.That(dx[k], Is.EqualTo((plus - minus) / (2 * h)).Within(1e-4), $"dL/dx[{k}]");
        }

        for (int k = 0; k < wd.Length; k++)
        {
            double keep = wd[k];
            wd[k] = keep + h;
            double plus = Loss(xd, wd);
            wd[k] = keep - h;
            double minus = Loss(xd, wd);
            wd[k] = keep;
            Assert.That(dw[k], Is.EqualTo((plus - minus) / (2 * h)).Within(1e-4), $"dL/dw[{k}]");
        }
    }

    [TestCaseSource(nameof(Types))]
    public void NaNAndInfinityPropagateToExactlyTheAffectedOutputs(WeightType type)
    {
        const int tokens = 37, inF = 70, outF = 41;
        float[] x = TestData.Uniform(tokens * inF, 21);
        float[] wv = TestData.Uniform(outF * inF, 22);
        x[(2 * inF) + 7] = float.NaN;          // token 2 poisons every output of token 2
        for (int t = 0; t < tokens; t++)
        {
            x[(t * inF) + 5] = 1f;             // so w[3, 5] = +Inf gives +Inf in feature 3 of every other token
        }

        wv[(3 * inF) + 5] = float.PositiveInfinity;
        WeightMatrix w = MakeWeight(wv, outF, inF, type);

        foreach (ComputePool? pool in new[] { null, new ComputePool(2) })
        {
            var y = new float[tokens * outF];
            Gemm.Linear(y, x, w, tokens, pool: pool);
            for (int t = 0; t < tokens; t++)
            {
                for (int o = 0; o < outF; o++)
                {
                    float v = y[(t * outF) + o];
                    if (t == 2)
                    {
                        Assert.That(float.IsNaN(v), $"y[{t},{o}] = {v} should be NaN");
                    }
                    else if (o == 3)
                    {
                        Assert.That(float.IsPositiveInfinity(v), $"y[{t},{o}] = {v} should be +Inf");
                    }
                    else
                    {
                        Assert.That(float.IsFinite(v), $"y[{t},{o}] = {v} should be finite");
                    }
                }
            }

            // GEMV: token 2's input (with its NaN) gives all NaN; token 0's gives +Inf in row 3 only.
            var yv = new float[outF];
            Gemm.Gemv(yv, x.AsSpan(2 * inF, inF), w, pool: pool);
            Assert.That(yv.All(float.IsNaN), "GEMV with a NaN input");
            Gemm.Gemv(yv, x.AsSpan(0, inF), w, pool: pool);
            Assert.That(float.IsPositiveInfinity(yv[3]) && yv.Where((_, i) => i != 3).All(float.IsFinite), "GEMV with an infinite weight");

            // dX = dY·W: a NaN in dy[1, 4] poisons all of dx row 1; the +Inf weight makes dx[t, 5] infinite or NaN.
            float[] dy = TestData.Uniform(tokens * outF, 23);
            dy[(1 * outF) + 4] = float.NaN;
            var dx = new float[tokens * inF];
            Gemm.LinearBackwardInput(dx, dy, w, tokens, pool: pool);
            for (int t = 0; t < tokens; t++)
            {
                for (int i = 0; i < inF; i++)
                {
                    float v = dx[(t * inF) + i];
                    bool poisoned = t == 1 || i == 5;
                    Assert.That(float.IsFinite(v), Is.EqualTo(!poisoned), $"dx[{t},{i}] = {v}");
                }
            }

            // dW = dYᵀ·X: dy[1, 4] = NaN poisons dw row 4; x[2, 7] = NaN poisons dw column 7.
            var dw = new float[outF * inF];
            Gemm.LinearBackwardWeight(dw, dy, x, tokens, outF, inF, pool: pool);
            for (int o = 0; o < outF; o++)
            {
                for (int i = 0; i < inF; i++)
                {
                    float v = dw[(o * inF) + i];
                    Assert.That(float.IsNaN(v), Is.EqualTo(o == 4 || i == 7), $"dw[{o},{i}] = {v}");
                }
            }

            pool?.Dispose();
        }
    }

    [Test]
    public void F16WideningIsExactForEverySpecialClass()
    {
        // Subnormals, the largest finite value, signed zeros, infinities and a NaN, widened by the SIMD path
        // (through GEMV against unit vectors) must equal the scalar conversion bit for bit.
        ushort[] bits = [0x0000, 0x8000, 0x0001, 0x03FF, 0x8001, 0x0400, 0x3C00, 0xBC00, 0x7BFF, 0xFBFF, 0x7C00, 0xFC00, 0x7E00, 0x3555, 0x1234, 0x8400];
        int n = bits.Length;
        var matrix = new ushort[n * 48];
        for (int r = 0; r < n; r++)
        {
            matrix[(r * 48) + 33] = bits[r]; // column 33 of 48 sits in the vector part of the 512-, 256- and 128-bit loops
        }

        var w = WeightMatrix.From16Bit(matrix, n, 48, WeightType.F16);
        var x = new float[48];
        x[33] = 1f;
        var y = new float[n];
        Gemm.Gemv(y, x, w);
        for (int r = 0; r < n; r++)
        {
            float expected = Precision.F16ToSingle(bits[r]) + 0f; // the kernel's sum starts at +0, so -0 becomes +0
            if (float.IsNaN(expected))
            {
                Assert.That(float.IsNaN(y[r]), $"F16 bits 0x{bits[r]:X4} gave {y[r]}");
            }
            else
            {
                Assert.That(BitConverter.SingleToInt32Bits(y[r]), Is.EqualTo(BitConverter.SingleToInt32Bits(expected)), $"F16 bits 0x{bits[r]:X4} gave {y[r]:R}, expected {expected:R}");
            }
        }
    }

    [Test]
    public void BadArgumentsThrowNamingTheArgument()
    {
        var w = new float[6 * 4];
        var wm = WeightMatrix.FromF32(w, 6, 4);
        var x = new float[3 * 4];
        var y = new float[3 * 6];
        Assert.Multiple(() =>
        {
            Assert.That(() => Gemm.Linear(y, new float[11], wm, 3), Throws.ArgumentException.With.Property("ParamName").EqualTo("x"));
            Assert.That(() => Gemm.Linear(new float[17], x, wm, 3), Throws.ArgumentException.With.Property("ParamName").EqualTo("y"));
            Assert.That(() => Gemm.Linear(y, x, wm, -1), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("tokens"));
            Assert.That(() => Gemm.Linear(y, x, new float[23], 3, 6, 4), Throws.ArgumentException.With.Property("ParamName").EqualTo("w"));
            Assert.That(() => Gemm.Linear(y, x, w, 3, -6, 4), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("outFeatures"));
            Assert.That(() => Gemm.Linear(y, x, w, 3, 6, -4), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("inFeatures"));

            var shared = new float[100];
            Assert.That(() => Gemm.Linear(shared.AsSpan(0, 18), shared.AsSpan(10, 12), wm, 3), Throws.ArgumentException.With.Property("ParamName").EqualTo("y"));
            Assert.That(() => Gemm.Linear(w.AsSpan(0, 18), x, WeightMatrix.FromF32(w, 6, 4), 3), Throws.ArgumentException.With.Property("ParamName").EqualTo("y"));

            var dx = new float[3 * 4];
            var dy = new float[3 * 6];
            Assert.That(() => Gemm.LinearBackwardInput(dx, new float[17], wm, 3), Throws.ArgumentException.With.Property("ParamName").EqualTo("dy"));
            Assert.That(() => Gemm.LinearBackwardInput(new float[13], dy, wm, 3), Throws.ArgumentException.With.Property("ParamName").EqualTo("dx"));
            Assert.That(() => Gemm.LinearBackwardInput(dx, dy, w, 3, 6, 5), Throws.ArgumentException.With.Property("ParamName").EqualTo("w"));
            Assert.That(() => Gemm.LinearBackwardInput(shared.AsSpan(0, 12), shared.AsSpan(12, 18), wm, 3), Throws.Nothing);
            Assert.That(() => Gemm.LinearBackwardInput(shared.AsSpan(0, 12), shared.AsSpan(11, 18), wm, 3), Throws.ArgumentException.With.Property("ParamName").EqualTo("dx"));

            var dw = new float[6 * 4];
            Assert.That(() => Gemm.LinearBackwardWeight(dw, dy, new float[11], 3, 6, 4), Throws.ArgumentException.With.Property("ParamName").EqualTo("x"));
            Assert.That(() => Gemm.LinearBackwardWeight(dw, new float[19], x, 3, 6, 4), Throws.ArgumentException.With.Property("ParamName").EqualTo("dy"));
            Assert.That(() => Gemm.LinearBackwardWeight(new float[23], dy, x, 3, 6, 4), Throws.ArgumentException.With.Property("ParamName").EqualTo("dw"));
            Assert.That(() => Gemm.LinearBackwardWeight(dw, dy, x, -3, 6, 4), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("tokens"));
            Assert.That(() => Gemm.LinearBackwardWeight(shared.AsSpan(0, 24), dy, shared.AsSpan(20, 12), 3, 6, 4), Throws.ArgumentException.With.Property("ParamName").EqualTo("dw"));

            Assert.That(() => Gemm.Gemv(new float[6], new float[5], wm), Throws.ArgumentException.With.Property("ParamName").EqualTo("x"));
            Assert.That(() => Gemm.Gemv(new float[7], new float[4], wm), Throws.ArgumentException.With.Property("ParamName").EqualTo("y"));
            Assert.That(() => Gemm.Gemv(w.AsSpan(0, 6), new float[4], wm), Throws.ArgumentException.With.Property("ParamName").EqualTo("y"));
        });
    }

    [Test]
    public void BadArgumentsLeaveTheOutputUntouched()
    {
        var wm = WeightMatrix.FromF32(TestData.Uniform(24, 1), 6, 4);
        var y = Enumerable.Repeat(7f, 18).ToArray();
        Assert.That(() => Gemm.Linear(y, new float[11], wm, 3), Throws.ArgumentException);
        Assert.That(y, Is.All.EqualTo(7f));
    }

    [TestCaseSource(nameof(Types))]
    public void LinearSharedEqualsSeparateProductsBitForBit(WeightType type)
    {
        using var pool = new ComputePool(2);

        // Token counts through every path (GEMV, few tokens, panels with remainder); output widths with block remainders.
        foreach (int t in new[] { 0, 1, 2, 3, 9, 17, 33, 70 })
        {
            foreach ((int i, int o0, int o1, int o2) in new[] { (37, 19, 8, 5), (64, 96, 32, 32), (1025, 9, 17, 0) })
            {
                float[] x = TestData.Uniform(t * i, 11 + t, 1f);
                WeightMatrix w0 = MakeWeight(TestData.Uniform(o0 * i, 1, 0.5f), o0, i, type);
                WeightMatrix w1 = MakeWeight(TestData.Uniform(o1 * i, 2, 0.5f), o1, i, type);
                WeightMatrix w2 = o2 == 0 ? default : MakeWeight(TestData.Uniform(o2 * i, 3, 0.5f), o2, i, type);
                float[] y0 = new float[t * o0], y1 = new float[t * o1], y2 = new float[t * o2];
                Gemm.LinearShared(x, t, y0, w0, y1, w1, y2, w2, pool);

                float[] e0 = new float[t * o0], e1 = new float[t * o1], e2 = new float[t * o2];
                Gemm.Linear(e0, x, w0, t, pool: pool);
                Gemm.Linear(e1, x, w1, t, pool: pool);
                if (o2 > 0)
                {
                    Gemm.Linear(e2, x, w2, t, pool: pool);
                }

                string what = $"{type} t={t} in={i} outs={o0},{o1},{o2}";
                AssertBitwiseEqual(y0, e0, what + " y0");
                AssertBitwiseEqual(y1, e1, what + " y1");
                AssertBitwiseEqual(y2, e2, what + " y2");
            }
        }
    }

    [TestCaseSource(nameof(Types))]
    public void LinearBackwardInputSharedEqualsSuccessiveProductsBitForBit(WeightType type)
    {
        using var pool = new ComputePool(2);

        // Below and above the token count where dX switches to the transposed forward kernel; a weight with no rows;
        // a k-segment longer than one k-chunk.
        foreach (int t in new[] { 1, 5, 16, 33, 70 })
        {
            foreach ((int i, int o0, int o1, int o2) in new[] { (37, 19, 8, 5), (64, 96, 0, 32), (24, 1100, 9, 0) })
            {
                foreach (bool accumulate in new[] { false, true })
                {
                    WeightMatrix w0 = MakeWeight(TestData.Uniform(o0 * i, 1, 0.5f), o0, i, type);
                    WeightMatrix w1 = MakeWeight(TestData.Uniform(o1 * i, 2, 0.5f), o1, i, type);
                    WeightMatrix w2 = o2 == 0 ? default : MakeWeight(TestData.Uniform(o2 * i, 3, 0.5f), o2, i, type);
                    float[] dy0 = TestData.Uniform(t * o0, 4 + t, 1f), dy1 = TestData.Uniform(t * o1, 5 + t, 1f), dy2 = TestData.Uniform(t * o2, 6 + t, 1f);
                    float[] start = TestData.Uniform(t * i, 7, 1f);

                    float[] got = (float[])start.Clone();
                    Gemm.LinearBackwardInputShared(got, t, dy0, w0, dy1, w1, dy2, w2, accumulate, pool);

                    float[] expected = (float[])start.Clone();
                    Gemm.LinearBackwardInput(expected, dy0, w0, t, accumulate, pool);
                    Gemm.LinearBackwardInput(expected, dy1, w1, t, accumulate: true, pool);
                    if (o2 > 0)
                    {
                        Gemm.LinearBackwardInput(expected, dy2, w2, t, accumulate: true, pool);
                    }

                    AssertBitwiseEqual(got, expected, $"{type} t={t} in={i} outs={o0},{o1},{o2} accumulate={accumulate}");
                }
            }
        }
    }

    [Test]
    public void LinearBackwardInputSharedRefusesMismatchedWeightsAndOverlaps()
    {
        var w0 = WeightMatrix.FromF32(TestData.Uniform(24, 2), 6, 4);
        var w1 = WeightMatrix.FromF32(TestData.Uniform(8, 3), 2, 4);
        var wide = WeightMatrix.FromF32(TestData.Uniform(10, 4), 2, 5);
        float[] dx = new float[12], dy0 = new float[18], dy1 = new float[6];
        Assert.Multiple(() =>
        {
            Assert.That(() => Gemm.LinearBackwardInputShared(dx, 3, dy0, w0, new float[6], wide), Throws.ArgumentException.With.Property("ParamName").EqualTo("w1"));
            Assert.That(() => Gemm.LinearBackwardInputShared(dx, 3, dy0, w0, dy1, w1, new float[6], wide), Throws.ArgumentException.With.Property("ParamName").EqualTo("w2"));
            Assert.That(() => Gemm.LinearBackwardInputShared(dx, 3, dy0, w0, dy1, w1, new float[6]), Throws.ArgumentException.With.Property("ParamName").EqualTo("dy2"));
            Assert.That(() => Gemm.LinearBackwardInputShared(dx, 3, dy0, w0, new float[5], w1), Throws.ArgumentException.With.Property("ParamName").EqualTo("dy1"));
            Assert.That(() => Gemm.LinearBackwardInputShared(new float[11], 3, dy0, w0, dy1, w1), Throws.ArgumentException.With.Property("ParamName").EqualTo("dx"));
            Assert.That(() => Gemm.LinearBackwardInputShared(dy0.AsSpan(0, 12), 3, dy0, w0, dy1, w1), Throws.ArgumentException.With.Property("ParamName").EqualTo("dx"));
        });
    }

    [Test]
    public void LinearSharedRefusesMismatchedWeightsAndOverlaps()
    {
        float[] x = TestData.Uniform(3 * 4, 1);
        var w0 = WeightMatrix.FromF32(TestData.Uniform(24, 2), 6, 4);
        var w1 = WeightMatrix.FromF32(TestData.Uniform(8, 3), 2, 4);
        var wide = WeightMatrix.FromF32(TestData.Uniform(10, 4), 2, 5);
        var bf16 = WeightMatrix.From16Bit(new ushort[8], 2, 4, WeightType.BF16);
        float[] y0 = new float[18], y1 = new float[6];
        Assert.Multiple(() =>
        {
            Assert.That(() => Gemm.LinearShared(x, 3, y0, w0, y1, wide), Throws.ArgumentException.With.Property("ParamName").EqualTo("w1").And.Message.Contains("input width"));
            Assert.That(() => Gemm.LinearShared(x, 3, y0, w0, y1, bf16), Throws.ArgumentException.With.Property("ParamName").EqualTo("w1"));
            Assert.That(() => Gemm.LinearShared(x, 3, y0, w0, y1, w1, new float[6], wide), Throws.ArgumentException.With.Property("ParamName").EqualTo("w2"));
            Assert.That(() => Gemm.LinearShared(x, 3, y0, w0, y1, w1, new float[6]), Throws.ArgumentException.With.Property("ParamName").EqualTo("y2"));
            Assert.That(() => Gemm.LinearShared(x, 3, y0, w0, new float[5], w1), Throws.ArgumentException.With.Property("ParamName").EqualTo("y1"));
            Assert.That(() => Gemm.LinearShared(x, 3, y0, w0, y0.AsSpan(0, 6), w1), Throws.ArgumentException.With.Property("ParamName").EqualTo("y1"));
            Assert.That(() => Gemm.LinearShared(new float[11], 3, y0, w0, y1, w1), Throws.ArgumentException.With.Property("ParamName").EqualTo("x"));
        });
        Assert.That(y0, Is.All.EqualTo(0f), "a refused call writes nothing");
    }

    // ---------------------------------------------------------------- helpers

    private static WeightMatrix MakeWeight(float[] values, int rows, int cols, WeightType type)
    {
        if (type == WeightType.F32)
        {
            return WeightMatrix.FromF32(values, rows, cols);
        }

        ushort[] bits = [.. values.Select(v => type == WeightType.BF16 ? Precision.SingleToBF16(v) : Precision.SingleToF16(v))];
        return WeightMatrix.From16Bit(bits, rows, cols, type);
    }

    private static float[] Widened(in WeightMatrix w)
    {
        var all = new float[w.Rows * w.Cols];
        for (int r = 0; r < w.Rows; r++)
        {
            w.ReadRow(r, all.AsSpan(r * w.Cols, w.Cols));
        }

        return all;
    }

    private static float[] Abs(float[] values) => [.. values.Select(MathF.Abs)];

    private static int Seed(int a, int b, int c) => (a * 1_000_003) + (b * 1_009) + c;

    private static GuardedBuffer Output(int length, float[]? initial)
    {
        GuardedBuffer buffer = TestData.Guarded(length, float.NaN); // NaN proves an overwrite ignores old contents
        initial?.CopyTo(buffer.Span);
        return buffer;
    }

    private static float[] CheckLinear(int t, int i, int o, WeightType type, bool accumulate, ComputePool? pool, bool useSpanOverload)
    {
        float[] x = TestData.Uniform(t * i, Seed(t, i, o));
        float[] wv = TestData.Uniform(o * i, Seed(t, i, o) + 1);
        WeightMatrix w = MakeWeight(wv, o, i, type);
        float[] wide = Widened(w);
        float[]? initial = accumulate ? TestData.Uniform(t * o, Seed(t, i, o) + 2) : null;

        var expected = new float[t * o];
        initial?.CopyTo(expected, 0);
        GemmReference.Linear(expected, x, w, t, accumulate);
        var magnitude = new float[t * o];
        if (initial is not null)
        {
            Abs(initial).CopyTo(magnitude, 0);
        }

        GemmReference.Linear(magnitude, Abs(x), Abs(wide), t, o, i, accumulate);

        GuardedBuffer got = Output(t * o, initial);
        if (useSpanOverload)
        {
            Gemm.Linear(got.Span, x, wide, t, o, i, accumulate, pool);
        }
        else
        {
            Gemm.Linear(got.Span, x, w, t, accumulate, pool);
        }

        got.AssertGuardsIntact();
        AssertClose(got.ToArray(), expected, magnitude, $"Linear {type} (T,in,out)=({t},{i},{o}) accumulate={accumulate}");
        return got.ToArray();
    }

    private static float[] CheckBackwardInput(int t, int i, int o, WeightType type, bool accumulate, ComputePool? pool, bool useSpanOverload)
    {
        float[] dy = TestData.Uniform(t * o, Seed(t, i, o) + 3);
        float[] wv = TestData.Uniform(o * i, Seed(t, i, o) + 4);
        WeightMatrix w = MakeWeight(wv, o, i, type);
        float[] wide = Widened(w);
        float[]? initial = accumulate ? TestData.Uniform(t * i, Seed(t, i, o) + 5) : null;

        var expected = new float[t * i];
        initial?.CopyTo(expected, 0);
        GemmReference.LinearBackwardInput(expected, dy, w, t, accumulate);
        var magnitude = new float[t * i];
        if (initial is not null)
        {
            Abs(initial).CopyTo(magnitude, 0);
        }

        GemmReference.LinearBackwardInput(magnitude, Abs(dy), Abs(wide), t, o, i, accumulate);

        GuardedBuffer got = Output(t * i, initial);
        if (useSpanOverload)
        {
            Gemm.LinearBackwardInput(got.Span, dy, wide, t, o, i, accumulate, pool);
        }
        else
        {
            Gemm.LinearBackwardInput(got.Span, dy, w, t, accumulate, pool);
        }

        got.AssertGuardsIntact();
        AssertClose(got.ToArray(), expected, magnitude, $"LinearBackwardInput {type} (T,in,out)=({t},{i},{o}) accumulate={accumulate}");
        return got.ToArray();
    }

    private static float[] CheckBackwardWeight(int t, int i, int o, bool accumulate, ComputePool? pool)
    {
        float[] dy = TestData.Uniform(t * o, Seed(t, i, o) + 6);
        float[] x = TestData.Uniform(t * i, Seed(t, i, o) + 7);
        float[]? initial = accumulate ? TestData.Uniform(o * i, Seed(t, i, o) + 8) : null;

        var expected = new float[o * i];
        initial?.CopyTo(expected, 0);
        GemmReference.LinearBackwardWeight(expected, dy, x, t, o, i, accumulate);
        var magnitude = new float[o * i];
        if (initial is not null)
        {
            Abs(initial).CopyTo(magnitude, 0);
        }

        GemmReference.LinearBackwardWeight(magnitude, Abs(dy), Abs(x), t, o, i, accumulate);

        GuardedBuffer got = Output(o * i, initial);
        Gemm.LinearBackwardWeight(got.Span, dy, x, t, o, i, accumulate, pool);
        got.AssertGuardsIntact();
        AssertClose(got.ToArray(), expected, magnitude, $"LinearBackwardWeight (T,in,out)=({t},{i},{o}) accumulate={accumulate}");
        return got.ToArray();
    }

    private static float[] CheckGemv(int rows, int cols, WeightType type, bool accumulate, ComputePool? pool)
    {
        float[] x = TestData.Uniform(cols, Seed(1, rows, cols) + 9);
        WeightMatrix w = MakeWeight(TestData.Uniform(rows * cols, Seed(1, rows, cols) + 10), rows, cols, type);
        float[]? initial = accumulate ? TestData.Uniform(rows, Seed(1, rows, cols) + 11) : null;

        var expected = new float[rows];
        initial?.CopyTo(expected, 0);
        GemmReference.Gemv(expected, x, w, accumulate);
        var magnitude = new float[rows];
        if (initial is not null)
        {
            Abs(initial).CopyTo(magnitude, 0);
        }

        GemmReference.Linear(magnitude, Abs(x), Abs(Widened(w)), 1, rows, cols, accumulate);

        GuardedBuffer got = Output(rows, initial);
        Gemm.Gemv(got.Span, x, w, accumulate, pool);
        got.AssertGuardsIntact();
        AssertClose(got.ToArray(), expected, magnitude, $"Gemv {type} [{rows},{cols}] accumulate={accumulate}");

        // Linear with one token takes the same path and must agree bit for bit.
        GuardedBuffer viaLinear = Output(rows, initial);
        Gemm.Linear(viaLinear.Span, x, w, 1, accumulate, pool);
        viaLinear.AssertGuardsIntact();
        AssertBitwiseEqual(viaLinear.ToArray(), got.ToArray(), $"Linear(tokens=1) vs Gemv {type} [{rows},{cols}]");
        return got.ToArray();
    }

    private static void AssertClose(float[] got, float[] expected, float[] magnitude, string what)
    {
        for (int k = 0; k < got.Length; k++)
        {
            double tolerance = (1e-5 * magnitude[k]) + 1e-6;
            if (!(Math.Abs(got[k] - expected[k]) <= tolerance))
            {
                Assert.Fail($"{what}: element {k} is {got[k]}, expected {expected[k]} (tolerance {tolerance:g3})");
            }
        }
    }

    private static void AssertBitwiseEqual(float[] got, float[] expected, string what)
    {
        Assert.That(got, Has.Length.EqualTo(expected.Length), what);
        for (int k = 0; k < got.Length; k++)
        {
            if (BitConverter.SingleToInt32Bits(got[k]) != BitConverter.SingleToInt32Bits(expected[k]))
            {
                Assert.Fail($"{what}: element {k} differs ({got[k]:R} vs {expected[k]:R})");
            }
        }
    }
}
