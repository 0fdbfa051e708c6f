using System.Runtime.InteropServices;
using LiveLearning.Numerics;

namespace LiveLearning.Storage;

/// <summary>One tensor to write: name, dtype, shape and its raw little-endian row-major bytes.</summary>
public sealed class SafeTensorsEntry
{
    /// <summary>Creates an entry over existing bytes (not copied).</summary>
    /// <param name="name">Tensor name (non-empty, not <c>__metadata__</c>).</param>
    /// <param name="dtype">Element type.</param>
    /// <param name="shape">Shape (non-negative dimensions; empty for a scalar).</param>
    /// <param name="data">Exactly <c>product(shape) * ElementSize(dtype)</c> bytes.</param>
    /// <exception cref="ArgumentException">The name is invalid, a dimension is negative or the data length does not match.</exception>
    public SafeTensorsEntry(string name, SafeTensorsDType dtype, ReadOnlySpan<long> shape, ReadOnlyMemory<byte> data)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (name == SafeTensorsHeader.MetadataKey)
        {
            throw new ArgumentException($"'{SafeTensorsHeader.MetadataKey}' is reserved and cannot name a tensor.", nameof(name));
        }

        int size = SafeTensorsDTypes.ElementSize(dtype);
        long elements = 1;
        foreach (long dim in shape)
        {
            if (dim < 0)
            {
                throw new ArgumentException($"Tensor '{name}' shape [{string.Join(", ", shape.ToArray())}] has a negative dimension.", nameof(shape));
            }

            elements = elements == 0 || dim == 0 ? 0 : checked(elements * dim);
        }

        if (data.Length != checked(elements * size))
        {
            throw new ArgumentException(
                $"Tensor '{name}' {SafeTensorsDTypes.ToName(dtype)} [{string.Join(", ", shape.ToArray())}] needs {elements * size} bytes; got {data.Length}.",
                nameof(data));
        }

        Name = name;
        DType = dtype;
        Shape = Array.AsReadOnly(shape.ToArray());
        Data = data;
    }

    /// <summary>Tensor name.</summary>
    public string Name { get; }

    /// <summary>Element type.</summary>
    public SafeTensorsDType DType { get; }

    /// <summary>Shape.</summary>
    public IReadOnlyList<long> Shape { get; }

    /// <summary>Raw little-endian bytes.</summary>
    public ReadOnlyMemory<byte> Data { get; }

    /// <summary>An F32 entry holding a copy of <paramref name="values"/>.</summary>
    /// <param name="name">Tensor name.</param>
    /// <param name="values">Row-major values.</param>
    /// <param name="shape">Shape; its product must equal the number of values.</param>
    /// <returns>The entry.</returns>
    public static SafeTensorsEntry FromFloat32(string name, ReadOnlySpan<float> values, params ReadOnlySpan<long> shape)
        => new(name, SafeTensorsDType.F32, shape, MemoryMarshal.AsBytes(values).ToArray());

    /// <summary>A BF16 entry: <paramref name="values"/> rounded to bfloat16 (round-to-nearest-even).</summary>
    /// <param name="name">Tensor name.</param>
    /// <param name="values">Row-major values.</param>
    /// <param name="shape">Shape; its product must equal the number of values.</param>
    /// <returns>The entry.</returns>
    public static SafeTensorsEntry ToBFloat16(string name, ReadOnlySpan<float> values, params ReadOnlySpan<long> shape)
    {
        var bits = new ushort[values.Length];
        for (int i = 0; i < bits.Length; i++)
        {
            bits[i] = Precision.SingleToBF16(values[i]);
        }

        return new(name, SafeTensorsDType.BF16, shape, MemoryMarshal.AsBytes(bits.AsSpan()).ToArray());
    }

    /// <summary>An F16 entry: <paramref name="values"/> rounded to IEEE binary16.</summary>
    /// <param name="name">Tensor name.</param>
    /// <param name="values">Row-major values.</param>
    /// <param name="shape">Shape; its product must equal the number of values.</param>
    /// <returns>The entry.</returns>
    public static SafeTensorsEntry ToFloat16(string name, ReadOnlySpan<float> values, params ReadOnlySpan<long> shape)
    {
        var bits = new ushort[values.Length];
        for (int i = 0; i < bits.Length; i++)
        {
            bits[i] = Precision.SingleToF16(values[i]);
        }

        return new(name, SafeTensorsDType.F16, shape, MemoryMarshal.AsBytes(bits.AsSpan()).ToArray());
    }

    /// <summary>An entry of <paramref name="values"/> stored as <paramref name="dtype"/> (F32, F16 or BF16).</summary>
    /// <param name="name">Tensor name.</param>
    /// <param name="dtype">F32, F16 or BF16.</param>
    /// <param name="values">Row-major values.</param>
    /// <param name="shape">Shape; its product must equal the number of values.</param>
    /// <returns>The entry.</returns>
    public static SafeTensorsEntry FromFloats(string name, SafeTensorsDType dtype, ReadOnlySpan<float> values, params ReadOnlySpan<long> shape) => dtype switch
    {
        SafeTensorsDType.F32 => FromFloat32(name, values, shape),
        SafeTensorsDType.F16 => ToFloat16(name, values, shape),
        SafeTensorsDType.BF16 => ToBFloat16(name, values, shape),
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "Float values can be stored as F32, F16 or BF16."),
    };

    /// <summary>An I64 entry holding a copy of <paramref name="values"/>.</summary>
    /// <param name="name">Tensor name.</param>
    /// <param name="values">Row-major values.</param>
    /// <param name="shape">Shape; its product must equal the number of values.</param>
    /// <returns>The entry.</returns>
    public static SafeTensorsEntry FromInt64(string name, ReadOnlySpan<long> values, params ReadOnlySpan<long> shape)
        => new(name, SafeTensorsDType.I64, shape, MemoryMarshal.AsBytes(values).ToArray());

    /// <summary>An entry over a weight matrix's stored bytes (not copied), shape <c>[Rows, Cols]</c>.</summary>
    /// <param name="name">Tensor name.</param>
    /// <param name="matrix">The matrix.</param>
    /// <returns>The entry.</returns>
    public static SafeTensorsEntry FromMatrix(string name, WeightMatrix matrix)
        => new(name, SafeTensorsDTypes.FromWeightType(matrix.Type), [matrix.Rows, matrix.Cols], matrix.Bytes);
}
