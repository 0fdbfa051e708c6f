namespace LiveLearning;

/// <summary>Why a feedback item was not accepted.</summary>
public enum RejectionReason
{
    /// <summary>A required text (prompt or completion) is empty.</summary>
    EmptyText,

    /// <summary>The weight is not a positive, finite number.</summary>
    InvalidWeight,

    /// <summary>The prompt and completion do not fit the model's context length or the configured token limits.</summary>
    TooLong,

    /// <summary>The response id is unknown: never served, or no longer in the bounded map of recent responses.</summary>
    UnknownResponse,

    /// <summary>The scope's queue is full and the back-pressure policy is to fail fast.</summary>
    QueueFull,

    /// <summary>A validation gate rule rejected the item (<see cref="LearnReceipt.Rule"/> names it).</summary>
    RejectedByGate,

    /// <summary>A validation gate rule quarantined the item: kept aside, not learned (<see cref="LearnReceipt.Rule"/> names it).</summary>
    Quarantined,

    /// <summary>
    /// The response was served by another scope: feedback on a response teaches the scope that served it or one it
    /// stacks on (a user's response may teach the organisation's scope), never a sibling's.
    /// </summary>
    ResponseScope,
}

/// <summary>
/// The answer to <see cref="ILiveModel.LearnAsync"/>: accepted with the sequence number under which the item is
/// journaled (it will be learned in that order), or not accepted with the reason — never a silent drop.
/// </summary>
public sealed record LearnReceipt
{
    /// <summary>Whether the item was accepted.</summary>
    public required bool Accepted { get; init; }

    /// <summary>The scope the item was for.</summary>
    public required string Scope { get; init; }

    /// <summary>The journal sequence number (accepted items; else 0).</summary>
    public long SequenceNumber { get; init; }

    /// <summary>Why the item was not accepted (<see langword="null"/> when accepted).</summary>
    public RejectionReason? Reason { get; init; }

    /// <summary>The gate rule that rejected or quarantined it, if one did.</summary>
    public string? Rule { get; init; }

    /// <summary>The item's id in the quarantine, when it was quarantined (see <see cref="ILiveModel.GetQuarantine"/>).</summary>
    public long? QuarantineId { get; init; }

    /// <summary>A human-readable explanation (rejections).</summary>
    public string? Message { get; init; }

    /// <summary>When the model received the item.</summary>
    public DateTimeOffset ReceivedAt { get; init; }

    internal static LearnReceipt Reject(string scope, RejectionReason reason, string message, DateTimeOffset at, string? rule = null) =>
        new() { Accepted = false, Scope = scope, Reason = reason, Message = message, Rule = rule, ReceivedAt = at };
}
