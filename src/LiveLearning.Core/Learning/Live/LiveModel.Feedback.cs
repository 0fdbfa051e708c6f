using LiveLearning.Backends;
using LiveLearning.Governance;
using LiveLearning.Storage;

namespace LiveLearning;

// Accepting feedback: resolve the prompt, encode, check, gate, then journal and queue in one step.
public sealed partial class LiveModel
{
    /// <inheritdoc />
    public async ValueTask<LearnReceipt> LearnAsync(Feedback feedback, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(feedback);
        ThrowIfDisposed();
        DateTimeOffset now = _time.GetUtcNow();
        feedback = feedback.Timestamp is null ? feedback with { Timestamp = now } : feedback;
        int forms = (feedback.Prompt is null ? 0 : 1) + (feedback.Messages is null ? 0 : 1) + (feedback.ResponseId is null ? 0 : 1);
        if (forms != 1)
        {
            throw new ArgumentException($"A feedback item states its prompt in exactly one way (Prompt, Messages or ResponseId); this one gives {forms}.", nameof(feedback));
        }

        if (string.IsNullOrWhiteSpace(feedback.Source))
        {
            throw new ArgumentException("Feedback.Source must name who gave the feedback.", nameof(feedback));
        }

        ServedResponse? served = feedback.ResponseId is null ? null : _responses.TryGet(feedback.ResponseId);
        LiveScope scope = GetScope(feedback.Scope ?? served?.Scope);
        ThrowIfLearnerStopped(scope);
        Interlocked.Increment(ref scope.Received);
        _metrics.Received(scope.Name);
        if (feedback.ResponseId is not null && served is null)
        {
            return Refuse(scope, feedback.Source, RejectionReason.UnknownResponse, $"Response '{feedback.ResponseId}' is unknown: never served by this model, or no longer among the {_options.ResponseCacheCapacity} most recent responses.", now);
        }

        if (served is not null && !ServedBySelfOrBelow(scope, served.Scope))
        {
            return Refuse(scope, feedback.Source, RejectionReason.ResponseScope, $"Response '{feedback.ResponseId}' was served by scope '{served.Scope}': it can teach that scope or one it stacks on, not '{scope.Name}'.", now);
        }

        if (!(feedback.Weight > 0) || !double.IsFinite(feedback.Weight))
        {
            return Refuse(scope, feedback.Source, RejectionReason.InvalidWeight, $"Weight {feedback.Weight} is not a positive, finite number.", now);
        }

        if (!TryBuildExample(feedback, served, scope, out TrainingExample? example, out RejectionReason reason, out string message))
        {
            return Refuse(scope, feedback.Source, reason, message, now);
        }

        var context = new GateContext(Name, scope.Name, feedback, example.Prompt.Count, example.Completion.Count, example.Rejected?.Count ?? 0);
        foreach (IFeedbackGate gate in _gates)
        {
            GateDecision decision = await gate.EvaluateAsync(context, cancellationToken).ConfigureAwait(false);
            switch (decision.Outcome)
            {
                case GateOutcome.Warn:
                    Record(scope.Name, LedgerEvent.Warned, decision.Reason ?? "warning", source: feedback.Source, rule: gate.Name);
                    break;
                case GateOutcome.Reject:
                    return Refuse(scope, feedback.Source, RejectionReason.RejectedByGate, decision.Reason ?? "rejected", now, gate.Name);
                case GateOutcome.Quarantine:
                    return QuarantineAtGate(scope, feedback, example, gate.Name, decision.Reason ?? "quarantined", now);
                case GateOutcome.Fail:
                    Refuse(scope, feedback.Source, RejectionReason.RejectedByGate, decision.Reason ?? "refused", now, gate.Name);
                    throw new FeedbackRuleException(gate.Name, decision.Reason ?? "refused");
            }
        }

        LearnReceipt receipt = await AdmitAsync(scope, ToRecord(scope, feedback, example), now, screen: true, cancellationToken).ConfigureAwait(false);
        if (receipt.Accepted)
        {
            foreach (IFeedbackGate gate in _gates)
            {
                (gate as IFeedbackAcceptanceObserver)?.OnAccepted(context, receipt.SequenceNumber);
            }
        }

        return receipt;
    }

    /// <summary>Whether <paramref name="target"/> is the scope named <paramref name="servedBy"/> or one of its ancestors.</summary>
    private bool ServedBySelfOrBelow(LiveScope target, string servedBy)
    {
        for (LiveScope? s = _scopes.TryGetValue(servedBy, out LiveScope? found) ? found : null; s is not null; s = s.Parent)
        {
            if (ReferenceEquals(s, target))
            {
                return true;
            }
        }

        return false;
    }

    private JournalRecord ToRecord(LiveScope scope, Feedback feedback, TrainingExample example) => new()
    {
        Model = Name,
        Scope = scope.Name,
        ReceivedAt = feedback.Timestamp!.Value,
        Source = feedback.Source,
        Example = example,
        Private = feedback.Private,
        Tags = feedback.Tags,
    };

    /// <summary>Waits for queue room, journals and queues the record in one step, and returns once it is durable.</summary>
    /// <param name="scope">The scope.</param>
    /// <param name="record">The record (its sequence is assigned here).</param>
    /// <param name="now">When the item was received.</param>
    /// <param name="screen">Whether the learner's outlier screening applies (not to an item an owner approved).</param>
    /// <param name="cancellationToken">Cancels the wait for room.</param>
    private async ValueTask<LearnReceipt> AdmitAsync(LiveScope scope, JournalRecord record, DateTimeOffset now, bool screen, CancellationToken cancellationToken)
    {
        if (_options.Learner.BackPressure == BackPressure.FailFast)
        {
            if (!scope.Slots.Wait(0, CancellationToken.None))
            {
                return Refuse(scope, record.Source, RejectionReason.QueueFull, $"The queue of scope '{scope.Name}' is full ({scope.QueueCapacity} items).", now);
            }
        }
        else
        {
            // Waiting for room also ends when the model stops or the scope's learner does (nobody would make room).
            using var waiting = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _stopping.Token, scope.Stopped.Token);
            try
            {
                await scope.Slots.WaitAsync(waiting.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                ThrowIfLearnerStopped(scope);
                throw new ObjectDisposedException(nameof(LiveModel), "The live model stopped while the item waited for queue room.");
            }
        }

        JournalAppend appended;
        try
        {
            // One step under the admission lock: the journal's order is the queue's order is the learning order.
            lock (scope.AdmissionLock)
            {
                ThrowIfDisposed();
                ThrowIfLearnerStopped(scope);
                appended = _journal.Append(record);
                if (!scope.Queue.Writer.TryWrite(new LearnWork(record with { Sequence = appended.Sequence }, appended.Durable) { Screen = screen }))
                {
                    throw new ObjectDisposedException(nameof(LiveModel), "The live model is shutting down.");
                }
            }
        }
        catch
        {
            scope.Slots.Release();
            throw;
        }

        // Durable before the receipt; not cancellable once journaled. If it cannot be made durable the call fails and
        // the learner drops the item (an item is learned only if it was acknowledged).
        await appended.Durable.ConfigureAwait(false);
        Interlocked.Increment(ref scope.Accepted);
        _metrics.Accepted(scope.Name);
        Log.Accepted(_logger, scope.Name, appended.Sequence, record.Source);
        TrainingExample example = record.Example;
        Record(scope.Name, LedgerEvent.Accepted, $"{example.Objective} item accepted ({example.Prompt.Count} prompt and {example.Completion.Count + (example.Rejected?.Count ?? 0)} completion tokens).", appended.Sequence, record.Source);
        return new LearnReceipt { Accepted = true, Scope = scope.Name, SequenceNumber = appended.Sequence, ReceivedAt = now };
    }

    private static void ThrowIfLearnerStopped(LiveScope scope)
    {
        if (scope.Failure is { } failure)
        {
            throw new InvalidOperationException($"The learner of scope '{scope.Name}' stopped ({failure.Message}); nothing more can be learned until the model is restarted.", failure);
        }
    }

    /// <summary>
    /// The tokens a completion learns: a served response's own tokens when the item rates or rejects what the model
    /// said (with the end token only if the model itself stopped there), else the text encoded with the end token.
    /// </summary>
    private IReadOnlyList<int> CompletionTokens(string text, ServedResponse? served, PromptKind kind)
    {
        bool end = _options.Learner.AppendEndToken;
        if (served is null || !ReferenceEquals(text, served.Text))
        {
            return _backend.EncodeCompletion(text, kind, end);
        }

        return served.End switch
        {
            ServedEnd.StopToken => end ? [.. served.CompletionTokens, .. EndToken(kind)] : served.CompletionTokens,
            ServedEnd.Length => served.CompletionTokens,
            ServedEnd.StopString => _backend.EncodeCompletion(text, kind, end),
            _ => _backend.EncodeCompletion(text, kind, appendEnd: false),
        };
    }

    /// <summary>The end token of a completion of this kind (what EncodeCompletion appends), as a list of zero or one id.</summary>
    private IReadOnlyList<int> EndToken(PromptKind kind)
    {
        IReadOnlyList<int> without = _backend.EncodeCompletion(" ", kind, appendEnd: false);
        IReadOnlyList<int> with = _backend.EncodeCompletion(" ", kind, appendEnd: true);
        return with.Count > without.Count ? [with[^1]] : [];
    }

    /// <summary>Encodes the item; a data problem (empty text, too long) is a reason, a programming error an exception.</summary>
    private bool TryBuildExample(Feedback feedback, ServedResponse? served, LiveScope scope, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out TrainingExample? example, out RejectionReason reason, out string message)
    {
        example = null;
        reason = default;
        message = string.Empty;
        PromptKind kind = served?.Kind ?? (feedback.Messages is null ? PromptKind.Text : PromptKind.Chat);
        if (feedback.Prompt is { Length: 0 } || feedback.Messages is { Count: 0 })
        {
            (reason, message) = (RejectionReason.EmptyText, "The prompt is empty.");
            return false;
        }

        (TrainingObjective objective, string? completion, string? rejected, bool desirable) = feedback switch
        {
            Demonstration d => (TrainingObjective.Completion, d.Completion, null, true),
            Preference p => (TrainingObjective.Preference, p.Chosen, p.Rejected ?? served?.Text ?? throw new ArgumentException("A preference without a ResponseId needs Rejected.", nameof(feedback)), true),
            Rating r => (TrainingObjective.Rating, r.Completion ?? served?.Text ?? throw new ArgumentException("A rating without a ResponseId needs Completion.", nameof(feedback)), null, r.Positive),
            _ => throw new ArgumentException($"Unknown feedback kind {feedback.GetType().Name}.", nameof(feedback)),
        };

        if (string.IsNullOrEmpty(completion) || rejected is { Length: 0 })
        {
            (reason, message) = (RejectionReason.EmptyText, objective == TrainingObjective.Preference ? "The chosen or the rejected completion is empty." : "The completion is empty.");
            return false;
        }

        IReadOnlyList<int> prompt = served?.PromptTokens ?? (kind == PromptKind.Text ? _backend.EncodePrompt(feedback.Prompt!) : _backend.EncodeChatPrompt(feedback.Messages!));
        if (prompt.Count == 0)
        {
            (reason, message) = (RejectionReason.EmptyText, "The prompt encodes to no token.");
            return false;
        }

        IReadOnlyList<int> ids = CompletionTokens(completion, served, kind);
        IReadOnlyList<int>? rejectedIds = rejected is null ? null : CompletionTokens(rejected, served, kind);
        if (ids.Count == 0 || rejectedIds is { Count: 0 })
        {
            (reason, message) = (RejectionReason.EmptyText, "The completion encodes to no token.");
            return false;
        }
        int longest = Math.Max(ids.Count, rejectedIds?.Count ?? 0);
        int context = _backend.ContextLength;
        if (prompt.Count + longest > context)
        {
            (reason, message) = (RejectionReason.TooLong, $"The prompt and completion have {prompt.Count + longest} tokens; the context length is {context}.");
            return false;
        }

        if (_options.MaxPromptTokens > 0 && prompt.Count > _options.MaxPromptTokens)
        {
            (reason, message) = (RejectionReason.TooLong, $"The prompt has {prompt.Count} tokens; MaxPromptTokens is {_options.MaxPromptTokens}.");
            return false;
        }

        int maxCompletion = scope.Options.MaxCompletionTokens ?? _options.MaxCompletionTokens;
        if (maxCompletion > 0 && longest > maxCompletion)
        {
            (reason, message) = (RejectionReason.TooLong, $"The completion has {longest} tokens; MaxCompletionTokens is {maxCompletion}.");
            return false;
        }

        example = new TrainingExample(objective, prompt, ids) { Rejected = rejectedIds, Desirable = desirable, Weight = feedback.Weight };
        return true;
    }

    private LearnReceipt Refuse(LiveScope scope, string source, RejectionReason reason, string message, DateTimeOffset at, string? rule = null, LedgerEvent kind = LedgerEvent.Rejected)
    {
        Interlocked.Increment(ref scope.Rejected);
        _metrics.Rejected(scope.Name, reason);
        Log.Rejected(_logger, scope.Name, source, reason, message);
        Record(scope.Name, kind, $"{reason}: {message}", source: source, rule: rule);
        return LearnReceipt.Reject(scope.Name, reason, message, at, rule);
    }

    /// <summary>A gate rule quarantined the item: it is kept for review (never journaled unless approved).</summary>
    private LearnReceipt QuarantineAtGate(LiveScope scope, Feedback feedback, TrainingExample example, string rule, string reason, DateTimeOffset now)
    {
        long? id = Hold(ToRecord(scope, feedback, example), QuarantineOrigin.Gate, rule, reason, now, feedback);
        string held = id is null ? " (the quarantine keeps nothing: QuarantineCapacity is 0)" : $" (held as quarantine #{id})";
        return Refuse(scope, feedback.Source, RejectionReason.Quarantined, reason + held, now, rule, LedgerEvent.Quarantined) with { QuarantineId = id };
    }
}
