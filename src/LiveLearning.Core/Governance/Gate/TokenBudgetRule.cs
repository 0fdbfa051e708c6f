using System.Globalization;

namespace LiveLearning.Governance;

/// <summary>Settings of <see cref="TokenBudgetRule"/>; 0 switches a limit off.</summary>
public sealed record TokenBudgetOptions
{
    /// <summary>Most tokens in one item (prompt, completion and a preference's rejected completion). Default 4 096.</summary>
    public int MaxTokensPerItem { get; init; } = 4_096;

    /// <summary>Most tokens one source's accepted items may carry within <see cref="Window"/> (all scopes). Default 200 000.</summary>
    public long MaxTokensPerSource { get; init; } = 200_000;

    /// <summary>The sliding window of <see cref="MaxTokensPerSource"/>. Default one hour.</summary>
    public TimeSpan Window { get; init; } = TimeSpan.FromHours(1);

    /// <summary>Sources tracked (the least recently seen one is forgotten beyond it). Default 100 000.</summary>
    public int MaxSources { get; init; } = 100_000;
}

/// <summary>
/// Token budgets: a ceiling on one item's tokens, and on the tokens one source's accepted items carry in a sliding
/// window — the compute any one caller may spend on training.
/// </summary>
/// <remarks>Only accepted items are charged (<see cref="IFeedbackAcceptanceObserver"/>); time is the given clock's.</remarks>
public sealed class TokenBudgetRule : IFeedbackRule, IFeedbackAcceptanceObserver
{
    private readonly TokenBudgetOptions _options;
    private readonly TimeProvider _time;
    private readonly BoundedMap<Spending> _sources;

    /// <summary>Creates the rule.</summary>
    /// <param name="options">The limits; null for the defaults.</param>
    /// <param name="time">The clock; null for the system clock.</param>
    /// <exception cref="ArgumentException">A limit is negative, the window is not positive, or MaxSources is below 1.</exception>
    public TokenBudgetRule(TokenBudgetOptions? options = null, TimeProvider? time = null)
    {
        _options = options ?? new TokenBudgetOptions();
        if (_options.MaxTokensPerItem < 0 || _options.MaxTokensPerSource < 0 || _options.Window <= TimeSpan.Zero || _options.MaxSources < 1)
        {
            throw new ArgumentException("Token limits must not be negative, Window must be positive and MaxSources at least 1.", nameof(options));
        }

        _time = time ?? TimeProvider.System;
        _sources = new BoundedMap<Spending>(_options.MaxSources);
    }

    /// <inheritdoc />
    public string Name => "token-budget";

    /// <inheritdoc />
    public ValueTask<string?> CheckAsync(GateContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        long tokens = Tokens(context);
        if (_options.MaxTokensPerItem > 0 && tokens > _options.MaxTokensPerItem)
        {
            return Violation($"the item has {tokens} tokens; at most {_options.MaxTokensPerItem}");
        }

        if (_options.MaxTokensPerSource > 0)
        {
            DateTimeOffset now = _time.GetUtcNow();
            lock (_sources)
            {
                if (_sources.TryGet(context.Feedback.Source, out Spending? spent))
                {
                    long used = spent!.Total(now - _options.Window);
                    if (used + tokens > _options.MaxTokensPerSource)
                    {
                        return Violation($"source '{context.Feedback.Source}' has used {used} of its {_options.MaxTokensPerSource} tokens per {_options.Window}; this item needs {tokens}");
                    }
                }
            }
        }

        return ValueTask.FromResult<string?>(null);
    }

    /// <inheritdoc />
    public void OnAccepted(GateContext context, long sequence)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (_options.MaxTokensPerSource == 0)
        {
            return;
        }

        DateTimeOffset now = _time.GetUtcNow();
        lock (_sources)
        {
            _sources.GetOrAdd(context.Feedback.Source, () => new Spending()).Add(now, Tokens(context), now - _options.Window);
        }
    }

    private static long Tokens(GateContext c) => (long)c.PromptTokens + c.CompletionTokens + c.RejectedTokens;

    private static ValueTask<string?> Violation(FormattableString text) => ValueTask.FromResult<string?>(text.ToString(CultureInfo.InvariantCulture));

    /// <summary>One source's charges in the window, oldest first, and their sum.</summary>
    private sealed class Spending
    {
        private readonly Queue<(DateTimeOffset At, long Tokens)> _charges = new();
        private long _total;

        public long Total(DateTimeOffset since)
        {
            while (_charges.TryPeek(out var c) && c.At <= since)
            {
                _total -= _charges.Dequeue().Tokens;
            }

            return _total;
        }

        public void Add(DateTimeOffset at, long tokens, DateTimeOffset since)
        {
            Total(since);
            _charges.Enqueue((at, tokens));
            _total += tokens;
        }
    }
}
