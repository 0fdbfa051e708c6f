using System.Globalization;

namespace LiveLearning.Governance;

/// <summary>Settings of <see cref="InfluenceCapRule"/>.</summary>
public sealed record InfluenceCapOptions
{
    /// <summary>Largest share of a scope's recent accepted items one source may have, in (0, 1]. Default 0.25.</summary>
    public double MaxShare { get; init; } = 0.25;

    /// <summary>Recent accepted items per scope the share is taken over. Default 200.</summary>
    public int Window { get; init; } = 200;

    /// <summary>The cap applies once the window holds this many items (before, any source may fill it). Default 50.</summary>
    public int MinItems { get; init; } = 50;

    /// <summary>Scopes tracked (the least recently used one is forgotten beyond it). Default 1 024.</summary>
    public int MaxScopes { get; init; } = 1_024;
}

/// <summary>
/// A cap on cumulative influence: no source may drive more than <see cref="InfluenceCapOptions.MaxShare"/> of a scope's
/// last <see cref="InfluenceCapOptions.Window"/> accepted items, so one source flooding a scope is held to its share
/// however fast it sends. Meant for scopes fed by many sources: a scope with one source would refuse it once the window
/// has <see cref="InfluenceCapOptions.MinItems"/> items.
/// </summary>
/// <remarks>Only accepted items count (<see cref="IFeedbackAcceptanceObserver"/>).</remarks>
public sealed class InfluenceCapRule : IFeedbackRule, IFeedbackAcceptanceObserver
{
    private readonly InfluenceCapOptions _options;
    private readonly BoundedMap<Shares> _scopes;

    /// <summary>Creates the rule.</summary>
    /// <param name="options">The settings; null for the defaults.</param>
    /// <exception cref="ArgumentException">A setting is out of range.</exception>
    public InfluenceCapRule(InfluenceCapOptions? options = null)
    {
        _options = options ?? new InfluenceCapOptions();
        if (!(_options.MaxShare is > 0 and <= 1) || _options.Window < 1 || _options.MinItems < 0 || _options.MinItems > _options.Window || _options.MaxScopes < 1)
        {
            throw new ArgumentException("InfluenceCap needs MaxShare in (0, 1], Window ≥ 1, MinItems in [0, Window] and MaxScopes ≥ 1.", nameof(options));
        }

        _scopes = new BoundedMap<Shares>(_options.MaxScopes);
    }

    /// <inheritdoc />
    public string Name => "influence-cap";

    /// <inheritdoc />
    public ValueTask<string?> CheckAsync(GateContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        string source = context.Feedback.Source;
        lock (_scopes)
        {
            if (!_scopes.TryGet(context.Scope, out Shares? shares))
            {
                return ValueTask.FromResult<string?>(null);
            }

            // The window as it would be with this item in it.
            (int mine, int total) = shares!.IfAdded(source, _options.Window);
            double share = (double)mine / total;
            if (total >= _options.MinItems && share > _options.MaxShare)
            {
                return ValueTask.FromResult<string?>(string.Create(CultureInfo.InvariantCulture, $"source '{source}' would drive {mine} of the scope's last {total} items ({100 * share:0.#}%); at most {100 * _options.MaxShare:0.#}%"));
            }
        }

        return ValueTask.FromResult<string?>(null);
    }

    /// <inheritdoc />
    public void OnAccepted(GateContext context, long sequence)
    {
        ArgumentNullException.ThrowIfNull(context);
        lock (_scopes)
        {
            _scopes.GetOrAdd(context.Scope, () => new Shares()).Add(context.Feedback.Source, _options.Window);
        }
    }

    /// <summary>A scope's last accepted items' sources, and how many each has.</summary>
    private sealed class Shares
    {
        private readonly Queue<string> _order = new();
        private readonly Dictionary<string, int> _counts = new(StringComparer.Ordinal);

        public (int Mine, int Total) IfAdded(string source, int window)
        {
            int mine = _counts.GetValueOrDefault(source) + 1;
            int total = _order.Count + 1;
            if (total > window)
            {
                total = window;
                mine -= _order.Peek() == source ? 1 : 0;
            }

            return (mine, total);
        }

        public void Add(string source, int window)
        {
            _order.Enqueue(source);
            _counts[source] = _counts.GetValueOrDefault(source) + 1;
            while (_order.Count > window)
            {
                string old = _order.Dequeue();
                if (--_counts[old] == 0)
                {
                    _counts.Remove(old);
                }
            }
        }
    }
}
