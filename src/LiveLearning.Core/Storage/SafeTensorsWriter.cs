using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;

namespace LiveLearning.Storage;

/// <summary>
/// Writes safetensors files the reference tools accept: u64 little-endian header length, compact JSON header with
/// <c>__metadata__</c> first and tensors in bytewise (UTF-8) name order, header padded with spaces to a multiple
/// of 8 bytes, then the tensor data laid out in the same name order with no gaps.
/// </summary>
public static class SafeTensorsWriter
{
    /// <summary>
    /// Writes a file atomically: the bytes go to a temporary file in the same directory, which is flushed to disk
    /// and then renamed over <paramref name="path"/>. On any failure the temporary file is deleted and an existing
    /// file at <paramref name="path"/> is left untouched.
    /// </summary>
    /// <param name="path">Destination file.</param>
    /// <param name="tensors">The tensors (names unique).</param>
    /// <param name="metadata">Optional <c>__metadata__</c> string map.</param>
    /// <exception cref="ArgumentException">An entry is invalid or two entries share a name (nothing is written).</exception>
    public static void Write(string path, IEnumerable<SafeTensorsEntry> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var (header, ordered) = Prepare(tensors, metadata);
        AtomicFile.Write(path, stream => WriteBody(stream, header, ordered));
    }

    /// <summary>Writes the file bytes to a stream (not atomic; the caller owns the stream).</summary>
    /// <param name="stream">Destination stream.</param>
    /// <param name="tensors">The tensors (names unique).</param>
    /// <param name="metadata">Optional <c>__metadata__</c> string map.</param>
    /// <exception cref="ArgumentException">An entry is invalid or two entries share a name (nothing is written).</exception>
    public static void WriteTo(Stream stream, IEnumerable<SafeTensorsEntry> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        var (header, ordered) = Prepare(tensors, metadata);
        WriteBody(stream, header, ordered);
    }

    /// <summary>The whole file as a byte array (for small files and tests).</summary>
    /// <param name="tensors">The tensors (names unique).</param>
    /// <param name="metadata">Optional <c>__metadata__</c> string map.</param>
    /// <returns>The file bytes.</returns>
    public static byte[] Serialize(IEnumerable<SafeTensorsEntry> tensors, IReadOnlyDictionary<string, string>? metadata = null)
    {
        using var memory = new MemoryStream();
        WriteTo(memory, tensors, metadata);
        return memory.ToArray();
    }

    private static void WriteBody(Stream stream, byte[] header, SafeTensorsEntry[] ordered)
    {
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)header.Length);
        stream.Write(length);
        stream.Write(header);
        foreach (SafeTensorsEntry entry in ordered)
        {
            stream.Write(entry.Data.Span);
        }
    }

    private static (byte[] Header, SafeTensorsEntry[] Ordered) Prepare(IEnumerable<SafeTensorsEntry> tensors, IReadOnlyDictionary<string, string>? metadata)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var list = new List<(byte[] Key, SafeTensorsEntry Entry)>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (SafeTensorsEntry? entry in tensors)
        {
            if (entry is null)
            {
                throw new ArgumentException("The tensor list contains null.", nameof(tensors));
            }

            if (!names.Add(entry.Name))
            {
                throw new ArgumentException($"Tensor '{entry.Name}' appears more than once.", nameof(tensors));
            }

            list.Add((Encoding.UTF8.GetBytes(entry.Name), entry));
        }

        list.Sort(static (a, b) => a.Key.AsSpan().SequenceCompareTo(b.Key));
        SafeTensorsEntry[] ordered = [.. list.Select(static x => x.Entry)];

        var buffer = new ArrayBufferWriter<byte>();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = false, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            json.WriteStartObject();
            if (metadata is { Count: > 0 })
            {
                json.WriteStartObject(SafeTensorsHeader.MetadataKey);
                foreach (KeyValuePair<string, string> pair in metadata.OrderBy(static p => p.Key, StringComparer.Ordinal))
                {
                    if (pair.Key is null || pair.Value is null)
                    {
                        throw new ArgumentException("Metadata keys and values must not be null.", nameof(metadata));
                    }

                    json.WriteString(pair.Key, pair.Value);
                }

                json.WriteEndObject();
            }

            long offset = 0;
            foreach (SafeTensorsEntry entry in ordered)
            {
                json.WriteStartObject(entry.Name);
                json.WriteString("dtype", SafeTensorsDTypes.ToName(entry.DType));
                json.WriteStartArray("shape");
                foreach (long dim in entry.Shape)
                {
                    json.WriteNumberValue(dim);
                }

                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                offset += entry.Data.Length;
                json.WriteNumberValue(offset);
                json.WriteEndArray();
                json.WriteEndObject();
            }

            json.WriteEndObject();
        }

        int padded = (buffer.WrittenCount + 7) / 8 * 8;
        if (padded > SafeTensorsHeader.MaxHeaderLength)
        {
            throw new ArgumentException($"The header would take {padded} bytes; readers refuse headers above {SafeTensorsHeader.MaxHeaderLength}.", nameof(tensors));
        }

        var header = new byte[padded];
        buffer.WrittenSpan.CopyTo(header);
        header.AsSpan(buffer.WrittenCount).Fill((byte)' ');
        return (header, ordered);
    }
}
