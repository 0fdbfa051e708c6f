using System.Text.Json;

namespace LiveLearning.Tokenization;

/// <summary>Typed access to JSON fields that reports problems as <see cref="TokenizerFormatException"/>.</summary>
internal readonly struct JsonFields(string sourceName)
{
    public string SourceName { get; } = sourceName;

    public TokenizerFormatException Error(string field, string message, Exception? inner = null) => new(SourceName, field, message, inner);

    public static string Join(string path, string name) => path.Length == 0 ? name : path + "." + name;

    /// <summary>The property, or null when missing or JSON null.</summary>
    public static JsonElement? Optional(JsonElement obj, string name) =>
        obj.ValueKind == JsonValueKind.Object && obj.TryGetProperty(name, out var value) && value.ValueKind != JsonValueKind.Null ? value : null;

    public JsonElement Object(JsonElement obj, string name, string path)
    {
        var value = Optional(obj, name) ?? throw Error(Join(path, name), "is required");
        if (value.ValueKind != JsonValueKind.Object)
        {
            throw Error(Join(path, name), $"must be an object, not {value.ValueKind}");
        }

        return value;
    }

    public JsonElement Array(JsonElement obj, string name, string path)
    {
        var value = Optional(obj, name) ?? throw Error(Join(path, name), "is required");
        if (value.ValueKind != JsonValueKind.Array)
        {
            throw Error(Join(path, name), $"must be an array, not {value.ValueKind}");
        }

        return value;
    }

    public string String(JsonElement obj, string name, string path)
    {
        var value = Optional(obj, name) ?? throw Error(Join(path, name), "is required");
        if (value.ValueKind != JsonValueKind.String)
        {
            throw Error(Join(path, name), $"must be a string, not {value.ValueKind}");
        }

        return value.GetString()!;
    }

    public string? OptionalString(JsonElement obj, string name, string path)
    {
        var value = Optional(obj, name);
        if (value is null)
        {
            return null;
        }

        if (value.Value.ValueKind != JsonValueKind.String)
        {
            throw Error(Join(path, name), $"must be a string, not {value.Value.ValueKind}");
        }

        return value.Value.GetString();
    }

    public bool Bool(JsonElement obj, string name, string path, bool defaultValue)
    {
        var value = Optional(obj, name);
        if (value is null)
        {
            return defaultValue;
        }

        return value.Value.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw Error(Join(path, name), $"must be true or false, not {value.Value.ValueKind}"),
        };
    }

    public int Int(JsonElement value, string field, int min, int max)
    {
        if (value.ValueKind != JsonValueKind.Number || !value.TryGetInt64(out long n))
        {
            throw Error(field, $"must be an integer, not {value.GetRawText()}");
        }

        if (n < min || n > max)
        {
            throw Error(field, $"{n} is outside [{min}, {max}]");
        }

        return (int)n;
    }

    public int Int(JsonElement obj, string name, string path, int min, int max, int defaultValue)
    {
        var value = Optional(obj, name);
        return value is null ? defaultValue : Int(value.Value, Join(path, name), min, max);
    }

    /// <summary>The component's <c>type</c> string.</summary>
    public string Type(JsonElement component, string path)
    {
        if (component.ValueKind != JsonValueKind.Object)
        {
            throw Error(path, $"must be an object, not {component.ValueKind}");
        }

        return String(component, "type", path);
    }
}
