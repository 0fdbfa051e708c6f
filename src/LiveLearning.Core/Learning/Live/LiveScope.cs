using System.Threading.Channels;
using LiveLearning.Backends;
using LiveLearning.Governance;
using LiveLearning.Storage;

namespace LiveLearning;

/// <summary>A published version: its identity, its weights, and the stack it serves with (parent versions under it).</summary>
internal sealed record PublishedVersion(AdapterVersion Info, IAdapterWeights Weights, IReadOnlyList<IAdapterWeights> Stack, PublishedVersion? Base)
{
    /// <summary>The frozen adapters under this scope's (the parent's stack), bottom-up.</summary>
    public IReadOnlyList<IAdapterWeights> BaseStack => Base?.Stack ?? [];
}

/// <summary>What a scope's learner works through, in order: items to learn and owner requests between them.</summary>
internal abstract record WorkItem
{
    /// <summary>Fails whoever waits for this item (nothing waits for a learn item or a rebase).</summary>
    public virtual void Fail(Exception exception)
    {
    }
}

/// <summary>An owner request whose caller waits for its result.</summary>
internal abstract record RequestWork<T>(TaskCompletionSource<T> Done) : WorkItem
{
    /// <inheritdoc />
    public override void Fail(Exception exception) => Done.TrySetException(exception);
}

/// <summary>An accepted item (its journal record, and the task that completes when it is durable).</summary>
internal sealed record LearnWork(JournalRecord Record, Task Durable) : WorkItem
{
    /// <summary>Whether the learner's outlier screening applies (not to an item an owner approved from quarantine).</summary>
    public bool Screen { get; init; } = true;
}

/// <summary>Completes once every earlier item is learned and published.</summary>
internal sealed record BarrierWork(TaskCompletionSource Done) : WorkItem
{
    /// <inheritdoc />
    public override void Fail(Exception exception) => Done.TrySetException(exception);
}

/// <summary>Takes a snapshot between steps.</summary>
internal sealed record SnapshotWork(string? Label, TaskCompletionSource<SnapshotInfo> Done) : RequestWork<SnapshotInfo>(Done);

/// <summary>Makes a kept version's weights current.</summary>
/// <summary>Make imported adapter weights the scope's current version.</summary>
internal sealed record ImportWork(AdapterWeightsData Weights, string? Reason, string? Actor, TaskCompletionSource<AdapterVersion> Done) : RequestWork<AdapterVersion>(Done);

internal sealed record RollbackWork(string VersionId, TaskCompletionSource<AdapterVersion> Done) : RequestWork<AdapterVersion>(Done)
{
    /// <summary>The snapshot to restore (an alias resolved to it), or null to look the version up.</summary>
    public string? SnapshotId { get; init; }

    /// <summary>Why, as the owner said (recorded).</summary>
    public string? Reason { get; init; }

    /// <summary>Who asked (recorded).</summary>
    public string? Actor { get; init; }
}

/// <summary>Removes a source's items from the replay buffer (it was excluded from replay).</summary>
internal sealed record PurgeReplayWork(string Source, TaskCompletionSource<int> Done) : RequestWork<int>(Done);

/// <summary>Leaves shadow mode or promotes the pending candidate (an owner's order).</summary>
internal sealed record PromoteCandidateWork(string? Actor, bool Required, TaskCompletionSource<AdapterVersion?> Done) : RequestWork<AdapterVersion?>(Done);

/// <summary>Forgets one source (rebuild without it, erase its records).</summary>
internal sealed record ForgetWork(string Source, string? Reason, string? Actor, TaskCompletionSource<ScopeForgetReport> Done) : RequestWork<ScopeForgetReport>(Done);

/// <summary>
/// Wakes the learner after the parent scope published (the pending flag says so); the learner follows the parent
/// between batches, never inside one, so a fixed batch is never split by it.
/// </summary>
internal sealed record RebaseWork : WorkItem;

/// <summary>
/// One scope: its trainer (touched only by its learner), its current version (read by any thread, replaced by one
/// reference write), its queue, history, replay buffer and figures.
/// </summary>
internal sealed class LiveScope
{
    private readonly List<PublishedVersion> _history = [];
    private readonly object _pauseLock = new();
    private readonly List<LiveScope> _children = [];
    private TaskCompletionSource _resumed = NewResumed();
    private PublishedVersion _current;
    private bool _paused;

    public LiveScope(string name, LiveScope? parent, ScopeOptions options, IAdapterTrainer trainer, ReplayBuffer replay, PublishedVersion initial, int queueCapacity)
    {
        Name = name;
        Parent = parent;
        Options = options;
        Trainer = trainer;
        Replay = replay;
        _current = initial;
        _history.Add(initial);
        Slots = new SemaphoreSlim(queueCapacity, queueCapacity);
        QueueCapacity = queueCapacity;
        VersionNumber = initial.Info.Number;
    }

    public string Name { get; }

    public LiveScope? Parent { get; }

    public ScopeOptions Options { get; }

    public IAdapterTrainer Trainer { get; }

    public ReplayBuffer Replay { get; set; }

    /// <summary>Queue order is learning order: every write happens under <see cref="AdmissionLock"/> with the journal append.
    /// (Not the single-reader variant: the learner needs <c>Count</c> and <c>TryPeek</c>, which only the general one has.)</summary>
    public Channel<WorkItem> Queue { get; } = Channel.CreateUnbounded<WorkItem>(new UnboundedChannelOptions { SingleReader = false });

    public object AdmissionLock { get; } = new();

    /// <summary>Free places in the queue (learn items only; owner requests never wait).</summary>
    public SemaphoreSlim Slots { get; }

    public int QueueCapacity { get; }

    public Task Learner { get; set; } = Task.CompletedTask;

    /// <summary>Why the learner stopped, if it did (learning items are then refused).</summary>
    public Exception? Failure { get; set; }

    /// <summary>Cancelled when the learner stops for good: callers waiting for queue room give up.</summary>
    public CancellationTokenSource Stopped { get; } = new();

    /// <summary>The parent published since this scope last followed it (set by the parent, taken by the learner).</summary>
    public int RebasePending;

    public PublishedVersion Current
    {
        get => Volatile.Read(ref _current);
        set
        {
            Volatile.Write(ref _current, value);
            lock (_history)
            {
                _history.Add(value);
            }
        }
    }

    public int HistoryCapacity { get; set; } = 8;

    // Learner-owned state (single writer).
    public long VersionNumber { get; set; }

    /// <summary>The journal's last sequence when the scope was created: recovery learns records up to it, no further (later ones come through the queue).</summary>
    public long RecoverUpTo { get; init; }

    public int StepsSincePublish { get; set; }

    public double ReplayCredit { get; set; }

    public double KtoReference { get; set; }

    public long JournalPosition { get; set; }

    public int SnapshotCount { get; set; }

    public bool Trimmed { get; set; }

    // Figures (written with Interlocked or by the learner; read by statistics).
    public long Received;
    public long Accepted;
    public long Rejected;
    public long Learned;
    public long Steps;
    public long SkippedSteps;
    public long StepTicks;
    public double LastLoss = double.NaN;

    public ProgressiveFigures Progressive { get; } = new();

    /// <summary>The drift detector on the progressive loss (null: none), fed by the learner only.</summary>
    public Governance.IDriftDetector? Drift { get; init; }

    /// <summary>An alarm the learner has not acted on yet (set while scoring a batch, handled after its step).</summary>
    public Governance.DriftReport? DriftAlarm { get; set; }

    /// <summary>Shadow mode: candidates are learned and evaluated, not served (read by the learner at each publication).</summary>
    public volatile bool Shadow;

    /// <summary>The newest candidate that passed evaluation while in shadow mode, not served (learner-owned; read by any thread).</summary>
    public volatile PublishedVersion? Candidate;

    /// <summary>Recent items' losses and steps' gradient norms, the reference of outlier screening (learner-owned).</summary>
    public RobustZScore? LossWindow { get; set; }

    /// <inheritdoc cref="LossWindow"/>
    public RobustZScore? NormWindow { get; set; }

    public int QueueDepth => QueueCapacity - Slots.CurrentCount;

    public bool Paused
    {
        get
        {
            lock (_pauseLock)
            {
                return _paused;
            }
        }
    }

    public IReadOnlyList<LiveScope> Children
    {
        get
        {
            lock (_children)
            {
                return [.. _children];
            }
        }
    }

    public void AddChild(LiveScope child)
    {
        lock (_children)
        {
            _children.Add(child);
        }
    }

    public IReadOnlyList<PublishedVersion> History()
    {
        lock (_history)
        {
            return [.. _history];
        }
    }

    /// <summary>Drops the oldest kept versions beyond the capacity (the current one is always kept).</summary>
    public void TrimHistory()
    {
        lock (_history)
        {
            while (_history.Count > HistoryCapacity)
            {
                _history.RemoveAt(0);
            }
        }
    }

    public PublishedVersion? FindVersion(string id)
    {
        lock (_history)
        {
            return _history.LastOrDefault(v => v.Info.Id == id);
        }
    }

    public bool Pause()
    {
        lock (_pauseLock)
        {
            if (_paused)
            {
                return false;
            }

            _paused = true;
            _resumed = NewResumed();
            return true;
        }
    }

    public bool Resume()
    {
        lock (_pauseLock)
        {
            if (!_paused)
            {
                return false;
            }

            _paused = false;
            _resumed.TrySetResult();
            return true;
        }
    }

    public Task WhenResumed()
    {
        lock (_pauseLock)
        {
            return _paused ? _resumed.Task : Task.CompletedTask;
        }
    }

    private static TaskCompletionSource NewResumed() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}

/// <summary>Running progressive-validation figures of one scope (written by its learner, read under the lock).</summary>
internal sealed class ProgressiveFigures
{
    private const double RecentDecay = 0.9;

    private readonly Lock _lock = new();

    private long _completions;
    private double _completionLossSum;
    private double _recentLoss = double.NaN;
    private long _preferences;
    private long _preferencesRight;
    private double _marginSum;
    private long _positive;
    private double _positiveSum;
    private long _negative;
    private double _negativeSum;

    public void AddCompletion(double lossPerToken)
    {
        lock (_lock)
        {
            _completions++;
            _completionLossSum += lossPerToken;
            _recentLoss = double.IsNaN(_recentLoss) ? lossPerToken : (RecentDecay * _recentLoss) + ((1 - RecentDecay) * lossPerToken);
        }
    }

    public void AddPreference(double margin)
    {
        lock (_lock)
        {
            _preferences++;
            _preferencesRight += margin > 0 ? 1 : 0;
            _marginSum += margin;
        }
    }

    public void AddRating(bool positive, double logRatio)
    {
        lock (_lock)
        {
            if (positive)
            {
                _positive++;
                _positiveSum += logRatio;
            }
            else
            {
                _negative++;
                _negativeSum += logRatio;
            }
        }
    }

    public ProgressiveValidation Snapshot(double ktoReference)
    {
        lock (_lock)
        {
            return new ProgressiveValidation
            {
                CompletionItems = _completions,
                MeanCompletionLoss = _completions == 0 ? double.NaN : _completionLossSum / _completions,
                RecentCompletionLoss = _recentLoss,
                PreferenceItems = _preferences,
                PreferenceAccuracy = _preferences == 0 ? double.NaN : (double)_preferencesRight / _preferences,
                MeanPreferenceMargin = _preferences == 0 ? double.NaN : _marginSum / _preferences,
                RatingItems = _positive + _negative,
                MeanPositiveLogRatio = _positive == 0 ? double.NaN : _positiveSum / _positive,
                MeanNegativeLogRatio = _negative == 0 ? double.NaN : _negativeSum / _negative,
                KtoReferencePoint = ktoReference,
            };
        }
    }
}
