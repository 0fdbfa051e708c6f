using LiveLearning.Backends;

namespace LiveLearning.Storage;

/// <summary>
/// The journal of accepted feedback: every accepted item, in the order it will be learned, under a sequence number.
/// It is the seam for durability: <see cref="FileFeedbackJournal"/> writes checksummed, flushed records, and a restart
/// loads each scope's newest snapshot and replays the journal after its position. The default keeps the most recent
/// records in memory and survives nothing.
/// </summary>
/// <remarks>Thread-safe. <see cref="Append"/> is called under the scope's admission lock, so it must not block on I/O:
/// it assigns the sequence number at once and returns a task for durability (which lets many appends share one flush).</remarks>
public interface IFeedbackJournal
{
    /// <summary>The highest sequence number assigned so far (0 for none).</summary>
    long LastSequence { get; }

    /// <summary>
    /// The highest sequence number whose record the journal may no longer hold (retention or a capacity dropped it); 0
    /// while everything ever appended is still readable. Rebuilding from an earlier point needs it to be below that point.
    /// </summary>
    long RemovedThrough { get; }

    /// <summary>Assigns <paramref name="record"/> the next sequence number and starts making it durable.</summary>
    /// <param name="record">The record (its <see cref="JournalRecord.Sequence"/> is ignored).</param>
    /// <returns>The sequence number and a task that completes when the record is durable.</returns>
    JournalAppend Append(JournalRecord record);

    /// <summary>Reads the records after <paramref name="afterSequence"/>, in order.</summary>
    /// <param name="afterSequence">The last sequence already applied (0 for everything kept).</param>
    /// <param name="cancellationToken">Ends the read.</param>
    /// <returns>The records.</returns>
    IAsyncEnumerable<JournalRecord> ReadAsync(long afterSequence, CancellationToken cancellationToken);

    /// <summary>
    /// Retention: lets the journal drop records up to <paramref name="sequence"/> (every scope's snapshot is past them).
    /// A segmented journal removes only whole segments, so some older records may stay readable.
    /// </summary>
    /// <param name="sequence">The highest sequence no longer needed.</param>
    /// <param name="cancellationToken">Cancels the removal.</param>
    /// <returns>The number of segments (or records, for the in-memory journal) removed.</returns>
    ValueTask<int> RemoveThroughAsync(long sequence, CancellationToken cancellationToken);

    /// <summary>
    /// Erases the durable records after <paramref name="afterSequence"/> that <paramref name="match"/> selects (forgetting
    /// a source, discarding a quarantined item): they are never read again and their content is gone, while the other
    /// records and every sequence number stay as they were.
    /// </summary>
    /// <param name="afterSequence">Records at or before it are not looked at (0 for all).</param>
    /// <param name="match">Selects the records to erase.</param>
    /// <param name="cancellationToken">Cancels before anything is erased.</param>
    /// <returns>The number of records erased.</returns>
    ValueTask<int> EraseAsync(long afterSequence, Func<JournalRecord, bool> match, CancellationToken cancellationToken);
}

/// <summary>The outcome of an append.</summary>
/// <param name="Sequence">The record's sequence number.</param>
/// <param name="Durable">Completes when the record is durable (faults if it cannot be made so).</param>
public readonly record struct JournalAppend(long Sequence, Task Durable);

/// <summary>One accepted feedback item as journaled: enough to learn it again exactly.</summary>
public sealed record JournalRecord
{
    /// <summary>The sequence number (assigned by the journal).</summary>
    public long Sequence { get; init; }

    /// <summary>The model it teaches (models sharing one journal recover only their own records).</summary>
    public string Model { get; init; } = string.Empty;

    /// <summary>The scope it teaches.</summary>
    public required string Scope { get; init; }

    /// <summary>When it was received.</summary>
    public required DateTimeOffset ReceivedAt { get; init; }

    /// <summary>Its source.</summary>
    public required string Source { get; init; }

    /// <summary>The example: objective, token ids, weight (reference log-likelihoods are recomputed when replayed).</summary>
    public required TrainingExample Example { get; init; }

    /// <summary>Whether it is private (never replayed from the buffer).</summary>
    public bool Private { get; init; }

    /// <summary>Its tags.</summary>
    public IReadOnlyList<string> Tags { get; init; } = [];
}

/// <summary>The default journal: sequence numbers and the most recent records in memory (nothing survives the process).</summary>
public sealed class InMemoryFeedbackJournal : IFeedbackJournal
{
    private readonly Queue<JournalRecord> _records = new();
    private readonly int _capacity;
    private long _last;
    private long _removedThrough;

    /// <summary>Keeps the last <paramref name="capacity"/> records.</summary>
    /// <param name="capacity">Records kept (0 keeps none, only numbers). Default 10 000.</param>
    public InMemoryFeedbackJournal(int capacity = 10_000)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(capacity);
        _capacity = capacity;
    }

    /// <inheritdoc />
    public long LastSequence => Interlocked.Read(ref _last);

    /// <inheritdoc />
    public long RemovedThrough => Interlocked.Read(ref _removedThrough);

    /// <inheritdoc />
    public JournalAppend Append(JournalRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        lock (_records)
        {
            long sequence = ++_last;
            if (_capacity == 0)
            {
                _removedThrough = sequence;
            }
            else
            {
                if (_records.Count == _capacity)
                {
                    _removedThrough = _records.Dequeue().Sequence;
                }

                _records.Enqueue(record with { Sequence = sequence });
            }

            return new JournalAppend(sequence, Task.CompletedTask);
        }
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<JournalRecord> ReadAsync(long afterSequence, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        JournalRecord[] records;
        lock (_records)
        {
            records = [.. _records.Where(r => r.Sequence > afterSequence)];
        }

        foreach (JournalRecord r in records)
        {
            cancellationToken.ThrowIfCancellationRequested();
            yield return r;
        }

        await Task.CompletedTask.ConfigureAwait(false);
    }

    /// <inheritdoc />
    public ValueTask<int> RemoveThroughAsync(long sequence, CancellationToken cancellationToken)
    {
        int removed = 0;
        lock (_records)
        {
            while (_records.Count > 0 && _records.Peek().Sequence <= sequence)
            {
                _removedThrough = _records.Dequeue().Sequence;
                removed++;
            }
        }

        return ValueTask.FromResult(removed);
    }

    /// <inheritdoc />
    public ValueTask<int> EraseAsync(long afterSequence, Func<JournalRecord, bool> match, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(match);
        cancellationToken.ThrowIfCancellationRequested();
        lock (_records)
        {
            JournalRecord[] kept = [.. _records.Where(r => r.Sequence <= afterSequence || !match(r))];
            int erased = _records.Count - kept.Length;
            _records.Clear();
            foreach (JournalRecord r in kept)
            {
                _records.Enqueue(r);
            }

            return ValueTask.FromResult(erased);
        }
    }
}
