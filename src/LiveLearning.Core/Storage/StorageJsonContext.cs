using System.Text.Json.Serialization;

namespace LiveLearning.Storage;

/// <summary>Source-generated JSON for what the stores write (trimming- and AOT-safe).</summary>
[JsonSourceGenerationOptions(WriteIndented = true)]
[JsonSerializable(typeof(AdapterVersion))]
[JsonSerializable(typeof(Dictionary<string, string>))]
[JsonSerializable(typeof(string[]))]
internal sealed partial class StorageJsonContext : JsonSerializerContext;
