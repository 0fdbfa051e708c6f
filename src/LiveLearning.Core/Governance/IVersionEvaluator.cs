using LiveLearning.Backends;

namespace LiveLearning.Governance;

/// <summary>
/// Decides whether a candidate version (the learner's newly published weights) becomes current. The default promotes
/// every candidate; an evaluator with a guard set and a probe set refuses regressions.
/// </summary>
/// <remarks>Called by the scope's learner, between steps, on the learning lane; it may score with the backend.</remarks>
public interface IVersionEvaluator
{
    /// <summary>Evaluates one candidate.</summary>
    /// <param name="candidate">The candidate, the current version and the means to score both.</param>
    /// <param name="cancellationToken">Cancels the evaluation.</param>
    /// <returns>Promote or not, and why.</returns>
    ValueTask<PromotionDecision> EvaluateAsync(PromotionCandidate candidate, CancellationToken cancellationToken);
}

/// <summary>A candidate version and what an evaluator needs to compare it with the current one.</summary>
/// <param name="Scope">The scope.</param>
/// <param name="Current">The current version.</param>
/// <param name="Candidate">The candidate's identity.</param>
/// <param name="Backend">The backend (to encode guard examples and score).</param>
/// <param name="CurrentStack">The adapter stack serving the current version.</param>
/// <param name="CandidateStack">The adapter stack the candidate would serve with.</param>
public sealed record PromotionCandidate(string Scope, AdapterVersion Current, AdapterVersion Candidate, ILearningBackend Backend, IReadOnlyList<IAdapterWeights> CurrentStack, IReadOnlyList<IAdapterWeights> CandidateStack);

/// <summary>An evaluator's verdict.</summary>
/// <param name="Promote">Whether the candidate becomes current.</param>
/// <param name="Reason">Why (recorded in the ledger).</param>
public sealed record PromotionDecision(bool Promote, string? Reason)
{
    /// <summary>Promote without comment.</summary>
    public static PromotionDecision Accept { get; } = new(true, null);

    /// <summary>The figures the decision rests on (e.g. guard accuracy, probe perplexity), recorded in the ledger.</summary>
    public IReadOnlyDictionary<string, double>? Figures { get; init; }
}

/// <summary>The default evaluator: every candidate is promoted.</summary>
public sealed class PromoteAlways : IVersionEvaluator
{
    /// <inheritdoc />
    public ValueTask<PromotionDecision> EvaluateAsync(PromotionCandidate candidate, CancellationToken cancellationToken) => ValueTask.FromResult(PromotionDecision.Accept);
}
