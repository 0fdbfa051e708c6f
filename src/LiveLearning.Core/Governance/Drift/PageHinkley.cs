using System.Globalization;

namespace LiveLearning.Governance;

/// <summary>
/// The Page-Hinkley test for a rise in the mean: with x̄ₜ the running mean, mₜ = α·mₜ₋₁ + (xₜ − x̄ₜ − δ) and
/// Mₜ = min mᵢ, the alarm fires when mₜ − Mₜ &gt; λ (after <see cref="PageHinkleyOptions.MinItems"/> values).
/// Constant memory and time per value.
/// </summary>
public sealed class PageHinkley : IDriftDetector
{
    private readonly PageHinkleyOptions _options;
    private long _count;
    private double _mean;
    private double _sum;
    private double _min;

    /// <summary>Creates the detector.</summary>
    /// <param name="options">The settings; null for the defaults.</param>
    /// <exception cref="ArgumentException">A setting is out of range.</exception>
    public PageHinkley(PageHinkleyOptions? options = null)
    {
        _options = options ?? new PageHinkleyOptions();
        if (!(_options.Delta >= 0) || !(_options.Threshold > 0) || _options.MinItems < 1 || !(_options.Alpha is > 0 and <= 1))
        {
            throw new ArgumentException("Page-Hinkley needs Delta ≥ 0, Threshold > 0, MinItems ≥ 1 and Alpha in (0, 1].", nameof(options));
        }
    }

    /// <inheritdoc />
    public string Name => "page-hinkley";

    /// <inheritdoc />
    public DriftReport? LastAlarm { get; private set; }

    /// <inheritdoc />
    public bool Add(double value)
    {
        if (!double.IsFinite(value))
        {
            return false;
        }

        _count++;
        _mean += (value - _mean) / _count;
        _sum = (_options.Alpha * _sum) + (value - _mean - _options.Delta);
        _min = Math.Min(_min, _sum);
        double statistic = _sum - _min;
        if (_count < _options.MinItems || statistic <= _options.Threshold)
        {
            return false;
        }

        LastAlarm = new DriftReport(
            string.Create(CultureInfo.InvariantCulture, $"Page-Hinkley: the cumulative rise of the loss over its running mean {_mean:0.####} reached {statistic:0.##} > λ {_options.Threshold:0.##} after {_count} items"),
            new Dictionary<string, double>(StringComparer.Ordinal) { ["mean"] = _mean, ["statistic"] = statistic, ["threshold"] = _options.Threshold, ["items"] = _count });
        return true;
    }

    /// <inheritdoc />
    public void Reset() => (_count, _mean, _sum, _min) = (0, 0, 0, 0);
}
