using Microsoft.Extensions.Logging;

namespace LiveLearning;

/// <summary>The live model's log events. Event ids are stable: dashboards and alerts may key on them.</summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "Live model {Model} started with scopes {Scopes}")]
    public static partial void Started(ILogger logger, string model, string scopes);

    [LoggerMessage(EventId = 2, Level = LogLevel.Information, Message = "Scope {Scope} of {Model} created (parent {Parent})")]
    public static partial void ScopeCreated(ILogger logger, string model, string scope, string? parent);

    [LoggerMessage(EventId = 3, Level = LogLevel.Debug, Message = "Feedback for {Scope} accepted as #{Sequence} from {Source}")]
    public static partial void Accepted(ILogger logger, string scope, long sequence, string source);

    [LoggerMessage(EventId = 4, Level = LogLevel.Information, Message = "Feedback for {Scope} from {Source} not accepted: {Reason} ({Message})")]
    public static partial void Rejected(ILogger logger, string scope, string source, RejectionReason reason, string message);

    [LoggerMessage(EventId = 5, Level = LogLevel.Debug, Message = "Scope {Scope} step {Step}: {Items} new and {Replayed} replayed items, loss {Loss:F4}, {Milliseconds:F1} ms")]
    public static partial void Step(ILogger logger, string scope, long step, int items, int replayed, double loss, double milliseconds);

    [LoggerMessage(EventId = 6, Level = LogLevel.Warning, Message = "Scope {Scope} skipped a step: {Reason}; the weights are unchanged")]
    public static partial void StepSkipped(ILogger logger, string scope, string reason);

    [LoggerMessage(EventId = 7, Level = LogLevel.Information, Message = "Scope {Scope} published {Version} ({Reason})")]
    public static partial void Published(ILogger logger, string scope, string version, string reason);

    [LoggerMessage(EventId = 8, Level = LogLevel.Warning, Message = "Scope {Scope}: candidate {Version} was not promoted: {Reason}")]
    public static partial void PromotionRefused(ILogger logger, string scope, string version, string? reason);

    [LoggerMessage(EventId = 9, Level = LogLevel.Warning, Message = "Scope {Scope} rolled back to the weights of {Target} as {Version}")]
    public static partial void RolledBack(ILogger logger, string scope, string target, string version);

    [LoggerMessage(EventId = 10, Level = LogLevel.Information, Message = "Scope {Scope} snapshot {Snapshot} taken at {Version}")]
    public static partial void Snapshot(ILogger logger, string scope, string snapshot, string version);

    [LoggerMessage(EventId = 11, Level = LogLevel.Information, Message = "Learning of scope {Scope} {State}")]
    public static partial void PauseChanged(ILogger logger, string scope, string state);

    [LoggerMessage(EventId = 12, Level = LogLevel.Error, Message = "The learner of scope {Scope} failed on a batch of {Items} items; it goes on with the next")]
    public static partial void LearnerFailed(ILogger logger, Exception exception, string scope, int items);

    [LoggerMessage(EventId = 14, Level = LogLevel.Critical, Message = "The learner of scope {Scope} stopped; items for it are refused until the model is restarted")]
    public static partial void LearnerStopped(ILogger logger, Exception exception, string scope);

    [LoggerMessage(EventId = 15, Level = LogLevel.Error, Message = "The ledger could not record a {Event} entry of scope {Scope}; the decision stands")]
    public static partial void LedgerFailed(ILogger logger, Exception exception, string scope, Governance.LedgerEvent @event);

    [LoggerMessage(EventId = 13, Level = LogLevel.Information, Message = "Live model {Model} stopped ({Mode}); {Remaining} items were still queued")]
    public static partial void Stopped(ILogger logger, string model, ShutdownMode mode, int remaining);

    [LoggerMessage(EventId = 16, Level = LogLevel.Information, Message = "Scope {Scope} recovered from snapshot {Snapshot} and {Items} journal items; now at {Version}")]
    public static partial void Recovered(ILogger logger, string scope, string snapshot, long items, string version);

    [LoggerMessage(EventId = 17, Level = LogLevel.Error, Message = "Scope {Scope}: snapshot {Snapshot} is damaged and was skipped")]
    public static partial void SnapshotUnreadable(ILogger logger, Exception exception, string scope, string snapshot);

    [LoggerMessage(EventId = 18, Level = LogLevel.Warning, Message = "Scope {Scope}: drift alarm ({Detector}): {Account}")]
    public static partial void DriftDetected(ILogger logger, string scope, string detector, string account);

    [LoggerMessage(EventId = 19, Level = LogLevel.Warning, Message = "Rehearsal is off: its prompt '{Prompt}' encodes to no tokens (set Replay.Rehearsal.Prompt for a tokenizer without a beginning-of-sequence token)")]
    public static partial void RehearsalUnavailable(ILogger logger, string prompt);
}
