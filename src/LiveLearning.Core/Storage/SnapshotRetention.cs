namespace LiveLearning.Storage;

/// <summary>Which snapshots to keep: the newest few of each model and scope, and every one an alias points at.</summary>
public sealed record SnapshotRetention
{
    /// <summary>Snapshots kept per (model, scope), newest first (at least 1, so the latest state always survives). Default 10.</summary>
    public int KeepLast { get; init; } = 10;

    /// <summary>Whether a snapshot an alias points at (e.g. <c>production</c>) is kept however old it is. Default true.</summary>
    public bool KeepAliased { get; init; } = true;

    /// <summary>Deletes, per (model, scope), the snapshots older than the newest <see cref="KeepLast"/>, except aliased ones when <see cref="KeepAliased"/>.</summary>
    /// <param name="store">The store.</param>
    /// <param name="cancellationToken">Cancels the pruning between deletions (what was deleted stays deleted).</param>
    /// <returns>The ids deleted, oldest first.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><see cref="KeepLast"/> is less than 1.</exception>
    /// <remarks>
    /// Age is <see cref="SnapshotInfo.CreatedAt"/> (then id). The aliases are read once before deleting, so an alias set
    /// while pruning runs may point at a snapshot pruning then deletes (and the store then drops the alias).
    /// </remarks>
    public ValueTask<IReadOnlyList<string>> PruneAsync(ISnapshotStore store, CancellationToken cancellationToken)
        => PruneAsync(store, this, cancellationToken);

    private static async ValueTask<IReadOnlyList<string>> PruneAsync(ISnapshotStore store, SnapshotRetention policy, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(store);
        ArgumentNullException.ThrowIfNull(policy);
        ArgumentOutOfRangeException.ThrowIfLessThan(policy.KeepLast, 1, nameof(policy));

        IReadOnlyList<SnapshotInfo> all = await store.ListAsync(null, cancellationToken).ConfigureAwait(false);
        var aliased = new HashSet<string>(StringComparer.Ordinal);
        if (policy.KeepAliased)
        {
            aliased.UnionWith((await store.ListAliasesAsync(cancellationToken).ConfigureAwait(false)).Values);
        }

        var doomed = all
            .GroupBy(i => (i.Model, i.Scope))
            .SelectMany(g => g.OrderByDescending(i => i.CreatedAt).ThenByDescending(i => i.Id, StringComparer.Ordinal).Skip(policy.KeepLast))
            .Where(i => !aliased.Contains(i.Id))
            .OrderBy(i => i.CreatedAt)
            .ThenBy(i => i.Id, StringComparer.Ordinal)
            .Select(i => i.Id)
            .Distinct(StringComparer.Ordinal)
            .ToList();

        var deleted = new List<string>(doomed.Count);
        foreach (string id in doomed)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (await store.DeleteAsync(id, cancellationToken).ConfigureAwait(false))
            {
                deleted.Add(id);
            }
        }

        return deleted;
    }
}
