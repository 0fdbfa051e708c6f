using System.Text.Json;
using LiveLearning.Models;
using LiveLearning.Storage;

namespace LiveLearning.Lora;

/// <summary>
/// An immutable set of LoRA layers over a model: at most one per (layer, projection). Publishing a new version means
/// building a new <see cref="LoraAdapter"/> and swapping the reference; passes that started with the old one keep it.
/// </summary>
public sealed class LoraAdapter : IModelAdapter
{
    private readonly LoraLayer?[] _layers;

    /// <summary>Creates an adapter from its layers.</summary>
    /// <param name="numLayers">Decoder layers of the model.</param>
    /// <param name="layers">The LoRA layers by (layer, projection).</param>
    public LoraAdapter(int numLayers, IReadOnlyDictionary<(int Layer, Projection Projection), LoraLayer> layers)
    {
        ArgumentNullException.ThrowIfNull(layers);
        ArgumentOutOfRangeException.ThrowIfNegative(numLayers);
        NumLayers = numLayers;
        _layers = new LoraLayer?[numLayers * ProjectionNames.Count];
        foreach (((int layer, Projection projection), LoraLayer lora) in layers)
        {
            if ((uint)layer >= (uint)numLayers)
            {
                throw new ArgumentException($"Layer {layer} is outside the model's {numLayers} layers.", nameof(layers));
            }

            _layers[(layer * ProjectionNames.Count) + (int)projection] = lora;
        }
    }

    /// <summary>Decoder layers of the model this adapter was made for.</summary>
    public int NumLayers { get; }

    /// <inheritdoc />
    public IAdapterSlot? GetSlot(int layer, Projection projection) => GetLayer(layer, projection);

    /// <summary>The LoRA layer on (<paramref name="layer"/>, <paramref name="projection"/>), or <see langword="null"/>.</summary>
    /// <param name="layer">Layer index.</param>
    /// <param name="projection">Projection.</param>
    /// <returns>The layer or <see langword="null"/>.</returns>
    public LoraLayer? GetLayer(int layer, Projection projection) =>
        (uint)layer < (uint)NumLayers ? _layers[(layer * ProjectionNames.Count) + (int)projection] : null;

    /// <summary>
    /// Loads a PEFT LoRA adapter directory (<c>adapter_config.json</c> + <c>adapter_model.safetensors</c>) for
    /// <paramref name="model"/>, checking every module name and shape against the model.
    /// </summary>
    /// <param name="directory">The adapter directory.</param>
    /// <param name="model">The base model.</param>
    /// <returns>The adapter.</returns>
    /// <exception cref="ModelLoadException">The adapter does not fit the model or uses a feature that cannot be represented.</exception>
    public static LoraAdapter LoadPeft(string directory, LlamaModel model)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        ArgumentNullException.ThrowIfNull(model);
        string configPath = Path.Combine(directory, "adapter_config.json");
        string weightsPath = Path.Combine(directory, "adapter_model.safetensors");
        if (!File.Exists(configPath))
        {
            throw new ModelLoadException(configPath, null, "adapter_config.json is missing.");
        }

        double alpha;
        int rank;
        bool rsLora;
        try
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(configPath));
            JsonElement root = doc.RootElement;
            if (root.TryGetProperty("peft_type", out JsonElement type) && type.GetString() is string t && t != "LORA")
            {
                throw new ModelLoadException(configPath, "peft_type", $"peft_type '{t}' is not LORA.");
            }

            rank = root.GetProperty("r").GetInt32();
            alpha = root.GetProperty("lora_alpha").GetDouble();
            rsLora = root.TryGetProperty("use_rslora", out JsonElement rs) && rs.ValueKind == JsonValueKind.True;
            if (root.TryGetProperty("use_dora", out JsonElement dora) && dora.ValueKind == JsonValueKind.True)
            {
                throw new ModelLoadException(configPath, "use_dora", "DoRA adapters (magnitude vectors) cannot be represented as plain LoRA.");
            }
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new ModelLoadException(configPath, null, $"adapter_config.json is not a valid LoRA config: {ex.Message}", ex);
        }

        float scale = (float)(rsLora ? alpha / Math.Sqrt(rank) : alpha / rank);
        using SafeTensorsFile file = SafeTensorsFile.Open(weightsPath);
        var layers = new Dictionary<(int, Projection), LoraLayer>();
        const string prefix = "base_model.model.";
        foreach (string name in file.Names)
        {
            if (!name.EndsWith(".lora_A.weight", StringComparison.Ordinal))
            {
                if (!name.EndsWith(".lora_B.weight", StringComparison.Ordinal))
                {
                    throw new ModelLoadException(weightsPath, name, $"tensor '{name}' is not a LoRA A/B matrix (e.g. modules_to_save or DoRA magnitudes cannot be represented).");
                }

                continue;
            }

            string module = name[..^".lora_A.weight".Length];
            string path = module.StartsWith(prefix, StringComparison.Ordinal) ? module[prefix.Length..] : module;
            (int layer, Projection projection) = ParseModulePath(path, weightsPath, name, model.Config.NumLayers);
            string bName = module + ".lora_B.weight";
            if (!file.Contains(bName))
            {
                throw new ModelLoadException(weightsPath, bName, $"'{name}' has no matching '{bName}'.");
            }

            TensorInfo aInfo = file.GetInfo(name);
            TensorInfo bInfo = file.GetInfo(bName);
            (int outF, int inF) = model.ProjectionShape(projection);
            if (aInfo.Shape.Count != 2 || bInfo.Shape.Count != 2 || aInfo.Shape[1] != inF || bInfo.Shape[0] != outF || aInfo.Shape[0] != bInfo.Shape[1])
            {
                throw new ModelLoadException(weightsPath, name, $"shapes A [{string.Join(", ", aInfo.Shape)}] / B [{string.Join(", ", bInfo.Shape)}] do not fit {path} [{outF}, {inF}].");
            }

            int r = (int)aInfo.Shape[0];
            layers[(layer, projection)] = new LoraLayer(file.ReadAsFloat32(name), file.ReadAsFloat32(bName), inF, outF, r, scale);
        }

        return new LoraAdapter(model.Config.NumLayers, layers);
    }

    private static (int Layer, Projection Projection) ParseModulePath(string path, string file, string tensor, int numLayers)
    {
        // model.layers.{i}.self_attn.q_proj | model.layers.{i}.mlp.gate_proj
        string[] parts = path.Split('.');
        if (parts.Length == 5 && parts[0] == "model" && parts[1] == "layers"
            && int.TryParse(parts[2], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int layer)
            && layer < numLayers
            && ProjectionNames.TryParse(parts[4], out Projection projection)
            && path == ProjectionNames.ModulePath(layer, projection))
        {
            return (layer, projection);
        }

        throw new ModelLoadException(file, tensor, $"module '{path}' is not a projection of this model ({numLayers} layers; q/k/v/o/gate/up/down_proj).");
    }
}
