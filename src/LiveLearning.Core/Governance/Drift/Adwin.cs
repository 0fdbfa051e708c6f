using System.Globalization;

namespace LiveLearning.Governance;

/// <summary>
/// ADWIN (adaptive windowing, in its exponential-histogram form): keeps a window of recent values as buckets of sizes
/// 1, 2, 4, … (at most <see cref="AdwinOptions.MaxBucketsPerRow"/> of each size) and drops its older part whenever
/// the means of the two sub-windows differ by more than
/// ε = √(2/m · σ²_W · ln(2/δ′)) + 2/(3m) · ln(2/δ′), with m = 1/(1/n₀ + 1/n₁), δ′ = δ / ln n and σ²_W the window's
/// variance. Memory and time per value are O(M log n). The alarm fires only on a cut where the newer mean is higher.
/// </summary>
public sealed class Adwin : IDriftDetector
{
    private readonly AdwinOptions _options;
    private readonly List<List<Bucket>> _rows = [];
    private long _count;
    private double _sum;
    private double _m2;

    /// <summary>Creates the detector.</summary>
    /// <param name="options">The settings; null for the defaults.</param>
    /// <exception cref="ArgumentException">A setting is out of range.</exception>
    public Adwin(AdwinOptions? options = null)
    {
        _options = options ?? new AdwinOptions();
        if (!(_options.Delta is > 0 and < 1) || _options.MaxBucketsPerRow < 2 || _options.MinSubWindow < 1)
        {
            throw new ArgumentException("ADWIN needs Delta in (0, 1), MaxBucketsPerRow ≥ 2 and MinSubWindow ≥ 1.", nameof(options));
        }
    }

    /// <inheritdoc />
    public string Name => "adwin";

    /// <inheritdoc />
    public DriftReport? LastAlarm { get; private set; }

    /// <summary>Values in the window now.</summary>
    public long Width => _count;

    /// <summary>The window's mean.</summary>
    public double Mean => _count == 0 ? 0 : _sum / _count;

    /// <inheritdoc />
    public bool Add(double value)
    {
        if (!double.IsFinite(value))
        {
            return false;
        }

        Insert(new Bucket(1, value, 0));
        bool rose = false;
        while (FindCut() is { } cut)
        {
            rose |= cut.After > cut.Before;
            if (cut.After > cut.Before)
            {
                LastAlarm = new DriftReport(
                    string.Create(CultureInfo.InvariantCulture, $"ADWIN: the loss's mean rose from {cut.Before:0.####} over {cut.OlderCount} items to {cut.After:0.####} over the last {_count - cut.OlderCount} (ε {cut.Epsilon:0.####}, δ {_options.Delta})"),
                    new Dictionary<string, double>(StringComparer.Ordinal) { ["mean_before"] = cut.Before, ["mean_after"] = cut.After, ["epsilon"] = cut.Epsilon, ["window"] = _count });
            }

            RemoveOldest();
        }

        return rose;
    }

    /// <inheritdoc />
    public void Reset()
    {
        _rows.Clear();
        (_count, _sum, _m2) = (0, 0, 0);
    }

    private void Insert(Bucket bucket)
    {
        (_count, _sum, _m2) = Merge((_count, _sum, _m2), bucket);
        for (int row = 0; ; row++)
        {
            if (row == _rows.Count)
            {
                _rows.Add([]);
            }

            _rows[row].Add(bucket);
            if (_rows[row].Count <= _options.MaxBucketsPerRow)
            {
                return;
            }

            // The row's two oldest become one bucket of twice the size, the newest of the next row.
            Bucket a = _rows[row][0], b = _rows[row][1];
            _rows[row].RemoveRange(0, 2);
            (long n, double s, double m2) = Merge((a.Count, a.Sum, a.M2), b);
            bucket = new Bucket(n, s, m2);
        }
    }

    /// <summary>The first split (oldest first) whose sub-window means differ by more than ε, or null.</summary>
    private Cut? FindCut()
    {
        if (_count < 2 * _options.MinSubWindow)
        {
            return null;
        }

        double variance = _m2 / _count;
        double logTerm = Math.Log(2 * Math.Log(_count) / _options.Delta);
        long n0 = 0;
        double s0 = 0;
        for (int row = _rows.Count - 1; row >= 0; row--)
        {
            foreach (Bucket b in _rows[row])
            {
                n0 += b.Count;
                s0 += b.Sum;
                long n1 = _count - n0;
                if (n1 < _options.MinSubWindow)
                {
                    return null;
                }

                if (n0 < _options.MinSubWindow)
                {
                    continue;
                }

                double m = 1.0 / ((1.0 / n0) + (1.0 / n1));
                double epsilon = Math.Sqrt(2 / m * variance * logTerm) + (2 / (3 * m) * logTerm);
                double before = s0 / n0, after = (_sum - s0) / n1;
                if (Math.Abs(before - after) > epsilon)
                {
                    return new Cut(before, after, epsilon, n0);
                }
            }
        }

        return null;
    }

    private void RemoveOldest()
    {
        List<Bucket> row = _rows.FindLast(r => r.Count > 0)!;
        Bucket b = row[0];
        row.RemoveAt(0);
        long rest = _count - b.Count;
        if (rest == 0)
        {
            Reset();
            return;
        }

        // The parallel-variance formula run backwards: M2 = M2_rest + M2_b + n_b·n_rest·(μ_b − μ_rest)² / n.
        double restMean = (_sum - b.Sum) / rest;
        double d = (b.Sum / b.Count) - restMean;
        _m2 = Math.Max(0, _m2 - b.M2 - (b.Count * rest * d * d / _count));
        _sum -= b.Sum;
        _count = rest;
        while (_rows.Count > 0 && _rows[^1].Count == 0)
        {
            _rows.RemoveAt(_rows.Count - 1);
        }
    }

    /// <summary>Chan's parallel update: the count, sum and M2 of two merged groups.</summary>
    private static (long Count, double Sum, double M2) Merge((long Count, double Sum, double M2) a, Bucket b)
    {
        if (a.Count == 0)
        {
            return (b.Count, b.Sum, b.M2);
        }

        long n = a.Count + b.Count;
        double d = (b.Sum / b.Count) - (a.Sum / a.Count);
        return (n, a.Sum + b.Sum, a.M2 + b.M2 + (d * d * a.Count * b.Count / n));
    }

    private readonly record struct Bucket(long Count, double Sum, double M2);

    private readonly record struct Cut(double Before, double After, double Epsilon, long OlderCount);
}
