namespace LiveLearning.Models;

/// <summary>One sequence of a training batch: token ids and per-position labels (Hugging Face causal-LM convention).</summary>
/// <remarks>
/// The logit at position <c>t</c> is trained to predict <c>Labels[t + 1]</c>; a negative label (e.g. -100) is ignored.
/// Typical use: labels equal the ids on the completion and -100 on the prompt.
/// </remarks>
/// <param name="InputIds">Token ids.</param>
/// <param name="Labels">Labels, same length as <paramref name="InputIds"/>.</param>
public sealed record TrainingSequence(IReadOnlyList<int> InputIds, IReadOnlyList<int> Labels)
{
    /// <summary>A sequence where every next token is a target.</summary>
    /// <param name="ids">Token ids.</param>
    /// <returns>The sequence.</returns>
    public static TrainingSequence AllTokens(IReadOnlyList<int> ids)
    {
        ArgumentNullException.ThrowIfNull(ids);
        return new TrainingSequence(ids, ids);
    }

    /// <summary>A prompt followed by a completion, with labels on the completion only (the prompt is ignored).</summary>
    /// <param name="prompt">Prompt tokens.</param>
    /// <param name="completion">Completion tokens.</param>
    /// <returns>The sequence.</returns>
    public static TrainingSequence Completion(IReadOnlyList<int> prompt, IReadOnlyList<int> completion)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        ArgumentNullException.ThrowIfNull(completion);
        int[] ids = [.. prompt, .. completion];
        int[] labels = [.. ids];
        labels.AsSpan(0, prompt.Count).Fill(-100);
        return new TrainingSequence(ids, labels);
    }
}
