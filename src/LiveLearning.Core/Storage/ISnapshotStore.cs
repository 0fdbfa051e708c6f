using LiveLearning.Backends;

namespace LiveLearning.Storage;

/// <summary>
/// Where snapshots live: a scope's adapter weights, trainer state (optimizer moments, step), replay buffer and journal
/// position. The default keeps them in memory; a durable store writes them atomically and verifies them on load.
/// </summary>
/// <remarks>Thread-safe.</remarks>
public interface ISnapshotStore
{
    /// <summary>Stores a snapshot.</summary>
    /// <param name="snapshot">The snapshot.</param>
    /// <param name="cancellationToken">Cancels the write (nothing is left half-written).</param>
    /// <returns>A task that completes when it is stored.</returns>
    ValueTask SaveAsync(Snapshot snapshot, CancellationToken cancellationToken);

    /// <summary>Loads a snapshot by id.</summary>
    /// <param name="id">The snapshot id.</param>
    /// <param name="cancellationToken">Cancels the read.</param>
    /// <returns>The snapshot, or <see langword="null"/> when there is none with that id.</returns>
    ValueTask<Snapshot?> LoadAsync(string id, CancellationToken cancellationToken);

    /// <summary>Lists stored snapshots, oldest first.</summary>
    /// <param name="scope">One scope's, or <see langword="null"/> for all.</param>
    /// <param name="cancellationToken">Cancels the listing.</param>
    /// <returns>Their descriptions.</returns>
    ValueTask<IReadOnlyList<SnapshotInfo>> ListAsync(string? scope, CancellationToken cancellationToken);
}

/// <summary>A scope's full learning state at one version.</summary>
/// <param name="Info">Id, scope, label, version, time.</param>
/// <param name="Weights">The version's adapter weights (PEFT tensors and config for LoRA).</param>
/// <param name="Trainer">The trainer's state (parameters, moments, step).</param>
/// <param name="Replay">The replay buffer, serialised.</param>
/// <param name="KtoReferencePoint">The learner's running KTO reference point.</param>
public sealed record Snapshot(SnapshotInfo Info, AdapterWeightsData Weights, TrainerState Trainer, ReadOnlyMemory<byte> Replay, double KtoReferencePoint);

/// <summary>The default snapshot store: snapshots in memory.</summary>
public sealed class InMemorySnapshotStore : ISnapshotStore
{
    private readonly List<Snapshot> _snapshots = [];

    /// <inheritdoc />
    public ValueTask SaveAsync(Snapshot snapshot, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        lock (_snapshots)
        {
            _snapshots.RemoveAll(s => s.Info.Id == snapshot.Info.Id);
            _snapshots.Add(snapshot);
        }

        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    public ValueTask<Snapshot?> LoadAsync(string id, CancellationToken cancellationToken)
    {
        lock (_snapshots)
        {
            return ValueTask.FromResult(_snapshots.FirstOrDefault(s => s.Info.Id == id));
        }
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<SnapshotInfo>> ListAsync(string? scope, CancellationToken cancellationToken)
    {
        lock (_snapshots)
        {
            return ValueTask.FromResult<IReadOnlyList<SnapshotInfo>>([.. _snapshots.Where(s => scope is null || s.Info.Scope == scope).Select(s => s.Info)]);
        }
    }
}
