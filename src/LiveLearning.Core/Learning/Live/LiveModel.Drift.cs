using LiveLearning.Governance;

namespace LiveLearning;

/// <summary>The drift alarm: what the learner does when a scope's progressive loss rose.</summary>
public sealed partial class LiveModel
{
    /// <summary>The actor named in the ledger for what the alarm does on its own.</summary>
    private const string DriftActor = "drift-alarm";

    /// <summary>Records the alarm, then (as configured) pauses promotion and rolls the scope back to an alias.</summary>
    private async Task OnDriftAsync(LiveScope scope, DriftReport alarm, CancellationToken cancellationToken)
    {
        DriftOptions drift = _options.Drift;
        string detector = scope.Drift?.Name ?? "drift";
        _metrics.DriftAlarm(scope.Name);
        Log.DriftDetected(_logger, scope.Name, detector, alarm.Message);
        Record(scope.Name, LedgerEvent.DriftDetected, $"Drift alarm: {alarm.Message}.", rule: detector, figures: alarm.Figures, actor: DriftActor);
        if (drift.Action == DriftAction.PausePromotion && !scope.Shadow)
        {
            scope.Shadow = true;
            Record(scope.Name, LedgerEvent.ControlChanged, "Shadow mode on: the drift alarm paused promotion (candidates are learned and evaluated, not served, until an owner promotes one or leaves shadow mode).", rule: detector, actor: DriftActor);
        }

        if (drift.RollbackTo is not { } alias)
        {
            return;
        }

        (_, SnapshotInfo? target) = await ResolveAliasAsync(alias, scope.Name, cancellationToken).ConfigureAwait(false);
        if (target is null)
        {
            Record(scope.Name, LedgerEvent.DriftDetected, $"No automatic rollback: alias '{alias}' names no snapshot of scope '{scope.Name}'.", rule: detector, actor: DriftActor);
            return;
        }

        var done = new TaskCompletionSource<AdapterVersion>(TaskCreationOptions.RunContinuationsAsynchronously);
        await RollBackAsync(scope, new RollbackWork(target.Version.Id, done) { SnapshotId = target.Id, Reason = $"drift alarm ({detector})", Actor = DriftActor }, cancellationToken).ConfigureAwait(false);
    }
}
