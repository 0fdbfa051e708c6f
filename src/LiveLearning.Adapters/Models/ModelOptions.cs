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

/// <summary>One sequence of a training batch: token ids and per-position labels (Hugging Face causal-LM convention).</summary>
/// <remarks>
/// The logit at position <c>t</c> is trained to predict <c>Labels[t + 1]</c>; a negative label (e.g. -100) is ignored.
/// Typical use: labels equal the ids on the completion and -100 on the prompt.
/// </remarks>
/// <param name="InputIds">Token ids.</param>
/// <param name="Labels">Labels, same length as <paramref name="InputIds"/>.</param>
public sealed record TrainingSequence(int[] InputIds, int[] Labels)
{
    /// <summary>A sequence where every next token is a target.</summary>
    /// <param name="ids">Token ids.</param>
    /// <returns>The sequence.</returns>
    public static TrainingSequence AllTokens(int[] ids)
    {
        ArgumentNullException.ThrowIfNull(ids);
        return new TrainingSequence(ids, (int[])ids.Clone());
    }
}

/// <summary>Result of a forward + backward pass.</summary>
/// <param name="Loss">Mean cross-entropy over the counted positions.</param>
/// <param name="CountedPositions">Positions that contributed to the loss.</param>
/// <param name="ActivationBytes">Bytes of activations kept for the backward pass.</param>
public readonly record struct GradientResult(float Loss, int CountedPositions, long ActivationBytes);

/// <summary>Log-likelihood of a completion given a prompt.</summary>
/// <param name="LogLikelihood">Sum of the completion tokens' log-probabilities (natural log).</param>
/// <param name="TokenLogProbabilities">Log-probability of each completion token.</param>
public sealed record CompletionScore(double LogLikelihood, float[] TokenLogProbabilities)
{
    /// <summary>Mean log-probability per completion token (0 for an empty completion).</summary>
    public double MeanLogProbability => TokenLogProbabilities.Length == 0 ? 0 : LogLikelihood / TokenLogProbabilities.Length;
}
