namespace LiveLearning.Models;

/// <summary>
/// A training objective over the sequences of a batch, given to <see cref="LlamaModel.ComputeGradients(IReadOnlyList{TrainingSequence}, IModelAdapter, AdapterGradients, SequenceObjective?)"/>
/// as one weight per sequence: the derivative of the objective with respect to that sequence's summed cross-entropy
/// (over its labelled positions). A per-token mean is a positive constant weight; DPO and KTO weights are signed and
/// depend on the sequences' current log-likelihoods, which the model computes first when <see cref="NeedsLogLikelihoods"/>.
/// </summary>
/// <remarks>
/// Any objective <c>L(ll_1, …, ll_S)</c> of the sequences' log-likelihoods <c>ll_s = −CE_s</c> has
/// <c>∂L/∂θ = Σ_s (∂L/∂CE_s) · ∂CE_s/∂θ</c>, so the engine's backward only needs these weights: the objective itself never
/// touches a tensor.
/// </remarks>
public abstract class SequenceObjective
{
    /// <summary>
    /// Whether <see cref="Weigh"/> needs the log-likelihoods under the current parameters (an extra head pass when the
    /// batch's logits exceed one chunk). False: <see cref="Weigh"/> is called first with an empty span.
    /// </summary>
    public abstract bool NeedsLogLikelihoods { get; }

    /// <summary>Writes each sequence's weight and returns the objective's value (used when <see cref="NeedsLogLikelihoods"/>).</summary>
    /// <param name="logLikelihoods">Per sequence, the summed log-probability of its labelled tokens (empty unless <see cref="NeedsLogLikelihoods"/>).</param>
    /// <param name="countedTokens">Per sequence, its labelled positions.</param>
    /// <param name="weights">Per sequence, the weight to write: <c>∂L/∂CE_s</c>.</param>
    /// <returns>The objective's value (ignored when <see cref="NeedsLogLikelihoods"/> is false: the model then reports <c>Σ_s weight_s · CE_s</c>).</returns>
    public abstract double Weigh(ReadOnlySpan<double> logLikelihoods, ReadOnlySpan<int> countedTokens, Span<float> weights);
}
