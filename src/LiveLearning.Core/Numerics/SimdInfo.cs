using System.Runtime.Intrinsics;

namespace LiveLearning.Numerics;

/// <summary>Which SIMD widths the running process accelerates; the kernels choose their path from these.</summary>
public static class SimdInfo
{
    /// <summary>Widest accelerated vector in bits: 512, 256, 128, or 0 when only scalar code runs.</summary>
    public static int WidestVectorBits =>
        Vector512.IsHardwareAccelerated ? 512
        : Vector256.IsHardwareAccelerated ? 256
        : Vector128.IsHardwareAccelerated ? 128
        : 0;

    /// <summary>A one-line description, e.g. <c>Vector512=True Vector256=True Vector128=True</c>.</summary>
    /// <returns>The description.</returns>
    public static string Describe() =>
        $"Vector512={Vector512.IsHardwareAccelerated} Vector256={Vector256.IsHardwareAccelerated} Vector128={Vector128.IsHardwareAccelerated} Vector<float>.Count={System.Numerics.Vector<float>.Count} processors={Environment.ProcessorCount}";
}
