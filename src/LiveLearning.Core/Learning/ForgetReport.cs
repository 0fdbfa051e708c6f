namespace LiveLearning;

/// <summary>What forgetting a source did in one scope.</summary>
public sealed record ScopeForgetReport
{
    /// <summary>The scope.</summary>
    public required string Scope { get; init; }

    /// <summary>The source's items this scope had learned (their journal records are now erased).</summary>
    public required int ItemsForgotten { get; init; }

    /// <summary>The snapshot the scope was rebuilt from, or <see langword="null"/> when it started again from its initial state.</summary>
    public string? RebuiltFrom { get; init; }

    /// <summary>The other sources' items learned again on top of it.</summary>
    public int ItemsRelearned { get; init; }

    /// <summary>Snapshots deleted because they held what the source taught.</summary>
    public IReadOnlyList<string> SnapshotsDeleted { get; init; } = [];

    /// <summary>The version published without the source (the current one unchanged when the scope never learned from it).</summary>
    public required AdapterVersion Version { get; init; }
}

/// <summary>What <see cref="ILiveModel.ForgetSourceAsync"/> did.</summary>
/// <param name="Source">The source forgotten.</param>
/// <param name="Scopes">Per scope, in creation order.</param>
public sealed record ForgetReport(string Source, IReadOnlyList<ScopeForgetReport> Scopes)
{
    /// <summary>Items forgotten over every scope.</summary>
    public int ItemsForgotten => Scopes.Sum(s => s.ItemsForgotten);
}
