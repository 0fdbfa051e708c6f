using System.Text.Json;
using LiveLearning.Numerics;
using LiveLearning.Storage;

namespace LiveLearning.Testing;

/// <summary>
/// Writes a model directory in the Hugging Face layout (config.json + model.safetensors, optionally tokenizer.json and
/// tokenizer_config.json) with random weights: the way tests and benchmarks get real-format models without downloads.
/// </summary>
public static class ModelWriter
{
    /// <summary>Creates <paramref name="directory"/> (if needed) and writes config.json and model.safetensors.</summary>
    /// <param name="directory">Target directory.</param>
    /// <param name="spec">Model shape and settings.</param>
    public static void WriteRandom(string directory, ModelSpec spec)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        ArgumentNullException.ThrowIfNull(spec);
        int headDim = spec.HeadDim ?? (spec.HiddenSize / spec.Heads);
        if (headDim <= 0 || spec.Heads % spec.KvHeads != 0)
        {
            throw new ArgumentException("Heads must be a positive multiple of KvHeads and head_dim positive.", nameof(spec));
        }

        Directory.CreateDirectory(directory);
        var rng = new Random(spec.Seed);
        float a = spec.InitStd * MathF.Sqrt(3f);
        var entries = new List<SafeTensorsEntry>();
        SafeTensorsDType dtype = SafeTensorsDTypes.FromWeightType(spec.WeightType);

        void Add(string name, long[] shape, Func<float> value)
        {
            long count = shape.Aggregate(1L, (x, y) => x * y);
            var data = new float[count];
            for (long i = 0; i < count; i++)
            {
                data[i] = value();
            }

            entries.Add(SafeTensorsEntry.FromFloats(name, dtype, data, shape));
        }

        float Uniform() => ((rng.NextSingle() * 2) - 1) * a;
        float NormWeight() => 1f + (((rng.NextSingle() * 2) - 1) * 0.1f);

        int c = spec.HiddenSize;
        Add("model.embed_tokens.weight", [spec.VocabSize, c], Uniform);
        for (int l = 0; l < spec.Layers; l++)
        {
            Add($"model.layers.{l}.input_layernorm.weight", [c], NormWeight);
            Add($"model.layers.{l}.post_attention_layernorm.weight", [c], NormWeight);
            Add($"model.layers.{l}.self_attn.q_proj.weight", [spec.Heads * headDim, c], Uniform);
            Add($"model.layers.{l}.self_attn.k_proj.weight", [spec.KvHeads * headDim, c], Uniform);
            Add($"model.layers.{l}.self_attn.v_proj.weight", [spec.KvHeads * headDim, c], Uniform);
            Add($"model.layers.{l}.self_attn.o_proj.weight", [c, spec.Heads * headDim], Uniform);
            if (spec.ModelType == "qwen2")
            {
                Add($"model.layers.{l}.self_attn.q_proj.bias", [spec.Heads * headDim], Uniform);
                Add($"model.layers.{l}.self_attn.k_proj.bias", [spec.KvHeads * headDim], Uniform);
                Add($"model.layers.{l}.self_attn.v_proj.bias", [spec.KvHeads * headDim], Uniform);
            }

            Add($"model.layers.{l}.mlp.gate_proj.weight", [spec.IntermediateSize, c], Uniform);
            Add($"model.layers.{l}.mlp.up_proj.weight", [spec.IntermediateSize, c], Uniform);
            Add($"model.layers.{l}.mlp.down_proj.weight", [c, spec.IntermediateSize], Uniform);
        }

        Add("model.norm.weight", [c], NormWeight);
        if (!spec.TieWordEmbeddings)
        {
            Add("lm_head.weight", [spec.VocabSize, c], Uniform);
        }

        SafeTensorsWriter.Write(Path.Combine(directory, "model.safetensors"), entries, new Dictionary<string, string> { ["format"] = "pt" });
        WriteConfig(Path.Combine(directory, "config.json"), spec, headDim);
    }

    /// <summary>
    /// Writes <c>tokenizer.json</c> and <c>tokenizer_config.json</c> of a small SmolLM2-style tokenizer into
    /// <paramref name="directory"/>: byte-level BPE over 347 tokens (every byte plus 91 merges) and the special tokens
    /// <c>&lt;|endoftext|&gt;</c> (347), <c>&lt;|im_start|&gt;</c> (348), <c>&lt;|im_end|&gt;</c> (349), with SmolLM2's ChatML chat
    /// template. A model needs a vocabulary of at least <see cref="TokenizerVocabSize"/> to use it.
    /// </summary>
    /// <param name="directory">The model directory.</param>
    public static void WriteTokenizer(string directory)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        Directory.CreateDirectory(directory);
        foreach (string name in new[] { "tokenizer.json", "tokenizer_config.json" })
        {
            using Stream source = typeof(ModelWriter).Assembly.GetManifestResourceStream(name)
                ?? throw new InvalidOperationException($"The embedded {name} is missing from the testing assembly.");
            using FileStream target = File.Create(Path.Combine(directory, name));
            source.CopyTo(target);
        }
    }

    /// <summary>Tokens of the tokenizer <see cref="WriteTokenizer"/> writes.</summary>
    public const int TokenizerVocabSize = 350;

    /// <summary>
    /// A model of <paramref name="spec"/>'s shape with the tokenizer of <see cref="WriteTokenizer"/>: what the live-model
    /// tests and benchmarks learn on. The vocabulary is raised to <see cref="TokenizerVocabSize"/> when smaller, and BOS
    /// and EOS are the tokenizer's <c>&lt;|im_start|&gt;</c> and <c>&lt;|im_end|&gt;</c> (as in SmolLM2-Instruct).
    /// </summary>
    /// <param name="directory">Target directory.</param>
    /// <param name="spec">Model shape and settings.</param>
    public static void WriteRandomWithTokenizer(string directory, ModelSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        WriteRandom(directory, spec with { VocabSize = Math.Max(spec.VocabSize, TokenizerVocabSize), BosTokenId = 348, EosTokenId = 349 });
        WriteTokenizer(directory);
    }

    private static void WriteConfig(string path, ModelSpec spec, int headDim)
    {
        string architecture = spec.ModelType switch
        {
            "llama" => "LlamaForCausalLM",
            "mistral" => "MistralForCausalLM",
            "qwen2" => "Qwen2ForCausalLM",
            _ => throw new ArgumentException($"Unsupported model type '{spec.ModelType}'.", nameof(spec)),
        };
        using var stream = new MemoryStream();
        using (var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            json.WriteStartObject();
            json.WriteStartArray("architectures");
            json.WriteStringValue(architecture);
            json.WriteEndArray();
            json.WriteString("model_type", spec.ModelType);
            json.WriteNumber("hidden_size", spec.HiddenSize);
            json.WriteNumber("intermediate_size", spec.IntermediateSize);
            json.WriteNumber("num_hidden_layers", spec.Layers);
            json.WriteNumber("num_attention_heads", spec.Heads);
            json.WriteNumber("num_key_value_heads", spec.KvHeads);
            if (spec.HeadDim is not null)
            {
                json.WriteNumber("head_dim", headDim);
            }

            json.WriteString("hidden_act", "silu");
            json.WriteNumber("vocab_size", spec.VocabSize);
            json.WriteNumber("max_position_embeddings", spec.MaxPositionEmbeddings);
            json.WriteNumber("rope_theta", spec.RopeTheta);
            json.WriteNumber("rms_norm_eps", spec.RmsNormEps);
            json.WriteBoolean("tie_word_embeddings", spec.TieWordEmbeddings);
            json.WriteNumber("bos_token_id", spec.BosTokenId);
            json.WriteNumber("eos_token_id", spec.EosTokenId);
            json.WriteString("torch_dtype", spec.WeightType switch
            {
                WeightType.BF16 => "bfloat16",
                WeightType.F16 => "float16",
                _ => "float32",
            });
            json.WriteEndObject();
        }

        // Atomic: write a temporary file beside the target, then rename over it.
        string temp = path + ".tmp";
        File.WriteAllBytes(temp, stream.ToArray());
        File.Move(temp, path, overwrite: true);
    }
}
