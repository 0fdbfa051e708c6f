namespace LiveLearning.Numerics;

/// <summary>
/// A dense float32 tensor: row-major storage over an array segment plus a shape. Views (<see cref="Reshape"/>,
/// <see cref="Slice"/>, <see cref="Row"/>) share storage; nothing in this type copies data unless asked to.
/// </summary>
public sealed class Tensor
{
    private readonly float[] _data;
    private readonly int _offset;
    private readonly int[] _shape;

    /// <summary>Allocates a zero-filled tensor of the given shape.</summary>
    /// <param name="shape">Dimensions, outermost first; each must be non-negative.</param>
    public Tensor(params int[] shape)
        : this(new float[CheckedLength(shape)], 0, shape)
    {
    }

    private Tensor(float[] data, int offset, int[] shape)
    {
        _data = data;
        _offset = offset;
        _shape = shape;
        Length = CheckedLength(shape);
    }

    /// <summary>Wraps existing storage without copying.</summary>
    /// <param name="data">Storage; must hold at least the product of <paramref name="shape"/> elements.</param>
    /// <param name="shape">Dimensions, outermost first.</param>
    /// <returns>A tensor viewing <paramref name="data"/>.</returns>
    /// <exception cref="ArgumentException">If <paramref name="data"/> is shorter than the shape requires.</exception>
    public static Tensor Wrap(float[] data, params int[] shape)
    {
        ArgumentNullException.ThrowIfNull(data);
        int length = CheckedLength(shape);
        if (data.Length < length)
        {
            throw new ArgumentException($"Storage holds {data.Length} elements but shape [{string.Join(", ", shape)}] needs {length}.", nameof(data));
        }

        return new Tensor(data, 0, (int[])shape.Clone());
    }

    /// <summary>Number of elements.</summary>
    public int Length { get; }

    /// <summary>Number of dimensions.</summary>
    public int Rank => _shape.Length;

    /// <summary>The dimensions, outermost first.</summary>
    public ReadOnlySpan<int> Shape => _shape;

    /// <summary>The elements in row-major order.</summary>
    public Span<float> Span => _data.AsSpan(_offset, Length);

    /// <summary>The elements as <see cref="Memory{T}"/> (for APIs that outlive a stack frame).</summary>
    public Memory<float> Memory => _data.AsMemory(_offset, Length);

    /// <summary>Size of dimension <paramref name="dim"/>; negative values count from the end.</summary>
    /// <param name="dim">Dimension index.</param>
    /// <returns>The size.</returns>
    public int Dim(int dim) => _shape[dim < 0 ? _shape.Length + dim : dim];

    /// <summary>Element of a rank-2 tensor.</summary>
    /// <param name="row">Row index.</param>
    /// <param name="col">Column index.</param>
    public ref float this[int row, int col]
    {
        get
        {
            if (_shape.Length != 2)
            {
                throw new InvalidOperationException($"Two indices need a rank-2 tensor; this one has rank {_shape.Length}.");
            }

            if ((uint)row >= (uint)_shape[0] || (uint)col >= (uint)_shape[1])
            {
                throw new IndexOutOfRangeException($"[{row}, {col}] is outside [{_shape[0]}, {_shape[1]}].");
            }

            return ref _data[_offset + (row * _shape[1]) + col];
        }
    }

    /// <summary>The contiguous elements of outermost index <paramref name="index"/> (a row of a matrix).</summary>
    /// <param name="index">Index along the first dimension.</param>
    /// <returns>A span over that row.</returns>
    public Span<float> Row(int index)
    {
        if (_shape.Length == 0)
        {
            throw new InvalidOperationException("A scalar tensor has no rows.");
        }

        ArgumentOutOfRangeException.ThrowIfNegative(index);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(index, _shape[0]);
        int stride = Length / Math.Max(1, _shape[0]);
        return _data.AsSpan(_offset + (index * stride), stride);
    }

    /// <summary>A view with a different shape over the same elements.</summary>
    /// <param name="shape">New dimensions; their product must equal <see cref="Length"/>.</param>
    /// <returns>The view.</returns>
    public Tensor Reshape(params int[] shape)
    {
        int length = CheckedLength(shape);
        if (length != Length)
        {
            throw new ArgumentException($"Cannot view {Length} elements as [{string.Join(", ", shape)}] ({length}).", nameof(shape));
        }

        return new Tensor(_data, _offset, (int[])shape.Clone());
    }

    /// <summary>A view of outermost indices <c>[start, start + count)</c>.</summary>
    /// <param name="start">First index along dimension 0.</param>
    /// <param name="count">Number of indices.</param>
    /// <returns>The view.</returns>
    public Tensor Slice(int start, int count)
    {
        if (_shape.Length == 0)
        {
            throw new InvalidOperationException("A scalar tensor cannot be sliced.");
        }

        if (start < 0 || count < 0 || start > _shape[0] - count)
        {
            throw new ArgumentOutOfRangeException(nameof(start), $"[{start}, {start + count}) is outside dimension 0 of size {_shape[0]}.");
        }

        int stride = _shape[0] == 0 ? 0 : Length / _shape[0];
        int[] shape = (int[])_shape.Clone();
        shape[0] = count;
        return new Tensor(_data, _offset + (start * stride), shape);
    }

    /// <summary>Copies the elements into a new tensor with its own storage.</summary>
    /// <returns>The copy.</returns>
    public Tensor Clone()
    {
        var copy = new Tensor(_shape);
        Span.CopyTo(copy.Span);
        return copy;
    }

    /// <inheritdoc />
    public override string ToString() => $"Tensor[{string.Join(", ", _shape)}]";

    private static int CheckedLength(int[] shape)
    {
        ArgumentNullException.ThrowIfNull(shape);
        long length = 1;
        foreach (int d in shape)
        {
            if (d < 0)
            {
                throw new ArgumentOutOfRangeException(nameof(shape), $"Dimension {d} is negative.");
            }

            length *= d;
            if (length > Array.MaxLength)
            {
                throw new ArgumentOutOfRangeException(nameof(shape), $"Shape [{string.Join(", ", shape)}] has more than {Array.MaxLength} elements.");
            }
        }

        return (int)length;
    }
}
