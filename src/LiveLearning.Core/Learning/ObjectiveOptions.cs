using System.Globalization;

namespace LiveLearning;

/// <summary>
/// How preferences and ratings are learned: DPO (Rafailov et al.) for chosen-vs-rejected pairs and KTO (Ethayarajh et
/// al.) for thumbs up/down, both with the frozen model under the adapter as the reference.
/// </summary>
public sealed record ObjectiveOptions
{
    /// <summary>DPO β: how far the adapter may move from the reference to separate chosen from rejected. Default 0.1.</summary>
    public double DpoBeta { get; init; } = 0.1;

    /// <summary>KTO β. Default 0.1.</summary>
    public double KtoBeta { get; init; } = 0.1;

    /// <summary>KTO λ_D, the weight of desirable (thumbs-up) items. Default 1.</summary>
    public double KtoDesirableWeight { get; init; } = 1;

    /// <summary>KTO λ_U, the weight of undesirable (thumbs-down) items. Default 1.</summary>
    public double KtoUndesirableWeight { get; init; } = 1;

    /// <summary>
    /// KTO's reference point z₀ for this step. The paper estimates it per batch as the (clamped non-negative) KL between
    /// the policy and the reference on mismatched pairs; the learner instead keeps a running estimate: an exponential
    /// average (decay <see cref="KtoReferenceDecay"/>) of <c>max(0, log π(y|x) − log π_ref(y|x))</c> over the rated items it
    /// has scored, which needs no extra forward passes. Set by the learner; 0 before any rating.
    /// </summary>
    public double KtoReferencePoint { get; init; }

    /// <summary>Decay of the running KTO reference point (0 uses the latest item only). Default 0.9.</summary>
    public double KtoReferenceDecay { get; init; } = 0.9;

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
        ArgumentOutOfRangeException?[] settings =
        [
            Positive(DpoBeta, nameof(DpoBeta)),
            Positive(KtoBeta, nameof(KtoBeta)),
            NonNegative(KtoDesirableWeight, nameof(KtoDesirableWeight)),
            NonNegative(KtoUndesirableWeight, nameof(KtoUndesirableWeight)),
            NonNegative(KtoReferencePoint, nameof(KtoReferencePoint)),
            KtoReferenceDecay >= 0 && KtoReferenceDecay < 1 ? null : new ArgumentOutOfRangeException(nameof(KtoReferenceDecay), KtoReferenceDecay, "KtoReferenceDecay must be in [0, 1)."),
        ];
        return settings.OfType<ArgumentOutOfRangeException>();
    }

    private static ArgumentOutOfRangeException? Positive(double value, string name) =>
        !(value > 0) || double.IsInfinity(value)
            ? new ArgumentOutOfRangeException(name, value, string.Create(CultureInfo.InvariantCulture, $"{name} must be a finite number > 0."))
            : null;

    private static ArgumentOutOfRangeException? NonNegative(double value, string name) =>
        !(value >= 0) || double.IsInfinity(value)
            ? new ArgumentOutOfRangeException(name, value, string.Create(CultureInfo.InvariantCulture, $"{name} must be a finite number >= 0."))
            : null;
}
