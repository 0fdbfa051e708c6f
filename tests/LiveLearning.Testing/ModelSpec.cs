using LiveLearning.Numerics;

namespace LiveLearning.Testing;

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

    /// <summary><c>bos_token_id</c>.</summary>
    public int BosTokenId { get; init; } = 1;

    /// <summary><c>eos_token_id</c>: generation stops on it.</summary>
    public int EosTokenId { get; init; } = 2;

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
