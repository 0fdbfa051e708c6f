using System.Globalization;

namespace LiveLearning;

/// <summary>The optimizer that updates the trainable (adapter) parameters.</summary>
public enum OptimizerKind
{
    /// <summary>AdamW with decoupled weight decay and bias correction (<c>torch.optim.AdamW</c>).</summary>
    AdamW,

    /// <summary>SGD with momentum (<c>torch.optim.SGD</c> with <c>momentum</c>, <c>dampening</c> 0, optional Nesterov).</summary>
    SgdMomentum,
}

/// <summary>
/// How one optimizer step is taken: the update rule and its hyper-parameters, the learning-rate warm-up and the
/// global gradient-norm clipping. An immutable value: a learner copies it once per step, so a change applies from the
/// next step on.
/// </summary>
public sealed record OptimizerOptions
{
    /// <summary>The update rule. Default <see cref="OptimizerKind.AdamW"/>.</summary>
    public OptimizerKind Kind { get; init; } = OptimizerKind.AdamW;

    /// <summary>Peak learning rate (after warm-up). Default 1e-4.</summary>
    public float LearningRate { get; init; } = 1e-4f;

    /// <summary>
    /// Steps over which the learning rate rises linearly to <see cref="LearningRate"/>: step <c>s</c> (1-based) uses
    /// <c>LearningRate · min(1, s / WarmupSteps)</c>. 0 (the default) starts at the full rate.
    /// </summary>
    public int WarmupSteps { get; init; }

    /// <summary>Weight decay: decoupled for AdamW, added to the gradient for SGD. Default 0.</summary>
    public float WeightDecay { get; init; }

    /// <summary>AdamW first-moment decay. Default 0.9.</summary>
    public float Beta1 { get; init; } = 0.9f;

    /// <summary>AdamW second-moment decay. Default 0.999.</summary>
    public float Beta2 { get; init; } = 0.999f;

    /// <summary>AdamW denominator epsilon. Default 1e-8.</summary>
    public float Epsilon { get; init; } = 1e-8f;

    /// <summary>SGD momentum. Default 0.9.</summary>
    public float Momentum { get; init; } = 0.9f;

    /// <summary>SGD Nesterov momentum. Default false.</summary>
    public bool Nesterov { get; init; }

    /// <summary>
    /// Global L2 norm the gradients are clipped to before the update (<c>clip_grad_norm_</c>), or
    /// <see langword="null"/> for none. Default 1.
    /// </summary>
    public double? MaxGradNorm { get; init; } = 1.0;

    /// <summary>The learning rate of 1-based step <paramref name="step"/> under the warm-up.</summary>
    /// <param name="step">The step about to be taken (1 for the first).</param>
    /// <returns>The learning rate.</returns>
    public float LearningRateAt(long step)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(step, 1);
        return WarmupSteps <= 0 || step >= WarmupSteps ? LearningRate : (float)((double)LearningRate * step / WarmupSteps);
    }

    /// <summary>Checks every setting and names the first that is out of range.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A setting is out of range.</exception>
    public void Validate()
    {
        ArgumentOutOfRangeException? first = Problems().FirstOrDefault();
        if (first is not null)
        {
            throw first;
        }
    }

    /// <summary>Every setting that is out of range (one exception each, naming it), in the order <see cref="Validate"/> checks them.</summary>
    internal IEnumerable<ArgumentOutOfRangeException> Problems()
    {
        if (!Enum.IsDefined(Kind))
        {
            yield return new ArgumentOutOfRangeException(nameof(Kind), Kind, "Kind must be AdamW or SgdMomentum.");
        }

        ArgumentOutOfRangeException?[] settings =
        [
            FiniteNonNegative(LearningRate, nameof(LearningRate)),
            FiniteNonNegative(WeightDecay, nameof(WeightDecay)),
            FiniteNonNegative(Epsilon, nameof(Epsilon)),
            UnitInterval(Beta1, nameof(Beta1)),
            UnitInterval(Beta2, nameof(Beta2)),
            UnitInterval(Momentum, nameof(Momentum)),
        ];
        foreach (ArgumentOutOfRangeException? problem in settings)
        {
            if (problem is not null)
            {
                yield return problem;
            }
        }

        if (WarmupSteps < 0)
        {
            yield return new ArgumentOutOfRangeException(nameof(WarmupSteps), WarmupSteps, "WarmupSteps must not be negative.");
        }

        if (MaxGradNorm is double max && !(max > 0))
        {
            yield return new ArgumentOutOfRangeException(nameof(MaxGradNorm), max, "MaxGradNorm must be > 0 (or null for no clipping).");
        }
    }

    private static ArgumentOutOfRangeException? FiniteNonNegative(float value, string name) =>
        !(value >= 0) || float.IsInfinity(value)
            ? new ArgumentOutOfRangeException(name, value, string.Create(CultureInfo.InvariantCulture, $"{name} must be a finite number >= 0."))
            : null;

    private static ArgumentOutOfRangeException? UnitInterval(float value, string name) =>
        !(value >= 0 && value < 1)
            ? new ArgumentOutOfRangeException(name, value, string.Create(CultureInfo.InvariantCulture, $"{name} must be in [0, 1)."))
            : null;
}
