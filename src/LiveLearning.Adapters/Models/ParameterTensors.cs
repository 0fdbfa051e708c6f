namespace LiveLearning.Models;

/// <summary>
/// Every tensor of a model loaded for full-parameter training, in checkpoint order, with the lookups the backward pass
/// uses to find where each weight's gradient goes. Tied embeddings are one tensor: the LM head's gradient adds into it.
/// </summary>
internal sealed class ParameterTensors
{
    private readonly ModelTensor[][] _projections;
    private readonly ModelTensor?[][] _biases;
    private readonly ModelTensor[] _inputNorms;
    private readonly ModelTensor[] _postNorms;

    public ParameterTensors(ModelConfig config, IReadOnlyList<ModelTensor> tensors)
    {
        All = tensors;
        var byName = tensors.ToDictionary(t => t.Name, StringComparer.Ordinal);
        ModelTensor Get(string name) => byName[name];
        Embedding = Get("model.embed_tokens.weight");
        LmHead = byName.TryGetValue("lm_head.weight", out ModelTensor? head) ? head : Embedding;
        FinalNorm = Get("model.norm.weight");
        int layers = config.NumLayers;
        _projections = new ModelTensor[layers][];
        _biases = new ModelTensor?[layers][];
        _inputNorms = new ModelTensor[layers];
        _postNorms = new ModelTensor[layers];
        for (int l = 0; l < layers; l++)
        {
            _projections[l] = new ModelTensor[ProjectionNames.Count];
            _biases[l] = new ModelTensor?[ProjectionNames.Count];
            foreach (Projection p in ProjectionNames.All)
            {
                string path = ProjectionNames.ModulePath(l, p);
                _projections[l][(int)p] = Get(path + ".weight");
                _biases[l][(int)p] = byName.GetValueOrDefault(path + ".bias");
            }

            _inputNorms[l] = Get($"model.layers.{l}.input_layernorm.weight");
            _postNorms[l] = Get($"model.layers.{l}.post_attention_layernorm.weight");
        }
    }

    /// <summary>Every tensor, in the order the checkpoint was read.</summary>
    public IReadOnlyList<ModelTensor> All { get; }

    public ModelTensor Embedding { get; }

    /// <summary>The LM head: <see cref="Embedding"/> itself when the embeddings are tied.</summary>
    public ModelTensor LmHead { get; }

    public ModelTensor FinalNorm { get; }

    public ModelTensor Projection(int layer, Projection projection) => _projections[layer][(int)projection];

    public ModelTensor? Bias(int layer, Projection projection) => _biases[layer][(int)projection];

    public ModelTensor InputNorm(int layer) => _inputNorms[layer];

    public ModelTensor PostAttentionNorm(int layer) => _postNorms[layer];

    public void ClearGradients()
    {
        foreach (ModelTensor t in All)
        {
            Array.Clear(t.GradientArray);
        }
    }
}
