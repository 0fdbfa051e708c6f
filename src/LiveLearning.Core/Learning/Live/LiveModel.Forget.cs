using LiveLearning.Backends;
using LiveLearning.Governance;
using LiveLearning.Storage;

namespace LiveLearning;

// Forgetting a source: rebuild each scope from the last state before the source's first item, learning the journal again
// without its items; then its records are erased and the snapshots that held its influence deleted.
public sealed partial class LiveModel
{
    /// <inheritdoc />
    public async Task<ForgetReport> ForgetSourceAsync(string source, string? reason = null, string? actor = null, string? scope = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(source);
        ThrowIfDisposed();

        // In creation order: a parent is rebuilt (and publishes, so its children rebase) before its children.
        var reports = new List<ScopeForgetReport>();
        foreach (LiveScope s in Selected(scope))
        {
            var done = new TaskCompletionSource<ScopeForgetReport>(TaskCreationOptions.RunContinuationsAsynchronously);
            Post(s, new ForgetWork(source, reason, actor, done));
            reports.Add(await done.Task.WaitAsync(cancellationToken).ConfigureAwait(false));
        }

        return new ForgetReport(source, reports);
    }

    private async Task<ScopeForgetReport> ForgetAsync(LiveScope scope, ForgetWork request, CancellationToken cancellationToken)
    {
        await SettleAsync(scope, cancellationToken).ConfigureAwait(false);

        // Everything queued before the request is learned: the journal up to the scope's position is what it knows.
        long upTo = scope.JournalPosition;
        bool Theirs(JournalRecord r) => r.Model == Name && r.Scope == scope.Name && r.Source == request.Source && r.Sequence <= upTo;
        long first = 0;
        int count = 0;
        await foreach (JournalRecord record in _journal.ReadAsync(0, cancellationToken).ConfigureAwait(false))
        {
            if (record.Sequence > upTo)
            {
                break;
            }

            if (Theirs(record))
            {
                first = first == 0 ? record.Sequence : first;
                count++;
            }
        }

        if (count == 0 && !scope.Replay.Items().Any(i => i.Source == request.Source))
        {
            Record(scope.Name, LedgerEvent.Forgotten, $"Source '{request.Source}' taught scope '{scope.Name}' nothing the journal holds; nothing changed.{Why(request.Reason)}", source: request.Source, actor: request.Actor);
            return new ScopeForgetReport { Scope = scope.Name, ItemsForgotten = 0, Version = scope.Current.Info };
        }

        // The base: the newest readable snapshot before the first item, whose replay buffer holds nothing of the source,
        // and from which the journal still reaches. Without one, the initial state — if the journal reaches back to 1.
        long removed = _journal.RemovedThrough;
        long before = first == 0 ? upTo + 1 : first;
        IReadOnlyList<SnapshotInfo> stored = await _snapshots.ListAsync(scope.Name, cancellationToken).ConfigureAwait(false);
        Snapshot? baseline = null;
        foreach (SnapshotInfo candidate in stored.Where(s => s.Model == Name && s.Version.JournalPosition < before && s.Version.JournalPosition >= removed).Reverse())
        {
            Snapshot? loaded;
            try
            {
                loaded = await _snapshots.LoadAsync(candidate.Id, cancellationToken).ConfigureAwait(false);
            }
            catch (StorageCorruptedException ex)
            {
                Log.SnapshotUnreadable(_logger, ex, scope.Name, candidate.Id);
                continue;
            }

            if (loaded is not null && loaded.JournalPosition < before && !ReplayBuffer.Deserialize(loaded.Replay.Span).Items().Any(i => i.Source == request.Source))
            {
                baseline = loaded;
                break;
            }
        }

        if (baseline is null && removed > 0)
        {
            throw new InvalidOperationException(
                $"Scope '{scope.Name}' cannot forget source '{request.Source}' exactly: the journal no longer holds records up to #{removed} and no snapshot from after that point predates the source's first item (#{before}). Nothing was changed.");
        }

        // Delete what holds the source's influence first: a crash after this point recovers from the base and the journal.
        var deleted = new List<string>();
        foreach (SnapshotInfo tainted in stored.Where(s => s.Model == Name && s.Id != baseline?.Info.Id && s.Version.JournalPosition >= before))
        {
            if (await _snapshots.DeleteAsync(tainted.Id, cancellationToken).ConfigureAwait(false))
            {
                deleted.Add(tainted.Id);
            }
        }

        int erased = await _journal.EraseAsync(0, Theirs, CancellationToken.None).ConfigureAwait(false);

        // Rebuild: the base's exact learning state, then every other item since, in full batches.
        PublishedVersion current = scope.Current;
        if (baseline is not null)
        {
            RestoreState(scope, baseline);
        }
        else
        {
            ResetToInitialState(scope);
        }

        int relearned = await LearnJournalAsync(scope, scope.JournalPosition, upTo, CancellationToken.None).ConfigureAwait(false);
        scope.JournalPosition = upTo;
        scope.StepsSincePublish = 0;
        scope.Trimmed = false;
        PublishedVersion rebuilt = NewVersion(scope, scope.Trainer.Publish(), scope.Parent?.Current ?? current.Base, current.Info.Id, "forgot a source");
        Promote(scope, rebuilt);
        string from = baseline is null ? "its initial state" : $"snapshot {baseline.Info.Id}";
        Record(
            scope.Name,
            LedgerEvent.Forgotten,
            $"Forgot source '{request.Source}': {erased} journal records erased, rebuilt from {from} with {relearned} other items learned again, {deleted.Count} snapshots deleted; published as {rebuilt.Info.Id}.{Why(request.Reason)}",
            source: request.Source,
            versionId: rebuilt.Info.Id,
            actor: request.Actor);
        return new ScopeForgetReport
        {
            Scope = scope.Name,
            ItemsForgotten = count,
            RebuiltFrom = baseline?.Info.Id,
            ItemsRelearned = relearned,
            SnapshotsDeleted = deleted,
            Version = rebuilt.Info,
        };
    }

    private static string Why(string? reason) => reason is null ? string.Empty : $" Reason: {reason}";

    /// <summary>A snapshot's exact learning state: parameters, optimizer moments, replay buffer and credit, KTO reference, position.</summary>
    private static void RestoreState(LiveScope scope, Snapshot snapshot)
    {
        scope.Trainer.Restore(snapshot.Trainer);
        scope.Replay = ReplayBuffer.Deserialize(snapshot.Replay.Span);
        scope.KtoReference = snapshot.KtoReferencePoint;
        scope.ReplayCredit = snapshot.ReplayCredit;
        scope.JournalPosition = snapshot.JournalPosition;
        scope.VersionNumber = Math.Max(scope.VersionNumber, snapshot.Info.Version.Number);
        Interlocked.Exchange(ref scope.Learned, snapshot.Info.Version.Items);
    }

    /// <summary>The state the scope was created with (the same seed gives the same initial parameters and replay draws).</summary>
    private void ResetToInitialState(LiveScope scope)
    {
        ulong seed = ScopeSeed(scope.Name);
        IAdapterTrainer fresh = _backend.CreateTrainer(new TrainerOptions(scope.Name, seed));
        try
        {
            scope.Trainer.Restore(fresh.Capture());
        }
        finally
        {
            (fresh as IDisposable)?.Dispose();
        }

        scope.Replay = ReplayBuffer.Create(_options.Replay, ReplaySeed(seed));
        scope.KtoReference = 0;
        scope.ReplayCredit = 0;
        scope.JournalPosition = 0;
        Interlocked.Exchange(ref scope.Learned, 0);
    }

    /// <summary>
    /// Learns the journal's records of this scope after <paramref name="after"/> up to <paramref name="upTo"/>, in the
    /// batches the learner forms from a full queue (restart and rebuild: the result equals an uninterrupted run).
    /// </summary>
    private async Task<int> LearnJournalAsync(LiveScope scope, long after, long upTo, CancellationToken cancellationToken)
    {
        var batch = new List<LearnWork>();
        int learned = 0;
        await foreach (JournalRecord record in _journal.ReadAsync(after, cancellationToken).ConfigureAwait(false))
        {
            if (record.Sequence > upTo)
            {
                break;
            }

            if (record.Scope != scope.Name || record.Model != Name)
            {
                continue;
            }

            batch.Add(new LearnWork(record, Task.CompletedTask));
            if (batch.Count == _options.Learner.MaxBatchItems)
            {
                await LearnBatchAsync(scope, batch, cancellationToken, screen: false).ConfigureAwait(false);
                learned += batch.Count;
                batch = [];
            }
        }

        if (batch.Count > 0)
        {
            await LearnBatchAsync(scope, batch, cancellationToken, screen: false).ConfigureAwait(false);
            learned += batch.Count;
        }

        return learned;
    }
}
