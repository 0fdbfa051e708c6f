using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Text.Json;
using LiveLearning.Numerics;

namespace LiveLearning.Storage;

/// <summary>
/// The weights of a Hugging Face model directory: either one <c>model.safetensors</c> or shards listed by
/// <c>model.safetensors.index.json</c>, with one lookup across all shards.
/// </summary>
/// <remarks>
/// The index is untrusted: shard names must be plain file names in the same directory (no separators, no
/// <c>..</c>, not rooted), every tensor of the <c>weight_map</c> must be in the shard it names, and no tensor may
/// appear in two shards. Memory from the lookups is valid until the checkpoint is disposed.
/// </remarks>
public sealed class SafeTensorsCheckpoint : IDisposable
{
    /// <summary>File name of a single-file checkpoint.</summary>
    public const string SingleFileName = "model.safetensors";

    /// <summary>File name of the shard index.</summary>
    public const string IndexFileName = "model.safetensors.index.json";

    /// <summary>Largest accepted index file.</summary>
    public const long MaxIndexBytes = 64L * 1024 * 1024;

    private readonly SafeTensorsFile[] _files;
    private readonly Dictionary<string, SafeTensorsFile> _owner;

    private SafeTensorsCheckpoint(string directory, string? indexPath, SafeTensorsFile[] files, Dictionary<string, SafeTensorsFile> owner)
    {
        Directory = directory;
        IndexPath = indexPath;
        _files = files;
        _owner = owner;
        Names = Array.AsReadOnly(owner.Keys.Order(StringComparer.Ordinal).ToArray());
        Files = Array.AsReadOnly(files);
    }

    /// <summary>The model directory.</summary>
    public string Directory { get; }

    /// <summary>The index file when the checkpoint is sharded; null for a single file.</summary>
    public string? IndexPath { get; }

    /// <summary>The open files (one, or one per shard).</summary>
    public IReadOnlyList<SafeTensorsFile> Files { get; }

    /// <summary>All tensor names across the files, in ordinal order.</summary>
    public IReadOnlyList<string> Names { get; }

    /// <summary>
    /// Opens <c>model.safetensors</c> in <paramref name="directory"/> if it exists, else the shards named by
    /// <c>model.safetensors.index.json</c>.
    /// </summary>
    /// <param name="directory">The model directory.</param>
    /// <returns>The checkpoint; dispose it to unmap the files.</returns>
    /// <exception cref="FileNotFoundException">Neither file exists.</exception>
    /// <exception cref="SafeTensorsFormatException">A file or the index is malformed (message names file and field).</exception>
    public static SafeTensorsCheckpoint Open(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        string dir = Path.GetFullPath(directory);
        string single = Path.Combine(dir, SingleFileName);
        if (File.Exists(single))
        {
            SafeTensorsFile file = SafeTensorsFile.Open(single);
            var owner = new Dictionary<string, SafeTensorsFile>(StringComparer.Ordinal);
            foreach (string name in file.Names)
            {
                owner.Add(name, file);
            }

            return new SafeTensorsCheckpoint(dir, null, [file], owner);
        }

        string index = Path.Combine(dir, IndexFileName);
        if (!File.Exists(index))
        {
            throw new FileNotFoundException($"{dir}: neither {SingleFileName} nor {IndexFileName} exists.", single);
        }

        return OpenSharded(dir, index);
    }

    /// <summary>
    /// Writes a sharded checkpoint: tensors in ordinal name order are packed greedily into shards of at most
    /// <paramref name="maxShardBytes"/> data bytes (a larger tensor gets a shard of its own), named
    /// <c>model-0000i-of-0000K.safetensors</c>, then the index is written last. Each file is written atomically.
    /// </summary>
    /// <param name="directory">Destination directory (created if missing).</param>
    /// <param name="tensors">The tensors (names unique).</param>
    /// <param name="maxShardBytes">Data bytes per shard (positive).</param>
    /// <returns>The shard file names, in order.</returns>
    public static IReadOnlyList<string> WriteSharded(string directory, IEnumerable<SafeTensorsEntry> tensors, long maxShardBytes)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        ArgumentNullException.ThrowIfNull(tensors);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxShardBytes);
        List<SafeTensorsEntry> all = [.. tensors];
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (SafeTensorsEntry? entry in all)
        {
            if (entry is null || !names.Add(entry.Name))
            {
                throw new ArgumentException(entry is null ? "The tensor list contains null." : $"Tensor '{entry.Name}' appears more than once.", nameof(tensors));
            }
        }

        all.Sort(static (a, b) => string.CompareOrdinal(a.Name, b.Name));
        var shards = new List<List<SafeTensorsEntry>>();
        long current = 0;
        foreach (SafeTensorsEntry entry in all)
        {
            if (shards.Count == 0 || (current > 0 && current + entry.Data.Length > maxShardBytes))
            {
                shards.Add([]);
                current = 0;
            }

            shards[^1].Add(entry);
            current += entry.Data.Length;
        }

        if (shards.Count == 0)
        {
            shards.Add([]);
        }

        System.IO.Directory.CreateDirectory(directory);
        var fileNames = new List<string>();
        var weightMap = new SortedDictionary<string, string>(StringComparer.Ordinal);
        long total = 0;
        for (int i = 0; i < shards.Count; i++)
        {
            string fileName = string.Create(CultureInfo.InvariantCulture, $"model-{i + 1:D5}-of-{shards.Count:D5}.safetensors");
            SafeTensorsWriter.Write(Path.Combine(directory, fileName), shards[i], new Dictionary<string, string> { ["format"] = "pt" });
            fileNames.Add(fileName);
            foreach (SafeTensorsEntry entry in shards[i])
            {
                weightMap.Add(entry.Name, fileName);
                total += entry.Data.Length;
            }
        }

        AtomicFile.Write(Path.Combine(directory, IndexFileName), stream =>
        {
            using var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
            json.WriteStartObject();
            json.WriteStartObject("metadata");
            json.WriteNumber("total_size", total);
            json.WriteEndObject();
            json.WriteStartObject("weight_map");
            foreach (KeyValuePair<string, string> pair in weightMap)
            {
                json.WriteString(pair.Key, pair.Value);
            }

            json.WriteEndObject();
            json.WriteEndObject();
        });
        return fileNames;
    }

    /// <summary>Whether a tensor of this name exists in any file.</summary>
    /// <param name="name">Tensor name.</param>
    /// <returns>True if present.</returns>
    public bool Contains(string name) => _owner.ContainsKey(name);

    /// <summary>Looks up a tensor's header entry.</summary>
    /// <param name="name">Tensor name.</param>
    /// <param name="info">The entry when found.</param>
    /// <returns>True if present.</returns>
    public bool TryGetInfo(string name, [NotNullWhen(true)] out TensorInfo? info)
    {
        info = null;
        return _owner.TryGetValue(name, out SafeTensorsFile? file) && file.TryGetInfo(name, out info);
    }

    /// <summary>A tensor's header entry.</summary>
    /// <param name="name">Tensor name.</param>
    /// <returns>The entry.</returns>
    /// <exception cref="KeyNotFoundException">No such tensor (the message names the directory and tensor).</exception>
    public TensorInfo GetInfo(string name) => FileOf(name).GetInfo(name);

    /// <summary>The file that holds a tensor.</summary>
    /// <param name="name">Tensor name.</param>
    /// <returns>The file.</returns>
    /// <exception cref="KeyNotFoundException">No such tensor.</exception>
    public SafeTensorsFile FileOf(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return _owner.TryGetValue(name, out SafeTensorsFile? file)
            ? file
            : throw new KeyNotFoundException($"{IndexPath ?? Path.Combine(Directory, SingleFileName)}: no tensor named '{name}'.");
    }

    /// <inheritdoc cref="SafeTensorsFile.GetBytes(string)"/>
    public ReadOnlyMemory<byte> GetBytes(string name) => FileOf(name).GetBytes(name);

    /// <inheritdoc cref="SafeTensorsFile.GetMatrix(string)"/>
    public WeightMatrix GetMatrix(string name) => FileOf(name).GetMatrix(name);

    /// <inheritdoc cref="SafeTensorsFile.GetVector(string)"/>
    public float[] GetVector(string name) => FileOf(name).GetVector(name);

    /// <inheritdoc cref="SafeTensorsFile.ReadAsFloat32(string)"/>
    public float[] ReadAsFloat32(string name) => FileOf(name).ReadAsFloat32(name);

    /// <summary>Unmaps every file.</summary>
    public void Dispose()
    {
        foreach (SafeTensorsFile file in _files)
        {
            file.Dispose();
        }
    }

    private static SafeTensorsCheckpoint OpenSharded(string dir, string indexPath)
    {
        Dictionary<string, string> weightMap = ReadWeightMap(indexPath);
        var shardNames = new List<string>();
        foreach (string shard in weightMap.Values.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal))
        {
            string tensor = weightMap.First(p => p.Value == shard).Key;
            string field = $"weight_map '{tensor}'";
            if (!IsPlainFileName(shard))
            {
                throw new SafeTensorsFormatException(indexPath, field, $"shard '{shard}' must be a plain file name in the index's directory");
            }

            if (!File.Exists(Path.Combine(dir, shard)))
            {
                throw new SafeTensorsFormatException(indexPath, field, $"shard file '{shard}' does not exist");
            }

            shardNames.Add(shard);
        }

        var files = new List<SafeTensorsFile>();
        try
        {
            var byShard = new Dictionary<string, SafeTensorsFile>(StringComparer.Ordinal);
            var owner = new Dictionary<string, SafeTensorsFile>(StringComparer.Ordinal);
            foreach (string shard in shardNames)
            {
                SafeTensorsFile file = SafeTensorsFile.Open(Path.Combine(dir, shard));
                files.Add(file);
                byShard.Add(shard, file);
                foreach (string name in file.Names)
                {
                    if (!owner.TryAdd(name, file))
                    {
                        throw new SafeTensorsFormatException(indexPath, $"tensor '{name}'", $"is stored in both '{Path.GetFileName(owner[name].SourceName)}' and '{shard}'");
                    }
                }
            }

            foreach (KeyValuePair<string, string> pair in weightMap)
            {
                if (!byShard[pair.Value].Contains(pair.Key))
                {
                    throw new SafeTensorsFormatException(indexPath, $"weight_map '{pair.Key}'", $"the tensor is not in its shard '{pair.Value}'");
                }
            }

            return new SafeTensorsCheckpoint(dir, indexPath, [.. files], owner);
        }
        catch
        {
            foreach (SafeTensorsFile file in files)
            {
                file.Dispose();
            }

            throw;
        }
    }

    private static bool IsPlainFileName(string name) =>
        name.Length > 0
        && name != "."
        && name != ".."
        && name.IndexOfAny(['/', '\\', ':', '\0']) < 0
        && !Path.IsPathRooted(name)
        && name.IndexOfAny(Path.GetInvalidFileNameChars()) < 0
        && Path.GetFileName(name) == name;

    private static Dictionary<string, string> ReadWeightMap(string indexPath)
    {
        byte[] bytes;
        using (var stream = new FileStream(indexPath, FileMode.Open, FileAccess.Read, FileShare.Read))
        {
            if (stream.Length > MaxIndexBytes)
            {
                throw new SafeTensorsFormatException(indexPath, "index", $"{stream.Length} bytes exceeds the {MaxIndexBytes}-byte limit");
            }

            bytes = new byte[stream.Length];
            stream.ReadExactly(bytes);
        }

        JsonDocument document;
        try
        {
            ReadOnlyMemory<byte> json = bytes.AsSpan().StartsWith((ReadOnlySpan<byte>)[0xEF, 0xBB, 0xBF]) ? bytes.AsMemory(3) : bytes;
            document = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = 16, AllowDuplicateProperties = false });
        }
        catch (JsonException e)
        {
            throw new SafeTensorsFormatException(indexPath, "index", $"is not valid JSON ({e.Message})", e);
        }

        using (document)
        {
            JsonElement root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new SafeTensorsFormatException(indexPath, "index", $"must be a JSON object, found {root.ValueKind}");
            }

            if (!root.TryGetProperty("weight_map", out JsonElement map) || map.ValueKind != JsonValueKind.Object)
            {
                throw new SafeTensorsFormatException(indexPath, "weight_map", "must be present and be an object of tensor name to shard file name");
            }

            var result = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (JsonProperty property in map.EnumerateObject())
            {
                if (property.Value.ValueKind != JsonValueKind.String)
                {
                    throw new SafeTensorsFormatException(indexPath, $"weight_map '{property.Name}'", $"must be a shard file name string, found {property.Value.ValueKind}");
                }

                if (!result.TryAdd(property.Name, property.Value.GetString()!))
                {
                    throw new SafeTensorsFormatException(indexPath, $"weight_map '{property.Name}'", "appears more than once");
                }
            }

            return result;
        }
    }
}
