using System.Globalization;
using LiveLearning.Backends;
using LiveLearning.Governance;
using LiveLearning.Storage;

namespace LiveLearning;

// The quarantine: items a gate rule or the learner's outlier screening held back, kept for an owner to approve (then they
// are learned) or discard. The learner's screening: a robust z-score of each new item's loss, and of the step's
// gradient norm, against recent accepted ones.
public sealed partial class LiveModel
{
    private readonly object _quarantineLock = new();
    private readonly SortedDictionary<long, HeldItem> _quarantine = [];
    private long _quarantineIds;

    /// <inheritdoc />
    public IReadOnlyList<QuarantinedItem> GetQuarantine(string? scope = null)
    {
        ThrowIfDisposed();
        if (scope is not null)
        {
            GetScope(scope);
        }

        lock (_quarantineLock)
        {
            return [.. _quarantine.Values.Select(h => h.Info).Where(i => scope is null || i.Scope == scope)];
        }
    }

    /// <inheritdoc />
    public async ValueTask<LearnReceipt> ApproveQuarantinedAsync(long id, string? actor = null, CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        HeldItem item = Take(id);
        LiveScope scope;
        LearnReceipt receipt;
        try
        {
            scope = GetScope(item.Info.Scope);
            ThrowIfLearnerStopped(scope);
            receipt = await AdmitAsync(scope, item.Record, _time.GetUtcNow(), screen: false, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            // Not admitted: it stays in the quarantine, as it was.
            lock (_quarantineLock)
            {
                _quarantine[id] = item;
            }

            throw;
        }

        if (!receipt.Accepted)
        {
            lock (_quarantineLock)
            {
                _quarantine[id] = item;
            }

            return receipt;
        }

        Record(scope.Name, LedgerEvent.Released, $"Quarantine #{id} ({item.Info.Rule}) approved and accepted as #{receipt.SequenceNumber}.", receipt.SequenceNumber, item.Info.Source, item.Info.Rule, actor: actor);
        return receipt;
    }

    /// <inheritdoc />
    public bool DiscardQuarantined(long id, string? reason = null, string? actor = null)
    {
        ThrowIfDisposed();
        HeldItem item;
        lock (_quarantineLock)
        {
            if (!_quarantine.Remove(id, out item!))
            {
                return false;
            }
        }

        Record(item.Info.Scope, LedgerEvent.Discarded, $"Quarantine #{id} ({item.Info.Rule}) discarded.{Why(reason)}", item.Info.JournalSequence, item.Info.Source, item.Info.Rule, actor: actor);
        return true;
    }

    private HeldItem Take(long id)
    {
        lock (_quarantineLock)
        {
            return _quarantine.Remove(id, out HeldItem? item) ? item : throw new KeyNotFoundException($"Quarantine #{id} does not exist (never quarantined, or already approved or discarded).");
        }
    }

    /// <summary>Keeps an item for review under a new id (null when the capacity is 0); beyond the capacity the oldest is discarded.</summary>
    /// <summary>Keeps an item for review (evicting the oldest when full); null when the quarantine keeps nothing.</summary>
    /// <param name="record">The item as it would be journaled (for a learner hold-back, as it was: its sequence is kept in the listing).</param>
    /// <param name="origin">Who held it.</param>
    /// <param name="rule">The rule or screen that held it.</param>
    /// <param name="reason">Why.</param>
    /// <param name="now">When.</param>
    /// <param name="feedback">The original feedback, when the gate held it before it became a record.</param>
    private long? Hold(JournalRecord record, QuarantineOrigin origin, string rule, string reason, DateTimeOffset now, Feedback? feedback = null)
    {
        var info = new QuarantinedItem
        {
            Id = 0,
            Scope = record.Scope,
            Source = record.Source,
            Origin = origin,
            Rule = rule,
            Reason = reason,
            ReceivedAt = record.ReceivedAt,
            QuarantinedAt = now,
            Objective = record.Example.Objective,
            PromptTokens = record.Example.Prompt.Count,
            CompletionTokens = record.Example.Completion.Count,
            Feedback = feedback,
            JournalSequence = origin == QuarantineOrigin.Learner ? record.Sequence : null,
        };
        var evicted = new List<HeldItem>();
        long? id = null;
        lock (_quarantineLock)
        {
            if (_options.QuarantineCapacity > 0)
            {
                id = ++_quarantineIds;
                _quarantine[id.Value] = new HeldItem(info with { Id = id.Value }, record with { Sequence = 0 });
                while (_quarantine.Count > _options.QuarantineCapacity)
                {
                    KeyValuePair<long, HeldItem> oldest = _quarantine.First();
                    _quarantine.Remove(oldest.Key);
                    evicted.Add(oldest.Value);
                }
            }
        }

        foreach (HeldItem e in evicted)
        {
            Record(e.Info.Scope, LedgerEvent.Discarded, $"Quarantine #{e.Info.Id} ({e.Info.Rule}) discarded: the quarantine is full ({_options.QuarantineCapacity} items).", e.Info.JournalSequence, e.Info.Source, e.Info.Rule);
        }

        return id;
    }

    /// <summary>
    /// The new items of a batch that are outliers: a loss (mean NLL per completion token, before learning) whose robust
    /// z-score against recent items exceeds the threshold; else, when the step's gradient norm is such an outlier, the
    /// item with the highest loss (it drives the gradient most). Owner-approved items are never flagged.
    /// </summary>
    private List<Outlier> FindOutliers(LiveScope scope, List<LearnWork> batch, List<TrainingExample> examples, TrainingStepResult result)
    {
        OutlierOptions o = _options.Outliers;
        var found = new List<Outlier>();
        scope.LossWindow ??= new RobustZScore(o.Window);
        scope.NormWindow ??= new RobustZScore(o.Window);
        int highest = -1;
        double highestLoss = double.NegativeInfinity;
        for (int i = 0; i < batch.Count; i++)
        {
            ExampleScore score = result.Scores[i];
            if (!batch[i].Screen || score.Tokens == 0)
            {
                continue;
            }

            double loss = -score.LogLikelihood / score.Tokens;
            if (loss > highestLoss)
            {
                (highest, highestLoss) = (i, loss);
            }

            if (scope.LossWindow.Count >= o.MinItems && scope.LossWindow.Score(loss) is var z && z > o.Threshold)
            {
                (double median, _) = scope.LossWindow.Statistics();
                found.Add(new Outlier(i, "learner.loss-outlier", Invariant($"loss {loss:G4} per token is {z:F1} robust standard deviations above the recent median {median:G4} (threshold {o.Threshold})")));
            }
        }

        if (found.Count == 0 && highest >= 0 && scope.NormWindow.Count >= o.MinItems && double.IsFinite(result.Loss))
        {
            double norm;
            using (EnterLearning())
            {
                norm = scope.Trainer.ClipGradients(double.PositiveInfinity); // measures only: nothing is scaled
            }

            if (double.IsFinite(norm) && scope.NormWindow.Score(norm) is var z && z > o.Threshold)
            {
                (double median, _) = scope.NormWindow.Statistics();
                found.Add(new Outlier(highest, "learner.gradient-norm-outlier", Invariant($"the step's gradient norm {norm:G4} is {z:F1} robust standard deviations above the recent median {median:G4} (threshold {o.Threshold}); this item has the batch's highest loss ({highestLoss:G4})")));
            }
        }

        return found;
    }

    /// <summary>After a step: its items' losses and its gradient norm become part of the reference.</summary>
    private void RememberForScreening(LiveScope scope, List<TrainingExample> examples, IReadOnlyList<ExampleScore> scores, double norm)
    {
        if (!_options.Outliers.Enabled)
        {
            return;
        }

        scope.LossWindow ??= new RobustZScore(_options.Outliers.Window);
        scope.NormWindow ??= new RobustZScore(_options.Outliers.Window);
        for (int i = 0; i < examples.Count; i++)
        {
            if (scores[i].Tokens > 0)
            {
                scope.LossWindow.Add(-scores[i].LogLikelihood / scores[i].Tokens);
            }
        }

        scope.NormWindow.Add(norm);
    }

    /// <summary>Erases the outliers' journal records (so a restart never learns them), then keeps them for review.</summary>
    private async Task HoldBackAsync(LiveScope scope, List<LearnWork> batch, List<Outlier> outliers)
    {
        var sequences = outliers.Select(o => batch[o.Index].Record.Sequence).ToHashSet();
        await _journal.EraseAsync(sequences.Min() - 1, r => sequences.Contains(r.Sequence), CancellationToken.None).ConfigureAwait(false);
        DateTimeOffset now = _time.GetUtcNow();
        foreach (Outlier o in outliers)
        {
            JournalRecord record = batch[o.Index].Record;
            long? id = Hold(record, QuarantineOrigin.Learner, o.Rule, o.Reason, now);
            Log.Rejected(_logger, scope.Name, record.Source, RejectionReason.Quarantined, o.Reason);
            string held = id is null ? "not kept (QuarantineCapacity is 0)" : $"held as quarantine #{id}";
            Record(scope.Name, LedgerEvent.Quarantined, $"Item #{record.Sequence} held back before the step, {held}: {o.Reason}.", record.Sequence, record.Source, o.Rule);
        }
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);

    private sealed record HeldItem(QuarantinedItem Info, JournalRecord Record);

    private readonly record struct Outlier(int Index, string Rule, string Reason);
}
