namespace LiveLearning;

/// <summary>
/// The identity of one published adapter version of a scope: immutable, and the only thing a response is produced
/// by. <see cref="ContentHash"/> identifies this scope's own weights; what a version computes also depends on
/// <see cref="BaseVersionId"/> (a rebased version has its predecessor's hash over a new base).
/// </summary>
public sealed record AdapterVersion
{
    /// <summary>The id within its model and run: <c>{scope}@{number}</c>, e.g. <c>acme/alice@12</c> (numbers start at 1 when a model starts).</summary>
    public required string Id { get; init; }

    /// <summary>The scope.</summary>
    public required string Scope { get; init; }

    /// <summary>1 for the scope's initial (fresh) adapter, then one more per published version.</summary>
    public required long Number { get; init; }

    /// <summary>The version this one was derived from (<see langword="null"/> for the initial one).</summary>
    public string? ParentId { get; init; }

    /// <summary>For a scope stacked on a parent scope: the parent's version applied under this one.</summary>
    public string? BaseVersionId { get; init; }

    /// <summary>SHA-256 (hex) of the adapter weights (names, shapes and values) of this scope alone.</summary>
    public required string ContentHash { get; init; }

    /// <summary>When it was published (the model's <see cref="TimeProvider"/>).</summary>
    public required DateTimeOffset CreatedAt { get; init; }

    /// <summary>Optimizer steps behind this version (cumulative for the scope).</summary>
    public long Steps { get; init; }

    /// <summary>Feedback items learned into this version (cumulative for the scope).</summary>
    public long Items { get; init; }

    /// <summary>The journal sequence number of the last item learned into it (0 for none).</summary>
    public long JournalPosition { get; init; }

    /// <summary>Why it exists: <c>initial</c>, <c>learned</c>, <c>rebased</c> (its parent scope published) or <c>rollback</c>.</summary>
    public required string Reason { get; init; }

    /// <inheritdoc />
    public override string ToString() => Id;
}

/// <summary>Why a generation ended.</summary>
public enum LiveFinishReason
{
    /// <summary>A stop token or stop string.</summary>
    Stop,

    /// <summary><see cref="GenerationOptions.MaxTokens"/> or the context length.</summary>
    Length,
}

/// <summary>A completed generation.</summary>
/// <param name="Text">The generated text.</param>
/// <param name="ResponseId">The id feedback can refer to (<see cref="Feedback.ResponseId"/>).</param>
/// <param name="Version">The one adapter version that produced it.</param>
/// <param name="PromptTokens">Tokens of the prompt.</param>
/// <param name="CompletionTokens">Tokens generated.</param>
/// <param name="FinishReason">Why it ended.</param>
public sealed record LiveCompletion(string Text, string ResponseId, AdapterVersion Version, int PromptTokens, int CompletionTokens, LiveFinishReason FinishReason);

/// <summary>One streamed piece of a generation. The last update has <see cref="FinishReason"/> set (its text may be empty).</summary>
/// <param name="Text">Newly generated text.</param>
/// <param name="ResponseId">The response's id (the same on every update).</param>
/// <param name="Version">The one adapter version producing the response.</param>
/// <param name="CompletionTokens">Tokens generated so far.</param>
/// <param name="FinishReason">Set on the last update.</param>
public sealed record LiveCompletionUpdate(string Text, string ResponseId, AdapterVersion Version, int CompletionTokens, LiveFinishReason? FinishReason);

/// <summary>The log-likelihood of a completion under one adapter version.</summary>
/// <param name="Score">The per-token log-probabilities and their sum.</param>
/// <param name="Version">The version that scored it.</param>
public sealed record LiveScore(CompletionScore Score, AdapterVersion Version);

/// <summary>A stored snapshot: a scope's full learning state at one version.</summary>
/// <param name="Id">The snapshot's id.</param>
/// <param name="Scope">The scope.</param>
/// <param name="Label">The owner's label, if any.</param>
/// <param name="Version">The version captured.</param>
/// <param name="CreatedAt">When it was taken.</param>
public sealed record SnapshotInfo(string Id, string Scope, string? Label, AdapterVersion Version, DateTimeOffset CreatedAt)
{
    /// <summary>The model the snapshot belongs to (models sharing a store never load each other's).</summary>
    public string Model { get; init; } = string.Empty;
}
