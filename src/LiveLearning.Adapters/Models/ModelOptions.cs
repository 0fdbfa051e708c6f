namespace LiveLearning.Models;

/// <summary>How a model is loaded and run.</summary>
public sealed class ModelOptions
{
    /// <summary>Threads used by the kernels, including the caller. 0 means one per processor.</summary>
    public int ThreadCount { get; set; }

    /// <summary>
    /// Longest sequence (prompt plus generated tokens) to support. <see langword="null"/> uses the configuration's
    /// <c>max_position_embeddings</c>, capped at 32768 so very long-context models do not pre-compute huge RoPE tables.
    /// </summary>
    public int? ContextLength { get; set; }

    /// <summary>Whether to load <c>tokenizer.json</c> (and the chat template) when present. Default true.</summary>
    public bool LoadTokenizer { get; set; } = true;
}
