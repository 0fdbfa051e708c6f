using System.Text.Json;
using LiveLearning.Numerics;
using LiveLearning.Storage;

namespace LiveLearning.Models;

/// <summary>The shape and settings of a Llama-family model to create from scratch.</summary>
public sealed record ModelSpec
{
    /// <summary>Hugging Face <c>model_type</c>: <c>llama</c>, <c>mistral</c> or <c>qwen2</c>.</summary>
    public string ModelType { get; init; } = "llama";

    /// <summary><c>hidden_size</c>.</summary>
    public int HiddenSize { get; init; } = 64;

    /// <summary><c>intermediate_size</c>.</summary>
    public int IntermediateSize { get; init; } = 160;

    /// <summary><c>num_hidden_layers</c>.</summary>
    public int Layers { get; init; } = 2;

    /// <summary><c>num_attention_heads</c>.</summary>
    public int Heads { get; init; } = 4;

    /// <summary><c>num_key_value_heads</c>.</summary>
    public int KvHeads { get; init; } = 2;

    /// <summary>Explicit <c>head_dim</c>, or <see langword="null"/> for hidden / heads.</summary>
    public int? HeadDim { get; init; }

    /// <summary><c>vocab_size</c>.</summary>
    public int VocabSize { get; init; } = 256;

    /// <summary><c>max_position_embeddings</c>.</summary>
    public int MaxPositionEmbeddings { get; init; } = 2048;

    /// <summary><c>rope_theta</c>.</summary>
    public double RopeTheta { get; init; } = 10000;

    /// <summary><c>rms_norm_eps</c>.</summary>
    public double RmsNormEps { get; init; } = 1e-5;

    /// <summary><c>tie_word_embeddings</c>.</summary>
    public bool TieWordEmbeddings { get; init; } = true;

    /// <summary>Storage precision of the weights.</summary>
    public WeightType WeightType { get; init; } = WeightType.F32;

    /// <summary>Standard deviation of the random weights (uniform distribution with this deviation).</summary>
    public float InitStd { get; init; } = 0.02f;

    /// <summary>Seed of the random weights.</summary>
    public int Seed { get; init; } = 1234;

    /// <summary>The SmolLM2-135M shape (576 hidden, 1536 intermediate, 30 layers, 9 heads, 3 KV heads, vocab 49152, tied).</summary>
    public static ModelSpec SmolLM2_135M { get; } = new()
    {
        HiddenSize = 576,
        IntermediateSize = 1536,
        Layers = 30,
        Heads = 9,
        KvHeads = 3,
        VocabSize = 49152,
        MaxPositionEmbeddings = 8192,
        RopeTheta = 100000,
        RmsNormEps = 1e-5,
        TieWordEmbeddings = true,
    };
}

/// <summary>
/// Writes a model directory in the Hugging Face layout (config.json + model.safetensors) with random weights: the way
/// tests, benchmarks and the demo get real-format models without downloads.
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

        System.IO.Directory.CreateDirectory(directory);
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
            json.WriteNumber("bos_token_id", 1);
            json.WriteNumber("eos_token_id", 2);
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
