using System.Buffers;
using System.Diagnostics.CodeAnalysis;
using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;
using LiveLearning.Numerics;

namespace LiveLearning.Storage;

/// <summary>
/// A read-only safetensors file. <see cref="Open"/> memory-maps the file and exposes each tensor's bytes without
/// copying; <see cref="Load"/> reads from memory. The header is validated exactly like the reference reader
/// (see <see cref="SafeTensorsFormatException"/> for what is rejected) before anything is exposed.
/// </summary>
/// <remarks>
/// Memory returned by <see cref="GetBytes"/> (and matrices over it) is only valid until the file is disposed;
/// after that, getting a span from it throws <see cref="ObjectDisposedException"/>. A file truncated by another
/// process while mapped can crash the process (a property of memory mapping); treat model files as immutable.
/// Thread-safe for concurrent readers.
/// </remarks>
public sealed class SafeTensorsFile : IDisposable
{
    private readonly Dictionary<string, TensorInfo> _byName;
    private readonly string[] _names;
    private readonly ReadOnlyMemory<byte> _buffer;
    private readonly MappedRegion? _mapped;
    private readonly Dictionary<string, MappedTensorMemory>? _mappedTensors;
    private readonly long _dataStart;

    private SafeTensorsFile(string source, List<TensorInfo> tensors, Dictionary<string, string> metadata, long dataStart, ReadOnlyMemory<byte> buffer, MappedRegion? mapped)
    {
        SourceName = source;
        _byName = new Dictionary<string, TensorInfo>(tensors.Count, StringComparer.Ordinal);
        foreach (TensorInfo t in tensors)
        {
            _byName.Add(t.Name, t);
        }

        _names = [.. tensors.Select(static t => t.Name).Order(StringComparer.Ordinal)];
        Names = Array.AsReadOnly(_names);
        Metadata = metadata;
        _dataStart = dataStart;
        _buffer = buffer;
        _mapped = mapped;
        if (mapped is not null)
        {
            _mappedTensors = new Dictionary<string, MappedTensorMemory>(tensors.Count, StringComparer.Ordinal);
            foreach (TensorInfo t in tensors)
            {
                if (t.ByteLength <= int.MaxValue)
                {
                    _mappedTensors.Add(t.Name, new MappedTensorMemory(mapped, dataStart + t.ByteOffset, (int)t.ByteLength));
                }
            }
        }
    }

    /// <summary>The file path (or the name given to <see cref="Load"/>); used in error messages.</summary>
    public string SourceName { get; }

    /// <summary>Tensor names in ordinal order.</summary>
    public IReadOnlyList<string> Names { get; }

    /// <summary>The optional <c>__metadata__</c> map (empty when absent).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Number of tensors.</summary>
    public int Count => _names.Length;

    /// <summary>Memory-maps and validates a safetensors file.</summary>
    /// <param name="path">The file.</param>
    /// <returns>The open file; dispose it to unmap.</returns>
    /// <exception cref="SafeTensorsFormatException">The file is malformed (the message names the file and field).</exception>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    public static SafeTensorsFile Open(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete, 1, FileOptions.None);
        MappedRegion? region = null;
        try
        {
            long length = stream.Length;
            if (length < 8)
            {
                throw new SafeTensorsFormatException(path, "header length", $"the file holds {length} bytes; at least 8 are needed for the header length");
            }

            region = new MappedRegion(stream, length);
            stream = null!; // owned by the mapping now
            long headerLength = SafeTensorsHeader.ReadHeaderLength(region.Span(0, 8), length, path);
            var (tensors, metadata) = SafeTensorsHeader.Parse(region.Span(8, (int)headerLength), length - 8 - headerLength, path);
            return new SafeTensorsFile(path, tensors, metadata, 8 + headerLength, ReadOnlyMemory<byte>.Empty, region);
        }
        catch
        {
            region?.Dispose();
            stream?.Dispose();
            throw;
        }
    }

    /// <summary>Validates a safetensors file held in memory (no copy: tensors are slices of <paramref name="bytes"/>).</summary>
    /// <param name="bytes">The whole file.</param>
    /// <param name="sourceName">A name for error messages.</param>
    /// <returns>The file.</returns>
    /// <exception cref="SafeTensorsFormatException">The bytes are malformed.</exception>
    public static SafeTensorsFile Load(ReadOnlyMemory<byte> bytes, string sourceName)
    {
        ArgumentNullException.ThrowIfNull(sourceName);
        ReadOnlySpan<byte> span = bytes.Span;
        long headerLength = SafeTensorsHeader.ReadHeaderLength(span, span.Length, sourceName);
        var (tensors, metadata) = SafeTensorsHeader.Parse(span.Slice(8, (int)headerLength), span.Length - 8 - headerLength, sourceName);
        return new SafeTensorsFile(sourceName, tensors, metadata, 8 + headerLength, bytes, null);
    }

    /// <summary>Reads a whole stream (for small files or non-file sources) and validates it like <see cref="Load(ReadOnlyMemory{byte}, string)"/>.</summary>
    /// <param name="stream">The stream, read to its end.</param>
    /// <param name="sourceName">A name for error messages.</param>
    /// <param name="maxBytes">Largest accepted stream (at most <see cref="Array.MaxLength"/>); longer streams are refused before buffering them.</param>
    /// <returns>The file.</returns>
    /// <exception cref="SafeTensorsFormatException">The bytes are malformed or exceed <paramref name="maxBytes"/>.</exception>
    public static SafeTensorsFile Load(Stream stream, string sourceName, long maxBytes = 1L << 30)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(sourceName);
        ArgumentOutOfRangeException.ThrowIfNegative(maxBytes);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(maxBytes, Array.MaxLength);
        using var buffer = new MemoryStream();
        var chunk = new byte[81920];
        int read;
        while ((read = stream.Read(chunk)) > 0)
        {
            if (buffer.Length + read > maxBytes)
            {
                throw new SafeTensorsFormatException(sourceName, "file length", $"exceeds the {maxBytes}-byte limit for in-memory loading");
            }

            buffer.Write(chunk, 0, read);
        }

        return Load(buffer.GetBuffer().AsMemory(0, (int)buffer.Length), sourceName);
    }

    /// <summary>Whether the file holds a tensor of this name.</summary>
    /// <param name="name">Tensor name.</param>
    /// <returns>True if present.</returns>
    public bool Contains(string name) => _byName.ContainsKey(name);

    /// <summary>Looks up a tensor's header entry.</summary>
    /// <param name="name">Tensor name.</param>
    /// <param name="info">The entry when found.</param>
    /// <returns>True if present.</returns>
    public bool TryGetInfo(string name, [NotNullWhen(true)] out TensorInfo? info) => _byName.TryGetValue(name, out info);

    /// <summary>A tensor's header entry.</summary>
    /// <param name="name">Tensor name.</param>
    /// <returns>The entry.</returns>
    /// <exception cref="KeyNotFoundException">No such tensor (the message names the file and tensor).</exception>
    public TensorInfo GetInfo(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return _byName.TryGetValue(name, out TensorInfo? info)
            ? info
            : throw new KeyNotFoundException($"{SourceName}: no tensor named '{name}'.");
    }

    /// <summary>A tensor's raw little-endian bytes, without copying.</summary>
    /// <param name="name">Tensor name.</param>
    /// <returns>The bytes (valid until the file is disposed).</returns>
    /// <exception cref="KeyNotFoundException">No such tensor.</exception>
    /// <exception cref="NotSupportedException">The tensor is larger than 2 GiB.</exception>
    public ReadOnlyMemory<byte> GetBytes(string name) => GetBytes(GetInfo(name));

    /// <summary>Gets a tensor's bytes if present.</summary>
    /// <param name="name">Tensor name.</param>
    /// <param name="bytes">The bytes when found.</param>
    /// <returns>True if present.</returns>
    public bool TryGetBytes(string name, out ReadOnlyMemory<byte> bytes)
    {
        if (_byName.TryGetValue(name, out TensorInfo? info))
        {
            bytes = GetBytes(info);
            return true;
        }

        bytes = default;
        return false;
    }

    /// <summary>A 2-D F32/F16/BF16 tensor as a weight matrix over the stored bytes (1-D tensors become <c>[1, n]</c>).</summary>
    /// <param name="name">Tensor name.</param>
    /// <returns>The matrix (valid until the file is disposed).</returns>
    /// <exception cref="KeyNotFoundException">No such tensor.</exception>
    /// <exception cref="InvalidOperationException">The tensor is not a 1-D or 2-D F32/F16/BF16 tensor.</exception>
    public WeightMatrix GetMatrix(string name)
    {
        TensorInfo info = GetInfo(name);
        if (!SafeTensorsDTypes.TryGetWeightType(info.DType, out WeightType type))
        {
            throw new InvalidOperationException($"{SourceName}: tensor '{name}' is {SafeTensorsDTypes.ToName(info.DType)}; a weight matrix needs F32, F16 or BF16.");
        }

        long rows;
        long cols;
        switch (info.Rank)
        {
            case 1: rows = 1; cols = info.Shape[0]; break;
            case 2: rows = info.Shape[0]; cols = info.Shape[1]; break;
            default: throw new InvalidOperationException($"{SourceName}: tensor '{name}' has shape {info.ShapeText()}; a weight matrix needs 1 or 2 dimensions.");
        }

        if (rows > int.MaxValue || cols > int.MaxValue)
        {
            throw new InvalidOperationException($"{SourceName}: tensor '{name}' has shape {info.ShapeText()}; dimensions above {int.MaxValue} are not supported.");
        }

        return new WeightMatrix(GetBytes(info), (int)rows, (int)cols, type);
    }

    /// <summary>A tensor's values widened (or, for F64, rounded) to a new float32 array, whatever its float dtype.</summary>
    /// <param name="name">Tensor name.</param>
    /// <returns>The values in row-major order.</returns>
    /// <exception cref="KeyNotFoundException">No such tensor.</exception>
    /// <exception cref="InvalidOperationException">The tensor is not F32, F16, BF16 or F64.</exception>
    public float[] ReadAsFloat32(string name)
    {
        TensorInfo info = GetInfo(name);
        ReadOnlySpan<byte> bytes = GetBytes(info).Span;
        var result = new float[info.ElementCount];
        switch (info.DType)
        {
            case SafeTensorsDType.F32:
                MemoryMarshal.Cast<byte, float>(bytes).CopyTo(result);
                break;
            case SafeTensorsDType.F16:
                Precision.WidenF16(MemoryMarshal.Cast<byte, ushort>(bytes), result);
                break;
            case SafeTensorsDType.BF16:
                Precision.WidenBF16(MemoryMarshal.Cast<byte, ushort>(bytes), result);
                break;
            case SafeTensorsDType.F64:
                ReadOnlySpan<double> doubles = MemoryMarshal.Cast<byte, double>(bytes);
                for (int i = 0; i < result.Length; i++)
                {
                    result[i] = (float)doubles[i];
                }

                break;
            default:
                throw new InvalidOperationException($"{SourceName}: tensor '{name}' is {SafeTensorsDTypes.ToName(info.DType)}, not a floating-point type.");
        }

        return result;
    }

    /// <summary>A 1-D float tensor's values as float32 (see <see cref="ReadAsFloat32"/>).</summary>
    /// <param name="name">Tensor name.</param>
    /// <returns>The values.</returns>
    /// <exception cref="InvalidOperationException">The tensor is not 1-D or not a float type.</exception>
    public float[] GetVector(string name)
    {
        TensorInfo info = GetInfo(name);
        if (info.Rank != 1)
        {
            throw new InvalidOperationException($"{SourceName}: tensor '{name}' has shape {info.ShapeText()}; a vector needs 1 dimension.");
        }

        return ReadAsFloat32(name);
    }

    /// <summary>A tensor's values as 64-bit integers (I64/I32/I16/I8/U8/U16/U32/BOOL; U64 above <see cref="long.MaxValue"/> is rejected).</summary>
    /// <param name="name">Tensor name.</param>
    /// <returns>The values in row-major order.</returns>
    /// <exception cref="InvalidOperationException">The tensor is a float type or a U64 value does not fit.</exception>
    public long[] ReadAsInt64(string name)
    {
        TensorInfo info = GetInfo(name);
        ReadOnlySpan<byte> bytes = GetBytes(info).Span;
        var result = new long[info.ElementCount];
        for (int i = 0; i < result.Length; i++)
        {
            result[i] = info.DType switch
            {
                SafeTensorsDType.I64 => MemoryMarshal.Cast<byte, long>(bytes)[i],
                SafeTensorsDType.U64 => MemoryMarshal.Cast<byte, ulong>(bytes)[i] <= long.MaxValue
                    ? (long)MemoryMarshal.Cast<byte, ulong>(bytes)[i]
                    : throw new InvalidOperationException($"{SourceName}: tensor '{name}' element {i} does not fit in a signed 64-bit integer."),
                SafeTensorsDType.I32 => MemoryMarshal.Cast<byte, int>(bytes)[i],
                SafeTensorsDType.U32 => MemoryMarshal.Cast<byte, uint>(bytes)[i],
                SafeTensorsDType.I16 => MemoryMarshal.Cast<byte, short>(bytes)[i],
                SafeTensorsDType.U16 => MemoryMarshal.Cast<byte, ushort>(bytes)[i],
                SafeTensorsDType.I8 => (sbyte)bytes[i],
                SafeTensorsDType.U8 or SafeTensorsDType.Bool => bytes[i],
                _ => throw new InvalidOperationException($"{SourceName}: tensor '{name}' is {SafeTensorsDTypes.ToName(info.DType)}, not an integer type."),
            };
        }

        return result;
    }

    /// <summary>Unmaps the file. Memory obtained from it must not be used afterwards.</summary>
    public void Dispose() => _mapped?.Dispose();

    private ReadOnlyMemory<byte> GetBytes(TensorInfo info)
    {
        if (info.ByteLength > int.MaxValue)
        {
            throw new NotSupportedException($"{SourceName}: tensor '{info.Name}' holds {info.ByteLength} bytes; tensors above 2 GiB cannot be exposed as one memory block.");
        }

        if (_mappedTensors is not null)
        {
            ObjectDisposedException.ThrowIf(_mapped!.IsDisposed, this);
            return _mappedTensors[info.Name].Memory;
        }

        return _buffer.Slice((int)(_dataStart + info.ByteOffset), (int)info.ByteLength);
    }

    /// <summary>A read-only memory mapping of a whole file with a pointer held for its lifetime.</summary>
    private sealed unsafe class MappedRegion : IDisposable
    {
        private readonly MemoryMappedFile _file;
        private readonly MemoryMappedViewAccessor _view;
        private readonly long _length;
        private byte* _pointer;
        private int _disposed;

        public MappedRegion(FileStream stream, long length)
        {
            _length = length;
            _file = MemoryMappedFile.CreateFromFile(stream, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: false);
            try
            {
                _view = _file.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
                byte* p = null;
                _view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
                _pointer = p + _view.PointerOffset;
            }
            catch
            {
                _view?.Dispose();
                _file.Dispose();
                throw;
            }
        }

        public bool IsDisposed => Volatile.Read(ref _disposed) != 0;

        public ReadOnlySpan<byte> Span(long offset, int length)
        {
            ObjectDisposedException.ThrowIf(IsDisposed, this);
            if (offset < 0 || length < 0 || offset > _length - length)
            {
                throw new ArgumentOutOfRangeException(nameof(offset), $"[{offset}, {offset + length}) is outside the mapped {_length} bytes.");
            }

            return new ReadOnlySpan<byte>(_pointer + offset, length);
        }

        public byte* Pointer(long offset, int length)
        {
            ObjectDisposedException.ThrowIf(IsDisposed, this);
            if (offset < 0 || length < 0 || offset > _length - length)
            {
                throw new ArgumentOutOfRangeException(nameof(offset), $"[{offset}, {offset + length}) is outside the mapped {_length} bytes.");
            }

            return _pointer + offset;
        }

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) != 0)
            {
                return;
            }

            _pointer = null;
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _view.Dispose();
            _file.Dispose();
        }
    }

    /// <summary>One tensor of a mapped file as <see cref="Memory{T}"/> of bytes (bounds fixed at creation).</summary>
    private sealed unsafe class MappedTensorMemory(MappedRegion region, long offset, int length) : MemoryManager<byte>
    {
        public override Span<byte> GetSpan() => new(region.Pointer(offset, length), length);

        public override MemoryHandle Pin(int elementIndex = 0)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(elementIndex);
            ArgumentOutOfRangeException.ThrowIfGreaterThan(elementIndex, length);
            return new MemoryHandle(region.Pointer(offset, length) + elementIndex);
        }

        public override void Unpin()
        {
        }

        protected override void Dispose(bool disposing)
        {
        }
    }
}
