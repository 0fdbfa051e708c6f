using System.Globalization;
using System.Text;
using System.Text.Json;

namespace LiveLearning.Governance;

/// <summary>
/// Ledger entries as JSON lines: one object per line with every field, chain fields included, so an export can be
/// checked on its own (<c>LedgerChain.Verify(LedgerJson.Read(stream))</c>). Times are ISO 8601 with their offset;
/// numbers round-trip exactly.
/// </summary>
public static class LedgerJson
{
    private static readonly JsonWriterOptions WriterOptions = new() { Indented = false };

    /// <summary>Writes <paramref name="entries"/> to <paramref name="stream"/>, one JSON object and a line feed each.</summary>
    /// <param name="entries">The entries.</param>
    /// <param name="stream">Where to write (left open).</param>
    /// <param name="cancellationToken">Cancels the export.</param>
    /// <returns>The number of entries written.</returns>
    public static async Task<long> WriteAsync(IAsyncEnumerable<LedgerEntry> entries, Stream stream, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(entries);
        ArgumentNullException.ThrowIfNull(stream);
        long count = 0;
        var buffer = new MemoryStream();
        await foreach (LedgerEntry entry in entries.WithCancellation(cancellationToken).ConfigureAwait(false))
        {
            buffer.SetLength(0);
            using (var writer = new Utf8JsonWriter(buffer, WriterOptions))
            {
                Write(writer, entry);
            }

            buffer.WriteByte((byte)'\n');
            await stream.WriteAsync(buffer.GetBuffer().AsMemory(0, (int)buffer.Length), cancellationToken).ConfigureAwait(false);
            count++;
        }

        await stream.FlushAsync(cancellationToken).ConfigureAwait(false);
        return count;
    }

    /// <summary>Reads entries written by <see cref="WriteAsync"/> (blank lines are skipped).</summary>
    /// <param name="stream">The JSON lines.</param>
    /// <returns>The entries, in file order.</returns>
    /// <exception cref="InvalidDataException">A line is not a ledger entry (the message names the line).</exception>
    public static IEnumerable<LedgerEntry> Read(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        using var reader = new StreamReader(stream, Encoding.UTF8, detectEncodingFromByteOrderMarks: false, leaveOpen: true);
        long number = 0;
        while (reader.ReadLine() is { } line)
        {
            number++;
            if (line.Length == 0)
            {
                continue;
            }

            LedgerEntry entry;
            try
            {
                using JsonDocument document = JsonDocument.Parse(line);
                entry = Parse(document.RootElement);
            }
            catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException or FormatException or ArgumentException)
            {
                throw new InvalidDataException($"Ledger JSON line {number} is not a ledger entry: {ex.Message}", ex);
            }

            yield return entry;
        }
    }

    /// <summary>Writes one entry as a JSON object.</summary>
    /// <param name="writer">The writer.</param>
    /// <param name="entry">The entry.</param>
    public static void Write(Utf8JsonWriter writer, LedgerEntry entry)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(entry);
        writer.WriteStartObject();
        writer.WriteNumber("index", entry.Index);
        writer.WriteString("at", entry.At.ToString("O", CultureInfo.InvariantCulture));
        writer.WriteString("model", entry.Model);
        writer.WriteString("scope", entry.Scope);
        writer.WriteString("event", entry.Event.ToString());
        writer.WriteString("message", entry.Message);
        if (entry.Sequence is { } sequence)
        {
            writer.WriteNumber("sequence", sequence);
        }

        WriteOptional(writer, "source", entry.Source);
        WriteOptional(writer, "rule", entry.Rule);
        WriteOptional(writer, "versionId", entry.VersionId);
        if (entry.Items is { } items)
        {
            writer.WriteStartArray("items");
            foreach (long item in items)
            {
                writer.WriteNumberValue(item);
            }

            writer.WriteEndArray();
        }

        if (entry.Loss is { } loss)
        {
            WriteDouble(writer, "loss", loss);
        }

        if (entry.Figures is { } figures)
        {
            writer.WriteStartObject("figures");
            foreach (KeyValuePair<string, double> f in figures.OrderBy(f => f.Key, StringComparer.Ordinal))
            {
                WriteDouble(writer, f.Key, f.Value);
            }

            writer.WriteEndObject();
        }

        WriteOptional(writer, "actor", entry.Actor);
        writer.WriteString("previousHash", entry.PreviousHash);
        writer.WriteString("hash", entry.Hash);
        writer.WriteEndObject();
    }

    /// <summary>Reads one entry from a JSON object written by <see cref="Write"/>.</summary>
    /// <param name="e">The object.</param>
    /// <returns>The entry.</returns>
    public static LedgerEntry Parse(JsonElement e)
    {
        var entry = new LedgerEntry(
            DateTimeOffset.ParseExact(e.GetProperty("at").GetString()!, "O", CultureInfo.InvariantCulture, DateTimeStyles.None),
            e.GetProperty("model").GetString()!,
            e.GetProperty("scope").GetString()!,
            Enum.Parse<LedgerEvent>(e.GetProperty("event").GetString()!),
            e.GetProperty("message").GetString()!)
        {
            Index = e.GetProperty("index").GetInt64(),
            Sequence = e.TryGetProperty("sequence", out JsonElement s) ? s.GetInt64() : null,
            Source = Optional(e, "source"),
            Rule = Optional(e, "rule"),
            VersionId = Optional(e, "versionId"),
            Items = e.TryGetProperty("items", out JsonElement items) ? [.. items.EnumerateArray().Select(i => i.GetInt64())] : null,
            Loss = e.TryGetProperty("loss", out JsonElement loss) ? ReadDouble(loss) : null,
            Figures = e.TryGetProperty("figures", out JsonElement figures) ? figures.EnumerateObject().ToDictionary(p => p.Name, p => ReadDouble(p.Value), StringComparer.Ordinal) : null,
            Actor = Optional(e, "actor"),
            PreviousHash = e.GetProperty("previousHash").GetString()!,
            Hash = e.GetProperty("hash").GetString()!,
        };
        return entry;
    }

    private static void WriteOptional(Utf8JsonWriter writer, string name, string? value)
    {
        if (value is not null)
        {
            writer.WriteString(name, value);
        }
    }

    /// <summary>A double, or (JSON has no NaN or infinities) its name as a string.</summary>
    private static void WriteDouble(Utf8JsonWriter writer, string name, double value)
    {
        if (double.IsFinite(value))
        {
            writer.WriteNumber(name, value);
        }
        else
        {
            writer.WriteString(name, value.ToString(CultureInfo.InvariantCulture));
        }
    }

    private static double ReadDouble(JsonElement value) =>
        value.ValueKind == JsonValueKind.String ? double.Parse(value.GetString()!, CultureInfo.InvariantCulture) : value.GetDouble();

    private static string? Optional(JsonElement e, string name) => e.TryGetProperty(name, out JsonElement v) ? v.GetString() : null;
}
