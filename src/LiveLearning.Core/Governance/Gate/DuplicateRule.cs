using System.Globalization;

namespace LiveLearning.Governance;

/// <summary>Settings of <see cref="DuplicateRule"/>.</summary>
public sealed record DuplicateRuleOptions
{
    /// <summary>Accepted items remembered per scope (first in, first out). Default 10 000.</summary>
    public int Window { get; init; } = 10_000;

    /// <summary>
    /// Estimated Jaccard similarity of character shingles at or above which an item is a near duplicate of a remembered
    /// one; 0 checks exact duplicates only. Default 0.85.
    /// </summary>
    public double NearThreshold { get; init; } = 0.85;

    /// <summary>Characters per shingle. Default 5.</summary>
    public int ShingleLength { get; init; } = 5;

    /// <summary>Scopes remembered (the least recently used one is forgotten beyond it). Default 1 024.</summary>
    public int MaxScopes { get; init; } = 1_024;
}

/// <summary>
/// Exact and near duplicates within a scope. Items are compared by their normalised text (kind and rating polarity,
/// prompt and completions, lower-cased, white space collapsed): equal text is an exact duplicate; otherwise a MinHash
/// signature (64 hashes over character shingles) is bucketed by locality-sensitive hashing (16 bands of 4) and an item
/// whose estimated Jaccard similarity to a remembered one reaches <see cref="DuplicateRuleOptions.NearThreshold"/> is a
/// near duplicate.
/// </summary>
/// <remarks>
/// Only accepted items are remembered (<see cref="IFeedbackAcceptanceObserver"/>), so an item another rule refused does
/// not block a later copy. Two copies checked at the same instant may both pass: the window is updated when an item is
/// accepted, not when it is checked. Memory is bounded: <see cref="DuplicateRuleOptions.Window"/> items per scope (a
/// signature is 512 bytes) and <see cref="DuplicateRuleOptions.MaxScopes"/> scopes.
/// </remarks>
public sealed class DuplicateRule : IFeedbackRule, IFeedbackAcceptanceObserver
{
    private readonly DuplicateRuleOptions _options;
    private readonly BoundedMap<ScopeWindow> _scopes;

    /// <summary>Creates the rule.</summary>
    /// <param name="options">The settings; null for the defaults.</param>
    /// <exception cref="ArgumentException">A setting is out of range.</exception>
    public DuplicateRule(DuplicateRuleOptions? options = null)
    {
        _options = options ?? new DuplicateRuleOptions();
        if (_options.Window < 1 || _options.MaxScopes < 1 || _options.ShingleLength < 1)
        {
            throw new ArgumentException("Window, MaxScopes and ShingleLength must be at least 1.", nameof(options));
        }

        if (!(_options.NearThreshold is >= 0 and <= 1))
        {
            throw new ArgumentException($"NearThreshold must be in [0, 1]; it is {_options.NearThreshold}.", nameof(options));
        }

        _scopes = new BoundedMap<ScopeWindow>(_options.MaxScopes);
    }

    /// <inheritdoc />
    public string Name => "duplicate";

    /// <inheritdoc />
    public ValueTask<string?> CheckAsync(GateContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        Entry item = Describe(context.Feedback);
        lock (_scopes)
        {
            if (!_scopes.TryGet(context.Scope, out ScopeWindow? window))
            {
                return ValueTask.FromResult<string?>(null);
            }

            if (window!.Exact.ContainsKey(item.Exact))
            {
                return ValueTask.FromResult<string?>("an exact duplicate of an item accepted recently");
            }

            if (item.Signature is { } signature && window.MostSimilar(signature) is { } best && best.Similarity >= _options.NearThreshold)
            {
                return ValueTask.FromResult<string?>(string.Create(CultureInfo.InvariantCulture, $"a near duplicate (estimated similarity {best.Similarity:0.00} ≥ {_options.NearThreshold:0.00}) of an item accepted recently (#{best.Sequence})"));
            }
        }

        return ValueTask.FromResult<string?>(null);
    }

    /// <inheritdoc />
    public void OnAccepted(GateContext context, long sequence)
    {
        ArgumentNullException.ThrowIfNull(context);
        Entry item = Describe(context.Feedback) with { Sequence = sequence };
        lock (_scopes)
        {
            _scopes.GetOrAdd(context.Scope, () => new ScopeWindow()).Add(item, _options.Window);
        }
    }

    private Entry Describe(Feedback feedback)
    {
        string text = FeedbackText.Normalised(feedback);
        ulong exact = MinHash.Fnv1a(text);
        return new Entry(exact, _options.NearThreshold > 0 ? MinHash.Signature(text, _options.ShingleLength) : null, 0);
    }

    private sealed record Entry(ulong Exact, ulong[]? Signature, long Sequence);

    /// <summary>One scope's remembered items: exact hashes counted, signatures bucketed by band.</summary>
    private sealed class ScopeWindow
    {
        private readonly Queue<Entry> _order = new();
        private readonly Dictionary<ulong, List<Entry>> _bands = [];

        public Dictionary<ulong, int> Exact { get; } = [];

        public void Add(Entry item, int capacity)
        {
            _order.Enqueue(item);
            Exact[item.Exact] = Exact.GetValueOrDefault(item.Exact) + 1;
            if (item.Signature is { } signature)
            {
                for (int b = 0; b < MinHash.Bands; b++)
                {
                    ulong key = MinHash.BandKey(signature, b);
                    if (!_bands.TryGetValue(key, out List<Entry>? bucket))
                    {
                        _bands[key] = bucket = [];
                    }

                    bucket.Add(item);
                }
            }

            while (_order.Count > capacity)
            {
                Remove(_order.Dequeue());
            }
        }

        public (double Similarity, long Sequence)? MostSimilar(ulong[] signature)
        {
            (double Similarity, long Sequence)? best = null;
            for (int b = 0; b < MinHash.Bands; b++)
            {
                if (!_bands.TryGetValue(MinHash.BandKey(signature, b), out List<Entry>? bucket))
                {
                    continue;
                }

                foreach (Entry e in bucket)
                {
                    double s = MinHash.Similarity(signature, e.Signature!);
                    if (best is null || s > best.Value.Similarity)
                    {
                        best = (s, e.Sequence);
                    }
                }
            }

            return best;
        }

        private void Remove(Entry item)
        {
            if (--Exact[item.Exact] == 0)
            {
                Exact.Remove(item.Exact);
            }

            if (item.Signature is { } signature)
            {
                for (int b = 0; b < MinHash.Bands; b++)
                {
                    ulong key = MinHash.BandKey(signature, b);
                    List<Entry> bucket = _bands[key];
                    bucket.Remove(item);
                    if (bucket.Count == 0)
                    {
                        _bands.Remove(key);
                    }
                }
            }
        }
    }
}
