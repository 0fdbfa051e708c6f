using System.Text.Encodings.Web;
using System.Text.Json;

namespace LiveLearning.Cli;

/// <summary>Where a command writes: data to <see cref="Out"/> (text or, with <c>--json</c>, JSON), diagnostics to <see cref="Error"/>.</summary>
internal sealed class Output(TextWriter output, TextWriter error, bool json)
{
    private static readonly JsonWriterOptions Compact = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public TextWriter Out { get; } = output;

    public TextWriter Error { get; } = error;

    public bool Json { get; } = json;

    /// <summary>One JSON object of the fields <paramref name="write"/> writes, on its own line.</summary>
    public void WriteJson(Action<Utf8JsonWriter> write) => WriteJsonLine(writer =>
    {
        writer.WriteStartObject();
        write(writer);
        writer.WriteEndObject();
    });

    /// <summary>One JSON value, written whole by <paramref name="write"/>, on its own line.</summary>
    public void WriteJsonLine(Action<Utf8JsonWriter> write)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer, Compact))
        {
            write(writer);
        }

        Out.WriteLine(System.Text.Encoding.UTF8.GetString(buffer.ToArray()));
    }
}
