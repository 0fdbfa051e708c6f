namespace LiveLearning.Storage;

/// <summary>One tensor entry of a safetensors header, validated against the file.</summary>
public sealed class TensorInfo
{
    private readonly long[] _shape;

    internal TensorInfo(string name, SafeTensorsDType dtype, long[] shape, long elementCount, long byteOffset, long byteLength)
    {
        Name = name;
        DType = dtype;
        _shape = shape;
        Shape = Array.AsReadOnly(shape);
        ElementCount = elementCount;
        ByteOffset = byteOffset;
        ByteLength = byteLength;
    }

    /// <summary>Tensor name (the header key).</summary>
    public string Name { get; }

    /// <summary>Element type.</summary>
    public SafeTensorsDType DType { get; }

    /// <summary>Shape, outermost dimension first; empty for a scalar.</summary>
    public IReadOnlyList<long> Shape { get; }

    /// <summary>Number of dimensions.</summary>
    public int Rank => _shape.Length;

    /// <summary>Product of the shape (1 for a scalar, 0 for an empty tensor).</summary>
    public long ElementCount { get; }

    /// <summary>Start of the data, relative to the start of the data buffer (the header's <c>data_offsets[0]</c>).</summary>
    public long ByteOffset { get; }

    /// <summary>Length of the data in bytes.</summary>
    public long ByteLength { get; }

    /// <summary>The shape as text, e.g. <c>[2, 3]</c>.</summary>
    /// <returns>The shape.</returns>
    public string ShapeText() => "[" + string.Join(", ", _shape) + "]";

    /// <inheritdoc/>
    public override string ToString() => $"{Name}: {SafeTensorsDTypes.ToName(DType)} {ShapeText()}";
}
