using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using LiveLearning.Backends;

namespace LiveLearning.Storage;

/// <summary>
/// The payload of one journal record, little-endian: model, scope, received-at (UTC ticks and offset minutes), source,
/// private flag, tags, then the example (objective, desirable, weight, prompt, completion, rejected). Reference
/// log-likelihoods are not stored: the learner recomputes them against the frozen layers when it learns the item.
/// </summary>
internal static class JournalRecordCodec
{
    private const byte FormatVersion = 1;

    /// <summary>Most token ids one sequence may hold in a record (a corrupted count cannot allocate more).</summary>
    private const int MaxIds = 1 << 24;

    public static void Encode(JournalRecord record, ArrayBufferWriter<byte> output)
    {
        output.GetSpan(1)[0] = FormatVersion;
        output.Advance(1);
        WriteString(output, record.Model);
        WriteString(output, record.Scope);
        WriteInt64(output, record.ReceivedAt.UtcTicks);
        WriteInt32(output, (int)record.ReceivedAt.Offset.TotalMinutes);
        WriteString(output, record.Source);
        WriteByte(output, record.Private ? (byte)1 : (byte)0);
        WriteInt32(output, record.Tags.Count);
        foreach (string tag in record.Tags)
        {
            WriteString(output, tag);
        }

        TrainingExample e = record.Example;
        WriteByte(output, (byte)e.Objective);
        WriteByte(output, e.Desirable ? (byte)1 : (byte)0);
        WriteInt64(output, BitConverter.DoubleToInt64Bits(e.Weight));
        WriteIds(output, e.Prompt);
        WriteIds(output, e.Completion);
        WriteIds(output, e.Rejected);
    }

    /// <summary>Decodes a payload; <see cref="FormatException"/> names the field that is wrong.</summary>
    public static JournalRecord Decode(ReadOnlySpan<byte> data, long sequence)
    {
        var r = new Reader(data);
        byte version = r.Byte("format version");
        if (version != FormatVersion)
        {
            throw new FormatException($"record format version {version} is not supported (expected {FormatVersion})");
        }

        string model = r.String("model");
        string scope = r.String("scope");
        long ticks = r.Int64("received-at");
        int offsetMinutes = r.Int32("received-at offset");
        string source = r.String("source");
        bool isPrivate = r.Byte("private") != 0;
        int tagCount = r.Int32("tag count");
        if (tagCount < 0 || tagCount > data.Length)
        {
            throw new FormatException($"tag count {tagCount} is out of range");
        }

        var tags = new string[tagCount];
        for (int i = 0; i < tagCount; i++)
        {
            tags[i] = r.String("tag");
        }

        var objective = (TrainingObjective)r.Byte("objective");
        if (!Enum.IsDefined(objective))
        {
            throw new FormatException($"objective {(int)objective} is unknown");
        }

        bool desirable = r.Byte("desirable") != 0;
        double weight = BitConverter.Int64BitsToDouble(r.Int64("weight"));
        int[] prompt = r.Ids("prompt") ?? throw new FormatException("the prompt is missing");
        int[] completion = r.Ids("completion") ?? throw new FormatException("the completion is missing");
        int[]? rejected = r.Ids("rejected");
        if (!r.AtEnd)
        {
            throw new FormatException("bytes follow the last field");
        }

        DateTimeOffset receivedAt;
        try
        {
            receivedAt = new DateTimeOffset(ticks, TimeSpan.Zero).ToOffset(TimeSpan.FromMinutes(offsetMinutes));
        }
        catch (ArgumentOutOfRangeException)
        {
            throw new FormatException("received-at is out of range");
        }

        return new JournalRecord
        {
            Sequence = sequence,
            Model = model,
            Scope = scope,
            ReceivedAt = receivedAt,
            Source = source,
            Private = isPrivate,
            Tags = tags,
            Example = new TrainingExample(objective, prompt, completion) { Rejected = rejected, Desirable = desirable, Weight = weight },
        };
    }

    private static void WriteByte(ArrayBufferWriter<byte> w, byte value)
    {
        w.GetSpan(1)[0] = value;
        w.Advance(1);
    }

    private static void WriteInt32(ArrayBufferWriter<byte> w, int value)
    {
        BinaryPrimitives.WriteInt32LittleEndian(w.GetSpan(4), value);
        w.Advance(4);
    }

    private static void WriteInt64(ArrayBufferWriter<byte> w, long value)
    {
        BinaryPrimitives.WriteInt64LittleEndian(w.GetSpan(8), value);
        w.Advance(8);
    }

    private static void WriteString(ArrayBufferWriter<byte> w, string value)
    {
        int length = Encoding.UTF8.GetByteCount(value);
        WriteInt32(w, length);
        Encoding.UTF8.GetBytes(value, w.GetSpan(length));
        w.Advance(length);
    }

    private static void WriteIds(ArrayBufferWriter<byte> w, IReadOnlyList<int>? ids)
    {
        if (ids is null)
        {
            WriteInt32(w, -1);
            return;
        }

        WriteInt32(w, ids.Count);
        Span<byte> span = w.GetSpan(4 * ids.Count);
        for (int i = 0; i < ids.Count; i++)
        {
            BinaryPrimitives.WriteInt32LittleEndian(span[(4 * i)..], ids[i]);
        }

        w.Advance(4 * ids.Count);
    }

    /// <summary>Bounds-checked reads; each failure names the field.</summary>
    private ref struct Reader(ReadOnlySpan<byte> data)
    {
        private readonly ReadOnlySpan<byte> _data = data;
        private int _offset;

        public readonly bool AtEnd => _offset == _data.Length;

        public byte Byte(string field) => Take(1, field)[0];

        public int Int32(string field) => BinaryPrimitives.ReadInt32LittleEndian(Take(4, field));

        public long Int64(string field) => BinaryPrimitives.ReadInt64LittleEndian(Take(8, field));

        public string String(string field)
        {
            int length = Int32(field);
            try
            {
                return new UTF8Encoding(false, throwOnInvalidBytes: true).GetString(Take(length, field));
            }
            catch (DecoderFallbackException)
            {
                throw new FormatException($"{field} is not valid UTF-8");
            }
        }

        public int[]? Ids(string field)
        {
            int count = Int32(field);
            if (count == -1)
            {
                return null;
            }

            if (count < 0 || count > MaxIds)
            {
                throw new FormatException($"{field} has {count} ids");
            }

            ReadOnlySpan<byte> bytes = Take(4 * count, field);
            var ids = new int[count];
            for (int i = 0; i < count; i++)
            {
                ids[i] = BinaryPrimitives.ReadInt32LittleEndian(bytes[(4 * i)..]);
            }

            return ids;
        }

        private ReadOnlySpan<byte> Take(int count, string field)
        {
            if (count < 0 || count > _data.Length - _offset)
            {
                throw new FormatException($"the record ends inside {field}");
            }

            ReadOnlySpan<byte> slice = _data.Slice(_offset, count);
            _offset += count;
            return slice;
        }
    }
}
