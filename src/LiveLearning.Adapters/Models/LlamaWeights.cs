using LiveLearning.Numerics;
using LiveLearning.Storage;

namespace LiveLearning.Models;

/// <summary>The frozen weights of one decoder layer, kept in their stored precision.</summary>
internal sealed class LayerWeights
{
    public required WeightMatrix[] Projections { get; init; }

    public required float[]?[] Biases { get; init; }

    public required float[] InputNorm { get; init; }

    public required float[] PostAttentionNorm { get; init; }
}

/// <summary>All frozen weights of a Llama-family model, validated against its configuration.</summary>
internal sealed class LlamaWeights
{
    public required WeightMatrix Embedding { get; init; }

    public required WeightMatrix LmHead { get; init; }

    public required float[] FinalNorm { get; init; }

    public required LayerWeights[] Layers { get; init; }

    /// <summary>Bytes of weight storage referenced (memory-mapped or in memory).</summary>
    public required long StorageBytes { get; init; }

    /// <summary>With <c>trainable</c> loading: every tensor as a float32 array the matrices above wrap (updating an
    /// array updates the model), by Hugging Face name; otherwise <see langword="null"/>.</summary>
    public ParameterTensors? Trainable { get; init; }

    /// <summary>Validates the checkpoint against <paramref name="config"/> and wraps its tensors. With
    /// <paramref name="trainable"/>, every tensor is widened into its own float32 array (nothing stays memory-mapped)
    /// so full-parameter training can update it in place.</summary>
    public static LlamaWeights Load(SafeTensorsCheckpoint checkpoint, ModelConfig config, string directory, bool trainable = false)
    {
        int c = config.HiddenSize;
        int qOut = config.NumHeads * config.HeadDim;
        int kvOut = config.NumKvHeads * config.HeadDim;
        int inter = config.IntermediateSize;
        long bytes = 0;
        var tensors = new List<ModelTensor>();

        WeightMatrix Matrix(string name, int rows, int cols)
        {
            WeightMatrix m = Require(name, [rows, cols]);
            if (trainable)
            {
                float[] values = checkpoint.ReadAsFloat32(name);
                tensors.Add(new ModelTensor(name, [rows, cols], values));
                m = WeightMatrix.FromF32(values, rows, cols);
            }

            bytes += m.Bytes.Length;
            return m;
        }

        float[] Vector(string name, int length)
        {
            Require(name, [length]);
            float[] v = checkpoint.ReadAsFloat32(name);
            bytes += v.Length * sizeof(float);
            if (trainable)
            {
                tensors.Add(new ModelTensor(name, [length], v));
            }

            return v;
        }

        WeightMatrix Require(string name, int[] shape)
        {
            if (!checkpoint.TryGetInfo(name, out TensorInfo? info) || info is null)
            {
                throw new ModelLoadException(directory, name, $"the checkpoint has no tensor '{name}', which the configuration ({config.ModelType}, {config.NumLayers} layers) requires.");
            }

            if (!info.Shape.SequenceEqual(shape.Select(s => (long)s)))
            {
                throw new ModelLoadException(directory, name, $"tensor '{name}' has shape [{string.Join(", ", info.Shape)}] but the configuration implies [{string.Join(", ", shape)}].");
            }

            if (shape.Length != 2)
            {
                return default;
            }

            try
            {
                return checkpoint.GetMatrix(name);
            }
            catch (Exception ex) when (ex is InvalidOperationException or NotSupportedException or ArgumentException)
            {
                throw new ModelLoadException(directory, name, $"tensor '{name}' cannot be used as a weight matrix: {ex.Message}", ex);
            }
        }

        WeightMatrix embedding = Matrix("model.embed_tokens.weight", config.VocabSize, c);
        WeightMatrix lmHead = config.TieWordEmbeddings || !checkpoint.TryGetInfo("lm_head.weight", out _)
            ? (config.TieWordEmbeddings ? embedding : throw new ModelLoadException(directory, "lm_head.weight", "the checkpoint has no 'lm_head.weight' and tie_word_embeddings is false."))
            : Matrix("lm_head.weight", config.VocabSize, c);

        var layers = new LayerWeights[config.NumLayers];
        for (int l = 0; l < layers.Length; l++)
        {
            var projections = new WeightMatrix[ProjectionNames.Count];
            var biases = new float[]?[ProjectionNames.Count];
            foreach (Projection p in ProjectionNames.All)
            {
                (int rows, int cols) = p switch
                {
                    Projection.QProj => (qOut, c),
                    Projection.KProj or Projection.VProj => (kvOut, c),
                    Projection.OProj => (c, qOut),
                    Projection.GateProj or Projection.UpProj => (inter, c),
                    _ => (c, inter),
                };
                string path = ProjectionNames.ModulePath(l, p);
                projections[(int)p] = Matrix(path + ".weight", rows, cols);
                bool hasBias = p switch
                {
                    Projection.QProj or Projection.KProj or Projection.VProj => config.AttentionBias,
                    Projection.OProj => config.OutputProjectionBias,
                    _ => config.MlpBias,
                };
                if (hasBias)
                {
                    biases[(int)p] = Vector(path + ".bias", rows);
                }
            }

            layers[l] = new LayerWeights
            {
                Projections = projections,
                Biases = biases,
                InputNorm = Vector($"model.layers.{l}.input_layernorm.weight", c),
                PostAttentionNorm = Vector($"model.layers.{l}.post_attention_layernorm.weight", c),
            };
        }

        return new LlamaWeights
        {
            Embedding = embedding,
            LmHead = lmHead,
            FinalNorm = Vector("model.norm.weight", c),
            Layers = layers,
            StorageBytes = bytes,
            Trainable = trainable ? new ParameterTensors(config, tensors) : null,
        };
    }
}
