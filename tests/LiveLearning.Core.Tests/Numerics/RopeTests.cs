using FsCheck;
using FsCheck.Fluent;
using LiveLearning.Numerics;
using NUnit.Framework;
using static LiveLearning.Tests.Numerics.NnTestHelpers;

namespace LiveLearning.Tests.Numerics;

[TestFixture]
[Category("Kernels")]
public sealed class RopeTests
{
    private static readonly int[] Positions = [0, 1, 7, 30];

    [Test]
    public void DefaultInverseFrequenciesAreOneOverThetaToTheTwoJOverD()
    {
        float[] f = RopeTable.DefaultInverseFrequencies(64, 10000);
        Assert.That(f, Has.Length.EqualTo(32));
        Assert.That(f[0], Is.EqualTo(1f));
        for (int j = 0; j < f.Length; j++)
        {
            Assert.That(f[j], Is.EqualTo((float)Math.Pow(10000, -2.0 * j / 64)), $"j={j}");
        }

        Assert.That(f[16], Is.EqualTo(0.01f).Within(1e-9f), "theta^(-1/2) = 1/100");
    }

    [Test]
    public void ForwardFollowsRotateHalfPairingNotInterleavedPairs()
    {
        // headDim 4: pairs are (0, 2) and (1, 3). x = e0 at position 1 with inv_freq[0] = 1 → (cos 1, 0, sin 1, 0).
        var table = new RopeTable([1f, 0.5f], 4);
        float[] x = [1, 0, 0, 0];
        Rope.Forward(x, [1], 1, 4, table);
        Assert.That(x[0], Is.EqualTo((float)Math.Cos(1)));
        Assert.That(x[1], Is.EqualTo(0f));
        Assert.That(x[2], Is.EqualTo((float)Math.Sin(1)));
        Assert.That(x[3], Is.EqualTo(0f));

        // The second half rotates the other way: e3 at position 2 with inv_freq[1] = 0.5 → (0, −sin 1, 0, cos 1).
        float[] z = [0, 0, 0, 1];
        Rope.Forward(z, [2], 1, 4, table);
        Assert.That(z[1], Is.EqualTo(-(float)Math.Sin(1)));
        Assert.That(z[3], Is.EqualTo((float)Math.Cos(1)));
    }

    [TestCase(256, 9, 64)]
    [TestCase(9, 32, 128)]
    [TestCase(37, 9, 130)]
    [TestCase(0, 9, 64)]
    public void SplittingTokensOverAPoolChangesNoBit(int tokens, int heads, int headDim)
    {
        using var pool = new ComputePool(2);
        var table = new RopeTable(RopeTable.DefaultInverseFrequencies(headDim, 10000), 300);
        int[] positions = Enumerable.Range(0, tokens).Select(t => (t * 7) % 300).ToArray();
        float[] x0 = TestData.Uniform(tokens * heads * headDim, seed: headDim), x1 = (float[])x0.Clone();
        Rope.Forward(x0, positions, heads, headDim, table);
        Rope.Forward(x1, positions, heads, headDim, table, pool);
        Assert.That(x1, Is.EqualTo(x0));
        Rope.Backward(x0, positions, heads, headDim, table);
        Rope.Backward(x1, positions, heads, headDim, table, pool);
        Assert.That(x1, Is.EqualTo(x0));
    }

    [Test]
    public void ForwardAndBackwardMatchScalarReferenceAtEveryHalfDimWithoutOutOfBoundsWrites()
    {
        const int heads = 2;
        foreach (int half in NonEmptyLengths)
        {
            int headDim = 2 * half;
            float[] inv = RopeTable.DefaultInverseFrequencies(headDim, 10000);
            var table = new RopeTable(inv, 31, half % 3 == 0 ? 1.25f : 1f);
            float[] x0 = TestData.Uniform(Positions.Length * heads * headDim, 100 + half, 2f);
            foreach (bool backward in new[] { false, true })
            {
                var x = GuardedCopy(x0);
                if (backward)
                {
                    Rope.Backward(x.Span, Positions, heads, headDim, table);
                }
                else
                {
                    Rope.Forward(x.Span, Positions, heads, headDim, table);
                }

                float[] expected = (float[])x0.Clone();
                NnReference.Rope(expected, Positions, heads, headDim, inv, half % 3 == 0 ? 1.25f : 1f, transpose: backward);
                AssertClose(x.Span, expected, 1e-6, 1e-7, $"{(backward ? "backward" : "forward")} half={half}");
                x.AssertGuardsIntact();
            }
        }
    }

    [Test]
    public void ForwardAtPositionZeroIsTheIdentity()
    {
        var table = new RopeTable(RopeTable.DefaultInverseFrequencies(128, 500000), 4);
        float[] x = TestData.Uniform(3 * 4 * 128, 5);
        float[] y = (float[])x.Clone();
        Rope.Forward(y, [0, 0, 0], 4, 128, table);
        Assert.That(y, Is.EqualTo(x));
    }

    [Test]
    public void ForwardPreservesTheNormOfEveryRotatedPair()
    {
        const int headDim = 96;
        const int half = headDim / 2;
        var table = new RopeTable(RopeTable.DefaultInverseFrequencies(headDim, 10000), 4096);
        int[] positions = [0, 3, 100, 4095];
        float[] x = TestData.Uniform(positions.Length * 3 * headDim, 6, 4f);
        float[] y = (float[])x.Clone();
        Rope.Forward(y, positions, 3, headDim, table);
        for (int b = 0; b < x.Length; b += headDim)
        {
            for (int j = 0; j < half; j++)
            {
                double before = Math.Sqrt((x[b + j] * (double)x[b + j]) + (x[b + j + half] * (double)x[b + j + half]));
                double after = Math.Sqrt((y[b + j] * (double)y[b + j]) + (y[b + j + half] * (double)y[b + j + half]));
                AssertClose(after, before, 1e-6, 1e-7, $"pair {j} of head at {b}");
            }
        }
    }

    [Test]
    public void ForwardPreservesTheHeadNormForAnyPositionAndInput()
    {
        const int headDim = 40;
        var table = new RopeTable(RopeTable.DefaultInverseFrequencies(headDim, 10000), 8192);
        Prop.ForAll(
            Gen.Choose(0, 8191).ToArbitrary(),
            Gen.ArrayOf(Gen.Choose(-100_000, 100_000).Select(i => i / 1000f), headDim).ToArbitrary(),
            (int position, float[] x) =>
            {
                float[] y = (float[])x.Clone();
                Rope.Forward(y, [position], 1, headDim, table);
                double before = Math.Sqrt(x.Sum(v => (double)v * v));
                double after = Math.Sqrt(y.Sum(v => (double)v * v));
                return Math.Abs(after - before) <= (1e-6 * before) + 1e-6;
            }).QuickCheckThrowOnFailure();
    }

    [Test]
    public void BackwardAfterForwardRestoresTheInput()
    {
        const int headDim = 64;
        var table = new RopeTable(RopeTable.DefaultInverseFrequencies(headDim, 10000), 2048);
        int[] positions = [5, 2047, 0, 999, 12];
        float[] x = TestData.Uniform(positions.Length * 2 * headDim, 9, 3f);
        float[] y = (float[])x.Clone();
        Rope.Forward(y, positions, 2, headDim, table);
        Rope.Backward(y, positions, 2, headDim, table);
        AssertClose(y, x, 1e-6, 1e-6, "Rᵀ·R·x");
    }

    [TestCase(2, 1f)]
    [TestCase(10, 1f)]
    [TestCase(64, 0.8f)]
    public void BackwardMatchesFiniteDifferences(int headDim, float scaling)
    {
        const int heads = 2;
        float[] inv = RopeTable.DefaultInverseFrequencies(headDim, 10000);
        var table = new RopeTable(inv, 64, scaling);
        int[] positions = [3, 63];
        float[] x = TestData.Uniform(positions.Length * heads * headDim, 20 + headDim);
        float[] g = TestData.Uniform(x.Length, 21 + headDim);

        // L(x) = Σ g ⊙ RoPE(x), evaluated in double with the table's cos/sin.
        double Loss(double[] xp)
        {
            double loss = 0;
            int half = headDim / 2;
            for (int t = 0; t < positions.Length; t++)
            {
                for (int h = 0; h < heads; h++)
                {
                    int b = ((t * heads) + h) * headDim;
                    for (int j = 0; j < half; j++)
                    {
                        float angle = (float)positions[t] * inv[j];
                        double c = (float)(Math.Cos(angle) * scaling);
                        double s = (float)(Math.Sin(angle) * scaling);
                        loss += g[b + j] * ((xp[b + j] * c) - (xp[b + j + half] * s));
                        loss += g[b + j + half] * ((xp[b + j + half] * c) + (xp[b + j] * s));
                    }
                }
            }

            return loss;
        }

        float[] dx = (float[])g.Clone();
        Rope.Backward(dx, positions, heads, headDim, table);
        AssertGradientClose(dx, FiniteDifferenceGradient(x, Loss), 1e-5, "dx");
    }

    [Test]
    public void AttentionScalingScalesTheOutput()
    {
        const int headDim = 8;
        float[] inv = RopeTable.DefaultInverseFrequencies(headDim, 10000);
        float[] x = TestData.Uniform(headDim, 30);
        float[] a = (float[])x.Clone();
        float[] b = (float[])x.Clone();
        Rope.Forward(a, [5], 1, headDim, new RopeTable(inv, 8));
        Rope.Forward(b, [5], 1, headDim, new RopeTable(inv, 8, 2f));
        AssertClose(b, a.Select(v => v * 2f).ToArray(), 1e-6, 1e-7, "scaled");
    }

    [Test]
    public void NoTokensIsANoOp()
    {
        var table = new RopeTable([1f], 1);
        Rope.Forward(Span<float>.Empty, ReadOnlySpan<int>.Empty, 3, 2, table);
        Assert.That(table.HeadDim, Is.EqualTo(2));
        Assert.That(table.MaxPositions, Is.EqualTo(1));
    }

    [Test]
    public void BadArgumentsThrowWithTheArgumentNameAndWriteNothing()
    {
        var table = new RopeTable(RopeTable.DefaultInverseFrequencies(8, 10000), 10);
        float[] x = Enumerable.Repeat(1f, 2 * 8).ToArray();
        Assert.Multiple(() =>
        {
            Assert.That(() => Rope.Forward(x, [1, 10], 1, 8, table), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("positions"));
            Assert.That(() => Rope.Forward(x, [-1, 0], 1, 8, table), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("positions"));
            Assert.That(x, Is.All.EqualTo(1f));
            Assert.That(() => Rope.Forward(x, [1, 2], 1, 4, table), Throws.ArgumentException.With.Property("ParamName").EqualTo("headDim"));
            Assert.That(() => Rope.Forward(x, [1, 2, 3], 1, 8, table), Throws.ArgumentException.With.Property("ParamName").EqualTo("x"));
            Assert.That(() => Rope.Backward(x, [1], 1, 8, table), Throws.ArgumentException.With.Property("ParamName").EqualTo("dx"));
            Assert.That(() => Rope.Forward(x, [1, 2], 0, 8, table), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("heads"));
            Assert.That(() => Rope.Forward(x, [1, 2], 1, 8, null!), Throws.ArgumentNullException.With.Property("ParamName").EqualTo("table"));
            Assert.That(() => new RopeTable([], 4), Throws.ArgumentException.With.Property("ParamName").EqualTo("inverseFrequencies"));
            Assert.That(() => new RopeTable([float.NaN], 4), Throws.ArgumentException.With.Property("ParamName").EqualTo("inverseFrequencies"));
            Assert.That(() => new RopeTable([1f], 0), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("maxPositions"));
            Assert.That(() => new RopeTable([1f], 4, float.PositiveInfinity), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("attentionScaling"));
            Assert.That(() => RopeTable.DefaultInverseFrequencies(7, 10000), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("headDim"));
            Assert.That(() => RopeTable.DefaultInverseFrequencies(0, 10000), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("headDim"));
            Assert.That(() => RopeTable.DefaultInverseFrequencies(8, 0), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("theta"));
            Assert.That(() => RopeTable.DefaultInverseFrequencies(8, double.NaN), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("theta"));
        });
    }
}
