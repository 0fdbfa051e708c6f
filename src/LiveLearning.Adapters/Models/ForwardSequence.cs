namespace LiveLearning.Models;

/// <summary>One sequence of a forward batch.</summary>
/// <param name="TokenIds">New tokens of the sequence.</param>
/// <param name="Cache">The sequence's cache (positions continue from its length; it is advanced), or <see langword="null"/> for a fresh sequence.</param>
/// <param name="AllPositions">Logits for every position (true) or the last only (false).</param>
/// <param name="Adapter">
/// This sequence's adapter; one batch may mix adapters (and none) without merging anything into the base weights.
/// <see langword="null"/> uses the adapter passed to the call.
/// </param>
public sealed record ForwardSequence(IReadOnlyList<int> TokenIds, KvCache? Cache = null, bool AllPositions = false, IModelAdapter? Adapter = null);
