using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace LiveLearning.Numerics;

/// <summary>Conversions between float32 and the 16-bit storage types (scalar reference beside the SIMD path).</summary>
public static class Precision
{
    /// <summary>Widens one bfloat16 bit pattern: the value is the upper half of a binary32.</summary>
    /// <param name="bits">The bfloat16 bits.</param>
    /// <returns>The float32 value (exact).</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float BF16ToSingle(ushort bits) => BitConverter.Int32BitsToSingle(bits << 16);

    /// <summary>Rounds a float32 to bfloat16 with round-to-nearest-even; NaN stays NaN.</summary>
    /// <param name="value">The value.</param>
    /// <returns>The bfloat16 bits.</returns>
    public static ushort SingleToBF16(float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        if (float.IsNaN(value))
        {
            return (ushort)((bits >> 16) | 0x0040);
        }

        uint rounding = 0x7FFF + ((bits >> 16) & 1);
        return (ushort)((bits + rounding) >> 16);
    }

    /// <summary>Widens one IEEE binary16 bit pattern (exact).</summary>
    /// <param name="bits">The binary16 bits.</param>
    /// <returns>The float32 value.</returns>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float F16ToSingle(ushort bits) => (float)BitConverter.UInt16BitsToHalf(bits);

    /// <summary>Rounds a float32 to IEEE binary16 (round-to-nearest-even).</summary>
    /// <param name="value">The value.</param>
    /// <returns>The binary16 bits.</returns>
    public static ushort SingleToF16(float value) => BitConverter.HalfToUInt16Bits((Half)value);

    /// <summary>Widens bfloat16 bit patterns into float32.</summary>
    /// <param name="source">bfloat16 bits.</param>
    /// <param name="destination">Same length as <paramref name="source"/>.</param>
    public static unsafe void WidenBF16(ReadOnlySpan<ushort> source, Span<float> destination)
    {
        if (destination.Length != source.Length)
        {
            throw new ArgumentException($"Destination has {destination.Length} elements; source has {source.Length}.", nameof(destination));
        }

        fixed (ushort* src = source)
        fixed (float* dst = destination)
        {
            WidenBF16(src, dst, source.Length);
        }
    }

    /// <summary>
    /// The bfloat16 widening loop the kernels call directly. Fully optimised from its first call, so kernels never
    /// run a not-yet-optimised tier of it from two threads at once.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static unsafe void WidenBF16(ushort* source, float* destination, int count)
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            for (; i <= count - 32; i += 32)
            {
                (Vector512<uint> lo, Vector512<uint> hi) = Vector512.Widen(Vector512.Load(source + i));
                (lo << 16).AsSingle().Store(destination + i);
                (hi << 16).AsSingle().Store(destination + i + 16);
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            for (; i <= count - 16; i += 16)
            {
                (Vector256<uint> lo, Vector256<uint> hi) = Vector256.Widen(Vector256.Load(source + i));
                (lo << 16).AsSingle().Store(destination + i);
                (hi << 16).AsSingle().Store(destination + i + 8);
            }
        }
        else if (Vector128.IsHardwareAccelerated)
        {
            for (; i <= count - 8; i += 8)
            {
                (Vector128<uint> lo, Vector128<uint> hi) = Vector128.Widen(Vector128.Load(source + i));
                (lo << 16).AsSingle().Store(destination + i);
                (hi << 16).AsSingle().Store(destination + i + 4);
            }
        }

        for (; i < count; i++)
        {
            destination[i] = BF16ToSingle(source[i]);
        }
    }

    /// <summary>Widens IEEE binary16 bit patterns into float32.</summary>
    /// <param name="source">binary16 bits.</param>
    /// <param name="destination">Same length as <paramref name="source"/>.</param>
    public static void WidenF16(ReadOnlySpan<ushort> source, Span<float> destination)
    {
        if (destination.Length != source.Length)
        {
            throw new ArgumentException($"Destination has {destination.Length} elements; source has {source.Length}.", nameof(destination));
        }

        TensorPrimitives.ConvertToSingle(MemoryMarshal.Cast<ushort, Half>(source), destination);
    }
}
