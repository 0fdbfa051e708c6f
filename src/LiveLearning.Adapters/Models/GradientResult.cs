namespace LiveLearning.Models;

/// <summary>Result of a forward + backward pass.</summary>
/// <param name="Loss">Mean cross-entropy over the counted positions, or the <see cref="SequenceObjective"/>'s value.</param>
/// <param name="CountedPositions">Positions that contributed to the loss.</param>
/// <param name="ActivationBytes">Bytes of activations kept for the backward pass.</param>
public readonly record struct GradientResult(float Loss, int CountedPositions, long ActivationBytes)
{
    /// <summary>
    /// With a <see cref="SequenceObjective"/>: per sequence of the batch, the summed log-probability of its labelled
    /// tokens under the parameters before the update (what progressive validation scores); otherwise empty.
    /// </summary>
    public IReadOnlyList<double> SequenceLogLikelihoods { get; init; } = [];
}
