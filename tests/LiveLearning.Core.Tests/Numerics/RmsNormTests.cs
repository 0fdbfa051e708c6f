using LiveLearning.Numerics;
using NUnit.Framework;
using static LiveLearning.Tests.Numerics.NnTestHelpers;

namespace LiveLearning.Tests.Numerics;

[TestFixture]
[Category("Kernels")]
public sealed class RmsNormTests
{
    private const int Tokens = 3;
    private const float Eps = 1e-5f;

    /// <summary>Double-precision forward used for finite differences: Σ dy ⊙ RMSNorm(x; w).</summary>
    private static double Loss(double[] x, double[] w, float[] dy, int tokens, int dim, double eps)
    {
        double loss = 0;
        for (int t = 0; t < tokens; t++)
        {
            double ss = 0;
            for (int j = 0; j < dim; j++)
            {
                ss += x[(t * dim) + j] * x[(t * dim) + j];
            }

            double r = 1 / Math.Sqrt((ss / dim) + eps);
            for (int j = 0; j < dim; j++)
            {
                loss += dy[(t * dim) + j] * x[(t * dim) + j] * r * w[j];
            }
        }

        return loss;
    }

    [Test]
    public void ForwardMatchesScalarReferenceAtEveryDimWithoutOutOfBoundsWrites()
    {
        foreach (int dim in NonEmptyLengths)
        {
            float[] x = TestData.Uniform(Tokens * dim, 1000 + dim, 3f);
            float[] w = TestData.Uniform(dim, 2000 + dim, 2f);
            var y = TestData.Guarded(Tokens * dim);
            var rstd = TestData.Guarded(Tokens);
            RmsNorm.Forward(y.Span, rstd.Span, x, w, Tokens, dim, Eps);

            var yRef = new float[Tokens * dim];
            var rstdRef = new float[Tokens];
            NnReference.RmsNormForward(yRef, rstdRef, x, w, Tokens, dim, Eps);
            AssertClose(rstd.Span, rstdRef, 2e-6, 0, $"rstd dim={dim}");
            AssertClose(y.Span, yRef, 4e-6, 1e-7, $"y dim={dim}");
            y.AssertGuardsIntact();
            rstd.AssertGuardsIntact();
        }
    }

    [Test]
    public void ForwardInPlaceAndWithoutRstdGiveTheSameOutput()
    {
        const int dim = 133;
        float[] x = TestData.Uniform(Tokens * dim, 7, 2f);
        float[] w = TestData.Uniform(dim, 8);
        var expected = new float[x.Length];
        RmsNorm.Forward(expected, new float[Tokens], x, w, Tokens, dim, Eps);

        float[] inPlace = (float[])x.Clone();
        RmsNorm.Forward(inPlace, Span<float>.Empty, inPlace, w, Tokens, dim, Eps);
        Assert.That(inPlace, Is.EqualTo(expected));
    }

    [Test]
    public void ForwardRowOfZerosGivesZerosAndRstdOfOneOverSqrtEps()
    {
        const int dim = 40;
        var y = new float[dim];
        var rstd = new float[1];
        RmsNorm.Forward(y, rstd, new float[dim], TestData.Uniform(dim, 3), 1, dim, 1e-6f);
        Assert.That(y, Is.All.EqualTo(0f));
        Assert.That(rstd[0], Is.EqualTo(1000f).Within(1e-2f));
    }

    [Test]
    public void ForwardNaNInOneRowStaysInThatRow()
    {
        const int dim = 37;
        float[] x = TestData.Uniform(2 * dim, 4);
        x[5] = float.NaN;
        var y = new float[2 * dim];
        RmsNorm.Forward(y, new float[2], x, TestData.Uniform(dim, 5), 2, dim, Eps);
        Assert.That(y.Take(dim), Is.All.NaN);
        Assert.That(y.Skip(dim).Any(float.IsNaN), Is.False);
    }

    [Test]
    public void BackwardMatchesScalarReferenceAtEveryDimAccumulatingIntoGradients()
    {
        foreach (int dim in NonEmptyLengths)
        {
            float[] x = TestData.Uniform(Tokens * dim, 3000 + dim, 3f);
            float[] w = TestData.Uniform(dim, 4000 + dim, 2f);
            float[] dy = TestData.Uniform(Tokens * dim, 5000 + dim);
            float[] dx0 = TestData.Uniform(Tokens * dim, 6000 + dim, 0.5f);
            float[] dw0 = TestData.Uniform(dim, 7000 + dim, 0.5f);
            var rstd = new float[Tokens];
            RmsNorm.Forward(new float[x.Length], rstd, x, w, Tokens, dim, Eps);

            var dx = GuardedCopy(dx0);
            var dw = GuardedCopy(dw0);
            RmsNorm.Backward(dx.Span, dw.Span, dy, x, w, rstd, Tokens, dim);
            float[] dxRef = (float[])dx0.Clone();
            float[] dwRef = (float[])dw0.Clone();
            NnReference.RmsNormBackward(dxRef, dwRef, dy, x, w, rstd, Tokens, dim);

            // The dot product over the row is accumulated in float lanes: allow for it relative to the row scale.
            AssertClose(dx.Span, dxRef, 1e-5, 2e-6 * Math.Sqrt(dim), $"dx dim={dim}", dx0);
            AssertClose(dw.Span, dwRef, 1e-5, 1e-6, $"dWeight dim={dim}", dw0);
            dx.AssertGuardsIntact();
            dw.AssertGuardsIntact();
        }
    }

    [TestCase(1)]
    [TestCase(2)]
    [TestCase(17)]
    [TestCase(64)]
    [TestCase(301)]
    public void BackwardMatchesFiniteDifferencesForInputAndWeight(int dim)
    {
        const int tokens = 2;
        const float eps = 1e-3f;
        float[] x = TestData.Uniform(tokens * dim, 11 + dim, 2f);
        float[] w = TestData.Uniform(dim, 12 + dim, 1.5f);
        float[] dy = TestData.Uniform(tokens * dim, 13 + dim);
        var rstd = new float[tokens];
        RmsNorm.Forward(new float[x.Length], rstd, x, w, tokens, dim, eps);
        var dx = new float[x.Length];
        var dw = new float[dim];
        RmsNorm.Backward(dx, dw, dy, x, w, rstd, tokens, dim);

        double[] wd = Array.ConvertAll(w, v => (double)v);
        double[] xd = Array.ConvertAll(x, v => (double)v);
        double termScale = 0;
        for (int i = 0; i < x.Length; i++)
        {
            termScale = Math.Max(termScale, Math.Abs(rstd[i / dim] * dy[i] * w[i % dim]));
        }

        AssertGradientClose(dx, FiniteDifferenceGradient(x, xp => Loss(xp, wd, dy, tokens, dim, eps)), 2e-5, "dx", termScale);
        AssertGradientClose(dw, FiniteDifferenceGradient(w, wp => Loss(xd, wp, dy, tokens, dim, eps)), 2e-5, "dWeight");
    }

    [Test]
    public void BackwardWithEmptyWeightGradientStillComputesInputGradient()
    {
        const int dim = 70;
        float[] x = TestData.Uniform(Tokens * dim, 21);
        float[] w = TestData.Uniform(dim, 22);
        float[] dy = TestData.Uniform(Tokens * dim, 23);
        var rstd = new float[Tokens];
        RmsNorm.Forward(new float[x.Length], rstd, x, w, Tokens, dim, Eps);
        var a = new float[x.Length];
        var b = new float[x.Length];
        RmsNorm.Backward(a, new float[dim], dy, x, w, rstd, Tokens, dim);
        RmsNorm.Backward(b, Span<float>.Empty, dy, x, w, rstd, Tokens, dim);
        Assert.That(b, Is.EqualTo(a));
    }

    [TestCase(256, 576)]
    [TestCase(29, 1153)]
    [TestCase(5, 8191)]
    [TestCase(0, 64)]
    public void SplittingRowsOverAPoolChangesNoBit(int tokens, int dim)
    {
        using var pool = new ComputePool(2);
        float[] x = TestData.Uniform(tokens * dim, seed: dim, scale: 2f);
        float[] w = TestData.Uniform(dim, seed: dim + 1, scale: 1.5f);
        float[] dy = TestData.Uniform(tokens * dim, seed: dim + 2);
        float[] y0 = new float[tokens * dim], y1 = new float[tokens * dim], r0 = new float[tokens], r1 = new float[tokens];
        RmsNorm.Forward(y0, r0, x, w, tokens, dim, Eps);
        RmsNorm.Forward(y1, r1, x, w, tokens, dim, Eps, pool);
        Assert.That(y1, Is.EqualTo(y0));
        Assert.That(r1, Is.EqualTo(r0));

        float[] dx0 = TestData.Uniform(tokens * dim, seed: dim + 3), dx1 = (float[])dx0.Clone();
        RmsNorm.Backward(dx0, default, dy, x, w, r0, tokens, dim);
        RmsNorm.Backward(dx1, default, dy, x, w, r0, tokens, dim, pool);
        Assert.That(dx1, Is.EqualTo(dx0));

        // With a weight gradient (a sum over rows) the pass stays on the calling thread, in row order.
        float[] dw0 = new float[dim], dw1 = new float[dim];
        RmsNorm.Backward(dx0, dw0, dy, x, w, r0, tokens, dim);
        RmsNorm.Backward(dx1, dw1, dy, x, w, r0, tokens, dim, pool);
        Assert.That(dw1, Is.EqualTo(dw0));
        Assert.That(dx1, Is.EqualTo(dx0));
    }

    [Test]
    public void ZeroTokensIsANoOp()
    {
        RmsNorm.Forward(Span<float>.Empty, Span<float>.Empty, ReadOnlySpan<float>.Empty, new float[4], 0, 4, Eps);
        float[] dWeight = [1f, 2f, 3f, 4f];
        RmsNorm.Backward(Span<float>.Empty, dWeight, ReadOnlySpan<float>.Empty, ReadOnlySpan<float>.Empty, new float[4], ReadOnlySpan<float>.Empty, 0, 4);
        Assert.That(dWeight, Is.EqualTo(new[] { 1f, 2f, 3f, 4f }), "no tokens add nothing to the weight gradient");
    }

    [Test]
    public void BadArgumentsThrowWithTheArgumentNameAndWriteNothing()
    {
        const int dim = 8;
        float[] x = new float[2 * dim];
        float[] w = new float[dim];
        float[] y = Enumerable.Repeat(7f, 2 * dim).ToArray();
        Assert.Multiple(() =>
        {
            Assert.That(() => RmsNorm.Forward(new float[2 * dim - 1], new float[2], x, w, 2, dim, Eps), Throws.ArgumentException.With.Property("ParamName").EqualTo("y"));
            Assert.That(() => RmsNorm.Forward(y, new float[3], x, w, 2, dim, Eps), Throws.ArgumentException.With.Property("ParamName").EqualTo("rstd"));
            Assert.That(() => RmsNorm.Forward(y, new float[2], x, new float[dim + 1], 2, dim, Eps), Throws.ArgumentException.With.Property("ParamName").EqualTo("weight"));
            Assert.That(() => RmsNorm.Forward(y, new float[2], x.AsSpan(1), w, 2, dim, Eps), Throws.ArgumentException.With.Property("ParamName").EqualTo("x"));
            Assert.That(() => RmsNorm.Forward(y, new float[2], x, w, 2, 0, Eps), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("dim"));
            Assert.That(() => RmsNorm.Forward(y, new float[2], x, w, -1, dim, Eps), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("tokens"));
            Assert.That(() => RmsNorm.Forward(y, new float[2], x, w, 2, dim, -1f), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("eps"));
            Assert.That(() => RmsNorm.Forward(y, new float[2], x, w, 2, dim, float.NaN), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("eps"));
            Assert.That(y, Is.All.EqualTo(7f));

            float[] shared = new float[(2 * dim) + 1];
            Assert.That(() => RmsNorm.Forward(shared.AsSpan(1), new float[2], shared.AsSpan(0, 2 * dim), w, 2, dim, Eps), Throws.ArgumentException.With.Property("ParamName").EqualTo("y"));

            float[] dy = new float[2 * dim];
            Assert.That(() => RmsNorm.Backward(dy, new float[dim], dy, x, w, new float[2], 2, dim), Throws.ArgumentException.With.Property("ParamName").EqualTo("dx"));
            Assert.That(() => RmsNorm.Backward(new float[2 * dim], new float[dim - 1], dy, x, w, new float[2], 2, dim), Throws.ArgumentException.With.Property("ParamName").EqualTo("dWeight"));
            Assert.That(() => RmsNorm.Backward(new float[2 * dim], new float[dim], dy, x, w, new float[1], 2, dim), Throws.ArgumentException.With.Property("ParamName").EqualTo("rstd"));
            Assert.That(() => RmsNorm.Backward(new float[2 * dim], new float[dim], dy.AsSpan(1), x, w, new float[2], 2, dim), Throws.ArgumentException.With.Property("ParamName").EqualTo("dy"));
        });
    }
}
