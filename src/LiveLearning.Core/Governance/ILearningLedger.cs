namespace LiveLearning.Governance;

/// <summary>
/// The append-only record of every decision a live model takes: items accepted, rejected or quarantined (and by which
/// rule), which items went into which step, which version resulted, promotions, refusals, rollbacks, snapshots.
/// </summary>
/// <remarks>
/// Implementations must be thread-safe. The ledger records decisions, it does not take part in them: an append that
/// fails is logged and counted (<see cref="LiveModelStatistics.LedgerFailures"/>) and the decision stands.
/// </remarks>
public interface ILearningLedger
{
    /// <summary>Appends one entry.</summary>
    /// <param name="entry">The entry.</param>
    /// <param name="cancellationToken">Cancels the append.</param>
    /// <returns>A task that completes once it is recorded.</returns>
    ValueTask AppendAsync(LedgerEntry entry, CancellationToken cancellationToken);
}

/// <summary>What a ledger entry records.</summary>
public enum LedgerEvent
{
    /// <summary>An item was accepted (journaled and queued).</summary>
    Accepted,

    /// <summary>An item was not accepted.</summary>
    Rejected,

    /// <summary>A gate rule quarantined an item.</summary>
    Quarantined,

    /// <summary>A gate rule accepted an item with a warning.</summary>
    Warned,

    /// <summary>A training step ran (its items and loss).</summary>
    Step,

    /// <summary>A step was skipped: non-finite loss or gradient (weights untouched).</summary>
    StepSkipped,

    /// <summary>A version was published (became current).</summary>
    Published,

    /// <summary>The evaluator refused a candidate; the current version stays.</summary>
    PromotionRefused,

    /// <summary>A rollback made an earlier version's weights current.</summary>
    RolledBack,

    /// <summary>A snapshot was taken.</summary>
    Snapshot,

    /// <summary>Learning was paused.</summary>
    Paused,

    /// <summary>Learning was resumed.</summary>
    Resumed,

    /// <summary>A scope was created.</summary>
    ScopeCreated,

    /// <summary>A scope restored a snapshot and learned the journal after it when it started.</summary>
    Recovered,

    /// <summary>Everything a source taught was forgotten (rebuilt without it, its records erased).</summary>
    Forgotten,

    /// <summary>A quarantined item was approved and queued for learning.</summary>
    Released,

    /// <summary>A quarantined item was discarded.</summary>
    Discarded,

    /// <summary>An owner changed a per-source control (replay exclusion) or a scope control (shadow mode).</summary>
    ControlChanged,

    /// <summary>An owner promoted a candidate version held back by shadow mode.</summary>
    Promoted,

    /// <summary>The drift alarm on the progressive loss fired.</summary>
    DriftDetected,

    /// <summary>An owner imported adapter weights as a scope's current version.</summary>
    Imported,
}

/// <summary>One ledger entry.</summary>
/// <param name="At">When (the model's clock).</param>
/// <param name="Model">The model's name.</param>
/// <param name="Scope">The scope.</param>
/// <param name="Event">What happened.</param>
/// <param name="Message">A human-readable account.</param>
public sealed record LedgerEntry(DateTimeOffset At, string Model, string Scope, LedgerEvent Event, string Message)
{
    /// <summary>The item's journal sequence number (item events).</summary>
    public long? Sequence { get; init; }

    /// <summary>The item's source (item events).</summary>
    public string? Source { get; init; }

    /// <summary>The gate rule involved.</summary>
    public string? Rule { get; init; }

    /// <summary>The version involved (published, refused, rolled back to, snapshotted).</summary>
    public string? VersionId { get; init; }

    /// <summary>The journal sequence numbers of the items a step learned (replayed items included).</summary>
    public IReadOnlyList<long>? Items { get; init; }

    /// <summary>A step's loss.</summary>
    public double? Loss { get; init; }

    /// <summary>The figures behind a decision (an evaluation's guard accuracy and probe perplexity, for instance).</summary>
    public IReadOnlyDictionary<string, double>? Figures { get; init; }

    /// <summary>Who asked for it (owner actions), when the caller said.</summary>
    public string? Actor { get; init; }

    /// <summary>The entry's position in its ledger's chain (1 for the first), set by <see cref="LedgerChain.Seal"/>.</summary>
    public long Index { get; init; }

    /// <summary>The previous entry's <see cref="Hash"/> (empty for the first).</summary>
    public string PreviousHash { get; init; } = string.Empty;

    /// <summary>SHA-256 (hex) over this entry's fields and <see cref="PreviousHash"/>, set by <see cref="LedgerChain.Seal"/>.</summary>
    public string Hash { get; init; } = string.Empty;
}

/// <summary>
/// The default ledger: the most recent entries in memory (a durable ledger replaces it in production), hash-chained
/// like every ledger (<see cref="LedgerChain"/>); once the capacity drops old entries, the oldest kept one anchors the chain.
/// </summary>
public sealed class InMemoryLedger : IQueryableLedger
{
    private readonly Queue<LedgerEntry> _entries = new();
    private readonly int _capacity;
    private LedgerEntry? _last;

    /// <summary>Keeps the last <paramref name="capacity"/> entries.</summary>
    /// <param name="capacity">Entries kept (at least 1). Default 10 000.</param>
    public InMemoryLedger(int capacity = 10_000)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _capacity = capacity;
    }

    /// <summary>The entries kept, oldest first.</summary>
    public IReadOnlyList<LedgerEntry> Entries
    {
        get
        {
            lock (_entries)
            {
                return [.. _entries];
            }
        }
    }

    /// <inheritdoc />
    public ValueTask AppendAsync(LedgerEntry entry, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(entry);
        lock (_entries)
        {
            if (_entries.Count == _capacity)
            {
                _entries.Dequeue();
            }

            _last = LedgerChain.Seal(entry, _last);
            _entries.Enqueue(_last);
        }

        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<LedgerEntry> QueryAsync(LedgerQuery query, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(query);
        await Task.CompletedTask.ConfigureAwait(false);
        foreach (LedgerEntry entry in Entries.Where(query.Matches).Take(query.Limit ?? int.MaxValue))
        {
            cancellationToken.ThrowIfCancellationRequested();
            yield return entry;
        }
    }

    /// <inheritdoc />
    public ValueTask<LedgerVerification> VerifyChainAsync(CancellationToken cancellationToken = default) => ValueTask.FromResult(LedgerChain.Verify(Entries));
}
