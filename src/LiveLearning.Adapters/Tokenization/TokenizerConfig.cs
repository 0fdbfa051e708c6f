using System.Text.Json;

namespace LiveLearning.Tokenization;

/// <summary>The parts of tokenizer_config.json this library uses.</summary>
internal sealed record TokenizerConfig(string? BosToken, string? EosToken, string? ChatTemplate)
{
    public static TokenizerConfig Parse(string json, string sourceName)
    {
        var f = new JsonFields(sourceName);
        using var doc = Tokenizer.ParseJson(json, sourceName);
        var root = doc.RootElement;
        if (root.ValueKind != JsonValueKind.Object)
        {
            throw f.Error("(root)", "must be a JSON object");
        }

        return new TokenizerConfig(ReadToken(f, root, "bos_token"), ReadToken(f, root, "eos_token"), ReadTemplate(f, root));
    }

    /// <summary>A special-token field: a string or an object with <c>content</c>.</summary>
    private static string? ReadToken(JsonFields f, JsonElement root, string name)
    {
        var value = JsonFields.Optional(root, name);
        if (value is null)
        {
            return null;
        }

        return value.Value.ValueKind switch
        {
            JsonValueKind.String => value.Value.GetString(),
            JsonValueKind.Object => f.String(value.Value, "content", name),
            _ => throw f.Error(name, $"must be a string or an object with content, not {value.Value.ValueKind}"),
        };
    }

    /// <summary><c>chat_template</c>: a string, or a list of {name, template} (the one named "default" is used).</summary>
    private static string? ReadTemplate(JsonFields f, JsonElement root)
    {
        var value = JsonFields.Optional(root, "chat_template");
        if (value is null)
        {
            return null;
        }

        if (value.Value.ValueKind == JsonValueKind.String)
        {
            return value.Value.GetString();
        }

        if (value.Value.ValueKind != JsonValueKind.Array)
        {
            throw f.Error("chat_template", $"must be a string or a list of named templates, not {value.Value.ValueKind}");
        }

        int i = 0;
        foreach (var entry in value.Value.EnumerateArray())
        {
            string path = $"chat_template[{i++}]";
            if (f.String(entry, "name", path) == "default")
            {
                return f.String(entry, "template", path);
            }
        }
        throw f.Error("chat_template", "has no template named 'default'");
    }
}
