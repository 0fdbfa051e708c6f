namespace LiveLearning.Governance;

/// <summary>A ledger that can be searched and checked: what an auditor needs besides appending.</summary>
public interface IQueryableLedger : ILearningLedger
{
    /// <summary>The entries matching <paramref name="query"/>, oldest first.</summary>
    /// <param name="query">The filters (every one given must hold).</param>
    /// <param name="cancellationToken">Cancels the query.</param>
    /// <returns>The entries.</returns>
    IAsyncEnumerable<LedgerEntry> QueryAsync(LedgerQuery query, CancellationToken cancellationToken = default);

    /// <summary>Checks the whole chain: every hash, every link, consecutive indices from the first entry kept.</summary>
    /// <param name="cancellationToken">Cancels the check.</param>
    /// <returns>Whether it holds, and where it first breaks.</returns>
    ValueTask<LedgerVerification> VerifyChainAsync(CancellationToken cancellationToken = default);
}

/// <summary>What to look for in a ledger; null filters match everything.</summary>
public sealed record LedgerQuery
{
    /// <summary>Everything.</summary>
    public static LedgerQuery All { get; } = new();

    /// <summary>The model.</summary>
    public string? Model { get; init; }

    /// <summary>The scope.</summary>
    public string? Scope { get; init; }

    /// <summary>The item's source.</summary>
    public string? Source { get; init; }

    /// <summary>The version involved.</summary>
    public string? VersionId { get; init; }

    /// <summary>An item's journal sequence number: entries about it and steps that learned it.</summary>
    public long? Item { get; init; }

    /// <summary>What happened.</summary>
    public LedgerEvent? Event { get; init; }

    /// <summary>Who asked.</summary>
    public string? Actor { get; init; }

    /// <summary>At or after this time.</summary>
    public DateTimeOffset? From { get; init; }

    /// <summary>Before this time.</summary>
    public DateTimeOffset? To { get; init; }

    /// <summary>Entries with a chain index above this (to page through a ledger).</summary>
    public long? AfterIndex { get; init; }

    /// <summary>At most this many entries.</summary>
    public int? Limit { get; init; }

    /// <summary>Whether <paramref name="entry"/> matches every filter but <see cref="Limit"/>.</summary>
    /// <param name="entry">The entry.</param>
    /// <returns>Whether it matches.</returns>
    public bool Matches(LedgerEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        return (Model is null || entry.Model == Model)
            && (Scope is null || entry.Scope == Scope)
            && (Source is null || entry.Source == Source)
            && (VersionId is null || entry.VersionId == VersionId)
            && (Item is not { } item || entry.Sequence == item || (entry.Items?.Contains(item) ?? false))
            && (Event is not { } kind || entry.Event == kind)
            && (Actor is null || entry.Actor == Actor)
            && (From is not { } from || entry.At >= from)
            && (To is not { } to || entry.At < to)
            && (AfterIndex is not { } after || entry.Index > after);
    }
}
