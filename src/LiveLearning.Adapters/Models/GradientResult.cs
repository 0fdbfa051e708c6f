namespace LiveLearning.Models;

/// <summary>Result of a forward + backward pass.</summary>
/// <param name="Loss">Mean cross-entropy over the counted positions.</param>
/// <param name="CountedPositions">Positions that contributed to the loss.</param>
/// <param name="ActivationBytes">Bytes of activations kept for the backward pass.</param>
public readonly record struct GradientResult(float Loss, int CountedPositions, long ActivationBytes);
