namespace LiveLearning.Governance;

/// <summary>
/// A validation gate every feedback item passes before it is accepted: cheap checks (schema, lengths, duplicates, rate
/// and influence caps per source). Rules run in registration order; the first that does not accept decides.
/// </summary>
/// <remarks>Implementations must be thread-safe: items of every scope are checked concurrently.</remarks>
public interface IFeedbackGate
{
    /// <summary>The rule's name (receipts and the ledger name it).</summary>
    string Name { get; }

    /// <summary>Checks one item.</summary>
    /// <param name="context">The item, its scope and its token counts.</param>
    /// <param name="cancellationToken">Cancels the check.</param>
    /// <returns>The decision.</returns>
    ValueTask<GateDecision> EvaluateAsync(GateContext context, CancellationToken cancellationToken);
}

/// <summary>What a gate rule sees of an item.</summary>
/// <param name="Model">The model's name.</param>
/// <param name="Scope">The scope it is for.</param>
/// <param name="Feedback">The item as given (its <see cref="Feedback.Timestamp"/> filled in).</param>
/// <param name="PromptTokens">Tokens of its prompt.</param>
/// <param name="CompletionTokens">Tokens of its completion (the chosen one for a preference).</param>
/// <param name="RejectedTokens">Tokens of a preference's rejected completion (else 0).</param>
public sealed record GateContext(string Model, string Scope, Feedback Feedback, int PromptTokens, int CompletionTokens, int RejectedTokens);

/// <summary>What a gate rule decides.</summary>
public enum GateOutcome
{
    /// <summary>Pass to the next rule.</summary>
    Accept,

    /// <summary>Pass, but record a warning in the ledger.</summary>
    Warn,

    /// <summary>Refuse the item.</summary>
    Reject,

    /// <summary>Keep the item aside, unlearned, for review.</summary>
    Quarantine,

    /// <summary>Refuse the item and fail the call: <see cref="ILiveModel.LearnAsync"/> throws <see cref="FeedbackRuleException"/>.</summary>
    Fail,
}

/// <summary>A gate rule's decision and why.</summary>
/// <param name="Outcome">The outcome.</param>
/// <param name="Reason">Why (required unless accepted).</param>
public readonly record struct GateDecision(GateOutcome Outcome, string? Reason)
{
    /// <summary>Pass.</summary>
    public static GateDecision Accept { get; } = new(GateOutcome.Accept, null);

    /// <summary>Pass with a warning.</summary>
    /// <param name="reason">Why.</param>
    /// <returns>The decision.</returns>
    public static GateDecision Warn(string reason) => new(GateOutcome.Warn, reason);

    /// <summary>Refuse.</summary>
    /// <param name="reason">Why.</param>
    /// <returns>The decision.</returns>
    public static GateDecision Reject(string reason) => new(GateOutcome.Reject, reason);

    /// <summary>Quarantine.</summary>
    /// <param name="reason">Why.</param>
    /// <returns>The decision.</returns>
    public static GateDecision Quarantine(string reason) => new(GateOutcome.Quarantine, reason);

    /// <summary>Refuse and fail the call.</summary>
    /// <param name="reason">Why.</param>
    /// <returns>The decision.</returns>
    public static GateDecision Fail(string reason) => new(GateOutcome.Fail, reason);
}

/// <summary>
/// A gate rule that needs to know which items were finally accepted (journaled and queued), not only checked: rate
/// limits, budgets, duplicate windows and influence shares count accepted items, so an item a later rule or a full queue
/// turned away costs its source nothing.
/// </summary>
/// <remarks>Called after the item is durable, from the accepting call's thread; must be thread-safe and quick.</remarks>
public interface IFeedbackAcceptanceObserver
{
    /// <summary>The item was accepted.</summary>
    /// <param name="context">What the rule saw when it checked the item.</param>
    /// <param name="sequence">Its journal sequence number.</param>
    void OnAccepted(GateContext context, long sequence);
}

/// <summary>A gate rule with the <see cref="RulePolicy.Fail"/> policy refused an item: the call fails.</summary>
public sealed class FeedbackRuleException : Exception
{
    /// <summary>Creates the exception.</summary>
    /// <param name="rule">The rule.</param>
    /// <param name="reason">Why it refused.</param>
    public FeedbackRuleException(string rule, string reason)
        : base($"Gate rule '{rule}' refused the item: {reason}")
    {
        Rule = rule;
        Reason = reason;
    }

    /// <summary>The rule that refused the item.</summary>
    public string Rule { get; }

    /// <summary>Why.</summary>
    public string Reason { get; }
}
