using System.Globalization;

namespace LiveLearning.Governance;

/// <summary>A token-bucket rate: <paramref name="PerSecond"/> items per second on average, up to <paramref name="Burst"/> at once.</summary>
/// <param name="PerSecond">Sustained items per second (0: only the burst, never refilled).</param>
/// <param name="Burst">Items allowed at once (the bucket's size; 0 admits nothing).</param>
public readonly record struct RateLimit(double PerSecond, int Burst)
{
    /// <summary>Throws when the rate is negative or not finite, or the burst is negative.</summary>
    /// <param name="paramName">The argument's name.</param>
    /// <exception cref="ArgumentOutOfRangeException">The rate is invalid.</exception>
    public void Validate(string paramName)
    {
        if (!double.IsFinite(PerSecond) || PerSecond < 0 || Burst < 0)
        {
            throw new ArgumentOutOfRangeException(paramName, this, "A rate needs a finite PerSecond ≥ 0 and a Burst ≥ 0.");
        }
    }

    /// <inheritdoc />
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{PerSecond:0.###}/s, burst {Burst}");
}

/// <summary>Settings of <see cref="RateLimitRule"/>.</summary>
public sealed record RateLimitOptions
{
    /// <summary>The rate of every source without its own. Default 1 item per second, burst 30.</summary>
    public RateLimit Default { get; init; } = new(1, 30);

    /// <summary>Sources tracked (the least recently seen one is forgotten, and starts again with a full bucket). Default 100 000.</summary>
    public int MaxSources { get; init; } = 100_000;
}

/// <summary>
/// Per-source rate limits (token buckets, across all scopes), with per-source rates an owner sets and clears at run
/// time (<see cref="ILiveModel.SetSourceRate"/> records each change in the ledger).
/// </summary>
/// <remarks>Only accepted items take a token (<see cref="IFeedbackAcceptanceObserver"/>); time is the given clock's.</remarks>
public sealed class RateLimitRule : IFeedbackRule, IFeedbackAcceptanceObserver
{
    private readonly RateLimitOptions _options;
    private readonly TimeProvider _time;
    private readonly BoundedMap<Bucket> _buckets;
    private readonly Dictionary<string, RateLimit> _rates = new(StringComparer.Ordinal);

    /// <summary>Creates the rule.</summary>
    /// <param name="options">The settings; null for the defaults.</param>
    /// <param name="time">The clock; null for the system clock.</param>
    /// <exception cref="ArgumentException">The default rate is invalid or MaxSources is below 1.</exception>
    public RateLimitRule(RateLimitOptions? options = null, TimeProvider? time = null)
    {
        _options = options ?? new RateLimitOptions();
        _options.Default.Validate(nameof(options));
        if (_options.MaxSources < 1)
        {
            throw new ArgumentException("MaxSources must be at least 1.", nameof(options));
        }

        _time = time ?? TimeProvider.System;
        _buckets = new BoundedMap<Bucket>(_options.MaxSources);
    }

    /// <inheritdoc />
    public string Name => "rate-limit";

    /// <summary>The rates set per source (those not listed follow the default).</summary>
    public IReadOnlyDictionary<string, RateLimit> Rates
    {
        get
        {
            lock (_buckets)
            {
                return new Dictionary<string, RateLimit>(_rates, StringComparer.Ordinal);
            }
        }
    }

    /// <summary>Gives <paramref name="source"/> its own rate (its bucket is refilled to the new burst at most).</summary>
    /// <param name="source">The source.</param>
    /// <param name="rate">The rate.</param>
    /// <exception cref="ArgumentException">The source is empty or the rate invalid.</exception>
    public void SetRate(string source, RateLimit rate)
    {
        ArgumentException.ThrowIfNullOrEmpty(source);
        rate.Validate(nameof(rate));
        lock (_buckets)
        {
            _rates[source] = rate;
            if (_buckets.TryGet(source, out Bucket? b))
            {
                b!.Tokens = Math.Min(b.Tokens, rate.Burst);
            }
        }
    }

    /// <summary>Returns <paramref name="source"/> to the default rate.</summary>
    /// <param name="source">The source.</param>
    /// <returns>Whether it had a rate of its own.</returns>
    public bool ClearRate(string source)
    {
        ArgumentException.ThrowIfNullOrEmpty(source);
        lock (_buckets)
        {
            return _rates.Remove(source);
        }
    }

    /// <summary>The rate <paramref name="source"/> follows.</summary>
    /// <param name="source">The source.</param>
    /// <returns>Its own rate or the default.</returns>
    public RateLimit RateOf(string source)
    {
        lock (_buckets)
        {
            return _rates.GetValueOrDefault(source, _options.Default);
        }
    }

    /// <inheritdoc />
    public ValueTask<string?> CheckAsync(GateContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        string source = context.Feedback.Source;
        DateTimeOffset now = _time.GetUtcNow();
        lock (_buckets)
        {
            RateLimit rate = _rates.GetValueOrDefault(source, _options.Default);
            double tokens = _buckets.TryGet(source, out Bucket? b) ? b!.Refill(now, rate) : rate.Burst;
            if (tokens < 1)
            {
                return ValueTask.FromResult<string?>($"source '{source}' is over its rate ({rate})");
            }
        }

        return ValueTask.FromResult<string?>(null);
    }

    /// <inheritdoc />
    public void OnAccepted(GateContext context, long sequence)
    {
        ArgumentNullException.ThrowIfNull(context);
        string source = context.Feedback.Source;
        DateTimeOffset now = _time.GetUtcNow();
        lock (_buckets)
        {
            RateLimit rate = _rates.GetValueOrDefault(source, _options.Default);
            Bucket b = _buckets.GetOrAdd(source, () => new Bucket { Tokens = rate.Burst, At = now });
            b.Refill(now, rate);
            b.Tokens -= 1;
        }
    }

    /// <summary>A source's bucket: tokens left (below 0 when concurrent items passed together) as of a time.</summary>
    private sealed class Bucket
    {
        public double Tokens { get; set; }

        public DateTimeOffset At { get; set; }

        public double Refill(DateTimeOffset now, RateLimit rate)
        {
            if (now > At)
            {
                Tokens = Math.Min(rate.Burst, Tokens + ((now - At).TotalSeconds * rate.PerSecond));
                At = now;
            }

            return Tokens;
        }
    }
}
