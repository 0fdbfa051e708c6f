using FsCheck;
using FsCheck.Fluent;
using LiveLearning.Numerics;
using NUnit.Framework;
using static LiveLearning.Tests.Numerics.NnTestHelpers;

namespace LiveLearning.Tests.Numerics;

[TestFixture]
[Category("Kernels")]
public sealed class SoftmaxTests
{
    [Test]
    public void SoftmaxAndLogSoftmaxMatchDoubleReferenceAtEveryLengthWithoutOutOfBoundsWrites()
    {
        foreach (int n in TestData.KernelLengths)
        {
            float[] x = TestData.Uniform(n, 1100 + n, 20f);
            var y = TestData.Guarded(n);
            var expected = new float[n];
            Softmax.Forward(y.Span, x);
            NnReference.Softmax(expected, x);
            AssertClose(y.Span, expected, 1e-5, 1e-12, $"softmax n={n}");
            y.AssertGuardsIntact();

            var z = TestData.Guarded(n);
            Softmax.LogSoftmax(z.Span, x);
            NnReference.LogSoftmax(expected, x);
            AssertClose(z.Span, expected, 1e-6, 2e-6, $"log-softmax n={n}");
            z.AssertGuardsIntact();
        }
    }

    [Test]
    public void SoftmaxSumsToOneAndIsNonNegativeForAnyFiniteRow()
    {
        Prop.ForAll(
            Gen.ArrayOf(Gen.Choose(-2_000_000, 2_000_000).Select(i => i / 1000f)).Where(a => a.Length > 0).ToArbitrary(),
            (float[] x) =>
            {
                var y = new float[x.Length];
                Softmax.Forward(y, x);
                double sum = y.Sum(v => (double)v);
                return Math.Abs(sum - 1) < 1e-5 && y.All(v => v >= 0);
            }).QuickCheckThrowOnFailure();
    }

    [Test]
    public void HugeLogitsStayFiniteAndNaNPropagatesToTheWholeRow()
    {
        float[] x = [1e30f, -1e30f, 0f, 1e30f];
        var y = new float[4];
        Softmax.Forward(y, x);
        Assert.That(y, Is.EqualTo(new[] { 0.5f, 0f, 0f, 0.5f }));
        Softmax.LogSoftmax(y, x);
        Assert.That(y.All(float.IsFinite), Is.True);
        Assert.That(y[0], Is.EqualTo(-MathF.Log(2)).Within(1e-6f));

        float[] withNaN = TestData.Uniform(37, 3);
        withNaN[20] = float.NaN;
        var out1 = new float[37];
        Softmax.Forward(out1, withNaN);
        Assert.That(out1, Is.All.NaN);
        Softmax.LogSoftmax(out1, withNaN);
        Assert.That(out1, Is.All.NaN);
    }

    [Test]
    public void InPlaceGivesTheSameOutput()
    {
        float[] x = TestData.Uniform(77, 4, 5f);
        var expected = new float[77];
        Softmax.Forward(expected, x);
        float[] inPlace = (float[])x.Clone();
        Softmax.Forward(inPlace, inPlace);
        Assert.That(inPlace, Is.EqualTo(expected));

        Softmax.LogSoftmax(expected, x);
        inPlace = (float[])x.Clone();
        Softmax.LogSoftmax(inPlace, inPlace);
        Assert.That(inPlace, Is.EqualTo(expected));
    }

    [Test]
    public void BadArgumentsThrowWithTheArgumentName()
    {
        float[] big = new float[9];
        Assert.That(() => Softmax.Forward(new float[8], big), Throws.ArgumentException.With.Property("ParamName").EqualTo("y"));
        Assert.That(() => Softmax.LogSoftmax(big.AsSpan(1), big.AsSpan(0, 8)), Throws.ArgumentException.With.Property("ParamName").EqualTo("y"));
    }
}
