using System.Buffers.Binary;
using System.Text.Json;
using System.Text.Unicode;

namespace LiveLearning.Storage;

/// <summary>
/// Parses and validates a safetensors header exactly as the reference reader does: u64 LE length, length cap,
/// UTF-8 JSON object starting with '{', known dtypes, non-negative integer shapes, data_offsets whose sizes match
/// the shapes (checked arithmetic) and which tile the data buffer from 0 to its end with no gap or overlap.
/// </summary>
internal static class SafeTensorsHeader
{
    /// <summary>Largest accepted header (the reference reader's limit).</summary>
    public const long MaxHeaderLength = 100_000_000;

    /// <summary>Largest accepted tensor rank (real checkpoints use at most a handful of dimensions).</summary>
    public const int MaxRank = 64;

    public const string MetadataKey = "__metadata__";

    /// <summary>Reads and checks the 8-byte header length against the file length; returns the header length.</summary>
    public static long ReadHeaderLength(ReadOnlySpan<byte> prefix, long fileLength, string source)
    {
        if (fileLength < 8 || prefix.Length < 8)
        {
            throw new SafeTensorsFormatException(source, "header length", $"the file holds {fileLength} bytes; at least 8 are needed for the header length");
        }

        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(prefix);
        if (n > MaxHeaderLength)
        {
            throw new SafeTensorsFormatException(source, "header length", $"{n} bytes exceeds the {MaxHeaderLength}-byte limit");
        }

        if ((long)n > fileLength - 8)
        {
            throw new SafeTensorsFormatException(source, "header length", $"{n} bytes runs past the end of the file ({fileLength} bytes)");
        }

        return (long)n;
    }

    /// <summary>Parses the header JSON and validates every tensor against a data buffer of <paramref name="dataLength"/> bytes.</summary>
    public static (List<TensorInfo> Tensors, Dictionary<string, string> Metadata) Parse(ReadOnlySpan<byte> header, long dataLength, string source)
    {
        if (!Utf8.IsValid(header))
        {
            throw new SafeTensorsFormatException(source, "header", "is not valid UTF-8");
        }

        if (header.Length == 0 || header[0] != (byte)'{')
        {
            throw new SafeTensorsFormatException(source, "header", "must be a JSON object starting with '{'");
        }

        var tensors = new List<TensorInfo>();
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        var keys = new HashSet<string>(StringComparer.Ordinal);
        var reader = new Utf8JsonReader(header, new JsonReaderOptions { CommentHandling = JsonCommentHandling.Disallow, AllowTrailingCommas = false, MaxDepth = 64 });
        try
        {
            Next(ref reader, source, "header");
            if (reader.TokenType != JsonTokenType.StartObject)
            {
                throw new SafeTensorsFormatException(source, "header", "must be a JSON object");
            }

            while (true)
            {
                Next(ref reader, source, "header");
                if (reader.TokenType == JsonTokenType.EndObject)
                {
                    break;
                }

                string key = reader.GetString()!;
                if (!keys.Add(key))
                {
                    throw new SafeTensorsFormatException(source, $"key '{key}'", "appears more than once in the header");
                }

                Next(ref reader, source, "header");
                if (key == MetadataKey)
                {
                    ParseMetadata(ref reader, metadata, source);
                }
                else
                {
                    tensors.Add(ParseTensor(ref reader, key, source));
                }
            }

            if (reader.Read())
            {
                throw new SafeTensorsFormatException(source, "header", "has content after the JSON object");
            }
        }
        catch (JsonException e)
        {
            throw new SafeTensorsFormatException(source, "header", $"is not valid JSON ({e.Message})", e);
        }
        catch (InvalidOperationException e)
        {
            throw new SafeTensorsFormatException(source, "header", $"is not valid JSON ({e.Message})", e);
        }

        ValidateLayout(tensors, dataLength, source);
        return (tensors, metadata);
    }

    private static void Next(ref Utf8JsonReader reader, string source, string field)
    {
        if (!reader.Read())
        {
            throw new SafeTensorsFormatException(source, field, "ends before the JSON object is complete");
        }
    }

    private static void ParseMetadata(ref Utf8JsonReader reader, Dictionary<string, string> metadata, string source)
    {
        if (reader.TokenType == JsonTokenType.Null)
        {
            return;
        }

        if (reader.TokenType != JsonTokenType.StartObject)
        {
            throw new SafeTensorsFormatException(source, MetadataKey, $"must be an object of strings, found {reader.TokenType}");
        }

        while (true)
        {
            Next(ref reader, source, MetadataKey);
            if (reader.TokenType == JsonTokenType.EndObject)
            {
                return;
            }

            string key = reader.GetString()!;
            Next(ref reader, source, MetadataKey);
            if (reader.TokenType != JsonTokenType.String)
            {
                throw new SafeTensorsFormatException(source, $"{MetadataKey} '{key}'", $"must be a string, found {reader.TokenType}");
            }

            if (!metadata.TryAdd(key, reader.GetString()!))
            {
                throw new SafeTensorsFormatException(source, $"{MetadataKey} '{key}'", "appears more than once");
            }
        }
    }

    private static TensorInfo ParseTensor(ref Utf8JsonReader reader, string name, string source)
    {
        string field = $"tensor '{name}'";
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            throw new SafeTensorsFormatException(source, field, $"must be an object with dtype, shape and data_offsets, found {reader.TokenType}");
        }

        SafeTensorsDType? dtype = null;
        long[]? shape = null;
        long[]? offsets = null;
        while (true)
        {
            Next(ref reader, source, field);
            if (reader.TokenType == JsonTokenType.EndObject)
            {
                break;
            }

            string property = reader.GetString()!;
            Next(ref reader, source, field);
            switch (property)
            {
                case "dtype":
                    if (dtype is not null)
                    {
                        throw new SafeTensorsFormatException(source, field + " dtype", "appears more than once");
                    }

                    if (reader.TokenType != JsonTokenType.String)
                    {
                        throw new SafeTensorsFormatException(source, field + " dtype", $"must be a string, found {reader.TokenType}");
                    }

                    string text = reader.GetString()!;
                    if (!SafeTensorsDTypes.TryParse(text, out SafeTensorsDType parsed))
                    {
                        throw new SafeTensorsFormatException(source, field + " dtype", $"unknown dtype '{text}'");
                    }

                    dtype = parsed;
                    break;
                case "shape":
                    if (shape is not null)
                    {
                        throw new SafeTensorsFormatException(source, field + " shape", "appears more than once");
                    }

                    shape = ReadIntegers(ref reader, source, field + " shape", MaxRank);
                    break;
                case "data_offsets":
                    if (offsets is not null)
                    {
                        throw new SafeTensorsFormatException(source, field + " data_offsets", "appears more than once");
                    }

                    offsets = ReadIntegers(ref reader, source, field + " data_offsets", 2);
                    if (offsets.Length != 2)
                    {
                        throw new SafeTensorsFormatException(source, field + " data_offsets", $"must hold exactly 2 integers [begin, end], found {offsets.Length}");
                    }

                    break;
                default:
                    // The reference reader ignores unknown fields of a tensor entry.
                    reader.Skip();
                    break;
            }
        }

        if (dtype is null)
        {
            throw new SafeTensorsFormatException(source, field + " dtype", "is missing");
        }

        if (shape is null)
        {
            throw new SafeTensorsFormatException(source, field + " shape", "is missing");
        }

        if (offsets is null)
        {
            throw new SafeTensorsFormatException(source, field + " data_offsets", "is missing");
        }

        long begin = offsets[0];
        long end = offsets[1];
        if (end < begin)
        {
            throw new SafeTensorsFormatException(source, field + " data_offsets", $"end {end} is before begin {begin}");
        }

        ulong elements = 1;
        ulong bytes;
        try
        {
            foreach (long dim in shape)
            {
                elements = checked(elements * (ulong)dim);
            }

            bytes = checked(elements * (ulong)SafeTensorsDTypes.ElementSize(dtype.Value));
        }
        catch (OverflowException e)
        {
            throw new SafeTensorsFormatException(source, field + " shape", $"[{string.Join(", ", shape)}] has more elements than 64-bit sizes can count", e);
        }

        if ((ulong)(end - begin) != bytes)
        {
            throw new SafeTensorsFormatException(
                source,
                field + " data_offsets",
                $"[{begin}, {end}] spans {end - begin} bytes but shape [{string.Join(", ", shape)}] of {SafeTensorsDTypes.ToName(dtype.Value)} needs {bytes}");
        }

        return new TensorInfo(name, dtype.Value, shape, (long)elements, begin, end - begin);
    }

    private static long[] ReadIntegers(ref Utf8JsonReader reader, string source, string field, int maxCount)
    {
        if (reader.TokenType != JsonTokenType.StartArray)
        {
            throw new SafeTensorsFormatException(source, field, $"must be an array of non-negative integers, found {reader.TokenType}");
        }

        var values = new List<long>();
        while (true)
        {
            Next(ref reader, source, field);
            if (reader.TokenType == JsonTokenType.EndArray)
            {
                return [.. values];
            }

            if (reader.TokenType != JsonTokenType.Number || !reader.TryGetUInt64(out ulong value) || value > long.MaxValue)
            {
                string found = reader.TokenType == JsonTokenType.Number
                    ? System.Text.Encoding.UTF8.GetString(reader.ValueSpan)
                    : reader.TokenType.ToString();
                throw new SafeTensorsFormatException(source, field, $"must hold non-negative integers, found {found}");
            }

            if (values.Count == maxCount)
            {
                throw new SafeTensorsFormatException(source, field, $"holds more than {maxCount} values");
            }

            values.Add((long)value);
        }
    }

    private static void ValidateLayout(List<TensorInfo> tensors, long dataLength, string source)
    {
        var ordered = tensors.ToArray();
        Array.Sort(ordered, static (a, b) =>
        {
            int c = a.ByteOffset.CompareTo(b.ByteOffset);
            return c != 0 ? c : (a.ByteOffset + a.ByteLength).CompareTo(b.ByteOffset + b.ByteLength);
        });

        long expected = 0;
        TensorInfo? previous = null;
        foreach (TensorInfo t in ordered)
        {
            if (t.ByteOffset != expected)
            {
                string field = $"tensor '{t.Name}' data_offsets";
                long end = t.ByteOffset + t.ByteLength;
                if (previous is null)
                {
                    throw new SafeTensorsFormatException(source, field, $"[{t.ByteOffset}, {end}] does not start at 0; the first tensor must begin the data buffer");
                }

                if (t.ByteOffset < expected)
                {
                    throw new SafeTensorsFormatException(source, field, $"[{t.ByteOffset}, {end}] overlaps tensor '{previous.Name}' which ends at {expected}");
                }

                throw new SafeTensorsFormatException(source, field, $"[{t.ByteOffset}, {end}] leaves a gap after tensor '{previous.Name}' which ends at {expected}");
            }

            expected = t.ByteOffset + t.ByteLength;
            previous = t;
        }

        if (expected != dataLength)
        {
            throw new SafeTensorsFormatException(source, "data buffer", $"the tensors cover {expected} bytes but the file holds {dataLength} bytes after the header");
        }
    }
}
