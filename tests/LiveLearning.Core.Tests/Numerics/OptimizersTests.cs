using LiveLearning.Numerics;
using NUnit.Framework;
using static LiveLearning.Tests.Numerics.NnTestHelpers;

namespace LiveLearning.Tests.Numerics;

[TestFixture]
[Category("Kernels")]
public sealed class OptimizersTests
{
    [Test]
    public void AdamWMatchesScalarReferenceAtEveryLengthOverThreeStepsWithoutOutOfBoundsWrites()
    {
        foreach (int n in TestData.KernelLengths)
        {
            float[] p0 = TestData.Uniform(n, 1300 + n, 2f);
            var p = GuardedCopy(p0);
            var m = TestData.Guarded(n);
            var v = TestData.Guarded(n);
            float[] pr = (float[])p0.Clone();
            var mr = new float[n];
            var vr = new float[n];
            for (int step = 1; step <= 3; step++)
            {
                float[] g = TestData.Uniform(n, (1400 * step) + n, step * 0.7f);
                Optimizers.AdamWStep(p.Span, g, m.Span, v.Span, step, 0.05f, 0.9f, 0.99f, 1e-6f, 0.1f);
                NnReference.AdamWStep(pr, g, mr, vr, step, 0.05f, 0.9f, 0.99f, 1e-6f, 0.1f);
            }

            AssertClose(m.Span, mr, 1e-6, 1e-9, $"m n={n}");
            AssertClose(v.Span, vr, 1e-6, 1e-12, $"v n={n}");
            AssertClose(p.Span, pr, 1e-6, 1e-6, $"p n={n}");
            p.AssertGuardsIntact();
            m.AssertGuardsIntact();
            v.AssertGuardsIntact();
        }
    }

    [Test]
    public void AdamWMatchesIndependentDoublePrecisionPyTorchFormulasOverFiveSteps()
    {
        const int n = 37;
        const double lr = 0.02, b1 = 0.8, b2 = 0.95, eps = 1e-4, wd = 0.3;
        float[] p = TestData.Uniform(n, 90, 1f);
        var m = new float[n];
        var v = new float[n];
        double[] pd = Array.ConvertAll(p, x => (double)x);
        var md = new double[n];
        var vd = new double[n];
        for (int step = 1; step <= 5; step++)
        {
            float[] g = TestData.Uniform(n, 91 + step, 3f);
            Optimizers.AdamWStep(p, g, m, v, step, (float)lr, (float)b1, (float)b2, (float)eps, (float)wd);
            for (int i = 0; i < n; i++)
            {
                pd[i] -= lr * wd * pd[i];
                md[i] = (b1 * md[i]) + ((1 - b1) * g[i]);
                vd[i] = (b2 * vd[i]) + ((1 - b2) * g[i] * g[i]);
                double mHat = md[i] / (1 - Math.Pow(b1, step));
                double vHat = vd[i] / (1 - Math.Pow(b2, step));
                pd[i] -= lr * mHat / (Math.Sqrt(vHat) + eps);
            }
        }

        for (int i = 0; i < n; i++)
        {
            AssertClose(p[i], pd[i], 2e-6, 2e-6, $"p[{i}]");
            AssertClose(m[i], md[i], 2e-6, 1e-7, $"m[{i}]");
            AssertClose(v[i], vd[i], 2e-6, 1e-7, $"v[{i}]");
        }
    }

    [Test]
    public void AdamWFirstStepMovesEveryParameterByLearningRateAgainstTheGradientSign()
    {
        float[] g = [1e-3f, -1e-3f, 0.5f, -2f, 1000f, -1000f, 3e-2f, 7f, -0.25f, 1f, -1f, 42f, -13f, 1e-2f, 5f, -5f, 0.1f];
        var p = new float[g.Length];
        Optimizers.AdamWStep(p, g, new float[g.Length], new float[g.Length], 1, 0.01f, weightDecay: 0f);
        for (int i = 0; i < g.Length; i++)
        {
            // m̂ = g and sqrt(v̂) = |g| exactly, so the step is lr·g/(|g| + eps): lr·sign(g) up to eps/|g|.
            double tolerance = 0.01 * ((1e-8 / Math.Abs(g[i])) + 2e-6);
            Assert.That(p[i], Is.EqualTo(-0.01f * MathF.Sign(g[i])).Within(tolerance), $"g={g[i]}");
        }
    }

    [Test]
    public void AdamWWeightDecayIsDecoupledZeroGradientOnlyShrinksTheParameters()
    {
        float[] p = [1f, -2f, 4f, 0.5f, 3f, -1f, 2f, 8f, -8f];
        var m = new float[p.Length];
        var v = new float[p.Length];
        Optimizers.AdamWStep(p, new float[p.Length], m, v, 1, 0.1f, weightDecay: 0.5f);
        Assert.That(p, Is.EqualTo(new[] { 0.95f, -1.9f, 3.8f, 0.475f, 2.85f, -0.95f, 1.9f, 7.6f, -7.6f }).Within(1e-6f));
        Assert.That(m, Is.All.EqualTo(0f));
        Assert.That(v, Is.All.EqualTo(0f));
    }

    [TestCase(0f, 0f, 0f, false)]
    [TestCase(0f, 0f, 0.1f, false)]
    [TestCase(0.9f, 0f, 0f, false)]
    [TestCase(0.9f, 0.3f, 0f, false)]
    [TestCase(0.8f, 0f, 0.05f, true)]
    [TestCase(0.5f, 0.5f, 0.2f, false)]
    public void SgdMatchesIndependentDoublePrecisionPyTorchFormulasOverFourSteps(float momentum, float dampening, float weightDecay, bool nesterov)
    {
        const int n = 41;
        const double lr = 0.1;
        float[] p = TestData.Uniform(n, 95, 1f);
        var buf = new float[n];
        buf.AsSpan().Fill(float.NaN); // the first step must not read the buffer
        double[] pd = Array.ConvertAll(p, x => (double)x);
        var bd = new double[n];
        for (int step = 0; step < 4; step++)
        {
            float[] g = TestData.Uniform(n, 96 + step, 2f);
            Optimizers.SgdMomentumStep(p, g, buf, step == 0, (float)lr, momentum, dampening, weightDecay, nesterov);
            for (int i = 0; i < n; i++)
            {
                double gi = g[i] + (weightDecay * pd[i]);
                if (momentum != 0)
                {
                    bd[i] = step == 0 ? gi : (momentum * bd[i]) + ((1 - dampening) * gi);
                    gi = nesterov ? gi + (momentum * bd[i]) : bd[i];
                }

                pd[i] -= lr * gi;
            }
        }

        for (int i = 0; i < n; i++)
        {
            AssertClose(p[i], pd[i], 2e-6, 2e-6, $"p[{i}]");
            if (momentum != 0)
            {
                AssertClose(buf[i], bd[i], 2e-6, 2e-6, $"buf[{i}]");
            }
        }
    }

    [Test]
    public void SgdMatchesScalarReferenceAtEveryLengthWithoutOutOfBoundsWrites()
    {
        foreach (int n in TestData.KernelLengths)
        {
            float[] p0 = TestData.Uniform(n, 1500 + n);
            var p = GuardedCopy(p0);
            var b = TestData.Guarded(n);
            float[] pr = (float[])p0.Clone();
            var br = new float[n];
            for (int step = 0; step < 2; step++)
            {
                float[] g = TestData.Uniform(n, 1600 + n + step);
                Optimizers.SgdMomentumStep(p.Span, g, b.Span, step == 0, 0.1f, 0.9f, 0.1f, 0.01f, false);
                NnReference.SgdMomentumStep(pr, g, br, step == 0, 0.1f, 0.9f, 0.1f, 0.01f, false);
            }

            AssertClose(p.Span, pr, 1e-6, 1e-7, $"p n={n}");
            AssertClose(b.Span, br, 1e-6, 1e-7, $"buf n={n}");
            p.AssertGuardsIntact();
            b.AssertGuardsIntact();
        }
    }

    [Test]
    public void SgdWithoutMomentumAcceptsAnEmptyBuffer()
    {
        float[] p = [1f, 2f, 3f];
        Optimizers.SgdMomentumStep(p, [1f, 1f, -1f], Span<float>.Empty, true, 0.5f, momentum: 0f);
        Assert.That(p, Is.EqualTo(new[] { 0.5f, 1.5f, 3.5f }));
    }

    [Test]
    public void GlobalNormIsTheL2NormOfAllBuffersTogetherInDouble()
    {
        float[] a = TestData.Uniform(4099, 97, 3f);
        float[] b = TestData.Uniform(255, 98, 100f);
        double expected = Math.Sqrt(a.Sum(x => (double)x * x) + b.Sum(x => (double)x * x));
        double norm = Optimizers.GlobalNorm(new ReadOnlyMemory<float>[] { a, b, Array.Empty<float>() });
        Assert.That(norm, Is.EqualTo(expected).Within(1e-12 * expected));
        Assert.That(Optimizers.GlobalNorm(ReadOnlySpan<ReadOnlyMemory<float>>.Empty), Is.EqualTo(0d));

        foreach (int n in TestData.KernelLengths)
        {
            float[] x = TestData.Uniform(n, 99 + n);
            double want = Math.Sqrt(x.Sum(v => (double)v * v));
            Assert.That(Optimizers.GlobalNorm(new ReadOnlyMemory<float>[] { x }), Is.EqualTo(want).Within(1e-13 * (want + 1)), $"n={n}");
        }
    }

    [Test]
    public void ClipByGlobalNormScalesToMaxNormWhenAboveAndLeavesGradientsAloneWhenBelow()
    {
        float[] a = TestData.Uniform(1537, 100, 2f);
        float[] b = TestData.Uniform(77, 101, 2f);
        var buffers = new Memory<float>[] { a, b };
        double before = Optimizers.ClipByGlobalNorm(buffers, 1.5);
        double after = Optimizers.GlobalNorm(new ReadOnlyMemory<float>[] { a, b });
        Assert.That(before, Is.GreaterThan(1.5));
        Assert.That(after, Is.EqualTo(1.5).Within(1e-6));

        float[] a2 = (float[])a.Clone();
        float[] b2 = (float[])b.Clone();
        double norm = Optimizers.ClipByGlobalNorm(new Memory<float>[] { a2, b2 }, 10);
        Assert.That(norm, Is.EqualTo(after).Within(1e-12));
        Assert.That(a2, Is.EqualTo(a));
        Assert.That(b2, Is.EqualTo(b));
    }

    [Test]
    public void ClipByGlobalNormWithNaNOrInfinityReturnsItAndLeavesGradientsUntouched()
    {
        float[] a = [1f, 2f, float.NaN, 4f];
        float[] b = [100f, 200f];
        Assert.That(Optimizers.ClipByGlobalNorm(new Memory<float>[] { a, b }, 1), Is.NaN);
        Assert.That(b, Is.EqualTo(new[] { 100f, 200f }));
        float[] c = [1f, float.PositiveInfinity];
        Assert.That(Optimizers.ClipByGlobalNorm(new Memory<float>[] { b, c }, 1), Is.EqualTo(double.PositiveInfinity));
        Assert.That(b, Is.EqualTo(new[] { 100f, 200f }));
    }

    [Test]
    public void BadArgumentsThrowWithTheArgumentNameAndWriteNothing()
    {
        float[] p = [1f, 2f, 3f, 4f];
        float[] g = [1f, 1f, 1f, 1f];
        float[] m = new float[4];
        float[] v = new float[4];
        Assert.Multiple(() =>
        {
            Assert.That(() => Optimizers.AdamWStep(p, new float[3], m, v, 1, 0.1f), Throws.ArgumentException.With.Property("ParamName").EqualTo("gradients"));
            Assert.That(() => Optimizers.AdamWStep(p, g, new float[5], v, 1, 0.1f), Throws.ArgumentException.With.Property("ParamName").EqualTo("m"));
            Assert.That(() => Optimizers.AdamWStep(p, g, m, new float[3], 1, 0.1f), Throws.ArgumentException.With.Property("ParamName").EqualTo("v"));
            Assert.That(() => Optimizers.AdamWStep(p, g, m, v, 0, 0.1f), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("step"));
            Assert.That(() => Optimizers.AdamWStep(p, g, m, v, 1, float.NaN), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("learningRate"));
            Assert.That(() => Optimizers.AdamWStep(p, g, m, v, 1, 0.1f, beta1: 1f), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("beta1"));
            Assert.That(() => Optimizers.AdamWStep(p, g, m, v, 1, 0.1f, beta2: -0.1f), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("beta2"));
            Assert.That(() => Optimizers.AdamWStep(p, g, m, v, 1, 0.1f, epsilon: -1f), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("epsilon"));
            Assert.That(() => Optimizers.AdamWStep(p, g, m, v, 1, 0.1f, weightDecay: float.PositiveInfinity), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("weightDecay"));
            Assert.That(() => Optimizers.AdamWStep(p, g, m, m, 1, 0.1f), Throws.ArgumentException.With.Property("ParamName").EqualTo("m"));
            Assert.That(() => Optimizers.AdamWStep(p, p, m, v, 1, 0.1f), Throws.ArgumentException.With.Property("ParamName").EqualTo("parameters"));
            Assert.That(() => Optimizers.SgdMomentumStep(p, g, new float[3], false, 0.1f), Throws.ArgumentException.With.Property("ParamName").EqualTo("momentumBuffer"));
            Assert.That(() => Optimizers.SgdMomentumStep(p, g, Span<float>.Empty, false, 0.1f, momentum: 0.9f), Throws.ArgumentException.With.Property("ParamName").EqualTo("momentumBuffer"));
            Assert.That(() => Optimizers.SgdMomentumStep(p, g, m, false, 0.1f, momentum: 0f, nesterov: true), Throws.ArgumentException.With.Property("ParamName").EqualTo("nesterov"));
            Assert.That(() => Optimizers.SgdMomentumStep(p, g, m, false, 0.1f, dampening: 0.1f, nesterov: true), Throws.ArgumentException.With.Property("ParamName").EqualTo("nesterov"));
            Assert.That(() => Optimizers.SgdMomentumStep(p, g, m, false, -0.1f), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("learningRate"));
            Assert.That(() => Optimizers.SgdMomentumStep(p, new float[2], m, false, 0.1f), Throws.ArgumentException.With.Property("ParamName").EqualTo("gradients"));
            Assert.That(() => Optimizers.ClipByGlobalNorm(new Memory<float>[] { p }, 0), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("maxNorm"));
            Assert.That(() => Optimizers.ClipByGlobalNorm(new Memory<float>[] { p }, double.NaN), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("maxNorm"));
            Assert.That(() => Optimizers.ClipByGlobalNorm(new Memory<float>[] { p.AsMemory(0, 3), p.AsMemory(2, 2) }, 0.1), Throws.ArgumentException.With.Property("ParamName").EqualTo("gradients"));
            Assert.That(p, Is.EqualTo(new[] { 1f, 2f, 3f, 4f }));
            Assert.That(m, Is.All.EqualTo(0f));
        });
    }
}
