namespace LiveLearning.Governance;

/// <summary>
/// A robust z-score against a sliding window of recent values: <c>z = (x − median) / (1.4826 · MAD)</c>, where MAD is
/// the median absolute deviation (1.4826 · MAD estimates the standard deviation of normal data, and neither the median
/// nor the MAD moves much when a few values in the window are wild, unlike the mean and the standard deviation).
/// </summary>
/// <remarks>
/// <para>The scale has a floor — <see cref="MinScaleFraction"/> of |median|, and never below 1e-12 — so a window of
/// identical values does not make every different value infinitely surprising.</para>
/// <para>Not thread-safe: one learner owns it.</para>
/// </remarks>
public sealed class RobustZScore
{
    private readonly double[] _window;
    private readonly double[] _scratch;
    private int _count;
    private int _next;

    /// <summary>A window of the last <paramref name="capacity"/> values.</summary>
    /// <param name="capacity">Values kept (at least 3).</param>
    /// <param name="minScaleFraction">The scale's floor as a fraction of |median| (in [0, 1]). Default 0.02 (differences of a couple of per cent of the median are noise, not news).</param>
    public RobustZScore(int capacity, double minScaleFraction = 0.02)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 3);
        if (!(minScaleFraction >= 0 && minScaleFraction <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(minScaleFraction), minScaleFraction, "The scale floor must be in [0, 1].");
        }

        _window = new double[capacity];
        _scratch = new double[capacity];
        MinScaleFraction = minScaleFraction;
    }

    /// <summary>Values in the window now.</summary>
    public int Count => _count;

    /// <summary>The scale's floor as a fraction of |median|.</summary>
    public double MinScaleFraction { get; }

    /// <summary>Adds a finite value (the oldest leaves once the window is full); non-finite values are ignored.</summary>
    /// <param name="value">The value.</param>
    public void Add(double value)
    {
        if (!double.IsFinite(value))
        {
            return;
        }

        _window[_next] = value;
        _next = (_next + 1) % _window.Length;
        _count = Math.Min(_count + 1, _window.Length);
    }

    /// <summary>The robust z-score of <paramref name="value"/> against the window (0 for an empty window; +∞ for a non-finite value).</summary>
    /// <param name="value">The value.</param>
    /// <returns>Signed: positive above the median.</returns>
    public double Score(double value)
    {
        if (!double.IsFinite(value))
        {
            return double.PositiveInfinity;
        }

        if (_count == 0)
        {
            return 0;
        }

        (double median, double scale) = Statistics();
        return (value - median) / scale;
    }

    /// <summary>The window's median and robust scale (1.4826 · MAD, floored).</summary>
    /// <returns>Median and scale (0 and 1e-12 for an empty window).</returns>
    public (double Median, double Scale) Statistics()
    {
        if (_count == 0)
        {
            return (0, 1e-12);
        }

        Span<double> values = _scratch.AsSpan(0, _count);
        _window.AsSpan(0, _count).CopyTo(values);
        double median = Median(values);
        for (int i = 0; i < values.Length; i++)
        {
            values[i] = Math.Abs(values[i] - median);
        }

        double mad = Median(values);
        double scale = Math.Max(1.4826 * mad, Math.Max(MinScaleFraction * Math.Abs(median), 1e-12));
        return (median, scale);
    }

    private static double Median(Span<double> values)
    {
        values.Sort();
        int n = values.Length;
        return (n & 1) == 1 ? values[n / 2] : 0.5 * (values[(n / 2) - 1] + values[n / 2]);
    }
}
