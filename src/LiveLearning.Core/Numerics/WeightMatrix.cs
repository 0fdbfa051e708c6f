using System.Buffers;
using System.Runtime.InteropServices;

namespace LiveLearning.Numerics;

/// <summary>Storage precision of frozen weights. Compute is always float32; narrower types are widened in the kernels.</summary>
public enum WeightType : byte
{
    /// <summary>IEEE 754 binary32.</summary>
    F32 = 0,

    /// <summary>IEEE 754 binary16 (half precision).</summary>
    F16 = 1,

    /// <summary>bfloat16: the upper 16 bits of a binary32.</summary>
    BF16 = 2,
}

/// <summary>
/// A read-only row-major matrix <c>[Rows, Cols]</c> of frozen weights in their stored precision. Backed by any
/// memory (a managed array or a memory-mapped file); the matrix never copies or widens the whole tensor.
/// </summary>
public readonly struct WeightMatrix
{
    /// <summary>Wraps raw little-endian bytes of the given element type.</summary>
    /// <param name="bytes">Exactly <c>rows * cols * ElementSize(type)</c> bytes.</param>
    /// <param name="rows">Number of rows (output features for a linear layer).</param>
    /// <param name="cols">Number of columns (input features).</param>
    /// <param name="type">Element type.</param>
    /// <exception cref="ArgumentException">If the byte length does not match the shape.</exception>
    public WeightMatrix(ReadOnlyMemory<byte> bytes, int rows, int cols, WeightType type)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rows);
        ArgumentOutOfRangeException.ThrowIfNegative(cols);
        long expected = (long)rows * cols * ElementSize(type);
        if (bytes.Length != expected)
        {
            throw new ArgumentException($"A {type} matrix [{rows}, {cols}] needs {expected} bytes; got {bytes.Length}.", nameof(bytes));
        }

        Bytes = bytes;
        Rows = rows;
        Cols = cols;
        Type = type;
    }

    /// <summary>Number of rows.</summary>
    public int Rows { get; }

    /// <summary>Number of columns.</summary>
    public int Cols { get; }

    /// <summary>Stored element type.</summary>
    public WeightType Type { get; }

    /// <summary>The raw stored bytes.</summary>
    public ReadOnlyMemory<byte> Bytes { get; }

    /// <summary>Wraps a float32 array without copying.</summary>
    /// <param name="data">Row-major values; length must be <c>rows * cols</c>.</param>
    /// <param name="rows">Rows.</param>
    /// <param name="cols">Columns.</param>
    /// <returns>The matrix.</returns>
    public static WeightMatrix FromF32(float[] data, int rows, int cols)
    {
        ArgumentNullException.ThrowIfNull(data);
        return new WeightMatrix(new CastMemoryManager<float>(data).Memory, rows, cols, WeightType.F32);
    }

    /// <summary>Wraps raw 16-bit patterns (F16 or BF16) without copying.</summary>
    /// <param name="bits">Row-major bit patterns; length must be <c>rows * cols</c>.</param>
    /// <param name="rows">Rows.</param>
    /// <param name="cols">Columns.</param>
    /// <param name="type"><see cref="WeightType.F16"/> or <see cref="WeightType.BF16"/>.</param>
    /// <returns>The matrix.</returns>
    public static WeightMatrix From16Bit(ushort[] bits, int rows, int cols, WeightType type)
    {
        ArgumentNullException.ThrowIfNull(bits);
        if (type == WeightType.F32)
        {
            throw new ArgumentException("16-bit storage needs F16 or BF16.", nameof(type));
        }

        return new WeightMatrix(new CastMemoryManager<ushort>(bits).Memory, rows, cols, type);
    }

    /// <summary>Bytes per element of <paramref name="type"/>.</summary>
    /// <param name="type">Element type.</param>
    /// <returns>4 or 2.</returns>
    public static int ElementSize(WeightType type) => type switch
    {
        WeightType.F32 => 4,
        WeightType.F16 or WeightType.BF16 => 2,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "Unknown weight type."),
    };

    /// <summary>The values as float32 (only when <see cref="Type"/> is <see cref="WeightType.F32"/>).</summary>
    /// <returns>The values.</returns>
    public ReadOnlySpan<float> AsF32()
    {
        if (Type != WeightType.F32)
        {
            throw new InvalidOperationException($"The matrix is stored as {Type}, not F32.");
        }

        return MemoryMarshal.Cast<byte, float>(Bytes.Span);
    }

    /// <summary>The raw 16-bit patterns (only for F16 and BF16 storage).</summary>
    /// <returns>The bit patterns.</returns>
    public ReadOnlySpan<ushort> As16Bit()
    {
        if (Type == WeightType.F32)
        {
            throw new InvalidOperationException("The matrix is stored as F32, not a 16-bit type.");
        }

        return MemoryMarshal.Cast<byte, ushort>(Bytes.Span);
    }

    /// <summary>Rows <c>[start, start + count)</c> as a matrix over the same storage.</summary>
    /// <param name="start">First row.</param>
    /// <param name="count">Row count.</param>
    /// <returns>The view.</returns>
    public WeightMatrix SliceRows(int start, int count)
    {
        if (start < 0 || count < 0 || start > Rows - count)
        {
            throw new ArgumentOutOfRangeException(nameof(start), $"Rows [{start}, {start + count}) are outside [0, {Rows}).");
        }

        int rowBytes = Cols * ElementSize(Type);
        return new WeightMatrix(Bytes.Slice(start * rowBytes, count * rowBytes), count, Cols, Type);
    }

    /// <summary>Widens one row into float32.</summary>
    /// <param name="row">Row index.</param>
    /// <param name="destination">At least <see cref="Cols"/> floats.</param>
    public void ReadRow(int row, Span<float> destination)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(row);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(row, Rows);
        if (destination.Length < Cols)
        {
            throw new ArgumentException($"Destination holds {destination.Length} floats; a row has {Cols}.", nameof(destination));
        }

        int size = ElementSize(Type);
        ReadOnlySpan<byte> bytes = Bytes.Span.Slice(row * Cols * size, Cols * size);
        switch (Type)
        {
            case WeightType.F32:
                MemoryMarshal.Cast<byte, float>(bytes).CopyTo(destination);
                break;
            case WeightType.BF16:
                Precision.WidenBF16(MemoryMarshal.Cast<byte, ushort>(bytes), destination[..Cols]);
                break;
            default:
                Precision.WidenF16(MemoryMarshal.Cast<byte, ushort>(bytes), destination[..Cols]);
                break;
        }
    }

    /// <summary>Exposes a managed array of <typeparamref name="T"/> as memory of bytes, without copying.</summary>
    private sealed class CastMemoryManager<T>(T[] array) : MemoryManager<byte>
        where T : unmanaged
    {
        public override Span<byte> GetSpan() => MemoryMarshal.AsBytes(array.AsSpan());

        public override unsafe MemoryHandle Pin(int elementIndex = 0)
        {
            var handle = GCHandle.Alloc(array, GCHandleType.Pinned);
            return new MemoryHandle((byte*)handle.AddrOfPinnedObject() + elementIndex, handle);
        }

        public override void Unpin()
        {
        }

        protected override void Dispose(bool disposing)
        {
        }
    }
}
