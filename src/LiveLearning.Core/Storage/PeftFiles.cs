using System.Text;
using LiveLearning.Backends;

namespace LiveLearning.Storage;

/// <summary>
/// Adapter weights as the PEFT files: <c>adapter_model.safetensors</c> (the tensors as float32, the other metadata
/// in its header) and <c>adapter_config.json</c> (carried in <see cref="AdapterWeightsData.Metadata"/> under that
/// name, as a LoRA backend exports it). The snapshot store writes the same two files.
/// </summary>
public static class PeftFiles
{
    /// <summary>The weights file's name.</summary>
    public const string WeightsFile = "adapter_model.safetensors";

    /// <summary>The config file's name, and its metadata key.</summary>
    public const string ConfigFile = "adapter_config.json";

    /// <summary>The two files' contents: the safetensors bytes and the config text (null when the weights carry none).</summary>
    /// <param name="weights">The adapter weights.</param>
    /// <returns>The file contents.</returns>
    public static (byte[] Weights, string? Config) Serialize(AdapterWeightsData weights)
    {
        ArgumentNullException.ThrowIfNull(weights);
        var rest = weights.Metadata.Where(m => m.Key != ConfigFile).ToDictionary(m => m.Key, m => m.Value, StringComparer.Ordinal);
        byte[] tensors = SafeTensorsWriter.Serialize(Entries(weights.Tensors), rest.Count == 0 ? null : rest);
        return (tensors, weights.Metadata.GetValueOrDefault(ConfigFile));
    }

    /// <summary>Writes the files into <paramref name="directory"/> (created).</summary>
    /// <param name="directory">The adapter directory.</param>
    /// <param name="weights">The adapter weights.</param>
    public static void Write(string directory, AdapterWeightsData weights)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        ArgumentNullException.ThrowIfNull(weights);

        // Hugging Face loaders expect the header to say which framework the tensors are for.
        var metadata = new Dictionary<string, string>(weights.Metadata, StringComparer.Ordinal);
        metadata.TryAdd("format", "pt");
        (byte[] tensors, string? config) = Serialize(weights with { Metadata = metadata });
        Directory.CreateDirectory(directory);
        AtomicFile.Write(Path.Combine(directory, WeightsFile), s => s.Write(tensors));
        if (config is not null)
        {
            AtomicFile.Write(Path.Combine(directory, ConfigFile), s => s.Write(Encoding.UTF8.GetBytes(config)));
        }
    }

    /// <summary>Reads the files of <paramref name="directory"/> (every tensor as float32, in file order).</summary>
    /// <param name="directory">The adapter directory.</param>
    /// <returns>The weights, the config in their metadata.</returns>
    /// <exception cref="FileNotFoundException">A file is missing.</exception>
    /// <exception cref="SafeTensorsFormatException">The weights file is malformed.</exception>
    public static AdapterWeightsData Read(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        string config = File.ReadAllText(Path.Combine(directory, ConfigFile));
        using SafeTensorsFile file = SafeTensorsFile.Open(Path.Combine(directory, WeightsFile));
        NamedTensor[] tensors = [.. file.Names.Select(n => new NamedTensor(n, [.. file.GetInfo(n).Shape.Select(d => checked((int)d))], file.ReadAsFloat32(n)))];
        var metadata = new Dictionary<string, string>(file.Metadata, StringComparer.Ordinal) { [ConfigFile] = config };
        return new AdapterWeightsData(tensors, metadata);
    }

    internal static IEnumerable<SafeTensorsEntry> Entries(IReadOnlyList<NamedTensor> tensors)
        => tensors.Select(t => SafeTensorsEntry.FromFloat32(t.Name, t.Values.Span, [.. t.Shape.Select(d => (long)d)]));
}
