using LiveLearning.Numerics;
using NUnit.Framework;

namespace LiveLearning.Tests.Numerics;

/// <summary>
/// Fused LoRA kernels against the double-accumulating scalar reference, finite differences, NaN propagation,
/// sentinel guards, thread-count determinism and argument checks.
/// </summary>
/// <remarks>
/// Tolerance: each element may differ from the reference by 2e-5 times the sum of the absolute values of the terms
/// that make it up (obtained by running the reference on absolute values), i.e. a relative bound scaled by magnitude.
/// </remarks>
[TestFixture]
[Category("Kernels")]
public sealed class LoraKernelTests
{
    private const float RelativeTolerance = 2e-5f;

    private static readonly int[] Ranks = [1, 2, 3, 4, 7, 8, 15, 16, 31, 32, 64, 127, 128];
    private static readonly int[] TokenCounts = [0, 1, 2, 3, 5, 16, 17, 64, 65];
    private static readonly int[] FeatureSizes = [1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 23, 31, 32, 33, 47, 48, 63, 64, 65, 67, 576, 577];

    private ComputePool _pool = null!;

    [OneTimeSetUp]
    public void CreatePool() => _pool = new ComputePool(2);

    [OneTimeTearDown]
    public void DisposePool() => _pool.Dispose();

    /// <summary>Every rank × token count, with in/out sizes sampled from small remainders and 576/577.</summary>
    public static IEnumerable<TestCaseData> Shapes()
    {
        for (int ri = 0; ri < Ranks.Length; ri++)
        {
            for (int ti = 0; ti < TokenCounts.Length; ti++)
            {
                int inF = FeatureSizes[((ri * 7) + (ti * 3)) % FeatureSizes.Length];
                int outF = FeatureSizes[((ri * 5) + (ti * 11) + 1) % FeatureSizes.Length];
                yield return new TestCaseData(TokenCounts[ti], inF, outF, Ranks[ri]);
            }
        }

        // The model's shapes, at the ranks that matter.
        yield return new TestCaseData(17, 576, 577, 8);
        yield return new TestCaseData(65, 577, 576, 16);
        yield return new TestCaseData(5, 576, 1536, 8);
    }

    [TestCaseSource(nameof(Shapes))]
    public void ForwardMatchesReferenceAccumulatesIntoYOverwritesHWritesNothingOutside(int tokens, int inF, int outF, int rank)
    {
        float scale = 2f / rank;
        var p = Problem.Create(tokens, inF, outF, rank, seed: (tokens * 1000) + (inF * 7) + outF + rank);
        GuardedBuffer y = Guarded(p.Y0);
        GuardedBuffer h = Guarded(Garbage(tokens * rank));

        LoraKernels.Forward(y.Span, h.Span, p.X, p.A, p.B, tokens, inF, outF, rank, scale, _pool);

        float[] yRef = (float[])p.Y0.Clone();
        float[] hRef = new float[tokens * rank];
        LoraReference.Forward(yRef, hRef, p.X, p.A, p.B, tokens, inF, outF, rank, scale);
        float[] yMag = Abs(p.Y0);
        float[] hMag = new float[tokens * rank];
        LoraReference.Forward(yMag, hMag, Abs(p.X), Abs(p.A), Abs(p.B), tokens, inF, outF, rank, Math.Abs(scale));

        AssertClose(h.ToArray(), hRef, hMag, "h");
        AssertClose(y.ToArray(), yRef, yMag, "y");
        y.AssertGuardsIntact();
        h.AssertGuardsIntact();
    }

    [TestCaseSource(nameof(Shapes))]
    public void BackwardMatchesReferenceAccumulatesGradientsOverwritesDhWritesNothingOutside(int tokens, int inF, int outF, int rank)
    {
        float scale = 2f / rank;
        var p = Problem.Create(tokens, inF, outF, rank, seed: (tokens * 999) + (inF * 5) + outF + rank);
        GuardedBuffer dA = Guarded(p.DA0);
        GuardedBuffer dB = Guarded(p.DB0);
        GuardedBuffer dx = Guarded(p.Dx0);
        GuardedBuffer dh = Guarded(Garbage(tokens * rank));

        LoraKernels.Backward(dA.Span, dB.Span, dx.Span, dh.Span, p.Dy, p.X, p.H, p.A, p.B, tokens, inF, outF, rank, scale, _pool);

        var r = p.ReferenceBackward(scale, abs: false);
        var m = p.ReferenceBackward(scale, abs: true);
        AssertClose(dh.ToArray(), r.Dh, m.Dh, "dh");
        AssertClose(dB.ToArray(), r.DB, m.DB, "dB");
        AssertClose(dA.ToArray(), r.DA, m.DA, "dA");
        AssertClose(dx.ToArray(), r.Dx, m.Dx, "dx");
        dA.AssertGuardsIntact();
        dB.AssertGuardsIntact();
        dx.AssertGuardsIntact();
        dh.AssertGuardsIntact();
    }

    [Test]
    public void ForwardAndBackwardMatchReferenceForEveryFeatureLength()
    {
        const int tokens = 5;
        const int rank = 3;
        foreach (int n in TestData.KernelLengths.Where(l => l <= 577))
        {
            var p = Problem.Create(tokens, n, n, rank, seed: n);
            float[] y = (float[])p.Y0.Clone();
            float[] h = new float[tokens * rank];
            LoraKernels.Forward(y, h, p.X, p.A, p.B, tokens, n, n, rank, 0.5f);
            float[] yRef = (float[])p.Y0.Clone();
            float[] hRef = new float[tokens * rank];
            LoraReference.Forward(yRef, hRef, p.X, p.A, p.B, tokens, n, n, rank, 0.5f);
            float[] yMag = Abs(p.Y0);
            LoraReference.Forward(yMag, new float[tokens * rank], Abs(p.X), Abs(p.A), Abs(p.B), tokens, n, n, rank, 0.5f);
            AssertClose(y, yRef, yMag, $"y (length {n})");

            float[] dA = (float[])p.DA0.Clone(), dB = (float[])p.DB0.Clone(), dx = (float[])p.Dx0.Clone();
            float[] dh = new float[tokens * rank];
            LoraKernels.Backward(dA, dB, dx, dh, p.Dy, p.X, p.H, p.A, p.B, tokens, n, n, rank, 0.5f);
            var r = p.ReferenceBackward(0.5f, abs: false);
            var m = p.ReferenceBackward(0.5f, abs: true);
            AssertClose(dA, r.DA, m.DA, $"dA (length {n})");
            AssertClose(dB, r.DB, m.DB, $"dB (length {n})");
            AssertClose(dx, r.Dx, m.Dx, $"dx (length {n})");
        }
    }

    [TestCase(5, 13, 11, 3)]
    [TestCase(6, 33, 17, 8)]
    public void BackwardMatchesCentralFiniteDifferencesOfWeightedSumOfY(int tokens, int inF, int outF, int rank)
    {
        // L = Σ y·g. y is linear in each of a, b and x separately, so a central difference with a large step is exact
        // up to float rounding of y, which the tolerance covers.
        const float scale = 0.75f;
        const float step = 0.25f;
        var p = Problem.Create(tokens, inF, outF, rank, seed: 42 + rank);
        float[] g = TestData.Uniform(tokens * outF, seed: 7);
        float[] h = new float[tokens * rank];
        LoraKernels.Forward(new float[tokens * outF], h, p.X, p.A, p.B, tokens, inF, outF, rank, scale);

        float[] dA = new float[rank * inF], dB = new float[outF * rank], dx = new float[tokens * inF];
        LoraKernels.Backward(dA, dB, dx, new float[tokens * rank], g, p.X, h, p.A, p.B, tokens, inF, outF, rank, scale);

        double Loss(float[] x, float[] a, float[] b)
        {
            float[] y = new float[tokens * outF];
            LoraKernels.Forward(y, new float[tokens * rank], x, a, b, tokens, inF, outF, rank, scale);
            double sum = 0;
            for (int i = 0; i < y.Length; i++)
            {
                sum += (double)y[i] * g[i];
            }

            return sum;
        }

        void Check(float[] param, float[] analytic, string name)
        {
            for (int i = 0; i < param.Length; i++)
            {
                float saved = param[i];
                param[i] = saved + step;
                double plus = Loss(p.X, p.A, p.B);
                param[i] = saved - step;
                double minus = Loss(p.X, p.A, p.B);
                param[i] = saved;
                double numeric = (plus - minus) / (2 * step);
                Assert.That(analytic[i], Is.EqualTo(numeric).Within(1e-3 * (1 + Math.Abs(numeric))), $"d{name}[{i}]");
            }
        }

        Check(p.A, dA, "a");
        Check(p.B, dB, "b");
        Check(p.X, dx, "x");
    }

    [Test]
    public void ForwardPropagatesNaNFromOneTokenOfXToThatTokenOnly()
    {
        const int tokens = 9, inF = 37, outF = 41, rank = 5;
        var p = Problem.Create(tokens, inF, outF, rank, seed: 3);
        p.X[(6 * inF) + 20] = float.NaN;
        float[] y = new float[tokens * outF];
        float[] h = new float[tokens * rank];
        LoraKernels.Forward(y, h, p.X, p.A, p.B, tokens, inF, outF, rank, 1f, _pool);
        for (int t = 0; t < tokens; t++)
        {
            bool expectNaN = t == 6;
            Assert.That(y.AsSpan(t * outF, outF).ToArray().All(float.IsNaN), Is.EqualTo(expectNaN), $"y row {t} all NaN");
            Assert.That(y.AsSpan(t * outF, outF).ToArray().Any(float.IsNaN), Is.EqualTo(expectNaN), $"y row {t} any NaN");
            Assert.That(h.AsSpan(t * rank, rank).ToArray().All(float.IsNaN), Is.EqualTo(expectNaN), $"h row {t}");
        }
    }

    [Test]
    public void ForwardPropagatesInfinityInBToItsOutputColumn()
    {
        const int tokens = 6, inF = 19, outF = 35, rank = 4;
        var p = Problem.Create(tokens, inF, outF, rank, seed: 4);
        p.B[(33 * rank) + 2] = float.PositiveInfinity;
        float[] y = new float[tokens * outF];
        LoraKernels.Forward(y, new float[tokens * rank], p.X, p.A, p.B, tokens, inF, outF, rank, 1f, _pool);
        for (int t = 0; t < tokens; t++)
        {
            for (int o = 0; o < outF; o++)
            {
                Assert.That(float.IsFinite(y[(t * outF) + o]), Is.EqualTo(o != 33), $"y[{t},{o}] = {y[(t * outF) + o]}");
            }
        }
    }

    [Test]
    public void BackwardPropagatesNaNFromOneElementOfDy()
    {
        const int tokens = 7, inF = 45, outF = 39, rank = 6;
        var p = Problem.Create(tokens, inF, outF, rank, seed: 5);
        p.Dy[(2 * outF) + 30] = float.NaN;
        float[] dA = new float[rank * inF], dB = new float[outF * rank], dx = new float[tokens * inF], dh = new float[tokens * rank];
        LoraKernels.Backward(dA, dB, dx, dh, p.Dy, p.X, p.H, p.A, p.B, tokens, inF, outF, rank, 1f, _pool);
        Assert.That(dA.All(float.IsNaN), Is.True, "every dA element sums over token 2");
        for (int t = 0; t < tokens; t++)
        {
            Assert.That(dh.AsSpan(t * rank, rank).ToArray().All(float.IsNaN), Is.EqualTo(t == 2), $"dh row {t}");
            Assert.That(dx.AsSpan(t * inF, inF).ToArray().All(float.IsNaN), Is.EqualTo(t == 2), $"dx row {t}");
            Assert.That(dx.AsSpan(t * inF, inF).ToArray().Any(float.IsNaN), Is.EqualTo(t == 2), $"dx row {t} any");
        }

        for (int o = 0; o < outF; o++)
        {
            Assert.That(dB.AsSpan(o * rank, rank).ToArray().All(float.IsNaN), Is.EqualTo(o == 30), $"dB row {o}");
            Assert.That(dB.AsSpan(o * rank, rank).ToArray().Any(float.IsNaN), Is.EqualTo(o == 30), $"dB row {o} any");
        }
    }

    [Test]
    public void BackwardWithEmptyDxSkipsDxAndGivesTheSameOtherGradients()
    {
        const int tokens = 17, inF = 70, outF = 53, rank = 8;
        var p = Problem.Create(tokens, inF, outF, rank, seed: 6);
        float[] dA1 = (float[])p.DA0.Clone(), dB1 = (float[])p.DB0.Clone(), dh1 = new float[tokens * rank];
        float[] dA2 = (float[])p.DA0.Clone(), dB2 = (float[])p.DB0.Clone(), dh2 = new float[tokens * rank];
        LoraKernels.Backward(dA1, dB1, (float[])p.Dx0.Clone(), dh1, p.Dy, p.X, p.H, p.A, p.B, tokens, inF, outF, rank, 0.5f, _pool);
        LoraKernels.Backward(dA2, dB2, Span<float>.Empty, dh2, p.Dy, p.X, p.H, p.A, p.B, tokens, inF, outF, rank, 0.5f, _pool);
        Assert.That(dA2, Is.EqualTo(dA1));
        Assert.That(dB2, Is.EqualTo(dB1));
        Assert.That(dh2, Is.EqualTo(dh1));
    }

    [TestCase(65, 577, 67, 15)]
    [TestCase(64, 576, 576, 8)]
    [TestCase(130, 1537, 1536, 16)]
    [TestCase(3, 4099, 4099, 128)]
    public void ResultsAreBitwiseIdenticalWithoutPoolWithOneThreadWithTwoThreadsAndAcrossRuns(int tokens, int inF, int outF, int rank)
    {
        var p = Problem.Create(tokens, inF, outF, rank, seed: 11);
        using var one = new ComputePool(1);
        float[][] Run(ComputePool? pool)
        {
            float[] y = (float[])p.Y0.Clone(), h = new float[tokens * rank];
            LoraKernels.Forward(y, h, p.X, p.A, p.B, tokens, inF, outF, rank, 0.3f, pool);
            float[] dA = (float[])p.DA0.Clone(), dB = (float[])p.DB0.Clone(), dx = (float[])p.Dx0.Clone(), dh = new float[tokens * rank];
            LoraKernels.Backward(dA, dB, dx, dh, p.Dy, p.X, h, p.A, p.B, tokens, inF, outF, rank, 0.3f, pool);
            return [y, h, dA, dB, dx, dh];
        }

        float[][] baseline = Run(null);
        foreach ((string name, ComputePool? pool) in new[] { ("one thread", one), ("two threads", _pool), ("two threads again", _pool), ("no pool again", (ComputePool?)null) })
        {
            float[][] other = Run(pool);
            for (int k = 0; k < baseline.Length; k++)
            {
                Assert.That(other[k], Is.EqualTo(baseline[k]).AsCollection, $"output {k} with {name}");
            }
        }
    }

    [Test]
    public void ForwardWithZeroTokensLeavesEverythingUntouched()
    {
        float[] a = TestData.Uniform(4 * 10, 1), b = TestData.Uniform(12 * 4, 2);
        LoraKernels.Forward(Span<float>.Empty, Span<float>.Empty, ReadOnlySpan<float>.Empty, a, b, 0, 10, 12, 4, 1f, _pool);
        float[] dA = new float[40], dB = new float[48];
        LoraKernels.Backward(dA, dB, Span<float>.Empty, Span<float>.Empty, ReadOnlySpan<float>.Empty, ReadOnlySpan<float>.Empty, ReadOnlySpan<float>.Empty, a, b, 0, 10, 12, 4, 1f, _pool);
        Assert.That(dA.All(v => v == 0) && dB.All(v => v == 0), Is.True);
    }

    [TestCase(0)]
    [TestCase(129)]
    [TestCase(-1)]
    public void RankOutsideOneTo128ThrowsArgumentOutOfRangeNamingRank(int rank)
    {
        var fwd = Assert.Throws<ArgumentOutOfRangeException>(() => LoraKernels.Forward(new float[4], new float[0], new float[4], new float[0], new float[0], 1, 4, 4, rank, 1f));
        Assert.That(fwd!.ParamName, Is.EqualTo("rank"));
        var bwd = Assert.Throws<ArgumentOutOfRangeException>(() => LoraKernels.Backward(new float[0], new float[0], new float[4], new float[0], new float[4], new float[4], new float[0], new float[0], new float[0], 1, 4, 4, rank, 1f));
        Assert.That(bwd!.ParamName, Is.EqualTo("rank"));
    }

    [Test]
    public void NegativeSizesThrowArgumentOutOfRangeNamingTheSize()
    {
        Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => LoraKernels.Forward([], [], [], [], [], -1, 4, 4, 2, 1f))!.ParamName, Is.EqualTo("tokens"));
        Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => LoraKernels.Forward([], [], [], [], [], 0, -4, 4, 2, 1f))!.ParamName, Is.EqualTo("inFeatures"));
        Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => LoraKernels.Forward([], [], [], [], [], 0, 4, -4, 2, 1f))!.ParamName, Is.EqualTo("outFeatures"));
    }

    [TestCase("y")]
    [TestCase("h")]
    [TestCase("x")]
    [TestCase("a")]
    [TestCase("b")]
    public void ForwardWithAWrongLengthThrowsNamingTheArgumentAndWritesNothing(string wrong)
    {
        const int t = 3, i = 5, o = 6, r = 2;
        float[] y = new float[(t * o) + (wrong == "y" ? 1 : 0)];
        float[] h = new float[(t * r) - (wrong == "h" ? 1 : 0)];
        float[] x = TestData.Uniform((t * i) + (wrong == "x" ? 2 : 0), 1);
        float[] a = TestData.Uniform((r * i) - (wrong == "a" ? 1 : 0), 2);
        float[] b = TestData.Uniform((o * r) + (wrong == "b" ? 1 : 0), 3);
        var ex = Assert.Throws<ArgumentException>(() => LoraKernels.Forward(y, h, x, a, b, t, i, o, r, 1f, _pool));
        Assert.That(ex!.ParamName, Is.EqualTo(wrong));
        Assert.That(ex.Message, Does.Contain("elements but"));
        Assert.That(y.All(v => v == 0) && h.All(v => v == 0), Is.True, "nothing written before the check");
    }

    [TestCase("dA")]
    [TestCase("dB")]
    [TestCase("dx")]
    [TestCase("dh")]
    [TestCase("dy")]
    [TestCase("x")]
    [TestCase("h")]
    [TestCase("a")]
    [TestCase("b")]
    public void BackwardWithAWrongLengthThrowsNamingTheArgumentAndWritesNothing(string wrong)
    {
        const int t = 3, i = 5, o = 6, r = 2;
        int Extra(string name) => wrong == name ? 1 : 0;
        float[] dA = new float[(r * i) + Extra("dA")];
        float[] dB = new float[(o * r) + Extra("dB")];
        float[] dx = new float[(t * i) + Extra("dx")];
        float[] dh = new float[(t * r) + Extra("dh")];
        float[] dy = TestData.Uniform((t * o) + Extra("dy"), 1);
        float[] x = TestData.Uniform((t * i) + Extra("x"), 2);
        float[] h = TestData.Uniform((t * r) + Extra("h"), 3);
        float[] a = TestData.Uniform((r * i) + Extra("a"), 4);
        float[] b = TestData.Uniform((o * r) + Extra("b"), 5);
        var ex = Assert.Throws<ArgumentException>(() => LoraKernels.Backward(dA, dB, dx, dh, dy, x, h, a, b, t, i, o, r, 1f, _pool));
        Assert.That(ex!.ParamName, Is.EqualTo(wrong));
        Assert.That(dA.Concat(dB).Concat(dx).Concat(dh).All(v => v == 0), Is.True, "nothing written before the check");
    }

    [Test]
    public void ForwardWithYOverlappingXThrowsNamingY()
    {
        float[] buffer = new float[64];
        var ex = Assert.Throws<ArgumentException>(() => LoraKernels.Forward(buffer.AsSpan(0, 12), new float[6], buffer.AsSpan(8, 12), new float[8], new float[8], 3, 4, 4, 2, 1f));
        Assert.That(ex!.ParamName, Is.EqualTo("y"));
        Assert.That(ex.Message, Does.Contain("overlaps x"));
    }

    [Test]
    public void ForwardWithHOverlappingAThrowsNamingH()
    {
        float[] buffer = new float[64];
        var ex = Assert.Throws<ArgumentException>(() => LoraKernels.Forward(new float[12], buffer.AsSpan(0, 6), new float[12], buffer.AsSpan(4, 8), new float[8], 3, 4, 4, 2, 1f));
        Assert.That(ex!.ParamName, Is.EqualTo("h"));
    }

    [Test]
    public void BackwardWithDxOverlappingDyThrowsNamingDx()
    {
        float[] buffer = new float[64];
        var ex = Assert.Throws<ArgumentException>(() => LoraKernels.Backward(new float[8], new float[8], buffer.AsSpan(0, 12), new float[6], buffer.AsSpan(11, 12), new float[12], new float[6], new float[8], new float[8], 3, 4, 4, 2, 1f));
        Assert.That(ex!.ParamName, Is.EqualTo("dx"));
        Assert.That(ex.Message, Does.Contain("overlaps dy"));
    }

    [Test]
    public void BackwardWithDAOverlappingDBThrowsNamingDA()
    {
        float[] buffer = new float[64];
        var ex = Assert.Throws<ArgumentException>(() => LoraKernels.Backward(buffer.AsSpan(0, 8), buffer.AsSpan(7, 8), new float[12], new float[6], new float[12], new float[12], new float[6], new float[8], new float[8], 3, 4, 4, 2, 1f));
        Assert.That(ex!.ParamName, Is.EqualTo("dA"));
    }

    [Test]
    public void BackwardWithDhOverlappingHThrowsNamingDh()
    {
        float[] buffer = new float[64];
        var ex = Assert.Throws<ArgumentException>(() => LoraKernels.Backward(new float[8], new float[8], new float[12], buffer.AsSpan(0, 6), new float[12], new float[12], buffer.AsSpan(0, 6), new float[8], new float[8], 3, 4, 4, 2, 1f));
        Assert.That(ex!.ParamName, Is.EqualTo("dh"));
    }

    private static GuardedBuffer Guarded(float[] initial)
    {
        GuardedBuffer buffer = TestData.Guarded(initial.Length);
        initial.CopyTo(buffer.Span);
        return buffer;
    }

    private static float[] Garbage(int length)
    {
        float[] data = new float[length];
        Array.Fill(data, 1e6f);
        return data;
    }

    private static float[] Abs(float[] values) => values.Select(Math.Abs).ToArray();

    private static void AssertClose(float[] actual, float[] expected, float[] magnitude, string name)
    {
        Assert.That(actual, Has.Length.EqualTo(expected.Length), name);
        for (int k = 0; k < actual.Length; k++)
        {
            float tolerance = (RelativeTolerance * magnitude[k]) + 1e-30f;
            if (!(Math.Abs(actual[k] - expected[k]) <= tolerance))
            {
                Assert.Fail($"{name}[{k}] = {actual[k]:R} but the reference gives {expected[k]:R} (tolerance {tolerance:R})");
            }
        }
    }

    /// <summary>Seeded inputs for one shape, with nonzero starting values for everything that accumulates.</summary>
    private sealed class Problem
    {
        public required int Tokens { get; init; }

        public required int In { get; init; }

        public required int Out { get; init; }

        public required int Rank { get; init; }

        public required float[] X { get; init; }

        public required float[] A { get; init; }

        public required float[] B { get; init; }

        public required float[] H { get; init; }

        public required float[] Dy { get; init; }

        public required float[] Y0 { get; init; }

        public required float[] DA0 { get; init; }

        public required float[] DB0 { get; init; }

        public required float[] Dx0 { get; init; }

        public static Problem Create(int tokens, int inF, int outF, int rank, int seed) => new()
        {
            Tokens = tokens,
            In = inF,
            Out = outF,
            Rank = rank,
            X = TestData.Uniform(tokens * inF, seed),
            A = TestData.Uniform(rank * inF, seed + 1, 1f / MathF.Sqrt(Math.Max(1, inF))),
            B = TestData.Uniform(outF * rank, seed + 2),
            H = TestData.Uniform(tokens * rank, seed + 3),
            Dy = TestData.Uniform(tokens * outF, seed + 4),
            Y0 = TestData.Uniform(tokens * outF, seed + 5),
            DA0 = TestData.Uniform(rank * inF, seed + 6),
            DB0 = TestData.Uniform(outF * rank, seed + 7),
            Dx0 = TestData.Uniform(tokens * inF, seed + 8),
        };

        public (float[] DA, float[] DB, float[] Dx, float[] Dh) ReferenceBackward(float scale, bool abs)
        {
            float[] F(float[] v) => abs ? Abs(v) : (float[])v.Clone();
            float[] dA = F(DA0), dB = F(DB0), dx = F(Dx0), dh = new float[Tokens * Rank];
            LoraReference.Backward(dA, dB, dx, dh, F(Dy), F(X), F(H), F(A), F(B), Tokens, In, Out, Rank, abs ? Math.Abs(scale) : scale);
            return (dA, dB, dx, dh);
        }
    }
}
