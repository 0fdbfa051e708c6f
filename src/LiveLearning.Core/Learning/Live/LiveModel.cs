using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Security.Cryptography;
using System.Runtime.InteropServices;
using LiveLearning.Backends;
using LiveLearning.Governance;
using LiveLearning.Storage;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace LiveLearning;

/// <summary>The collaborators of a live model; every one is optional and defaults to an in-memory or no-op implementation.</summary>
public sealed class LiveModelServices
{
    /// <summary>The clock (timestamps, version times). Default <see cref="TimeProvider.System"/>.</summary>
    public TimeProvider Time { get; init; } = TimeProvider.System;

    /// <summary>Where log events go. Default none.</summary>
    public ILoggerFactory? LoggerFactory { get; init; }

    /// <summary>Creates the <c>LiveLearning</c> meter (a host's, so its listeners see it). Default: the model creates its own.</summary>
    public IMeterFactory? MeterFactory { get; init; }

    /// <summary>Validation rules, run in order on every feedback item. Default none.</summary>
    public IReadOnlyList<IFeedbackGate> Gates { get; init; } = [];

    /// <summary>The feedback journal. Default <see cref="InMemoryFeedbackJournal"/>.</summary>
    public IFeedbackJournal? Journal { get; init; }

    /// <summary>The snapshot store. Default <see cref="InMemorySnapshotStore"/>.</summary>
    public ISnapshotStore? Snapshots { get; init; }

    /// <summary>Decides promotion of candidate versions. Default <see cref="PromoteAlways"/>.</summary>
    public IVersionEvaluator? Evaluator { get; init; }

    /// <summary>The audit ledger. Default <see cref="InMemoryLedger"/>.</summary>
    public ILearningLedger? Ledger { get; init; }
}

/// <summary>
/// The live loop over an <see cref="ILearningBackend"/>: serves completions from each scope's current adapter version
/// while one background learner per scope learns the accepted feedback (validated, journaled, micro-batched, mixed with
/// replay, scored before it is learned) and publishes new immutable versions with a single reference swap.
/// </summary>
/// <remarks>See <see cref="ILiveModel"/> for the contract. The learners start with the model; disposing it drains or
/// stops them (<see cref="LiveModelOptions.Shutdown"/>).</remarks>
public sealed partial class LiveModel : ILiveModel
{
    /// <summary>The key of <see cref="Microsoft.Extensions.AI.ChatOptions.AdditionalProperties"/> that names the scope of a chat request.</summary>
    public const string ScopeProperty = "livelearning.scope";

    /// <summary>The key of a chat response's additional properties that holds the id of the version that produced it.</summary>
    public const string VersionProperty = "livelearning.version";

    private readonly ILearningBackend _backend;
    private readonly bool _ownsBackend;
    private readonly LiveModelOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly LiveLearningMetrics _metrics;
    private readonly ActivitySource _activity = new(LiveLearningMetrics.MeterName);
    private readonly IReadOnlyList<IFeedbackGate> _gates;
    private readonly IFeedbackJournal _journal;
    private readonly ISnapshotStore _snapshots;
    private readonly IVersionEvaluator _evaluator;
    private readonly ILearningLedger _ledger;
    private readonly ConcurrentDictionary<string, LiveScope> _scopes = new(StringComparer.Ordinal);
    private readonly List<string> _scopeOrder = [];
    private readonly HashSet<string> _reserved = new(StringComparer.Ordinal);
    private readonly ResponseCache _responses;
    private readonly List<System.Threading.Channels.Channel<AdapterVersion>> _watchers = [];
    private readonly CancellationTokenSource _stopping = new();
    private readonly TaskCompletionSource _servingDone = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Task? _disposal;
    private int _disposed;
    private int _serving;
    private long _ledgerFailures;

    /// <summary>Creates a live model and starts its learners.</summary>
    /// <param name="backend">The engine (base model and adapters).</param>
    /// <param name="options">The options (validated here).</param>
    /// <param name="services">Clock, logging, metrics, gates, journal, snapshot store, evaluator, ledger; all optional.</param>
    /// <param name="ownsBackend">Whether disposing the model disposes the backend.</param>
    /// <exception cref="ArgumentException">An option is invalid (every problem is named).</exception>
    public LiveModel(ILearningBackend backend, LiveModelOptions options, LiveModelServices? services = null, bool ownsBackend = true)
    {
        ArgumentNullException.ThrowIfNull(backend);
        ArgumentNullException.ThrowIfNull(options);
        IReadOnlyList<string> problems = options.Validate();
        if (problems.Count > 0)
        {
            throw new ArgumentException("Invalid live model options: " + string.Join(" ", problems), nameof(options));
        }

        services ??= new LiveModelServices();
        options = options.Clone();
        _backend = backend;
        _ownsBackend = ownsBackend;
        _options = options;
        _time = services.Time ?? TimeProvider.System;
        _logger = services.LoggerFactory?.CreateLogger("LiveLearning.LiveModel") ?? NullLogger.Instance;
        _gates = services.Gates ?? [];
        _journal = services.Journal ?? new InMemoryFeedbackJournal();
        _snapshots = services.Snapshots ?? new InMemorySnapshotStore();
        _evaluator = services.Evaluator ?? new PromoteAlways();
        _ledger = services.Ledger ?? new InMemoryLedger();
        _responses = new ResponseCache(options.ResponseCacheCapacity);
        foreach (string source in options.ExcludedFromReplay)
        {
            _excludedFromReplay.TryAdd(source, 0);
        }

        _metrics = new LiveLearningMetrics(options.Name, services.MeterFactory, () => _scopes.Values);
        Name = options.Name;

        try
        {
            AddScope(options.Scopes.FirstOrDefault(s => s.Name == options.DefaultScope) ?? new ScopeOptions { Name = options.DefaultScope });
            foreach (ScopeOptions scope in options.Scopes)
            {
                if (scope.Name != options.DefaultScope)
                {
                    AddScope(scope);
                }
            }
        }
        catch
        {
            // Nothing half-built survives: the learners already started stop, the backend is released if owned.
            DisposeAsync().AsTask().GetAwaiter().GetResult();
            throw;
        }

        Log.Started(_logger, Name, string.Join(", ", Scopes));
    }

    /// <inheritdoc />
    public string Name { get; }

    /// <summary>The engine the model runs on.</summary>
    public ILearningBackend Backend => _backend;

    /// <inheritdoc />
    public AdapterVersion Version => GetVersion(null);

    /// <inheritdoc />
    public IReadOnlyList<string> Scopes
    {
        get
        {
            ThrowIfDisposed();
            lock (_scopeOrder)
            {
                return [.. _scopeOrder];
            }
        }
    }

    /// <inheritdoc />
    public AdapterVersion CreateScope(ScopeOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        ThrowIfDisposed();
        return AddScope(options).Current.Info;
    }

    /// <inheritdoc />
    public AdapterVersion GetVersion(string? scope = null) => GetScope(scope).Current.Info;

    /// <inheritdoc />
    public IReadOnlyList<AdapterVersion> GetVersionHistory(string? scope = null) => [.. GetScope(scope).History().Select(v => v.Info)];

    /// <summary>
    /// The weights of a version kept in memory (the scope's own adapter, without the parent's under it), e.g. to export
    /// it (<see cref="IAdapterWeights.Export"/>) or to compare versions.
    /// </summary>
    /// <param name="versionId">A version id from <see cref="GetVersionHistory"/>.</param>
    /// <returns>The weights.</returns>
    /// <exception cref="KeyNotFoundException">No kept version has that id.</exception>
    public IAdapterWeights GetWeights(string versionId)
    {
        ArgumentException.ThrowIfNullOrEmpty(versionId);
        ThrowIfDisposed();
        int at = versionId.LastIndexOf('@');
        LiveScope? scope = at > 0 && _scopes.TryGetValue(versionId[..at], out LiveScope? s) ? s : null;
        return scope?.FindVersion(versionId)?.Weights ?? throw new KeyNotFoundException($"No version '{versionId}' is kept in memory.");
    }

    /// <inheritdoc />
    public IAsyncEnumerable<AdapterVersion> WatchVersionsAsync(string? scope = null, CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        if (scope is not null)
        {
            GetScope(scope);
        }

        // Registered now, not at the first MoveNextAsync: every version published after this call is delivered.
        var channel = System.Threading.Channels.Channel.CreateUnbounded<AdapterVersion>(new System.Threading.Channels.UnboundedChannelOptions { SingleReader = true });
        lock (_watchers)
        {
            _watchers.Add(channel);
        }

        return Watch(channel, scope, cancellationToken);
    }

    private async IAsyncEnumerable<AdapterVersion> Watch(System.Threading.Channels.Channel<AdapterVersion> channel, string? scope, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        try
        {
            await foreach (AdapterVersion v in channel.Reader.ReadAllAsync(cancellationToken).ConfigureAwait(false))
            {
                if (scope is null || v.Scope == scope)
                {
                    yield return v;
                }
            }
        }
        finally
        {
            lock (_watchers)
            {
                _watchers.Remove(channel);
            }
        }
    }

    /// <inheritdoc />
    public void PauseLearning(string? scope = null, string? actor = null)
    {
        ThrowIfDisposed();
        foreach (LiveScope s in Selected(scope))
        {
            if (s.Pause())
            {
                Log.PauseChanged(_logger, s.Name, "paused");
                Record(s.Name, LedgerEvent.Paused, "Learning paused by the owner.", actor: actor);
            }
        }
    }

    /// <inheritdoc />
    public void ResumeLearning(string? scope = null, string? actor = null)
    {
        ThrowIfDisposed();
        foreach (LiveScope s in Selected(scope))
        {
            if (s.Resume())
            {
                Log.PauseChanged(_logger, s.Name, "resumed");
                Record(s.Name, LedgerEvent.Resumed, "Learning resumed by the owner.", actor: actor);
            }
        }
    }

    /// <inheritdoc />
    public async Task WaitForIdleAsync(string? scope = null, CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();

        // In creation order, so parents go first: a parent's last publication queues its children's rebases before
        // their barriers are posted, and "idle" then includes them.
        foreach (LiveScope s in Selected(scope))
        {
            var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            Post(s, new BarrierWork(done));
            await done.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <inheritdoc />
    public async Task<SnapshotInfo> SnapshotAsync(string? label = null, string? scope = null, CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        LiveScope s = GetScope(scope);
        var done = new TaskCompletionSource<SnapshotInfo>(TaskCreationOptions.RunContinuationsAsynchronously);
        Post(s, new SnapshotWork(label, done));
        return await done.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public async Task<AdapterVersion> RollbackAsync(string versionId, string? reason = null, string? actor = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(versionId);
        ThrowIfDisposed();
        string? snapshotId = null;
        if (SnapshotAliases.IsValid(versionId) && !versionId.Contains('@', StringComparison.Ordinal))
        {
            // An alias names a snapshot; its version names the scope.
            (string? aliased, SnapshotInfo? info) = await ResolveAliasAsync(versionId, null, cancellationToken).ConfigureAwait(false);
            snapshotId = aliased ?? throw new KeyNotFoundException($"'{versionId}' is neither a version id (scope@number) nor a snapshot alias.");
            versionId = info?.Version.Id ?? throw new KeyNotFoundException($"Alias '{versionId}' points at snapshot '{SnapshotAliases.Printable(snapshotId)}', which is not a readable snapshot of model '{Name}'.");
        }

        int at = versionId.LastIndexOf('@');
        string scopeName = at > 0 ? versionId[..at] : throw new KeyNotFoundException($"'{versionId}' is not a version id (expected scope@number).");
        LiveScope s = _scopes.TryGetValue(scopeName, out LiveScope? found) ? found : throw new KeyNotFoundException($"Version '{versionId}': the model has no scope '{scopeName}'.");
        var done = new TaskCompletionSource<AdapterVersion>(TaskCreationOptions.RunContinuationsAsynchronously);
        Post(s, new RollbackWork(versionId, done) { SnapshotId = snapshotId, Reason = reason, Actor = actor });
        return await done.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The snapshot an alias names (null when the alias is unknown) and, when it is a readable snapshot of this
    /// model (and of <paramref name="scope"/>, when given), its description.</summary>
    private async Task<(string? SnapshotId, SnapshotInfo? Info)> ResolveAliasAsync(string alias, string? scope, CancellationToken cancellationToken)
    {
        IReadOnlyDictionary<string, string> aliases = await _snapshots.ListAliasesAsync(cancellationToken).ConfigureAwait(false);
        if (!aliases.TryGetValue(alias, out string? id))
        {
            return (null, null);
        }

        SnapshotInfo? info = (await _snapshots.ListAsync(scope, cancellationToken).ConfigureAwait(false)).FirstOrDefault(i => i.Id == id && i.Model == Name);
        return (id, info);
    }

    /// <inheritdoc />
    public async Task<AdapterVersion> ImportAdapterAsync(AdapterWeightsData weights, string? scope = null, string? reason = null, string? actor = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(weights);
        ThrowIfDisposed();
        LiveScope s = GetScope(scope);
        var done = new TaskCompletionSource<AdapterVersion>(TaskCreationOptions.RunContinuationsAsynchronously);
        Post(s, new ImportWork(weights, reason, actor, done));
        return await done.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public LiveModelStatistics GetStatistics()
    {
        ThrowIfDisposed();
        var scopes = new List<ScopeStatistics>();
        foreach (string name in Scopes)
        {
            LiveScope s = _scopes[name];
            long steps = Interlocked.Read(ref s.Steps);
            scopes.Add(new ScopeStatistics
            {
                Scope = name,
                Version = s.Current.Info,
                Paused = s.Paused,
                QueueDepth = s.QueueDepth,
                Received = Interlocked.Read(ref s.Received),
                Accepted = Interlocked.Read(ref s.Accepted),
                Rejected = Interlocked.Read(ref s.Rejected),
                Learned = Interlocked.Read(ref s.Learned),
                Steps = steps,
                SkippedSteps = Interlocked.Read(ref s.SkippedSteps),
                LastLoss = Volatile.Read(ref s.LastLoss),
                MeanStepMilliseconds = steps == 0 ? 0 : _time.GetElapsedTime(0, Interlocked.Read(ref s.StepTicks)).TotalMilliseconds / steps,
                ReplayItems = s.Replay.Count,
                ReplayBytes = s.Replay.Bytes,
                TrainerBytes = s.Trainer.StateBytes,
                Progressive = s.Progressive.Snapshot(s.KtoReference),
            });
        }

        return new LiveModelStatistics(Name, scopes) { LedgerFailures = Interlocked.Read(ref _ledgerFailures) };
    }

    /// <summary>
    /// Drains or stops the learners (<see cref="LiveModelOptions.Shutdown"/>), waits for the responses in flight (they end
    /// at their next token), then releases the backend if owned. Every call returns the same task.
    /// </summary>
    /// <returns>A task that completes when the model has stopped.</returns>
    public ValueTask DisposeAsync()
    {
        lock (_scopeOrder)
        {
            if (_disposal is null)
            {
                Interlocked.Exchange(ref _disposed, 1); // a full fence, against EnterServing's increment-then-check
                if (Volatile.Read(ref _serving) == 0)
                {
                    _servingDone.TrySetResult();
                }

                _disposal = DisposeCoreAsync([.. _scopes.Values]);
            }

            return new ValueTask(_disposal);
        }
    }

    /// <summary>Stops every learner between steps now, whatever the shutdown mode (a host whose stop timed out).</summary>
    internal void StopLearningNow() => _stopping.Cancel();

    private async Task DisposeCoreAsync(LiveScope[] scopes)
    {
        int remaining = scopes.Sum(s => s.QueueDepth);
        if (_options.Shutdown == ShutdownMode.Immediate)
        {
            await _stopping.CancelAsync().ConfigureAwait(false);
        }
        else
        {
            foreach (LiveScope s in scopes)
            {
                s.Resume();
            }
        }

        foreach (LiveScope s in scopes)
        {
            lock (s.AdmissionLock)
            {
                s.Queue.Writer.TryComplete();
            }
        }

        Task all = Task.WhenAll(scopes.Select(s => s.Learner));
        try
        {
            // Task.WaitAsync takes at most 2^32 − 2 ms (~49.7 days): longer timeouts wait without limit.
            bool unlimited = _options.DrainTimeout == Timeout.InfiniteTimeSpan || _options.DrainTimeout.TotalMilliseconds >= uint.MaxValue - 1;
            await (unlimited ? all : all.WaitAsync(_options.DrainTimeout, _time)).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            await _stopping.CancelAsync().ConfigureAwait(false);
            await all.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }

        foreach (LiveScope s in scopes)
        {
            FailPending(s);
        }

        lock (_watchers)
        {
            foreach (var w in _watchers)
            {
                w.Writer.TryComplete();
            }
        }

        // Responses in flight stop at their next token; the backend is released only once none runs on it.
        await _servingDone.Task.ConfigureAwait(false);
        Log.Stopped(_logger, Name, _options.Shutdown, remaining);
        _metrics.Dispose();
        _activity.Dispose();
        if (_ownsBackend)
        {
            _backend.Dispose();
        }
    }

    /// <summary>Counts a serving call in; false once the model is disposed (the caller then throws).</summary>
    private bool EnterServing()
    {
        Interlocked.Increment(ref _serving);
        if (Volatile.Read(ref _disposed) != 0)
        {
            LeaveServing();
            return false;
        }

        return true;
    }

    private void LeaveServing()
    {
        if (Interlocked.Decrement(ref _serving) == 0 && Volatile.Read(ref _disposed) != 0)
        {
            _servingDone.TrySetResult();
        }
    }

    /// <summary>Same as <see cref="DisposeAsync"/>, waiting on the calling thread.</summary>
    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    /// <summary>The SHA-256 (lower-case hex) of adapter weights: each tensor's name, shape and raw float bytes, in order.</summary>
    /// <param name="weights">The weights.</param>
    /// <returns>The hash.</returns>
    public static string ContentHash(IAdapterWeights weights)
    {
        ArgumentNullException.ThrowIfNull(weights);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        Span<byte> number = stackalloc byte[8];
        foreach (NamedTensor t in weights.Export().Tensors)
        {
            hash.AppendData(System.Text.Encoding.UTF8.GetBytes(t.Name));
            foreach (int d in t.Shape)
            {
                System.Buffers.Binary.BinaryPrimitives.WriteInt64LittleEndian(number, d);
                hash.AppendData(number);
            }

            hash.AppendData(MemoryMarshal.AsBytes(t.Values.Span));
        }

        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    private LiveScope AddScope(ScopeOptions options)
    {
        if (!ScopeNames.IsValid(options.Name))
        {
            throw new ArgumentException($"Scope name '{options.Name}' is not valid ({ScopeNames.Rule}).", nameof(options));
        }

        options.Optimizer?.Validate();
        if (options.VersionHistoryCapacity is < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.VersionHistoryCapacity, "VersionHistoryCapacity must be at least 1.");
        }

        // The name is reserved under the lock; the trainer (which may take a while) is built outside it, so a disposal
        // never waits for a scope being created, and the scope is refused if the model was disposed meanwhile.
        LiveScope? parent = null;
        lock (_scopeOrder)
        {
            ThrowIfDisposed();
            if (_scopes.ContainsKey(options.Name) || !_reserved.Add(options.Name))
            {
                throw new ArgumentException($"Scope '{options.Name}' already exists.", nameof(options));
            }

            if (options.Parent is not null && !_scopes.TryGetValue(options.Parent, out parent))
            {
                _reserved.Remove(options.Name);
                throw new ArgumentException($"Scope '{options.Name}': parent scope '{options.Parent}' does not exist.", nameof(options));
            }
        }

        LiveScope scope;
        try
        {
            ulong seed = ScopeSeed(options.Name);
            IAdapterTrainer trainer = _backend.CreateTrainer(new TrainerOptions(options.Name, seed));
            IAdapterWeights weights = trainer.Publish();
            PublishedVersion? below = parent?.Current;
            var info = new AdapterVersion
            {
                Id = options.Name + "@1",
                Scope = options.Name,
                Number = 1,
                BaseVersionId = below?.Info.Id,
                ContentHash = ContentHash(weights),
                CreatedAt = _time.GetUtcNow(),
                Reason = "initial",
            };
            var initial = new PublishedVersion(info, weights, [.. below?.Stack ?? [], weights], below);
            scope = new LiveScope(options.Name, parent, options.Clone(), trainer, ReplayBuffer.Create(_options.Replay, ReplaySeed(seed)), initial, options.QueueCapacity ?? _options.Learner.QueueCapacity)
            {
                HistoryCapacity = options.VersionHistoryCapacity ?? _options.VersionHistoryCapacity,
                Shadow = options.Shadow,
                RecoverUpTo = _journal.LastSequence,
                Drift = CreateDriftDetector(options.Name),
            };
        }
        catch
        {
            lock (_scopeOrder)
            {
                _reserved.Remove(options.Name);
            }

            throw;
        }

        lock (_scopeOrder)
        {
            _reserved.Remove(options.Name);
            ThrowIfDisposed();
            _scopes[options.Name] = scope;
            _scopeOrder.Add(options.Name);
            parent?.AddChild(scope);
            scope.Learner = Task.Run(() => RunLearnerAsync(scope));
        }

        Log.ScopeCreated(_logger, Name, options.Name, options.Parent);
        Record(options.Name, LedgerEvent.ScopeCreated, $"Scope created{(parent is null ? string.Empty : $" over {parent.Name}")}; initial version {scope.Current.Info.Id}.", versionId: scope.Current.Info.Id);
        return scope;
    }

    /// <summary>A scope's seed: its trainer's initial parameters and (through <see cref="ReplaySeed"/>) its replay draws.</summary>
    private ulong ScopeSeed(string scope) => SplitMix64.Seed(_options.Seed, scope);

    private static ulong ReplaySeed(ulong scopeSeed) => scopeSeed ^ 0x5EED_5EED_5EED_5EEDUL;

    private LiveScope GetScope(string? scope)
    {
        ThrowIfDisposed();
        string name = scope ?? _options.DefaultScope;
        return _scopes.TryGetValue(name, out LiveScope? s) ? s : throw new ScopeNotFoundException(name);
    }

    private IEnumerable<LiveScope> Selected(string? scope) => scope is null ? [.. Scopes.Select(n => _scopes[n])] : [GetScope(scope)];

    /// <summary>Queues an owner request; it runs between steps, in order with the items queued before it.</summary>
    private void Post(LiveScope scope, WorkItem work)
    {
        if (scope.Failure is { } failure)
        {
            throw new InvalidOperationException($"The learner of scope '{scope.Name}' stopped ({failure.Message}).", failure);
        }

        lock (scope.AdmissionLock)
        {
            if (!scope.Queue.Writer.TryWrite(work))
            {
                throw new ObjectDisposedException(nameof(LiveModel), "The live model is shutting down.");
            }
        }
    }

    private void Notify(AdapterVersion version)
    {
        lock (_watchers)
        {
            foreach (var w in _watchers)
            {
                w.Writer.TryWrite(version);
            }
        }
    }

    private IDriftDetector? CreateDriftDetector(string scope) => _options.Drift switch
    {
        { Factory: { } factory } => factory(scope),
        { Detector: DriftDetectorKind.PageHinkley } d => new PageHinkley(d.PageHinkley),
        { Detector: DriftDetectorKind.Adwin } d => new Adwin(d.Adwin),
        _ => null,
    };

    private void Record(string scope, LedgerEvent kind, string message, long? sequence = null, string? source = null, string? rule = null, string? versionId = null, IReadOnlyList<long>? items = null, double? loss = null, string? actor = null, IReadOnlyDictionary<string, double>? figures = null)
    {
        var entry = new LedgerEntry(_time.GetUtcNow(), Name, scope, kind, message)
        {
            Figures = figures,
            Sequence = sequence,
            Source = source,
            Rule = rule,
            VersionId = versionId,
            Items = items,
            Loss = loss,
            Actor = actor,
        };
        try
        {
            ValueTask pending = _ledger.AppendAsync(entry, CancellationToken.None);
            if (!pending.IsCompletedSuccessfully)
            {
                pending.AsTask().GetAwaiter().GetResult();
            }
        }
        catch (Exception ex)
        {
            // The ledger is a record of decisions, not a participant in them: a failed append is logged and counted,
            // and the decision (already taken) stands.
            Interlocked.Increment(ref _ledgerFailures);
            Log.LedgerFailed(_logger, ex, scope, kind);
        }
    }

    /// <summary>Fails the owner requests still queued after the learner stopped.</summary>
    private static void FailPending(LiveScope scope)
    {
        var disposed = new ObjectDisposedException(nameof(LiveModel), "The live model stopped before the request ran.");
        while (scope.Queue.Reader.TryRead(out WorkItem? work))
        {
            work.Fail(disposed);
        }
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
}
