namespace LiveLearning.Models;

/// <summary>
/// The key/value cache of one sequence: post-RoPE keys and values of every layer, laid out
/// <c>[position, kvHeads, headDim]</c>. Grows on demand up to the model's context length.
/// </summary>
/// <remarks>Not thread-safe: one sequence is decoded by one caller at a time.</remarks>
public sealed class KvCache
{
    private readonly float[][] _keys;
    private readonly float[][] _values;
    private readonly int _rowWidth;

    internal KvCache(int layers, int rowWidth, int maxLength, int initialCapacity)
    {
        _rowWidth = rowWidth;
        MaxLength = maxLength;
        _keys = new float[layers][];
        _values = new float[layers][];
        Capacity = Math.Clamp(initialCapacity, 1, maxLength);
        for (int l = 0; l < layers; l++)
        {
            _keys[l] = new float[Capacity * rowWidth];
            _values[l] = new float[Capacity * rowWidth];
        }
    }

    /// <summary>Number of positions cached (the position of the next token).</summary>
    public int Length { get; private set; }

    /// <summary>Positions the cache can hold before it grows.</summary>
    public int Capacity { get; private set; }

    /// <summary>The model's context length: the cache never holds more positions.</summary>
    public int MaxLength { get; }

    /// <summary>Bytes held by the cache.</summary>
    public long Bytes => 2L * _keys.Length * Capacity * _rowWidth * sizeof(float);

    /// <summary>Forgets every cached position (keeps the memory).</summary>
    public void Clear() => Length = 0;

    /// <summary>Forgets positions from <paramref name="length"/> on (e.g. to re-run a suffix).</summary>
    /// <param name="length">New length; at most <see cref="Length"/>.</param>
    public void Truncate(int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(length, Length);
        Length = length;
    }

    internal Span<float> Keys(int layer, int positions) => _keys[layer].AsSpan(0, positions * _rowWidth);

    internal Span<float> Values(int layer, int positions) => _values[layer].AsSpan(0, positions * _rowWidth);

    internal void EnsureCapacity(int positions)
    {
        if (positions > MaxLength)
        {
            throw new InvalidOperationException($"The sequence would reach {positions} positions; the model's context length (max_position_embeddings) is {MaxLength}.");
        }

        if (positions <= Capacity)
        {
            return;
        }

        int capacity = (int)Math.Min(MaxLength, Math.Max(positions, 2L * Capacity));
        for (int l = 0; l < _keys.Length; l++)
        {
            Array.Resize(ref _keys[l], capacity * _rowWidth);
            Array.Resize(ref _values[l], capacity * _rowWidth);
        }

        Capacity = capacity;
    }

    internal void Advance(int tokens) => Length += tokens;
}
