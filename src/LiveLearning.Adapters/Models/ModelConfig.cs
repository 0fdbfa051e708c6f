using System.Globalization;
using System.Text.Json;

namespace LiveLearning.Models;

/// <summary>
/// The Hugging Face <c>config.json</c> of a Llama-family model (<c>model_type</c> <c>llama</c>, <c>mistral</c> or
/// <c>qwen2</c>), read with the same defaults as transformers' config classes and validated: anything the runtime
/// would compute wrongly (another activation, partial rotary, yarn/longrope scaling, inconsistent head counts) is
/// refused with a <see cref="ModelConfigException"/> naming the key and the value.
/// </summary>
/// <remarks>
/// Both config generations are read: <c>rope_theta</c> + <c>rope_scaling</c> + <c>torch_dtype</c> (transformers 4.x)
/// and <c>rope_parameters</c> + <c>dtype</c> (transformers 5.x); <c>rope_parameters</c> wins when both are present.
/// </remarks>
public sealed partial class ModelConfig
{
    /// <summary>Largest config file <see cref="Load"/> accepts.</summary>
    public const long MaxFileBytes = 16L * 1024 * 1024;

    private readonly bool[] _slidingLayers;

    private ModelConfig(Builder b)
    {
        SourceName = b.Source;
        ModelType = b.ModelType;
        Architectures = Array.AsReadOnly(b.Architectures);
        HiddenSize = b.HiddenSize;
        IntermediateSize = b.IntermediateSize;
        NumLayers = b.NumLayers;
        NumHeads = b.NumHeads;
        NumKvHeads = b.NumKvHeads;
        HeadDim = b.HeadDim;
        VocabSize = b.VocabSize;
        RmsNormEps = b.RmsNormEps;
        RopeTheta = b.RopeTheta;
        RopeScaling = b.RopeScaling;
        MaxPositionEmbeddings = b.MaxPositionEmbeddings;
        TieWordEmbeddings = b.TieWordEmbeddings;
        AttentionBias = b.AttentionBias;
        OutputProjectionBias = b.OutputProjectionBias;
        MlpBias = b.MlpBias;
        BosTokenId = b.BosTokenId;
        EosTokenIds = Array.AsReadOnly(b.EosTokenIds);
        PadTokenId = b.PadTokenId;
        TorchDtype = b.TorchDtype;
        HiddenAct = b.HiddenAct;
        SlidingWindow = b.SlidingWindow;
        _slidingLayers = b.SlidingLayers;
    }

    /// <summary>The file (or name given to <c>Parse</c>) the config came from.</summary>
    public string SourceName { get; }

    /// <summary><c>model_type</c>: <c>llama</c>, <c>mistral</c> or <c>qwen2</c>.</summary>
    public string ModelType { get; }

    /// <summary><c>architectures</c> (empty when absent).</summary>
    public IReadOnlyList<string> Architectures { get; }

    /// <summary><c>hidden_size</c> (C).</summary>
    public int HiddenSize { get; }

    /// <summary><c>intermediate_size</c>: MLP width.</summary>
    public int IntermediateSize { get; }

    /// <summary><c>num_hidden_layers</c>.</summary>
    public int NumLayers { get; }

    /// <summary><c>num_attention_heads</c> (H).</summary>
    public int NumHeads { get; }

    /// <summary><c>num_key_value_heads</c> (Hkv); H when null, the model type's default when absent (llama: H, mistral: 8, qwen2: 32).</summary>
    public int NumKvHeads { get; }

    /// <summary><c>head_dim</c> (d); <c>hidden_size / num_attention_heads</c> unless given explicitly.</summary>
    public int HeadDim { get; }

    /// <summary><c>vocab_size</c>: rows of the embedding and of <c>lm_head</c>.</summary>
    public int VocabSize { get; }

    /// <summary><c>rms_norm_eps</c> (default 1e-6).</summary>
    public double RmsNormEps { get; }

    /// <summary>RoPE base: <c>rope_parameters.rope_theta</c> ?? <c>rope_theta</c> ?? 10000.</summary>
    public double RopeTheta { get; }

    /// <summary>RoPE scaling, or null for the default (unscaled) frequencies.</summary>
    public RopeScaling? RopeScaling { get; }

    /// <summary><c>max_position_embeddings</c> (model type default when absent: llama 2048, mistral 131072, qwen2 32768).</summary>
    public int MaxPositionEmbeddings { get; }

    /// <summary><c>tie_word_embeddings</c> (default false): logits use <c>model.embed_tokens.weight</c> and <c>lm_head.weight</c> may be absent.</summary>
    public bool TieWordEmbeddings { get; }

    /// <summary>Whether q/k/v projections have biases (qwen2 always; llama when <c>attention_bias</c>).</summary>
    public bool AttentionBias { get; }

    /// <summary>Whether the o projection has a bias (llama when <c>attention_bias</c>; never for qwen2 or mistral).</summary>
    public bool OutputProjectionBias { get; }

    /// <summary>Whether gate/up/down projections have biases (llama <c>mlp_bias</c>; default false).</summary>
    public bool MlpBias { get; }

    /// <summary><c>bos_token_id</c>, or null.</summary>
    public int? BosTokenId { get; }

    /// <summary><c>eos_token_id</c> as a list (the key may be an int or a list); empty when absent or null.</summary>
    public IReadOnlyList<int> EosTokenIds { get; }

    /// <summary><c>pad_token_id</c>, or null.</summary>
    public int? PadTokenId { get; }

    /// <summary>Published storage dtype: <c>dtype</c> ?? <c>torch_dtype</c> (e.g. <c>bfloat16</c>), or null.</summary>
    public string? TorchDtype { get; }

    /// <summary><c>hidden_act</c>; always <c>silu</c> for an accepted config.</summary>
    public string HiddenAct { get; }

    /// <summary>
    /// The sliding attention window W (each query sees itself and the W-1 previous tokens) for the layers that use
    /// one, or null when every layer attends to the full causal prefix. Mistral: <c>sliding_window</c> (default 4096,
    /// null = none). Qwen2: only when <c>use_sliding_window</c> is true. See <see cref="SlidingWindowForLayer"/>.
    /// </summary>
    public int? SlidingWindow { get; }

    /// <summary>Width of the concatenated query heads, <c>H·d</c> (rows of q_proj).</summary>
    public int QueryDim => NumHeads * HeadDim;

    /// <summary>Width of the concatenated key/value heads, <c>Hkv·d</c> (rows of k_proj and v_proj).</summary>
    public int KeyValueDim => NumKvHeads * HeadDim;

    /// <summary>Reads and validates a <c>config.json</c> file.</summary>
    /// <param name="path">The file.</param>
    /// <returns>The config.</returns>
    /// <exception cref="ModelConfigException">The file is malformed or unsupported.</exception>
    public static ModelConfig Load(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        if (stream.Length > MaxFileBytes)
        {
            throw new ModelConfigException(path, null, $"is {stream.Length} bytes; config files above {MaxFileBytes} bytes are refused");
        }

        var bytes = new byte[stream.Length];
        stream.ReadExactly(bytes);
        return Parse(bytes, path);
    }

    /// <summary>Parses and validates config JSON text.</summary>
    /// <param name="json">The JSON text.</param>
    /// <param name="sourceName">A name for error messages.</param>
    /// <returns>The config.</returns>
    /// <exception cref="ModelConfigException">The JSON is malformed or unsupported.</exception>
    public static ModelConfig Parse(string json, string sourceName)
    {
        ArgumentNullException.ThrowIfNull(json);
        return Parse(System.Text.Encoding.UTF8.GetBytes(json), sourceName);
    }

    private static ModelConfig Parse(byte[] utf8, string sourceName)
    {
        ArgumentNullException.ThrowIfNull(sourceName);
        if (utf8.AsSpan().StartsWith((ReadOnlySpan<byte>)[0xEF, 0xBB, 0xBF]))
        {
            utf8 = utf8[3..]; // a UTF-8 byte order mark some editors write
        }

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(utf8, new JsonDocumentOptions { MaxDepth = 32, AllowDuplicateProperties = false, CommentHandling = JsonCommentHandling.Disallow });
        }
        catch (JsonException e)
        {
            if (NonFiniteLiteralKey(utf8, e) is { } key)
            {
                throw new ModelConfigException(sourceName, key, "is NaN or Infinity; every number must be finite (and NaN/Infinity are not valid JSON)", e);
            }

            throw new ModelConfigException(sourceName, null, $"is not valid JSON ({e.Message})", e);
        }

        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw new ModelConfigException(sourceName, null, $"must be a JSON object, found {document.RootElement.ValueKind}");
            }

            return new ModelConfig(new Builder(sourceName, new Keys(sourceName, "", document.RootElement)));
        }
    }

    /// <summary>
    /// Python's json module writes non-finite floats as bare NaN / Infinity / -Infinity, which is not JSON. When the
    /// parse error sits on such a literal, finds the key it belongs to so the error can name it.
    /// </summary>
    private static string? NonFiniteLiteralKey(byte[] utf8, JsonException e)
    {
        if (e.LineNumber is not { } line || e.BytePositionInLine is not { } column)
        {
            return null;
        }

        long offset = 0;
        for (long l = 0; l < line && offset < utf8.Length; offset++)
        {
            if (utf8[offset] == (byte)'\n')
            {
                l++;
            }
        }

        offset += column;
        if (offset < 0 || offset >= utf8.Length)
        {
            return null;
        }

        if (offset > 0 && utf8[offset - 1] == (byte)'-')
        {
            offset--; // the reader stops after the sign of "-Infinity"
        }

        ReadOnlySpan<byte> rest = utf8.AsSpan((int)offset);
        if (!rest.StartsWith("NaN"u8) && !rest.StartsWith("Infinity"u8) && !rest.StartsWith("-Infinity"u8))
        {
            return null;
        }

        string before = System.Text.Encoding.UTF8.GetString(utf8, 0, (int)offset);
        System.Text.RegularExpressions.Match match = KeyBeforeValue().Match(before);
        return match.Success ? match.Groups[1].Value : null;
    }

    [System.Text.RegularExpressions.GeneratedRegex("\"([^\"\\\\]*)\"\\s*:\\s*\\[?\\s*$")]
    private static partial System.Text.RegularExpressions.Regex KeyBeforeValue();

    /// <summary>
    /// The sliding window of one layer, or null when that layer attends to the whole causal prefix. Mistral applies
    /// <see cref="SlidingWindow"/> to every layer; Qwen2 (with <c>use_sliding_window</c>) to layers whose index is at
    /// least <c>max_window_layers</c>, or as listed by <c>layer_types</c>.
    /// </summary>
    /// <param name="layer">Layer index in <c>[0, NumLayers)</c>.</param>
    /// <returns>The window, or null.</returns>
    public int? SlidingWindowForLayer(int layer)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(layer);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(layer, NumLayers);
        return _slidingLayers[layer] ? SlidingWindow : null;
    }

    /// <summary>Typed access to the keys of one JSON object; null values count as absent.</summary>
    private readonly struct Keys(string source, string prefix, JsonElement obj)
    {
        public string Source => source;

        public JsonElement Object => obj;

        public string Name(string key) => prefix + key;

        public bool Has(string key) => obj.TryGetProperty(key, out JsonElement v) && v.ValueKind != JsonValueKind.Null;

        public bool IsPresent(string key) => obj.TryGetProperty(key, out _);

        public ModelConfigException Error(string key, string detail) => new(source, Name(key), detail);

        public ModelConfigException Bad(string key, JsonElement value, string expected) =>
            new(source, Name(key), $"= {Raw(value)} {expected}");

        public bool TryGet(string key, out JsonElement value) =>
            obj.TryGetProperty(key, out value) && value.ValueKind != JsonValueKind.Null;

        public int RequiredInt(string key) =>
            TryGet(key, out JsonElement v) ? ToInt(key, v) : throw Error(key, "is required but missing");

        public int Int(string key, int fallback) => TryGet(key, out JsonElement v) ? ToInt(key, v) : fallback;

        public int? NullableInt(string key) => TryGet(key, out JsonElement v) ? ToInt(key, v) : null;

        public int ToInt(string key, JsonElement v) =>
            v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i) ? i : throw Bad(key, v, "must be a 32-bit integer");

        public double Double(string key, double fallback) => TryGet(key, out JsonElement v) ? ToDouble(key, v) : fallback;

        public double RequiredDouble(string key) =>
            TryGet(key, out JsonElement v) ? ToDouble(key, v) : throw Error(key, "is required but missing");

        public double ToDouble(string key, JsonElement v)
        {
            if (v.ValueKind != JsonValueKind.Number || !v.TryGetDouble(out double d))
            {
                throw Bad(key, v, "must be a number");
            }

            return double.IsFinite(d) ? d : throw Bad(key, v, "must be finite");
        }

        public bool Bool(string key, bool fallback)
        {
            if (!TryGet(key, out JsonElement v))
            {
                return fallback;
            }

            return v.ValueKind switch
            {
                JsonValueKind.True => true,
                JsonValueKind.False => false,
                _ => throw Bad(key, v, "must be true or false"),
            };
        }

        public string? String(string key) =>
            !TryGet(key, out JsonElement v) ? null
            : v.ValueKind == JsonValueKind.String ? v.GetString()
            : throw Bad(key, v, "must be a string");

        public static string Raw(JsonElement value)
        {
            string text = value.GetRawText();
            return text.Length <= 80 ? text : string.Concat(text.AsSpan(0, 77), "...");
        }
    }

    /// <summary>Reads and validates every key, applying the transformers defaults of the model type.</summary>
    private sealed class Builder
    {
        private static readonly Dictionary<string, string> ArchitectureOf = new(StringComparer.Ordinal)
        {
            ["llama"] = "LlamaForCausalLM",
            ["mistral"] = "MistralForCausalLM",
            ["qwen2"] = "Qwen2ForCausalLM",
        };

        public Builder(string source, Keys k)
        {
            Source = source;
            ModelType = k.String("model_type") ?? throw k.Error("model_type", "is required but missing (expected llama, mistral or qwen2)");
            if (!ArchitectureOf.TryGetValue(ModelType, out string? architecture))
            {
                throw k.Error("model_type", $"= \"{ModelType}\" is not supported (expected llama, mistral or qwen2)");
            }

            Architectures = ReadArchitectures(k, architecture);
            bool isLlama = ModelType == "llama";
            bool isMistral = ModelType == "mistral";
            bool isQwen2 = ModelType == "qwen2";

            HiddenSize = Positive(k, "hidden_size", k.RequiredInt("hidden_size"));
            IntermediateSize = Positive(k, "intermediate_size", k.RequiredInt("intermediate_size"));
            NumLayers = Positive(k, "num_hidden_layers", k.RequiredInt("num_hidden_layers"));
            NumHeads = Positive(k, "num_attention_heads", k.RequiredInt("num_attention_heads"));
            VocabSize = Positive(k, "vocab_size", k.RequiredInt("vocab_size"));
            if (k.Has("head_dim"))
            {
                HeadDim = Positive(k, "head_dim", k.RequiredInt("head_dim"));
            }
            else
            {
                if (HiddenSize % NumHeads != 0)
                {
                    throw k.Error("num_attention_heads", $"= {NumHeads} does not divide hidden_size = {HiddenSize} and no head_dim is given");
                }

                HeadDim = HiddenSize / NumHeads;
            }

            if (HeadDim % 2 != 0)
            {
                throw k.Error("head_dim", $"= {HeadDim} must be even for rotary embeddings");
            }

            if ((long)NumHeads * HeadDim > int.MaxValue / 4)
            {
                throw k.Error("head_dim", $"= {HeadDim} with {NumHeads} heads is too large");
            }

            int kvDefault = isMistral ? 8 : isQwen2 ? 32 : NumHeads;
            NumKvHeads = Positive(k, "num_key_value_heads", k.IsPresent("num_key_value_heads") ? k.Int("num_key_value_heads", NumHeads) : kvDefault);
            if (NumHeads % NumKvHeads != 0)
            {
                throw k.Error("num_key_value_heads", $"= {NumKvHeads} must divide num_attention_heads = {NumHeads}");
            }

            HiddenAct = k.String("hidden_act") ?? "silu";
            if (HiddenAct != "silu")
            {
                throw k.Error("hidden_act", $"= \"{HiddenAct}\" is not supported (Llama-family models use silu)");
            }

            RmsNormEps = k.Double("rms_norm_eps", 1e-6);
            if (!(RmsNormEps > 0))
            {
                throw k.Error("rms_norm_eps", $"= {RmsNormEps.ToString(CultureInfo.InvariantCulture)} must be positive");
            }

            MaxPositionEmbeddings = Positive(k, "max_position_embeddings", k.Int("max_position_embeddings", isLlama ? 2048 : isMistral ? 4096 * 32 : 32768));
            double partial = k.Double("partial_rotary_factor", 1.0);
            if (partial != 1.0)
            {
                throw k.Error("partial_rotary_factor", $"= {partial.ToString(CultureInfo.InvariantCulture)} is not supported (only full rotary embeddings)");
            }

            ReadRope(k);

            TieWordEmbeddings = k.Bool("tie_word_embeddings", false);
            bool attentionBias = isLlama && k.Bool("attention_bias", false);
            AttentionBias = isQwen2 || attentionBias;
            OutputProjectionBias = attentionBias;
            MlpBias = isLlama && k.Bool("mlp_bias", false);

            BosTokenId = k.IsPresent("bos_token_id") ? NonNegative(k, "bos_token_id", k.NullableInt("bos_token_id")) : isQwen2 ? null : 1;
            EosTokenIds = k.IsPresent("eos_token_id") ? ReadEos(k) : isQwen2 ? [] : [2];
            PadTokenId = NonNegative(k, "pad_token_id", k.NullableInt("pad_token_id"));
            TorchDtype = k.String("dtype") ?? k.String("torch_dtype");

            SlidingLayers = new bool[NumLayers];
            if (isMistral)
            {
                SlidingWindow = k.IsPresent("sliding_window") ? k.NullableInt("sliding_window") : 4096;
                if (SlidingWindow is not null)
                {
                    Positive(k, "sliding_window", SlidingWindow.Value);
                    Array.Fill(SlidingLayers, true);
                }
            }
            else if (isQwen2 && k.Bool("use_sliding_window", false))
            {
                SlidingWindow = k.IsPresent("sliding_window") ? k.NullableInt("sliding_window") : 4096;
                if (SlidingWindow is not null)
                {
                    Positive(k, "sliding_window", SlidingWindow.Value);
                    ReadQwenSlidingLayers(k);
                }
            }
        }

        public string Source { get; }

        public string ModelType { get; }

        public string[] Architectures { get; }

        public int HiddenSize { get; }

        public int IntermediateSize { get; }

        public int NumLayers { get; }

        public int NumHeads { get; }

        public int NumKvHeads { get; }

        public int HeadDim { get; }

        public int VocabSize { get; }

        public double RmsNormEps { get; }

        public double RopeTheta { get; private set; }

        public RopeScaling? RopeScaling { get; private set; }

        public int MaxPositionEmbeddings { get; }

        public bool TieWordEmbeddings { get; }

        public bool AttentionBias { get; }

        public bool OutputProjectionBias { get; }

        public bool MlpBias { get; }

        public int? BosTokenId { get; }

        public int[] EosTokenIds { get; }

        public int? PadTokenId { get; }

        public string? TorchDtype { get; }

        public string HiddenAct { get; }

        public int? SlidingWindow { get; }

        public bool[] SlidingLayers { get; }

        private static int Positive(Keys k, string key, int value) =>
            value > 0 ? value : throw k.Error(key, $"= {value} must be positive");

        private static int? NonNegative(Keys k, string key, int? value) =>
            value is null or >= 0 ? value : throw k.Error(key, $"= {value} must not be negative");

        private static string[] ReadArchitectures(Keys k, string expected)
        {
            if (!k.TryGet("architectures", out JsonElement v))
            {
                return [];
            }

            if (v.ValueKind != JsonValueKind.Array)
            {
                throw k.Bad("architectures", v, "must be a list of strings");
            }

            var list = new List<string>();
            foreach (JsonElement item in v.EnumerateArray())
            {
                if (item.ValueKind != JsonValueKind.String)
                {
                    throw k.Bad("architectures", v, "must be a list of strings");
                }

                string name = item.GetString()!;
                if (name != expected)
                {
                    throw k.Error("architectures", $"contains \"{name}\", which is not supported for model_type \"{k.String("model_type")}\" (expected {expected})");
                }

                list.Add(name);
            }

            return [.. list];
        }

        private static int[] ReadEos(Keys k)
        {
            if (!k.TryGet("eos_token_id", out JsonElement v))
            {
                return [];
            }

            if (v.ValueKind == JsonValueKind.Array)
            {
                var ids = new List<int>();
                foreach (JsonElement item in v.EnumerateArray())
                {
                    int id = k.ToInt("eos_token_id", item);
                    ids.Add(id >= 0 ? id : throw k.Bad("eos_token_id", v, "must hold non-negative token ids"));
                }

                return [.. ids];
            }

            int single = k.ToInt("eos_token_id", v);
            return single >= 0 ? [single] : throw k.Bad("eos_token_id", v, "must be a non-negative token id");
        }

        private void ReadQwenSlidingLayers(Keys k)
        {
            if (k.TryGet("layer_types", out JsonElement types))
            {
                if (types.ValueKind != JsonValueKind.Array || types.GetArrayLength() != NumLayers)
                {
                    throw k.Bad("layer_types", types, $"must be a list of {NumLayers} layer types");
                }

                int i = 0;
                foreach (JsonElement t in types.EnumerateArray())
                {
                    string? name = t.ValueKind == JsonValueKind.String ? t.GetString() : null;
                    SlidingLayers[i++] = name switch
                    {
                        "sliding_attention" => true,
                        "full_attention" => false,
                        _ => throw k.Bad("layer_types", t, "must be \"full_attention\" or \"sliding_attention\""),
                    };
                }

                return;
            }

            int maxWindowLayers = k.Int("max_window_layers", 28);
            if (maxWindowLayers < 0)
            {
                throw k.Error("max_window_layers", $"= {maxWindowLayers} must not be negative");
            }

            for (int i = maxWindowLayers; i < NumLayers; i++)
            {
                SlidingLayers[i] = true;
            }
        }

        private void ReadRope(Keys root)
        {
            Keys? parameters = null;
            if (root.TryGet("rope_parameters", out JsonElement rp))
            {
                if (rp.ValueKind != JsonValueKind.Object)
                {
                    throw root.Bad("rope_parameters", rp, "must be an object");
                }

                var p = new Keys(root.Source, "rope_parameters.", rp);
                if (!p.IsPresent("rope_type") && !p.IsPresent("type") && !p.IsPresent("rope_theta"))
                {
                    throw root.Bad("rope_parameters", rp, "must hold rope_type and rope_theta (per-layer-type RoPE parameters are not supported)");
                }

                parameters = p;
            }

            RopeTheta = parameters is { } pt && pt.Has("rope_theta") ? pt.RequiredDouble("rope_theta") : root.Double("rope_theta", 10000.0);
            if (!(RopeTheta > 0))
            {
                string key = parameters is { } pk && pk.Has("rope_theta") ? "rope_parameters.rope_theta" : "rope_theta";
                throw new ModelConfigException(Source, key, $"= {RopeTheta.ToString(CultureInfo.InvariantCulture)} must be positive");
            }

            if (parameters is { } ps && RopeType(ps) is { } type && type != "default")
            {
                RopeScaling = ReadScaling(ps, type);
                return;
            }

            if (root.TryGet("rope_scaling", out JsonElement rs))
            {
                if (rs.ValueKind != JsonValueKind.Object)
                {
                    throw root.Bad("rope_scaling", rs, "must be an object or null");
                }

                var s = new Keys(root.Source, "rope_scaling.", rs);
                string scalingType = RopeType(s) ?? throw s.Error("rope_type", "is required but missing (older files call it 'type')");
                RopeScaling = scalingType == "default" ? null : ReadScaling(s, scalingType);
            }
        }

        private static string? RopeType(Keys s) => s.String("rope_type") ?? s.String("type");

        private RopeScaling ReadScaling(Keys s, string type)
        {
            string typeKey = s.Has("rope_type") ? "rope_type" : "type";
            switch (type)
            {
                case "linear":
                    return new RopeScaling(RopeScalingType.Linear, Factor(s));
                case "dynamic":
                    if (HeadDim <= 2)
                    {
                        throw s.Error(typeKey, $"= \"dynamic\" needs head_dim > 2 (head_dim = {HeadDim})");
                    }

                    return new RopeScaling(RopeScalingType.Dynamic, Factor(s));
                case "llama3":
                    double factor = Factor(s);
                    double low = s.RequiredDouble("low_freq_factor");
                    double high = s.RequiredDouble("high_freq_factor");
                    int original = s.RequiredInt("original_max_position_embeddings");
                    if (!(low > 0))
                    {
                        throw s.Error("low_freq_factor", $"= {low.ToString(CultureInfo.InvariantCulture)} must be positive");
                    }

                    if (!(high > low))
                    {
                        throw s.Error("high_freq_factor", $"= {high.ToString(CultureInfo.InvariantCulture)} must exceed low_freq_factor = {low.ToString(CultureInfo.InvariantCulture)}");
                    }

                    if (original <= 0)
                    {
                        throw s.Error("original_max_position_embeddings", $"= {original} must be positive");
                    }

                    return new RopeScaling(RopeScalingType.Llama3, factor, low, high, original);
                default:
                    throw s.Error(typeKey, $"= \"{type}\" is not supported (supported: default, linear, dynamic, llama3)");
            }
        }

        private static double Factor(Keys s)
        {
            double factor = s.RequiredDouble("factor");
            return factor > 0 ? factor : throw s.Error("factor", $"= {factor.ToString(CultureInfo.InvariantCulture)} must be positive");
        }
    }
}
