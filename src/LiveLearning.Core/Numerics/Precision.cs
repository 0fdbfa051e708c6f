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
    public static void WidenBF16(ReadOnlySpan<ushort> source, Span<float> destination)
    {
        if (destination.Length != source.Length)
        {
            throw new ArgumentException($"Destination has {destination.Length} elements; source has {source.Length}.", nameof(destination));
        }

        ref ushort src = ref MemoryMarshal.GetReference(source);
        ref uint dst = ref Unsafe.As<float, uint>(ref MemoryMarshal.GetReference(destination));
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            for (; i <= source.Length - 32; i += 32)
            {
                Vector512<ushort> v = Vector512.LoadUnsafe(ref src, (nuint)i);
                (Vector512<uint> lo, Vector512<uint> hi) = Vector512.Widen(v);
                Vector512.ShiftLeft(lo, 16).StoreUnsafe(ref dst, (nuint)i);
                Vector512.ShiftLeft(hi, 16).StoreUnsafe(ref dst, (nuint)(i + 16));
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            for (; i <= source.Length - 16; i += 16)
            {
                Vector256<ushort> v = Vector256.LoadUnsafe(ref src, (nuint)i);
                (Vector256<uint> lo, Vector256<uint> hi) = Vector256.Widen(v);
                Vector256.ShiftLeft(lo, 16).StoreUnsafe(ref dst, (nuint)i);
                Vector256.ShiftLeft(hi, 16).StoreUnsafe(ref dst, (nuint)(i + 8));
            }
        }
        else if (Vector128.IsHardwareAccelerated)
        {
            for (; i <= source.Length - 8; i += 8)
            {
                Vector128<ushort> v = Vector128.LoadUnsafe(ref src, (nuint)i);
                (Vector128<uint> lo, Vector128<uint> hi) = Vector128.Widen(v);
                Vector128.ShiftLeft(lo, 16).StoreUnsafe(ref dst, (nuint)i);
                Vector128.ShiftLeft(hi, 16).StoreUnsafe(ref dst, (nuint)(i + 4));
            }
        }

        for (; i < source.Length; i++)
        {
            Unsafe.Add(ref dst, i) = (uint)Unsafe.Add(ref src, i) << 16;
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
