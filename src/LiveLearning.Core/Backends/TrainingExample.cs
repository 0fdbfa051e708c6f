namespace LiveLearning.Backends;

/// <summary>What a training example teaches.</summary>
public enum TrainingObjective
{
    /// <summary>Imitate the completion: mean cross-entropy over its tokens (demonstrations and corrections).</summary>
    Completion,

    /// <summary>Prefer <see cref="TrainingExample.Completion"/> to <see cref="TrainingExample.Rejected"/>: DPO with the frozen reference.</summary>
    Preference,

    /// <summary>The completion is desirable or not (<see cref="TrainingExample.Desirable"/>): KTO with the frozen reference.</summary>
    Rating,
}

/// <summary>
/// One feedback item as the learner hands it to a trainer: token ids, the objective, its weight and, for DPO and KTO,
/// the reference (frozen model) log-likelihoods computed once when the item was prepared.
/// </summary>
/// <param name="Objective">What the example teaches.</param>
/// <param name="Prompt">Prompt ids (at least one).</param>
/// <param name="Completion">Completion ids (the chosen one for a preference, the rated one for a rating).</param>
public sealed record TrainingExample(TrainingObjective Objective, IReadOnlyList<int> Prompt, IReadOnlyList<int> Completion)
{
    /// <summary>The rejected completion of a preference.</summary>
    public IReadOnlyList<int>? Rejected { get; init; }

    /// <summary>Whether a rated completion is desirable (thumbs up).</summary>
    public bool Desirable { get; init; } = true;

    /// <summary>The example's weight in the batch's weighted mean (positive, finite).</summary>
    public double Weight { get; init; } = 1;

    /// <summary>Reference log-likelihood of <see cref="Completion"/> (preference and rating).</summary>
    public double ReferenceLogLikelihood { get; init; }

    /// <summary>Reference log-likelihood of <see cref="Rejected"/> (preference).</summary>
    public double ReferenceRejectedLogLikelihood { get; init; }

    /// <summary>Number of sequences the example runs as (2 for a preference, else 1).</summary>
    public int SequenceCount => Objective == TrainingObjective.Preference ? 2 : 1;

    /// <summary>Tokens the example runs (all its sequences).</summary>
    public int TokenCount => Prompt.Count + Completion.Count + (Objective == TrainingObjective.Preference ? Prompt.Count + (Rejected?.Count ?? 0) : 0);
}

/// <summary>The outcome of one gradient computation.</summary>
/// <param name="Loss">The objective's value (weighted mean over the examples).</param>
/// <param name="Scores">Per example, in batch order, its log-likelihoods under the parameters before the update.</param>
/// <param name="ActivationBytes">Activation memory the pass kept for its backward.</param>
public sealed record TrainingStepResult(double Loss, IReadOnlyList<ExampleScore> Scores, long ActivationBytes);

/// <summary>An example's log-likelihoods under the trained parameters (before the update).</summary>
/// <param name="LogLikelihood">Of the completion (chosen / rated).</param>
/// <param name="Tokens">Tokens of the completion.</param>
/// <param name="RejectedLogLikelihood">Of the rejected completion (preferences; else 0).</param>
/// <param name="RejectedTokens">Tokens of the rejected completion (preferences; else 0).</param>
public readonly record struct ExampleScore(double LogLikelihood, int Tokens, double RejectedLogLikelihood, int RejectedTokens);
