namespace LiveLearning.Governance;

/// <summary>
/// A validation rule every feedback item passes before it is accepted: cheap checks (schema, lengths, duplicates, rate
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
}
