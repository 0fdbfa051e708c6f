using LiveLearning.Numerics;
using NUnit.Framework;
using static LiveLearning.Tests.Numerics.NnTestHelpers;

namespace LiveLearning.Tests.Numerics;

[TestFixture]
[Category("Kernels")]
public sealed class ActivationsTests
{
    // Vector exp and MathF.Exp may differ by an ulp or two; the formulas add a few roundings.
    private const double Rel = 1e-5;
    private const double Abs = 1e-12;

    private static double SiluD(double x) => x / (1 + Math.Exp(-x));

    [Test]
    public void SiluAndSwiGluMatchScalarReferenceAtEveryLengthWithoutOutOfBoundsWrites()
    {
        foreach (int n in TestData.KernelLengths)
        {
            float[] gate = TestData.Uniform(n, 300 + n, 12f);
            float[] up = TestData.Uniform(n, 400 + n, 3f);

            var y = TestData.Guarded(n);
            Activations.Silu(y.Span, gate);
            var expected = new float[n];
            NnReference.Silu(expected, gate);
            AssertClose(y.Span, expected, Rel, Abs, $"silu n={n}");
            y.AssertGuardsIntact();

            var z = TestData.Guarded(n);
            Activations.SwiGlu(z.Span, gate, up);
            NnReference.SwiGlu(expected, gate, up);
            AssertClose(z.Span, expected, Rel, Abs, $"swiglu n={n}");
            z.AssertGuardsIntact();
        }
    }

    [Test]
    public void BackwardsMatchScalarReferenceAtEveryLengthAccumulatingIntoGradients()
    {
        foreach (int n in TestData.KernelLengths)
        {
            float[] gate = TestData.Uniform(n, 500 + n, 12f);
            float[] up = TestData.Uniform(n, 600 + n, 3f);
            float[] dy = TestData.Uniform(n, 700 + n);
            float[] init = TestData.Uniform(n, 800 + n, 0.5f);
            float[] init2 = TestData.Uniform(n, 900 + n, 0.5f);

            var dx = GuardedCopy(init);
            Activations.SiluBackward(dx.Span, dy, gate);
            float[] expected = (float[])init.Clone();
            NnReference.SiluBackward(expected, dy, gate);
            AssertClose(dx.Span, expected, Rel, Abs, $"silu backward n={n}", init);
            dx.AssertGuardsIntact();

            var dGate = GuardedCopy(init);
            var dUp = GuardedCopy(init2);
            Activations.SwiGluBackward(dGate.Span, dUp.Span, dy, gate, up);
            float[] expectedGate = (float[])init.Clone();
            float[] expectedUp = (float[])init2.Clone();
            NnReference.SwiGluBackward(expectedGate, expectedUp, dy, gate, up);
            AssertClose(dGate.Span, expectedGate, Rel, Abs, $"dGate n={n}", init);
            AssertClose(dUp.Span, expectedUp, Rel, Abs, $"dUp n={n}", init2);
            dGate.AssertGuardsIntact();
            dUp.AssertGuardsIntact();
        }
    }

    [TestCase(1)]
    [TestCase(19)]
    [TestCase(200)]
    public void SiluBackwardMatchesFiniteDifferences(int n)
    {
        float[] x = TestData.Uniform(n, 40 + n, 8f);
        float[] dy = TestData.Uniform(n, 41 + n);
        var dx = new float[n];
        Activations.SiluBackward(dx, dy, x);
        double[] fd = FiniteDifferenceGradient(x, xp =>
        {
            double l = 0;
            for (int i = 0; i < n; i++)
            {
                l += dy[i] * SiluD(xp[i]);
            }

            return l;
        });
        AssertGradientClose(dx, fd, 1e-5, "dx");
    }

    [TestCase(1)]
    [TestCase(19)]
    [TestCase(200)]
    public void SwiGluBackwardMatchesFiniteDifferencesForGateAndUp(int n)
    {
        float[] gate = TestData.Uniform(n, 50 + n, 8f);
        float[] up = TestData.Uniform(n, 51 + n, 2f);
        float[] dy = TestData.Uniform(n, 52 + n);
        var dGate = new float[n];
        var dUp = new float[n];
        Activations.SwiGluBackward(dGate, dUp, dy, gate, up);

        double Loss(double[] g, double[] u)
        {
            double l = 0;
            for (int i = 0; i < n; i++)
            {
                l += dy[i] * SiluD(g[i]) * u[i];
            }

            return l;
        }

        double[] gateD = Array.ConvertAll(gate, v => (double)v);
        double[] upD = Array.ConvertAll(up, v => (double)v);
        AssertGradientClose(dGate, FiniteDifferenceGradient(gate, g => Loss(g, upD)), 1e-5, "dGate");
        AssertGradientClose(dUp, FiniteDifferenceGradient(up, u => Loss(gateD, u)), 1e-5, "dUp");
    }

    [Test]
    public void SiluSpecialValuesPropagateNaNAndSaturateCleanly()
    {
        // 17 values so every vector width and the scalar tail see each special value.
        float[] x = [float.NaN, float.PositiveInfinity, -200f, 200f, 0f, -0f, 1f, -1f, 88f, -88f, 90f, -90f, float.NaN, 3f, -3f, 1e-30f, -1e30f];
        var y = new float[x.Length];
        Activations.Silu(y, x);
        Assert.Multiple(() =>
        {
            Assert.That(y[0], Is.NaN);
            Assert.That(y[12], Is.NaN);
            Assert.That(y[1], Is.EqualTo(float.PositiveInfinity));
            Assert.That(y[2], Is.EqualTo(0f));
            Assert.That(y[3], Is.EqualTo(200f));
            Assert.That(y[4], Is.EqualTo(0f));
            Assert.That(y[6], Is.EqualTo((float)SiluD(1)).Within(1e-6f));
            Assert.That(y[7], Is.EqualTo((float)SiluD(-1)).Within(1e-6f));
            Assert.That(y[11], Is.EqualTo(0f).Within(1e-30f));
            Assert.That(y[16], Is.EqualTo(0f));
        });
    }

    [Test]
    public void InPlaceSiluAndSwiGluGiveTheSameOutput()
    {
        float[] gate = TestData.Uniform(101, 60, 5f);
        float[] up = TestData.Uniform(101, 61, 5f);
        var expected = new float[101];
        Activations.SwiGlu(expected, gate, up);
        float[] inGate = (float[])gate.Clone();
        Activations.SwiGlu(inGate, inGate, up);
        float[] inUp = (float[])up.Clone();
        Activations.SwiGlu(inUp, gate, inUp);
        Assert.That(inGate, Is.EqualTo(expected));
        Assert.That(inUp, Is.EqualTo(expected));

        Activations.Silu(expected, gate);
        float[] inX = (float[])gate.Clone();
        Activations.Silu(inX, inX);
        Assert.That(inX, Is.EqualTo(expected));
    }

    [Test]
    public void BadArgumentsThrowWithTheArgumentName()
    {
        float[] a = new float[8];
        float[] b = new float[8];
        float[] c = new float[8];
        float[] big = new float[9];
        Assert.Multiple(() =>
        {
            Assert.That(() => Activations.Silu(a, big), Throws.ArgumentException.With.Property("ParamName").EqualTo("y"));
            Assert.That(() => Activations.Silu(big.AsSpan(1), big.AsSpan(0, 8)), Throws.ArgumentException.With.Property("ParamName").EqualTo("y"));
            Assert.That(() => Activations.SiluBackward(a, big, b), Throws.ArgumentException.With.Property("ParamName").EqualTo("dy"));
            Assert.That(() => Activations.SiluBackward(a, b, big), Throws.ArgumentException.With.Property("ParamName").EqualTo("x"));
            Assert.That(() => Activations.SiluBackward(a, a, b), Throws.ArgumentException.With.Property("ParamName").EqualTo("dx"));
            Assert.That(() => Activations.SwiGlu(a, big, b), Throws.ArgumentException.With.Property("ParamName").EqualTo("gate"));
            Assert.That(() => Activations.SwiGlu(a, b, big), Throws.ArgumentException.With.Property("ParamName").EqualTo("up"));
            Assert.That(() => Activations.SwiGluBackward(a, big, b, c, c), Throws.ArgumentException.With.Property("ParamName").EqualTo("dUp"));
            Assert.That(() => Activations.SwiGluBackward(a, b, big, c, c), Throws.ArgumentException.With.Property("ParamName").EqualTo("dy"));
            Assert.That(() => Activations.SwiGluBackward(a, a, c, c, c), Throws.ArgumentException.With.Property("ParamName").EqualTo("dGate"));
            Assert.That(() => Activations.SwiGluBackward(a, b, c, b, c), Throws.ArgumentException.With.Property("ParamName").EqualTo("dUp"));
        });
    }
}
