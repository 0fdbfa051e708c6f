using System.Diagnostics;
using LiveLearning.Backends;
using LiveLearning.Governance;
using LiveLearning.Storage;

namespace LiveLearning;

// The learner: one per scope, the only writer of its trainer. It takes what is queued (up to MaxBatchItems items),
// scores each item before learning it (progressive validation), steps, publishes, and runs owner requests in order.
public sealed partial class LiveModel
{
    private async Task RunLearnerAsync(LiveScope scope)
    {
        var reader = scope.Queue.Reader;
        var batch = new List<LearnWork>();
        CancellationToken stopping = _stopping.Token;
        try
        {
            if (_options.RecoverOnStart)
            {
                await RecoverAsync(scope, stopping).ConfigureAwait(false);
            }

            while (await reader.WaitToReadAsync(stopping).ConfigureAwait(false))
            {
                await scope.WhenResumed().WaitAsync(stopping).ConfigureAwait(false);
                batch.Clear();
                while (true)
                {
                    while (batch.Count < _options.Learner.MaxBatchItems && reader.TryPeek(out WorkItem? next))
                    {
                        if (next is LearnWork learn)
                        {
                            reader.TryRead(out _);
                            batch.Add(learn);
                        }
                        else if (next is RebaseWork)
                        {
                            // Only a wake-up: the pending flag is taken between batches (below), so batches stay whole.
                            reader.TryRead(out _);
                        }
                        else if (batch.Count == 0)
                        {
                            reader.TryRead(out _);
                            try
                            {
                                await RunRequestAsync(scope, next, stopping).ConfigureAwait(false);
                            }
                            catch (Exception ex) when (ex is not OperationCanceledException || !stopping.IsCancellationRequested)
                            {
                                Log.LearnerFailed(_logger, ex, scope.Name, 0);
                                Fail(next, ex, faultBarriers: false);
                            }
                        }
                        else
                        {
                            break; // learn what came before the request first
                        }
                    }

                    // A fixed batch waits for its last items, unless a request or the end of the queue comes first.
                    bool full = batch.Count == _options.Learner.MaxBatchItems;
                    bool requestNext = reader.TryPeek(out WorkItem? following) && following is not (LearnWork or RebaseWork);
                    if (batch.Count == 0 || full || requestNext || _options.Learner.Batching == BatchPolicy.Opportunistic)
                    {
                        break;
                    }

                    if (!await reader.WaitToReadAsync(stopping).ConfigureAwait(false))
                    {
                        break;
                    }
                }

                if (batch.Count > 0)
                {
                    scope.Slots.Release(batch.Count);
                    try
                    {
                        await LearnBatchAsync(scope, batch, stopping).ConfigureAwait(false);
                    }
                    catch (Exception ex) when (ex is not OperationCanceledException || !stopping.IsCancellationRequested)
                    {
                        Log.LearnerFailed(_logger, ex, scope.Name, batch.Count);
                        Interlocked.Increment(ref scope.SkippedSteps);
                        Record(scope.Name, LedgerEvent.StepSkipped, $"The batch failed: {ex.GetType().Name}: {ex.Message}", items: [.. batch.Select(b => b.Record.Sequence)]);
                    }
                }

                // Between batches: follow the parent if it published meanwhile.
                if (Interlocked.Exchange(ref scope.RebasePending, 0) != 0)
                {
                    Rebase(scope);
                }

                if (reader.Count == 0)
                {
                    try
                    {
                        await SettleAsync(scope, stopping).ConfigureAwait(false);
                    }
                    catch (Exception ex) when (ex is not OperationCanceledException || !stopping.IsCancellationRequested)
                    {
                        Log.LearnerFailed(_logger, ex, scope.Name, 0);
                    }
                }
            }

            await SettleAsync(scope, CancellationToken.None).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            // Immediate shutdown: queued items stay in the journal.
        }
        catch (Exception ex)
        {
            // Never silent: a learner that cannot go on says so, every waiting request fails with the reason, and every
            // caller waiting for queue room is released.
            Log.LearnerStopped(_logger, ex, scope.Name);
            scope.Failure = ex;
            await scope.Stopped.CancelAsync().ConfigureAwait(false);
            lock (scope.AdmissionLock)
            {
                scope.Queue.Writer.TryComplete();
            }

            while (reader.TryRead(out WorkItem? work))
            {
                if (work is LearnWork)
                {
                    scope.Slots.Release();
                }

                Fail(work, ex, faultBarriers: true);
            }
        }
    }

    /// <summary>The queue ran empty: publish unpublished steps and release what the trainer needs only while stepping.</summary>
    private async Task SettleAsync(LiveScope scope, CancellationToken cancellationToken)
    {
        if (scope.StepsSincePublish > 0)
        {
            await PublishAsync(scope, "learned", cancellationToken).ConfigureAwait(false);
        }

        if (!scope.Trimmed)
        {
            // The trainer's parameters are the last published weights: in shadow mode, the pending candidate's.
            scope.Trainer.Trim((scope.Candidate ?? scope.Current).Weights);
            scope.Trimmed = true;
        }
    }

    /// <param name="scope">The scope.</param>
    /// <param name="taken">The items taken from the queue (or read from the journal).</param>
    /// <param name="cancellationToken">Stops between steps.</param>
    /// <param name="screen">Whether outlier screening applies (live items; not a restart's or a rebuild's replay of the
    /// journal, whose items were screened when they first came).</param>
    private async Task LearnBatchAsync(LiveScope scope, List<LearnWork> taken, CancellationToken cancellationToken, bool screen = true)
    {
        // An item whose journal write failed was not acknowledged (its LearnAsync threw): it is dropped, the rest learned.
        var batch = new List<LearnWork>(taken.Count);
        foreach (LearnWork work in taken)
        {
            try
            {
                await work.Durable.ConfigureAwait(false);
                batch.Add(work);
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                Record(scope.Name, LedgerEvent.Rejected, $"Item #{work.Record.Sequence} dropped: its journal write failed ({ex.Message}).", work.Record.Sequence, work.Record.Source);
            }
        }

        if (batch.Count == 0)
        {
            return;
        }

        long through = batch[^1].Record.Sequence;
        LearnerOptions learner = _options.Learner;
        OptimizerOptions optimizer = scope.Options.Optimizer ?? learner.Optimizer;
        IReadOnlyList<IAdapterWeights> frozen = scope.Current.BaseStack;
        var examples = new List<TrainingExample>(batch.Count);
        using (EnterLearning())
        {
            foreach (LearnWork work in batch)
            {
                examples.Add(WithReference(work.Record.Example, frozen));
            }
        }

        scope.Trimmed = false;
        for (int step = 1; step <= learner.StepsPerItem; step++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            scope.ReplayCredit += _options.Replay.Ratio * batch.Count;
            int replayCount = (int)Math.Floor(scope.ReplayCredit);
            scope.ReplayCredit -= replayCount;
            IReadOnlyList<ReplayItem> replayed = scope.Replay.Sample(replayCount);
            TrainingExample[] rehearsed = await RehearsalAsync(scope.Trainer.Step, batch.Count, cancellationToken).ConfigureAwait(false);
            TrainingExample[] all = [.. examples, .. replayed.Select(r => r.Example), .. rehearsed];
            ObjectiveOptions objectives = _options.Objectives with { KtoReferencePoint = scope.KtoReference };

            using Activity? activity = _activity.StartActivity("livelearning.learn_step");
            activity?.SetTag("livelearning.model", Name);
            activity?.SetTag("livelearning.scope", scope.Name);
            activity?.SetTag("livelearning.items", batch.Count);
            activity?.SetTag("livelearning.replayed", replayed.Count);
            activity?.SetTag("livelearning.rehearsed", rehearsed.Length);
            long started = _time.GetTimestamp();
            TrainingStepResult result;
            double norm;
            string? skip = null;
            using (EnterLearning())
            {
                result = scope.Trainer.ComputeGradients(all, objectives, frozen);
            }

            if (step == 1 && screen && _options.Outliers.Enabled && FindOutliers(scope, batch, examples, result) is { Count: > 0 } outliers)
            {
                // Held back before the step: erased from the journal first, so not even a restart learns them.
                await HoldBackAsync(scope, batch, outliers).ConfigureAwait(false);
                foreach (int i in outliers.Select(o => o.Index).OrderDescending())
                {
                    batch.RemoveAt(i);
                    examples.RemoveAt(i);
                }

                if (batch.Count == 0)
                {
                    scope.JournalPosition = through;
                    return;
                }

                all = [.. examples, .. replayed.Select(r => r.Example), .. rehearsed];
                using (EnterLearning())
                {
                    result = scope.Trainer.ComputeGradients(all, objectives, frozen);
                }
            }

            using (EnterLearning())
            {
                if (step == 1)
                {
                    // Recovery and rebuilds learn old items again: only live items feed the drift alarm.
                    ScoreBeforeLearning(scope, examples, result.Scores, watchDrift: screen);
                }

                norm = double.NaN;
                if (!double.IsFinite(result.Loss))
                {
                    skip = $"the loss is {result.Loss}";
                }
                else
                {
                    norm = scope.Trainer.ClipGradients(optimizer.MaxGradNorm ?? double.PositiveInfinity);
                    if (!double.IsFinite(norm))
                    {
                        skip = $"the gradient norm is {norm}";
                    }
                    else
                    {
                        scope.Trainer.ApplyOptimizer(optimizer);
                    }
                }
            }

            long elapsed = _time.GetTimestamp() - started;
            IReadOnlyList<long> items = [.. batch.Select(b => b.Record.Sequence), .. replayed.Select(r => r.Sequence)];
            if (skip is not null)
            {
                Interlocked.Increment(ref scope.SkippedSteps);
                _metrics.SkippedStep(scope.Name);
                Log.StepSkipped(_logger, scope.Name, skip);
                activity?.SetStatus(ActivityStatusCode.Error, skip);
                Record(scope.Name, LedgerEvent.StepSkipped, $"Step skipped: {skip}; the weights are unchanged.", items: items, loss: result.Loss);
                continue;
            }

            double ms = _time.GetElapsedTime(0, elapsed).TotalMilliseconds;
            Interlocked.Increment(ref scope.Steps);
            Interlocked.Add(ref scope.StepTicks, elapsed);
            Volatile.Write(ref scope.LastLoss, result.Loss);
            activity?.SetTag("livelearning.loss", result.Loss);
            activity?.SetTag("livelearning.gradient_norm", norm);
            _metrics.Step(scope.Name, ms, result.Loss);
            Log.Step(_logger, scope.Name, scope.Trainer.Step, batch.Count, replayed.Count, result.Loss, ms);
            Record(scope.Name, LedgerEvent.Step, $"Step {scope.Trainer.Step}: {batch.Count} new and {replayed.Count} replayed items, loss {result.Loss:G6}, gradient norm {norm:G6}.", items: items, loss: result.Loss);
            if (step == 1)
            {
                Interlocked.Add(ref scope.Learned, batch.Count);
                scope.JournalPosition = through;
                RememberForScreening(scope, examples, result.Scores, norm);
            }

            if (scope.DriftAlarm is { } alarm)
            {
                scope.DriftAlarm = null;
                await OnDriftAsync(scope, alarm, cancellationToken).ConfigureAwait(false);
            }

            if (++scope.StepsSincePublish >= learner.PublishEvery)
            {
                await PublishAsync(scope, "learned", cancellationToken).ConfigureAwait(false);
            }
        }

        for (int i = 0; i < batch.Count; i++)
        {
            JournalRecord record = batch[i].Record;
            if (!record.Private && !_excludedFromReplay.ContainsKey(record.Source))
            {
                scope.Replay.Add(new ReplayItem(record.Sequence, record.Source, examples[i]));
            }
        }
    }

    /// <summary>Adds the frozen reference's log-likelihoods a preference or rating needs (once per item).</summary>
    private TrainingExample WithReference(TrainingExample example, IReadOnlyList<IAdapterWeights> frozen)
    {
        if (example.Objective == TrainingObjective.Completion)
        {
            return example;
        }

        double reference = _backend.Score(example.Prompt, example.Completion, frozen).LogLikelihood;
        double rejected = example.Rejected is null ? 0 : _backend.Score(example.Prompt, example.Rejected, frozen).LogLikelihood;
        return example with { ReferenceLogLikelihood = reference, ReferenceRejectedLogLikelihood = rejected };
    }

    /// <summary>Progressive validation: the new items' scores under the parameters about to learn them.</summary>
    private void ScoreBeforeLearning(LiveScope scope, List<TrainingExample> examples, IReadOnlyList<ExampleScore> scores, bool watchDrift)
    {
        double decay = _options.Objectives.KtoReferenceDecay;
        for (int i = 0; i < examples.Count; i++)
        {
            TrainingExample e = examples[i];
            ExampleScore s = scores[i];
            switch (e.Objective)
            {
                case TrainingObjective.Completion when s.Tokens > 0 && double.IsFinite(s.LogLikelihood):
                    double loss = -s.LogLikelihood / s.Tokens;
                    scope.Progressive.AddCompletion(loss);
                    _metrics.ProgressiveLoss(scope.Name, loss);
                    if (watchDrift && scope.Drift is { } drift && drift.Add(loss))
                    {
                        scope.DriftAlarm ??= drift.LastAlarm;
                        drift.Reset();
                    }

                    break;
                case TrainingObjective.Preference:
                    // DPO's implicit reward margin: what the adapter adds to the reference's preference (0 for a fresh adapter).
                    double margin = (s.LogLikelihood - e.ReferenceLogLikelihood) - (s.RejectedLogLikelihood - e.ReferenceRejectedLogLikelihood);
                    if (double.IsFinite(margin))
                    {
                        scope.Progressive.AddPreference(margin);
                        _metrics.PreferenceMargin(scope.Name, margin);
                    }

                    break;
                case TrainingObjective.Rating:
                    double ratio = s.LogLikelihood - e.ReferenceLogLikelihood;
                    if (double.IsFinite(ratio))
                    {
                        scope.Progressive.AddRating(e.Desirable, ratio);
                        _metrics.RatingLogRatio(scope.Name, e.Desirable, ratio);
                        scope.KtoReference = (decay * scope.KtoReference) + ((1 - decay) * Math.Max(0, ratio));
                    }

                    break;
            }
        }
    }

    /// <summary>Publishes the trainer's parameters as a candidate; the evaluator decides whether it becomes current.</summary>
    private async Task PublishAsync(LiveScope scope, string reason, CancellationToken cancellationToken)
    {
        PublishedVersion current = scope.Current;
        PublishedVersion? pending = scope.Candidate;
        IAdapterWeights weights = scope.Trainer.Publish();
        // A learned version stays over the parent version it was trained on; a rebase follows when the parent moved on.
        PublishedVersion candidate = NewVersion(scope, weights, current.Base, pending?.Info.Id ?? current.Info.Id, reason);
        PromotionDecision decision;
        using (EnterLearning())
        {
            decision = await _evaluator.EvaluateAsync(new PromotionCandidate(scope.Name, current.Info, candidate.Info, _backend, current.Stack, candidate.Stack), cancellationToken).ConfigureAwait(false);
        }

        // Only now: an evaluator that throws leaves the steps unpublished, and the next settle tries again.
        scope.StepsSincePublish = 0;
        if (!decision.Promote)
        {
            // The current version (in shadow mode: the pending candidate) stays, and learning continues from it rather
            // than from the refused candidate.
            scope.Trainer.Reset((pending ?? current).Weights);
            Log.PromotionRefused(_logger, scope.Name, candidate.Info.Id, decision.Reason);
            Record(scope.Name, LedgerEvent.PromotionRefused, $"Candidate {candidate.Info.Id} was not promoted: {decision.Reason}; {current.Info.Id} stays current.", versionId: candidate.Info.Id, figures: decision.Figures);
            return;
        }

        if (scope.Shadow)
        {
            // Shadow mode: evaluated and kept, not served, until an owner promotes it (or leaves shadow mode).
            scope.Candidate = candidate;
            Record(scope.Name, LedgerEvent.Published, $"Candidate {candidate.Info.Id} passed evaluation and is held in shadow mode; {current.Info.Id} keeps serving.", versionId: candidate.Info.Id, figures: decision.Figures);
            return;
        }

        Promote(scope, candidate, decision);
    }

    private PublishedVersion NewVersion(LiveScope scope, IAdapterWeights weights, PublishedVersion? below, string? parentId, string reason, string? contentHash = null)
    {
        long number = ++scope.VersionNumber;
        var info = new AdapterVersion
        {
            Id = $"{scope.Name}@{number}",
            Scope = scope.Name,
            Number = number,
            ParentId = parentId,
            BaseVersionId = below?.Info.Id,
            ContentHash = contentHash ?? ContentHash(weights),
            CreatedAt = _time.GetUtcNow(),
            Steps = scope.Trainer.Step,
            Items = Interlocked.Read(ref scope.Learned),
            JournalPosition = scope.JournalPosition,
            Reason = reason,
        };
        return new PublishedVersion(info, weights, [.. below?.Stack ?? [], weights], below);
    }

    /// <summary>Makes <paramref name="version"/> current (one reference write), tells watchers and rebases child scopes.</summary>
    private void Promote(LiveScope scope, PublishedVersion version, PromotionDecision? decision = null)
    {
        scope.Current = version;
        scope.TrimHistory();
        _metrics.Published(scope.Name);
        Log.Published(_logger, scope.Name, version.Info.Id, version.Info.Reason);
        Record(scope.Name, LedgerEvent.Published, $"{version.Info.Id} published ({version.Info.Reason}; {version.Info.Steps} steps, {version.Info.Items} items){(decision?.Reason is { } why ? $"; evaluation: {why}" : "")}.", versionId: version.Info.Id, figures: decision?.Figures);
        Notify(version.Info);
        foreach (LiveScope child in scope.Children)
        {
            // A child follows between its batches; the work item only wakes it. A child that cannot be reached (the
            // model stopping, its learner stopped) keeps the version it has, and the parent's publication stands.
            Interlocked.Exchange(ref child.RebasePending, 1);
            try
            {
                Post(child, new RebaseWork());
            }
            catch (Exception ex) when (ex is ObjectDisposedException or InvalidOperationException)
            {
                Log.LearnerFailed(_logger, ex, child.Name, 0);
            }
        }
    }

    private async Task RunRequestAsync(LiveScope scope, WorkItem request, CancellationToken cancellationToken)
    {
        switch (request)
        {
            case BarrierWork barrier:
                try
                {
                    await SettleAsync(scope, cancellationToken).ConfigureAwait(false);
                }
                finally
                {
                    // Idle means every earlier item was processed, learned or (logged) failed.
                    barrier.Done.TrySetResult();
                }

                break;

            case RebaseWork:
                if (Interlocked.Exchange(ref scope.RebasePending, 0) != 0)
                {
                    Rebase(scope);
                }

                break;

            case SnapshotWork snapshot:
                await CompleteAsync(snapshot, () => TakeSnapshotAsync(scope, snapshot.Label, cancellationToken)).ConfigureAwait(false);
                break;

            case PurgeReplayWork purge:
                purge.Done.TrySetResult(scope.Replay.RemoveSource(purge.Source));
                break;

            case PromoteCandidateWork promote:
                await CompleteAsync(promote, () => PromoteCandidateAsync(scope, promote, cancellationToken)).ConfigureAwait(false);
                break;

            case ForgetWork forget:
                await CompleteAsync(forget, () => ForgetAsync(scope, forget, cancellationToken)).ConfigureAwait(false);
                break;

            case RollbackWork rollback:
                await CompleteAsync(rollback, () => RollBackAsync(scope, rollback, cancellationToken)).ConfigureAwait(false);
                break;

            case ImportWork import:
                await CompleteAsync(import, () => ImportAsync(scope, import, cancellationToken)).ConfigureAwait(false);
                break;
        }
    }

    /// <summary>Runs a request and hands its result, or its failure, to the caller waiting for it.</summary>
    private static async Task CompleteAsync<T>(RequestWork<T> request, Func<Task<T>> run)
    {
        try
        {
            request.Done.TrySetResult(await run().ConfigureAwait(false));
        }
        catch (Exception ex)
        {
            request.Done.TrySetException(ex);
        }
    }

    private static void Fail(WorkItem request, Exception exception, bool faultBarriers)
    {
        if (request is BarrierWork barrier)
        {
            // A barrier only fails when the learner stops for good; a failed request before it still counts as processed.
            if (faultBarriers)
            {
                barrier.Done.TrySetException(new InvalidOperationException("The learner stopped before the queue was idle.", exception));
            }
            else
            {
                barrier.Done.TrySetResult();
            }

            return;
        }

        request.Fail(exception);
    }

    /// <summary>Pairs this scope's weights (unchanged, same hash) with its parent's current version.</summary>
    private void Rebase(LiveScope scope)
    {
        if (scope.Parent is { } parent && !ReferenceEquals(parent.Current, scope.Current.Base))
        {
            PublishedVersion current = scope.Current;
            Promote(scope, NewVersion(scope, current.Weights, parent.Current, current.Info.Id, "rebased", current.Info.ContentHash));
        }
    }

    private async Task<SnapshotInfo> TakeSnapshotAsync(LiveScope scope, string? label, CancellationToken cancellationToken)
    {
        await SettleAsync(scope, cancellationToken).ConfigureAwait(false);
        PublishedVersion current = scope.Current;
        // Unique across models and restarts (version numbers start again at 1): the model, the version and a time-ordered id.
        var info = new SnapshotInfo($"{Name}/{current.Info.Id}#{Guid.CreateVersion7(_time.GetUtcNow()):N}", scope.Name, label, current.Info, _time.GetUtcNow()) { Model = Name };
        var snapshot = new Snapshot(info, current.Weights.Export(), scope.Trainer.Capture(), scope.Replay.Serialize(), scope.KtoReference)
        {
            JournalPosition = scope.JournalPosition,
            ReplayCredit = scope.ReplayCredit,
            Metrics = ProgressiveMetrics(scope),
        };
        await _snapshots.SaveAsync(snapshot, cancellationToken).ConfigureAwait(false);
        Log.Snapshot(_logger, scope.Name, info.Id, current.Info.Id);
        Record(scope.Name, LedgerEvent.Snapshot, $"Snapshot {info.Id}{(label is null ? string.Empty : $" '{label}'")} of {current.Info.Id}.", versionId: current.Info.Id);
        if (_options.JournalRetention == JournalRetention.BeforeOldestSnapshot)
        {
            await RemoveCoveredJournalAsync(scope, cancellationToken).ConfigureAwait(false);
        }

        return info;
    }

    /// <summary>
    /// Retention: removes the journal segments wholly before the oldest kept snapshot of every scope (a scope without a
    /// snapshot keeps everything), so restart and forgetting still reach back to the oldest snapshot.
    /// </summary>
    private async Task RemoveCoveredJournalAsync(LiveScope scope, CancellationToken cancellationToken)
    {
        IReadOnlyList<SnapshotInfo> stored = await _snapshots.ListAsync(null, cancellationToken).ConfigureAwait(false);
        long keepAfter = long.MaxValue;
        foreach (string name in Scopes)
        {
            long[] positions = [.. stored.Where(s => s.Model == Name && s.Scope == name).Select(s => s.Version.JournalPosition)];
            keepAfter = Math.Min(keepAfter, positions.Length == 0 ? 0 : positions.Min());
        }

        if (keepAfter > 0 && keepAfter != long.MaxValue)
        {
            int removed = await _journal.RemoveThroughAsync(keepAfter, cancellationToken).ConfigureAwait(false);
            if (removed > 0)
            {
                Record(scope.Name, LedgerEvent.Snapshot, $"Journal retention: {removed} segments before #{keepAfter + 1} removed (every scope's oldest snapshot is past them).");
            }
        }
    }

    private async Task<AdapterVersion> RollBackAsync(LiveScope scope, RollbackWork request, CancellationToken cancellationToken)
    {
        string versionId = request.VersionId;
        await SettleAsync(scope, cancellationToken).ConfigureAwait(false);
        PublishedVersion current = scope.Current;
        if (request.SnapshotId is null && scope.FindVersion(versionId) is { } kept)
        {
            scope.Trainer.Reset(kept.Weights);
        }
        else
        {
            IReadOnlyList<SnapshotInfo> stored = await _snapshots.ListAsync(scope.Name, cancellationToken).ConfigureAwait(false);
            SnapshotInfo info = stored.LastOrDefault(s => s.Model == Name && (request.SnapshotId is null ? s.Version.Id == versionId : s.Id == request.SnapshotId))
                ?? throw new KeyNotFoundException($"Version '{versionId}' is neither among the {scope.HistoryCapacity} versions kept in memory nor in a snapshot.");
            Snapshot snapshot = await _snapshots.LoadAsync(info.Id, cancellationToken).ConfigureAwait(false)
                ?? throw new KeyNotFoundException($"Snapshot '{info.Id}' of version '{versionId}' could not be loaded.");

            // A snapshot restores everything exactly: parameters, optimizer moments, replay buffer, KTO reference.
            scope.Trainer.Restore(snapshot.Trainer);
            scope.Replay = ReplayBuffer.Deserialize(snapshot.Replay.Span);
            scope.KtoReference = snapshot.KtoReferencePoint;
        }

        PublishedVersion rolled = ServeTrainer(scope, current, versionId, "rollback");
        Log.RolledBack(_logger, scope.Name, versionId, rolled.Info.Id);
        string why = request.Reason is null ? string.Empty : $" Reason: {request.Reason}";
        string via = request.SnapshotId is null ? string.Empty : $" (snapshot {request.SnapshotId})";
        Record(scope.Name, LedgerEvent.RolledBack, $"Rolled back from {current.Info.Id} to the weights of {versionId}{via}, published as {rolled.Info.Id}.{why}", versionId: rolled.Info.Id, actor: request.Actor);
        return rolled.Info;
    }

    /// <summary>
    /// An owner's action set the trainer's weights (rollback, import): they are published and served at once, with no
    /// evaluation, replacing any candidate held in shadow mode.
    /// </summary>
    private PublishedVersion ServeTrainer(LiveScope scope, PublishedVersion current, string parentId, string reason)
    {
        scope.Trimmed = false;
        scope.Candidate = null;
        PublishedVersion version = NewVersion(scope, scope.Trainer.Publish(), scope.Parent?.Current ?? current.Base, parentId, reason);
        Promote(scope, version);
        return version;
    }

    /// <summary>Imported weights become current (checked by the backend and the trainer before anything changes).</summary>
    private async Task<AdapterVersion> ImportAsync(LiveScope scope, ImportWork request, CancellationToken cancellationToken)
    {
        await SettleAsync(scope, cancellationToken).ConfigureAwait(false);
        IAdapterWeights weights = _backend.ImportWeights(request.Weights);
        PublishedVersion current = scope.Current;
        scope.Trainer.Reset(weights);
        PublishedVersion imported = ServeTrainer(scope, current, current.Info.Id, "imported");
        string why = request.Reason is null ? string.Empty : $" Reason: {request.Reason}";
        Record(scope.Name, LedgerEvent.Imported, $"Imported adapter weights ({request.Weights.Tensors.Count} tensors) as {imported.Info.Id}, replacing {current.Info.Id}.{why}", versionId: imported.Info.Id, actor: request.Actor);
        return imported.Info;
    }

    private IDisposable? EnterLearning() => _options.Learner.Priority == LearningPriority.Background ? _backend.EnterLearningPriority(_options.Learner.LearningShare) : null;

    /// <summary>
    /// Restart: restores the scope's newest snapshot of this model (parameters, optimizer moments, replay buffer, KTO
    /// reference, replay credit), then learns the journal's records of this scope after its position, in the batches
    /// the learner forms from a full queue, so the weights equal those of a run that never stopped (fixed batching).
    /// </summary>
    private async Task RecoverAsync(LiveScope scope, CancellationToken cancellationToken)
    {
        IReadOnlyList<SnapshotInfo> stored = await _snapshots.ListAsync(scope.Name, cancellationToken).ConfigureAwait(false);
        string? restoredFrom = null;
        Snapshot? snapshot = null;
        foreach (SnapshotInfo candidate in stored.Where(s => s.Model == Name).Reverse())
        {
            try
            {
                snapshot = await _snapshots.LoadAsync(candidate.Id, cancellationToken).ConfigureAwait(false);
            }
            catch (StorageCorruptedException ex)
            {
                // A damaged snapshot is never loaded: the next older one is tried, and the journal covers the difference
                // as far as it still reaches.
                Log.SnapshotUnreadable(_logger, ex, scope.Name, candidate.Id);
                Record(scope.Name, LedgerEvent.Recovered, $"Snapshot {candidate.Id} is damaged and was skipped: {ex.Message}");
            }

            if (snapshot is not null)
            {
                break;
            }
        }

        if (snapshot is not null)
        {
            RestoreState(scope, snapshot);
            restoredFrom = snapshot.Info.Id;
        }

        long from = scope.JournalPosition;
        long replayed = await LearnJournalAsync(scope, from, scope.RecoverUpTo, cancellationToken).ConfigureAwait(false);
        if (restoredFrom is null && replayed == 0)
        {
            return;
        }

        scope.Trimmed = false;
        PublishedVersion current = scope.Current;
        if (snapshot is not null && (scope.Shadow || snapshot.Metrics.GetValueOrDefault("shadow") == 1))
        {
            // Shadow mode: the snapshot's adapter is what was served; the learning state (and what the journal added) is
            // the candidate, not served until an owner promotes it.
            scope.Shadow = true;
            scope.StepsSincePublish = 0;
            PublishedVersion served = NewVersion(scope, _backend.ImportWeights(snapshot.Weights), scope.Parent?.Current ?? current.Base, current.Info.Id, "recovered");
            Promote(scope, served);
            PublishedVersion candidate = NewVersion(scope, scope.Trainer.Publish(), served.Base, served.Info.Id, "recovered");
            scope.Candidate = candidate.Info.ContentHash == served.Info.ContentHash ? null : candidate;
        }
        else if (scope.StepsSincePublish > 0 || restoredFrom is not null)
        {
            scope.StepsSincePublish = 0;
            Promote(scope, NewVersion(scope, scope.Trainer.Publish(), scope.Parent?.Current ?? current.Base, current.Info.Id, "recovered"));
        }

        string message = restoredFrom is null
            ? $"Recovered from the journal alone: {replayed} items learned again, published as {scope.Current.Info.Id}."
            : $"Recovered from snapshot {restoredFrom} and {replayed} journal items after #{from}, published as {scope.Current.Info.Id}.";
        Log.Recovered(_logger, scope.Name, restoredFrom ?? "(none)", replayed, scope.Current.Info.Id);
        Record(scope.Name, LedgerEvent.Recovered, message, versionId: scope.Current.Info.Id);
    }

    private static Dictionary<string, double> ProgressiveMetrics(LiveScope scope)
    {
        ProgressiveValidation p = scope.Progressive.Snapshot(scope.KtoReference);
        return new Dictionary<string, double>(StringComparer.Ordinal)
        {
            ["steps"] = scope.Trainer.Step,
            ["learned"] = Interlocked.Read(ref scope.Learned),
            ["kto_reference_point"] = p.KtoReferencePoint,
            ["shadow"] = scope.Shadow ? 1 : 0,
        };
    }
}
