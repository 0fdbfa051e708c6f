using System.Globalization;
using System.Text;
using System.Text.Json;
using LiveLearning.Backends;
using LiveLearning.Models;
using LiveLearning.Storage;

namespace LiveLearning.Lora;

// PEFT import/export: adapter_config.json + adapter_model.safetensors, keys base_model.model.<module>.lora_{A,B}.weight,
// A [r, in], B [out, r], scaling applied at run time from the config (never baked into B).
public sealed partial class LoraAdapter
{
    /// <summary>The PEFT config file name.</summary>
    public const string ConfigFileName = "adapter_config.json";

    /// <summary>The PEFT weights file name.</summary>
    public const string WeightsFileName = "adapter_model.safetensors";

    private const string Prefix = "base_model.model.";

    /// <summary>
    /// Loads a PEFT LoRA adapter directory (<c>adapter_config.json</c> + <c>adapter_model.safetensors</c>) for
    /// <paramref name="model"/>, checking every module name and shape against the model.
    /// </summary>
    /// <param name="directory">The adapter directory.</param>
    /// <param name="model">The base model.</param>
    /// <returns>The adapter.</returns>
    /// <exception cref="ModelLoadException">The adapter does not fit the model or uses a feature that cannot be represented (the message names the first offending key or tensor).</exception>
    public static LoraAdapter LoadPeft(string directory, LlamaModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        return LoadPeft(directory, model.Config.NumLayers, model.ProjectionShape);
    }

    /// <summary>Loads a PEFT LoRA adapter directory for a model of <paramref name="numLayers"/> layers with the given projection shapes.</summary>
    /// <param name="directory">The adapter directory.</param>
    /// <param name="numLayers">Decoder layers of the base model.</param>
    /// <param name="shape">[out, in] of each projection of the base model.</param>
    /// <returns>The adapter.</returns>
    /// <exception cref="ModelLoadException">The adapter does not fit the model or cannot be represented.</exception>
    public static LoraAdapter LoadPeft(string directory, int numLayers, Func<Projection, (int OutFeatures, int InFeatures)> shape)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        ArgumentNullException.ThrowIfNull(shape);
        string configPath = Path.Combine(directory, ConfigFileName);
        string weightsPath = Path.Combine(directory, WeightsFileName);
        if (!File.Exists(configPath))
        {
            throw new ModelLoadException(configPath, null, "adapter_config.json is missing.");
        }

        if (!File.Exists(weightsPath))
        {
            throw new ModelLoadException(weightsPath, null, File.Exists(Path.Combine(directory, "adapter_model.bin"))
                ? "only adapter_model.bin (pickle) is present; convert it to adapter_model.safetensors."
                : "adapter_model.safetensors is missing.");
        }

        LoraConfig config = ParseConfig(File.ReadAllText(configPath), configPath);
        using SafeTensorsFile file = SafeTensorsFile.Open(weightsPath);
        return Build(config, file.Names, name => file.GetInfo(name).Shape, name => file.ReadAsFloat32(name), weightsPath, numLayers, shape);
    }

    /// <summary>The adapter as PEFT-named tensors and its <c>adapter_config.json</c> text: what a snapshot stores.</summary>
    /// <returns>The tensors (views of this immutable adapter's buffers, in byte order of their names) and the config.</returns>
    public AdapterWeightsData Export()
    {
        var tensors = new List<NamedTensor>();
        foreach ((int l, Projection p, LoraLayer lora) in Entries())
        {
            string module = Prefix + ProjectionNames.ModulePath(l, p);
            tensors.Add(new NamedTensor(module + ".lora_A.weight", [lora.Rank, lora.InFeatures], lora.AMemory));
            tensors.Add(new NamedTensor(module + ".lora_B.weight", [lora.OutFeatures, lora.Rank], lora.BMemory));
        }

        tensors.Sort((x, y) => string.CompareOrdinal(x.Name, y.Name));
        return new AdapterWeightsData(tensors, new Dictionary<string, string> { [ConfigFileName] = ConfigJson(Config) });
    }

    /// <summary>Rebuilds an adapter from <see cref="Export"/>'s data, with every check <see cref="LoadPeft(string, LlamaModel)"/> makes.</summary>
    /// <param name="data">The tensors and <c>adapter_config.json</c>.</param>
    /// <param name="model">The base model.</param>
    /// <returns>The adapter.</returns>
    /// <exception cref="ModelLoadException">The data does not fit the model or cannot be represented (the tensor or key is named).</exception>
    public static LoraAdapter Import(AdapterWeightsData data, LlamaModel model)
    {
        ArgumentNullException.ThrowIfNull(data);
        ArgumentNullException.ThrowIfNull(model);
        const string source = "adapter weights";
        if (!data.Metadata.TryGetValue(ConfigFileName, out string? json))
        {
            throw new ModelLoadException(source, ConfigFileName, "the adapter config is missing from the data.");
        }

        LoraConfig config = ParseConfig(json, source);
        var byName = new Dictionary<string, NamedTensor>(StringComparer.Ordinal);
        foreach (NamedTensor t in data.Tensors)
        {
            long elements = t.Shape.Aggregate(1L, (x, y) => x * y);
            if (t.Shape.Any(d => d < 0) || elements != t.Values.Length)
            {
                throw new ModelLoadException(source, t.Name, $"tensor '{t.Name}' has shape [{string.Join(", ", t.Shape)}] but {t.Values.Length} values.");
            }

            if (!byName.TryAdd(t.Name, t))
            {
                throw new ModelLoadException(source, t.Name, $"tensor '{t.Name}' appears twice.");
            }
        }

        return Build(config, byName.Keys, name => [.. byName[name].Shape.Select(d => (long)d)], name => byName[name].Values.ToArray(), source, model.Config.NumLayers, model.ProjectionShape);
    }

    /// <summary>Builds an adapter from named tensors, refusing (with the tensor named) whatever plain LoRA cannot represent.</summary>
    private static LoraAdapter Build(LoraConfig config, IEnumerable<string> names, Func<string, IReadOnlyList<long>> shapeOf, Func<string, float[]> read, string weightsPath, int numLayers, Func<Projection, (int OutFeatures, int InFeatures)> shape)
    {

        // Group tensors by module, normalising the optional prefix and ".default." adapter-name infix.
        var modules = new SortedDictionary<string, (string? A, string? B)>(StringComparer.Ordinal);
        foreach (string name in names.OrderBy(n => n, StringComparer.Ordinal))
        {
            string key = name.StartsWith(Prefix, StringComparison.Ordinal) ? name[Prefix.Length..] : name;
            key = key.Replace(".lora_A.default.weight", ".lora_A.weight", StringComparison.Ordinal).Replace(".lora_B.default.weight", ".lora_B.weight", StringComparison.Ordinal);
            bool isA = key.EndsWith(".lora_A.weight", StringComparison.Ordinal);
            bool isB = key.EndsWith(".lora_B.weight", StringComparison.Ordinal);
            if (!isA && !isB)
            {
                throw new ModelLoadException(weightsPath, name, DescribeUnsupportedTensor(name));
            }

            string module = key[..^".lora_A.weight".Length];
            modules.TryGetValue(module, out var pair);
            if ((isA ? pair.A : pair.B) is { } existing)
            {
                throw new ModelLoadException(weightsPath, name, $"tensor '{name}' duplicates '{existing}' (same module {module}).");
            }

            modules[module] = isA ? (name, pair.B) : (pair.A, name);
        }

        var layers = new Dictionary<(int, Projection), LoraLayer>();
        foreach ((string module, (string? aName, string? bName)) in modules)
        {
            string first = (aName ?? bName)!;
            (int layer, Projection projection) = ParseModulePath(module, weightsPath, first, numLayers);
            if (!config.Targets(module))
            {
                throw new ModelLoadException(weightsPath, first, $"module {module} has tensors but target_modules does not include it (PEFT would ignore them).");
            }

            if (aName is null || bName is null)
            {
                throw new ModelLoadException(weightsPath, first, $"module {module} has {(aName is null ? "lora_B but no lora_A" : "lora_A but no lora_B")}.");
            }

            IReadOnlyList<long> aShape = shapeOf(aName);
            IReadOnlyList<long> bShape = shapeOf(bName);
            (int outF, int inF) = shape(projection);
            int r = config.RankFor(module);
            if (aShape.Count != 2 || aShape[0] != r || aShape[1] != inF)
            {
                throw new ModelLoadException(weightsPath, aName, $"'{aName}' has shape [{string.Join(", ", aShape)}]; the model's {module} with rank {r} (r / rank_pattern) needs [{r}, {inF}].");
            }

            if (bShape.Count != 2 || bShape[0] != outF || bShape[1] != r)
            {
                throw new ModelLoadException(weightsPath, bName, $"'{bName}' has shape [{string.Join(", ", bShape)}]; the model's {module} with rank {r} needs [{outF}, {r}].");
            }

            layers[(layer, projection)] = new LoraLayer(read(aName), read(bName), inF, outF, r, config.AlphaFor(module), config.UseRsLora, (float)config.Dropout);
        }

        if (layers.Count == 0)
        {
            throw new ModelLoadException(weightsPath, null, "the adapter has no lora_A/lora_B tensors.");
        }

        return new LoraAdapter(numLayers, layers, config);
    }

    /// <summary>
    /// Writes the adapter as PEFT does: <c>adapter_config.json</c> (2-space indent, sorted keys, <c>inference_mode</c>
    /// true; <c>rank_pattern</c>/<c>alpha_pattern</c> only when used) and <c>adapter_model.safetensors</c> (F32, keys
    /// <c>base_model.model.&lt;module&gt;.lora_{A,B}.weight</c> in byte order, metadata <c>{"format":"pt"}</c>). Each file
    /// is replaced atomically; the directory is created if needed.
    /// </summary>
    /// <param name="directory">Destination directory.</param>
    public void SavePeft(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        System.IO.Directory.CreateDirectory(directory);
        var entries = new List<SafeTensorsEntry>();
        foreach ((int l, Projection p, LoraLayer lora) in Entries())
        {
            string module = Prefix + ProjectionNames.ModulePath(l, p);
            entries.Add(SafeTensorsEntry.FromFloat32(module + ".lora_A.weight", lora.A, lora.Rank, lora.InFeatures));
            entries.Add(SafeTensorsEntry.FromFloat32(module + ".lora_B.weight", lora.B, lora.OutFeatures, lora.Rank));
        }

        SafeTensorsWriter.Write(Path.Combine(directory, WeightsFileName), entries, new Dictionary<string, string> { ["format"] = "pt" });
        WriteAtomically(Path.Combine(directory, ConfigFileName), Encoding.UTF8.GetBytes(ConfigJson(Config)));
    }

    /// <summary>The <c>adapter_config.json</c> text PEFT would write for <paramref name="config"/>.</summary>
    /// <param name="config">The config.</param>
    /// <returns>JSON text (sorted keys, 2-space indent).</returns>
    public static string ConfigJson(LoraConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            // Keys in sorted order, as json.dumps(sort_keys=True).
            w.WriteStartObject();
            if (config.AlphaPattern.Count > 0)
            {
                w.WriteStartObject("alpha_pattern");
                foreach ((string k, double v) in config.AlphaPattern.OrderBy(e => e.Key, StringComparer.Ordinal))
                {
                    w.WritePropertyName(k);
                    WriteNumber(w, v, pythonFloat: false);
                }

                w.WriteEndObject();
            }

            WriteStringOrNull(w, "base_model_name_or_path", config.BaseModelName);
            w.WriteString("bias", "none");
            w.WriteBoolean("fan_in_fan_out", false);
            w.WriteBoolean("inference_mode", true);
            w.WriteBoolean("init_lora_weights", true);
            w.WritePropertyName("lora_alpha");
            WriteNumber(w, config.Alpha, pythonFloat: false);
            w.WritePropertyName("lora_dropout");
            WriteNumber(w, config.Dropout, pythonFloat: true);
            w.WriteNull("modules_to_save");
            w.WriteString("peft_type", "LORA");
            w.WriteNumber("r", config.Rank);
            if (config.RankPattern.Count > 0)
            {
                w.WriteStartObject("rank_pattern");
                foreach ((string k, int v) in config.RankPattern.OrderBy(e => e.Key, StringComparer.Ordinal))
                {
                    w.WriteNumber(k, v);
                }

                w.WriteEndObject();
            }

            w.WriteNull("revision");
            if (config.TargetModulesRegex is not null)
            {
                w.WriteString("target_modules", config.TargetModulesRegex);
            }
            else if (config.TargetModules is [LoraConfig.AllLinear])
            {
                w.WriteString("target_modules", LoraConfig.AllLinear);
            }
            else
            {
                w.WriteStartArray("target_modules");
                foreach (string t in config.TargetModules)
                {
                    w.WriteStringValue(t);
                }

                w.WriteEndArray();
            }

            w.WriteString("task_type", "CAUSAL_LM");
            w.WriteBoolean("use_dora", false);
            w.WriteBoolean("use_rslora", config.UseRsLora);
            w.WriteEndObject();
        }

        return Encoding.UTF8.GetString(stream.ToArray());
    }

    /// <summary>Parses <c>adapter_config.json</c> text, refusing what plain LoRA on a Llama-family model cannot represent.</summary>
    /// <param name="json">The JSON text.</param>
    /// <param name="source">File name for error messages.</param>
    /// <returns>The config.</returns>
    /// <exception cref="ModelLoadException">The JSON is invalid or uses an unsupported feature (the message names the key).</exception>
    public static LoraConfig ParseConfig(string json, string source)
    {
        ArgumentNullException.ThrowIfNull(json);
        ArgumentNullException.ThrowIfNull(source);
        try
        {
            using var doc = JsonDocument.Parse(json);
            JsonElement root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new ModelLoadException(source, null, "adapter_config.json is not a JSON object.");
            }

            string? peftType = Str(root, "peft_type", source);
            if (peftType is null)
            {
                throw new ModelLoadException(source, "peft_type", "peft_type is missing (PEFT requires it).");
            }

            if (peftType != "LORA")
            {
                throw new ModelLoadException(source, "peft_type", $"peft_type '{peftType}' is not LORA.");
            }

            Refuse(root, source, "use_dora", v => v.ValueKind == JsonValueKind.True, "DoRA adapters (use_dora, magnitude vectors) cannot be represented as plain LoRA.");
            Refuse(root, source, "fan_in_fan_out", v => v.ValueKind == JsonValueKind.True, "fan_in_fan_out true describes transposed (GPT-2 Conv1D) weights; Llama-family projections are nn.Linear [out, in].");
            Refuse(root, source, "modules_to_save", NotEmpty, "modules_to_save stores full copies of base modules (e.g. lm_head); only LoRA A/B matrices can be represented.");
            Refuse(root, source, "lora_bias", v => v.ValueKind == JsonValueKind.True, "lora_bias adds a bias to lora_B; only bias-free LoRA can be represented.");
            Refuse(root, source, "bias", v => v.ValueKind == JsonValueKind.String && v.GetString() != "none", "bias other than \"none\" trains base-model biases; only LoRA A/B matrices can be represented.");
            Refuse(root, source, "layers_to_transform", NotEmpty, "layers_to_transform is not supported; list the module paths in target_modules (regex) instead.");
            Refuse(root, source, "layers_pattern", NotEmpty, "layers_pattern is not supported.");
            Refuse(root, source, "exclude_modules", NotEmpty, "exclude_modules is not supported; use a target_modules regex instead.");
            Refuse(root, source, "trainable_token_indices", NotEmpty, "trainable_token_indices (embedding rows) cannot be represented.");
            Refuse(root, source, "layer_replication", NotEmpty, "layer_replication cannot be represented.");
            Refuse(root, source, "target_parameters", NotEmpty, "target_parameters (LoRA on raw parameters) cannot be represented.");
            Refuse(root, source, "init_lora_weights", v => v.ValueKind == JsonValueKind.String && v.GetString() is string s && (s.StartsWith("pissa", StringComparison.Ordinal) || s is "olora" or "corda" or "loftq" or "mica"), "this init_lora_weights variant modifies the base weights; convert the adapter to plain LoRA first.");

            var config = new LoraConfig
            {
                Rank = Int(root, "r", source) ?? 8,
                Alpha = Num(root, "lora_alpha", source) ?? 8,
                Dropout = Num(root, "lora_dropout", source) ?? 0,
                UseRsLora = Bool(root, "use_rslora", source) ?? false,
                BaseModelName = Str(root, "base_model_name_or_path", source),
            };
            if (root.TryGetProperty("target_modules", out JsonElement targets) && targets.ValueKind != JsonValueKind.Null)
            {
                if (targets.ValueKind == JsonValueKind.String)
                {
                    string t = targets.GetString()!;
                    config = t == LoraConfig.AllLinear ? config with { TargetModules = [LoraConfig.AllLinear] } : config with { TargetModulesRegex = t };
                }
                else if (targets.ValueKind == JsonValueKind.Array)
                {
                    config = config with
                    {
                        TargetModules = targets.EnumerateArray().Select(e => e.ValueKind == JsonValueKind.String
                            ? e.GetString()!
                            : throw new ModelLoadException(source, "target_modules", "target_modules entries must be strings.")).ToArray(),
                    };
                }
                else
                {
                    throw new ModelLoadException(source, "target_modules", "target_modules must be a list of names or a regex string.");
                }
            }

            var rankPattern = new SortedDictionary<string, int>(StringComparer.Ordinal);
            if (root.TryGetProperty("rank_pattern", out JsonElement rp) && rp.ValueKind == JsonValueKind.Object)
            {
                foreach (JsonProperty e in rp.EnumerateObject())
                {
                    rankPattern[e.Name] = e.Value.ValueKind == JsonValueKind.Number && e.Value.TryGetInt32(out int r)
                        ? r : throw new ModelLoadException(source, $"rank_pattern.{e.Name}", "rank_pattern values must be integers.");
                }
            }

            var alphaPattern = new SortedDictionary<string, double>(StringComparer.Ordinal);
            if (root.TryGetProperty("alpha_pattern", out JsonElement ap) && ap.ValueKind == JsonValueKind.Object)
            {
                foreach (JsonProperty e in ap.EnumerateObject())
                {
                    alphaPattern[e.Name] = e.Value.ValueKind == JsonValueKind.Number
                        ? e.Value.GetDouble() : throw new ModelLoadException(source, $"alpha_pattern.{e.Name}", "alpha_pattern values must be numbers.");
                }
            }

            config = config with { RankPattern = rankPattern, AlphaPattern = alphaPattern };
            try
            {
                config.Validate();
            }
            catch (ArgumentException ex)
            {
                throw new ModelLoadException(source, ex.ParamName, $"invalid LoRA config: {ex.Message}", ex);
            }

            return config;
        }
        catch (JsonException ex)
        {
            throw new ModelLoadException(source, null, $"adapter_config.json is not valid JSON: {ex.Message}", ex);
        }
    }

    private static bool NotEmpty(JsonElement v) => v.ValueKind switch
    {
        JsonValueKind.Null or JsonValueKind.False => false,
        JsonValueKind.Array => v.GetArrayLength() > 0,
        JsonValueKind.Object => v.EnumerateObject().Any(),
        JsonValueKind.String => v.GetString()!.Length > 0,
        _ => true,
    };

    private static void Refuse(JsonElement root, string source, string key, Func<JsonElement, bool> unsupported, string message)
    {
        if (root.TryGetProperty(key, out JsonElement v) && unsupported(v))
        {
            throw new ModelLoadException(source, key, message);
        }
    }

    private static string? Str(JsonElement root, string key, string source) =>
        !root.TryGetProperty(key, out JsonElement v) || v.ValueKind == JsonValueKind.Null ? null
        : v.ValueKind == JsonValueKind.String ? v.GetString() : throw new ModelLoadException(source, key, $"{key} must be a string.");

    private static int? Int(JsonElement root, string key, string source) =>
        !root.TryGetProperty(key, out JsonElement v) || v.ValueKind == JsonValueKind.Null ? null
        : v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i) ? i : throw new ModelLoadException(source, key, $"{key} must be an integer.");

    private static double? Num(JsonElement root, string key, string source) =>
        !root.TryGetProperty(key, out JsonElement v) || v.ValueKind == JsonValueKind.Null ? null
        : v.ValueKind == JsonValueKind.Number ? v.GetDouble() : throw new ModelLoadException(source, key, $"{key} must be a number.");

    private static bool? Bool(JsonElement root, string key, string source) =>
        !root.TryGetProperty(key, out JsonElement v) || v.ValueKind == JsonValueKind.Null ? null
        : v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.GetBoolean() : throw new ModelLoadException(source, key, $"{key} must be true or false.");

    private static void WriteNumber(Utf8JsonWriter w, double value, bool pythonFloat)
    {
        if (value == Math.Floor(value) && Math.Abs(value) < 1e15)
        {
            // Integral: an int as Python would keep it (lora_alpha=16), or "0.0" for a float field.
            w.WriteRawValue(((long)value).ToString(CultureInfo.InvariantCulture) + (pythonFloat ? ".0" : string.Empty));
        }
        else
        {
            w.WriteRawValue(value.ToString("R", CultureInfo.InvariantCulture));
        }
    }

    private static void WriteStringOrNull(Utf8JsonWriter w, string key, string? value)
    {
        if (value is null)
        {
            w.WriteNull(key);
        }
        else
        {
            w.WriteString(key, value);
        }
    }

    private static string DescribeUnsupportedTensor(string name)
    {
        if (name.Contains("lora_magnitude_vector", StringComparison.Ordinal))
        {
            return $"tensor '{name}' is a DoRA magnitude vector; DoRA cannot be represented as plain LoRA.";
        }

        if (name.Contains("lora_embedding_", StringComparison.Ordinal))
        {
            return $"tensor '{name}' is an embedding LoRA; only LoRA on the decoder projections is supported.";
        }

        if (name.EndsWith(".lora_B.bias", StringComparison.Ordinal))
        {
            return $"tensor '{name}' is a lora_B bias (lora_bias); only bias-free LoRA can be represented.";
        }

        return $"tensor '{name}' is not a LoRA A/B matrix (e.g. a modules_to_save copy such as lm_head); it cannot be represented.";
    }

    private static (int Layer, Projection Projection) ParseModulePath(string path, string file, string tensor, int numLayers)
    {
        // model.layers.{i}.self_attn.q_proj | model.layers.{i}.mlp.gate_proj
        string[] parts = path.Split('.');
        if (parts.Length == 5 && parts[0] == "model" && parts[1] == "layers"
            && int.TryParse(parts[2], NumberStyles.None, CultureInfo.InvariantCulture, out int layer)
            && ProjectionNames.TryParse(parts[4], out Projection projection)
            && path == ProjectionNames.ModulePath(layer, projection))
        {
            if (layer >= numLayers)
            {
                throw new ModelLoadException(file, tensor, $"module '{path}' is in layer {layer}, but the model has {numLayers} layers.");
            }

            return (layer, projection);
        }

        throw new ModelLoadException(file, tensor, $"module '{path}' is not a projection of this model (model.layers.N.self_attn.q/k/v/o_proj or model.layers.N.mlp.gate/up/down_proj).");
    }

    private static void WriteAtomically(string path, byte[] bytes)
    {
        string temp = path + ".tmp-" + Guid.NewGuid().ToString("N");
        try
        {
            using (var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.Write))
            {
                stream.Write(bytes);
                stream.Flush(flushToDisk: true);
            }

            File.Move(temp, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp))
            {
                File.Delete(temp);
            }
        }
    }
}
