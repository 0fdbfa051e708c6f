using System.Runtime.Intrinsics;
using LiveLearning.Numerics;
using NUnit.Framework;

namespace LiveLearning.Tests.Numerics;

[TestFixture]
[Category("Kernels")]
public sealed class FastExpTests
{
    private static IEnumerable<float> Grid()
    {
        // Dense over the whole finite range, plus the edges on either side of the flush and overflow bounds.
        for (float x = -87.3f; x <= 88.72f; x += 0.0137f)
        {
            yield return x;
        }

        foreach (float x in new[] { -87.3f, -87.29f, 0f, -0f, 1e-30f, -1e-30f, 0.34657f, -0.34657f, 88.7f, 88.72f, 88.722f })
        {
            yield return x;
        }
    }

    [Test]
    public void EveryWidthIsWithinTwoUlpsOfExpAcrossTheFiniteRange()
    {
        foreach (float x in Grid())
        {
            double expected = Math.Exp(x);
            foreach ((string width, float actual) in AllWidths(x))
            {
                Assert.That(actual, Is.EqualTo(expected).Within(2.5e-7 * expected), $"{width} exp({x:R})");
            }
        }
    }

    [TestCase(-87.31f, 0f)]
    [TestCase(-100f, 0f)]
    [TestCase(float.NegativeInfinity, 0f)]
    [TestCase(88.7229f, float.PositiveInfinity)]
    [TestCase(1000f, float.PositiveInfinity)]
    [TestCase(float.PositiveInfinity, float.PositiveInfinity)]
    public void OutOfRangeFlushesToZeroOrOverflowsToInfinity(float x, float expected)
    {
        foreach ((string width, float actual) in AllWidths(x))
        {
            Assert.That(actual, Is.EqualTo(expected), $"{width} exp({x:R})");
        }
    }

    [Test]
    public void NaNStaysNaN()
    {
        foreach ((string width, float actual) in AllWidths(float.NaN))
        {
            Assert.That(actual, Is.NaN, width);
        }
    }

    private static IEnumerable<(string Width, float Value)> AllWidths(float x)
    {
        yield return ("scalar", FastExp.Exp(x));
        yield return ("128", FastExp.Exp(Vector128.Create(x)).GetElement(3));
        yield return ("256", FastExp.Exp(Vector256.Create(x)).GetElement(7));
        yield return ("512", FastExp.Exp(Vector512.Create(x)).GetElement(15));
    }
}
