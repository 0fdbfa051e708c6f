using LiveLearning.Numerics;
using NUnit.Framework;

namespace LiveLearning.Tests.Numerics;

/// <summary>
/// Reports which SIMD widths are active. CI runs the kernel tests with DOTNET_EnableAVX512=0, DOTNET_EnableAVX2=0
/// and DOTNET_EnableHWIntrinsic=0 and says which widest width it expects in LIVELEARNING_EXPECT_SIMD, so a
/// misspelt or ignored switch fails here instead of silently testing the wrong path. Under CI (<c>CI=true</c>) the
/// expectation is required: a CI leg that forgets to state it fails instead of passing without checking anything.
/// </summary>
[TestFixture]
[Category("Kernels")]
public sealed class SimdInfoTests
{
    [Test]
    public void ReportsActiveWidthsAndMatchesWhatCiExpects()
    {
        TestContext.Out.WriteLine($"SIMD: {SimdInfo.Describe()}");
        string? expected = Environment.GetEnvironmentVariable("LIVELEARNING_EXPECT_SIMD");
        if (string.IsNullOrEmpty(expected))
        {
            Assert.That(Environment.GetEnvironmentVariable("CI"), Is.Not.EqualTo("true").IgnoreCase, "CI must say which SIMD width it expects (LIVELEARNING_EXPECT_SIMD)");
            Assert.That(SimdInfo.WidestVectorBits, Is.AnyOf(0, 128, 256, 512));
            return;
        }

        Assert.That(SimdInfo.WidestVectorBits, Is.EqualTo(int.Parse(expected, System.Globalization.CultureInfo.InvariantCulture)), SimdInfo.Describe());
    }
}
