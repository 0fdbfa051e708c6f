namespace LiveLearning.Governance;

/// <summary>What a gate rule's violation does to the item.</summary>
public enum RulePolicy
{
    /// <summary>Accept it, with a warning in the ledger.</summary>
    Warn,

    /// <summary>Refuse it: the receipt says why and names the rule.</summary>
    Drop,

    /// <summary>Keep it aside for review (<see cref="ILiveModel.GetQuarantine"/>).</summary>
    Quarantine,

    /// <summary>Refuse it and fail the call with <see cref="FeedbackRuleException"/> (for inputs that mean a caller bug).</summary>
    Fail,
}

/// <summary>
/// A check an item must pass — the simple form of a gate rule: it says what is wrong (or nothing), and the policy it is
/// registered with (<see cref="PolicyGate"/>) decides what that means.
/// </summary>
/// <remarks>Thread-safe; may also implement <see cref="IFeedbackAcceptanceObserver"/> to count only accepted items.</remarks>
public interface IFeedbackRule
{
    /// <summary>The rule's name (receipts and the ledger name it).</summary>
    string Name { get; }

    /// <summary>Checks one item.</summary>
    /// <param name="context">The item, its scope and token counts.</param>
    /// <param name="cancellationToken">Cancels the check.</param>
    /// <returns>What is wrong with it, or <see langword="null"/> when it passes.</returns>
    ValueTask<string?> CheckAsync(GateContext context, CancellationToken cancellationToken);
}

/// <summary>A rule and the policy its violations follow, as a gate.</summary>
public sealed class PolicyGate : IFeedbackGate, IFeedbackAcceptanceObserver
{
    /// <summary>Wraps <paramref name="rule"/>.</summary>
    /// <param name="rule">The rule.</param>
    /// <param name="policy">What a violation does.</param>
    public PolicyGate(IFeedbackRule rule, RulePolicy policy)
    {
        ArgumentNullException.ThrowIfNull(rule);
        if (!Enum.IsDefined(policy))
        {
            throw new ArgumentOutOfRangeException(nameof(policy), policy, "Unknown rule policy.");
        }

        Rule = rule;
        Policy = policy;
    }

    /// <summary>The rule.</summary>
    public IFeedbackRule Rule { get; }

    /// <summary>What a violation does.</summary>
    public RulePolicy Policy { get; }

    /// <inheritdoc />
    public string Name => Rule.Name;

    /// <inheritdoc />
    public async ValueTask<GateDecision> EvaluateAsync(GateContext context, CancellationToken cancellationToken)
    {
        string? violation = await Rule.CheckAsync(context, cancellationToken).ConfigureAwait(false);
        return violation is null ? GateDecision.Accept : Policy switch
        {
            RulePolicy.Warn => GateDecision.Warn(violation),
            RulePolicy.Drop => GateDecision.Reject(violation),
            RulePolicy.Quarantine => GateDecision.Quarantine(violation),
            _ => GateDecision.Fail(violation),
        };
    }

    /// <inheritdoc />
    public void OnAccepted(GateContext context, long sequence) => (Rule as IFeedbackAcceptanceObserver)?.OnAccepted(context, sequence);
}

/// <summary>A rule given as a delegate: it returns what is wrong with an item, or <see langword="null"/>.</summary>
/// <param name="name">The rule's name.</param>
/// <param name="check">The check (thread-safe).</param>
public sealed class DelegateRule(string name, Func<GateContext, string?> check) : IFeedbackRule
{
    private readonly Func<GateContext, string?> _check = check ?? throw new ArgumentNullException(nameof(check));

    /// <inheritdoc />
    public string Name { get; } = string.IsNullOrWhiteSpace(name) ? throw new ArgumentException("A rule needs a name.", nameof(name)) : name;

    /// <inheritdoc />
    public ValueTask<string?> CheckAsync(GateContext context, CancellationToken cancellationToken) => ValueTask.FromResult(_check(context));
}
