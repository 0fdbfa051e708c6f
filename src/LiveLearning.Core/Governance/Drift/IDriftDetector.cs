namespace LiveLearning.Governance;

/// <summary>
/// Watches a stream of values (the progressive loss: each new item's loss before it is learned) and raises an alarm when
/// its mean has risen — the feedback no longer agrees with what the model has learned.
/// </summary>
/// <remarks>One instance per scope, fed by that scope's learner only (not thread-safe).</remarks>
public interface IDriftDetector
{
    /// <summary>The detector's name (the ledger names it).</summary>
    string Name { get; }

    /// <summary>Adds one value.</summary>
    /// <param name="value">The value (non-finite values are ignored).</param>
    /// <returns>Whether the alarm fired on this value.</returns>
    bool Add(double value);

    /// <summary>What the detector saw when it last fired: a readable account and its figures.</summary>
    DriftReport? LastAlarm { get; }

    /// <summary>Forgets everything seen (after an alarm was handled).</summary>
    void Reset();
}

/// <summary>Why a drift alarm fired.</summary>
/// <param name="Message">A readable account.</param>
/// <param name="Figures">The figures (means before and after, the statistic and its threshold).</param>
public sealed record DriftReport(string Message, IReadOnlyDictionary<string, double> Figures);

/// <summary>
/// Settings of <see cref="PageHinkley"/>. The defaults suit per-token losses (nats) whose item-to-item standard
/// deviation σ is up to about 1: the cumulative sum drifts down by δ per item, so a stationary stream exceeds λ with
/// probability about exp(−2δλ/σ²) per excursion (e^−12.5 at σ = 1), and a rise of Δ is caught after about λ/(Δ − δ)
/// items (33 for Δ = 1 nat).
/// </summary>
public sealed record PageHinkleyOptions
{
    /// <summary>Magnitude of change tolerated (δ): deviations from the running mean below it do not accumulate. Default 0.25.</summary>
    public double Delta { get; init; } = 0.25;

    /// <summary>Alarm threshold (λ) on the cumulative deviation above its minimum. Default 25.</summary>
    public double Threshold { get; init; } = 25;

    /// <summary>Values seen before an alarm may fire. Default 30.</summary>
    public int MinItems { get; init; } = 30;

    /// <summary>Fading factor of the cumulative sum (1: none). Default 0.9999.</summary>
    public double Alpha { get; init; } = 0.9999;
}

/// <summary>Settings of <see cref="Adwin"/>.</summary>
public sealed record AdwinOptions
{
    /// <summary>Confidence (δ) of a cut: smaller is fewer false alarms and later detection. Default 0.002.</summary>
    public double Delta { get; init; } = 0.002;

    /// <summary>Buckets per size in the exponential histogram (memory O(M log n), precision 1/M). Default 5.</summary>
    public int MaxBucketsPerRow { get; init; } = 5;

    /// <summary>Values in each of the two sub-windows before a cut may be declared. Default 10.</summary>
    public int MinSubWindow { get; init; } = 10;
}
