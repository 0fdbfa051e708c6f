using NUnit.Framework;

namespace LiveLearning.Tests.Numerics;

/// <summary>Tolerance checks and finite-difference helpers shared by the neural-net kernel tests.</summary>
internal static class NnTestHelpers
{
    /// <summary>Asserts |actual − expected| ≤ abs + rel·scale[i] (scale defaults to |expected|) element by element; NaN must match NaN.</summary>
    public static void AssertClose(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected, double rel, double abs, string what, ReadOnlySpan<float> extraScale = default)
    {
        Assert.That(actual.Length, Is.EqualTo(expected.Length), what + ": length");
        for (int i = 0; i < actual.Length; i++)
        {
            double e = expected[i];
            double a = actual[i];
            if (double.IsNaN(e) || double.IsNaN(a))
            {
                Assert.That(double.IsNaN(a), Is.EqualTo(double.IsNaN(e)), $"{what}[{i}]: actual {a}, expected {e}");
                continue;
            }

            if (double.IsInfinity(e) || double.IsInfinity(a))
            {
                Assert.That(a, Is.EqualTo(e), $"{what}[{i}]");
                continue;
            }

            double scale = Math.Abs(e) + (extraScale.IsEmpty ? 0 : Math.Abs(extraScale[i]));
            double tolerance = abs + (rel * scale);
            if (Math.Abs(a - e) > tolerance)
            {
                Assert.Fail($"{what}[{i}] of {actual.Length}: actual {a:R}, expected {e:R}, |diff| {Math.Abs(a - e):G3} > tolerance {tolerance:G3}");
            }
        }
    }

    /// <summary>Asserts |actual − expected| ≤ abs + rel·|expected| for scalars.</summary>
    public static void AssertClose(double actual, double expected, double rel, double abs, string what)
    {
        double tolerance = abs + (rel * Math.Abs(expected));
        Assert.That(actual, Is.EqualTo(expected).Within(tolerance), what);
    }

    /// <summary>
    /// Central finite-difference gradient of a double-precision scalar function of a float vector, evaluated at the
    /// float point (the perturbed point is formed in double, so no float rounding enters the difference).
    /// </summary>
    public static double[] FiniteDifferenceGradient(float[] point, Func<double[], double> loss, double h = 1e-5)
    {
        var x = Array.ConvertAll(point, v => (double)v);
        var grad = new double[x.Length];
        for (int i = 0; i < x.Length; i++)
        {
            double saved = x[i];
            x[i] = saved + h;
            double plus = loss(x);
            x[i] = saved - h;
            double minus = loss(x);
            x[i] = saved;
            grad[i] = (plus - minus) / (2 * h);
        }

        return grad;
    }

    /// <summary>
    /// Asserts a float gradient matches a double reference gradient to rel·max(max|ref|, termScale): float rounding
    /// is relative to the largest terms that were summed or cancelled, not to each (possibly tiny) result.
    /// </summary>
    public static void AssertGradientClose(ReadOnlySpan<float> actual, double[] expected, double rel, string what, double termScale = 0)
    {
        double maxAbs = termScale;
        foreach (double e in expected)
        {
            maxAbs = Math.Max(maxAbs, Math.Abs(e));
        }

        double tolerance = (rel * maxAbs) + 1e-9;
        for (int i = 0; i < expected.Length; i++)
        {
            if (Math.Abs(actual[i] - expected[i]) > tolerance)
            {
                Assert.Fail($"{what}[{i}] of {expected.Length}: kernel {actual[i]:R}, finite difference {expected[i]:R}, tolerance {tolerance:G3}");
            }
        }
    }

    /// <summary>Copies a span into a guarded buffer.</summary>
    public static GuardedBuffer GuardedCopy(ReadOnlySpan<float> source)
    {
        var buffer = TestData.Guarded(source.Length);
        source.CopyTo(buffer.Span);
        return buffer;
    }

    /// <summary>Row lengths for row kernels: every KernelLength except 0.</summary>
    public static IEnumerable<int> NonEmptyLengths => TestData.KernelLengths.Where(n => n > 0);
}
