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

    /// <summary>Deletes a snapshot (and every alias that pointed at it).</summary>
    /// <param name="id">The snapshot id.</param>
    /// <param name="cancellationToken">Cancels the deletion.</param>
    /// <returns>Whether there was one.</returns>
    ValueTask<bool> DeleteAsync(string id, CancellationToken cancellationToken);

    /// <summary>Points <paramref name="alias"/> (e.g. <c>production</c>, <c>last-good</c>) at a stored snapshot, replacing where it pointed before.</summary>
    /// <param name="alias">The alias (<see cref="SnapshotAliases.Rule"/>).</param>
    /// <param name="id">An existing snapshot id.</param>
    /// <param name="cancellationToken">Cancels the change.</param>
    /// <returns>A task that completes when the alias is stored.</returns>
    /// <exception cref="ArgumentException">The alias is not valid.</exception>
    /// <exception cref="KeyNotFoundException">There is no snapshot <paramref name="id"/>.</exception>
    ValueTask SetAliasAsync(string alias, string id, CancellationToken cancellationToken);

    /// <summary>Removes an alias.</summary>
    /// <param name="alias">The alias.</param>
    /// <param name="cancellationToken">Cancels the change.</param>
    /// <returns>Whether it existed.</returns>
    ValueTask<bool> RemoveAliasAsync(string alias, CancellationToken cancellationToken);

    /// <summary>Every alias and the snapshot id it points at.</summary>
    /// <param name="cancellationToken">Cancels the listing.</param>
    /// <returns>Alias → snapshot id.</returns>
    ValueTask<IReadOnlyDictionary<string, string>> ListAliasesAsync(CancellationToken cancellationToken);
}

/// <summary>Alias names: what a store accepts, so none can reach outside its directory or hide in a listing.</summary>
public static class SnapshotAliases
{
    /// <summary>The rule, for messages.</summary>
    public const string Rule = "1 to 64 characters of a-z, A-Z, 0-9, '-', '_' and '.', starting with a letter or digit";

    /// <summary>Whether <paramref name="alias"/> follows <see cref="Rule"/>.</summary>
    /// <param name="alias">The candidate.</param>
    /// <returns>True when valid.</returns>
    public static bool IsValid(string? alias)
    {
        if (string.IsNullOrEmpty(alias) || alias.Length > 64 || !char.IsAsciiLetterOrDigit(alias[0]))
        {
            return false;
        }

        foreach (char c in alias)
        {
            if (!char.IsAsciiLetterOrDigit(c) && c is not ('-' or '_' or '.'))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Throws unless <paramref name="alias"/> is valid.</summary>
    /// <param name="alias">The candidate.</param>
    /// <exception cref="ArgumentException">It is not.</exception>
    public static void Validate(string alias)
    {
        if (!IsValid(alias))
        {
            throw new ArgumentException($"Alias '{Printable(alias)}' is not valid ({Rule}).", nameof(alias));
        }
    }

    /// <summary>A string safe to show in a message: control characters and lone surrogates escaped, at most 80 characters.</summary>
    internal static string Printable(string? text)
    {
        if (text is null)
        {
            return "(null)";
        }

        var b = new System.Text.StringBuilder();
        for (int i = 0; i < text.Length && b.Length < 80; i++)
        {
            char c = text[i];
            bool pair = char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]);
            if (pair)
            {
                b.Append(c).Append(text[++i]);
            }
            else if (char.IsControl(c) || char.IsSurrogate(c))
            {
                b.Append(System.Globalization.CultureInfo.InvariantCulture, $"\\u{(int)c:x4}");
            }
            else
            {
                b.Append(c);
            }
        }

        return text.Length > 80 ? b + "…" : b.ToString();
    }
}

/// <summary>A scope's full learning state at one version.</summary>
/// <param name="Info">Id, scope, label, version, time.</param>
/// <param name="Weights">The version's adapter weights (PEFT tensors and config for LoRA).</param>
/// <param name="Trainer">The trainer's state (parameters, moments, step).</param>
/// <param name="Replay">The replay buffer, serialised.</param>
/// <param name="KtoReferencePoint">The learner's running KTO reference point.</param>
public sealed record Snapshot(SnapshotInfo Info, AdapterWeightsData Weights, TrainerState Trainer, ReadOnlyMemory<byte> Replay, double KtoReferencePoint)
{
    /// <summary>The last journal sequence the trainer state includes (a restart learns the records after it).</summary>
    public long JournalPosition { get; init; }

    /// <summary>The learner's fractional replay credit (so replay draws continue exactly after a restore).</summary>
    public double ReplayCredit { get; init; }

    /// <summary>Figures at the time of the snapshot (e.g. progressive loss), by name.</summary>
    public IReadOnlyDictionary<string, double> Metrics { get; init; } = new Dictionary<string, double>();
}

/// <summary>The default snapshot store: snapshots in memory.</summary>
public sealed class InMemorySnapshotStore : ISnapshotStore
{
    private readonly List<Snapshot> _snapshots = [];
    private readonly Dictionary<string, string> _aliases = new(StringComparer.Ordinal);

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

    /// <inheritdoc />
    public ValueTask<bool> DeleteAsync(string id, CancellationToken cancellationToken)
    {
        lock (_snapshots)
        {
            foreach (string alias in _aliases.Where(a => a.Value == id).Select(a => a.Key).ToList())
            {
                _aliases.Remove(alias);
            }

            return ValueTask.FromResult(_snapshots.RemoveAll(s => s.Info.Id == id) > 0);
        }
    }

    /// <inheritdoc />
    public ValueTask SetAliasAsync(string alias, string id, CancellationToken cancellationToken)
    {
        SnapshotAliases.Validate(alias);
        lock (_snapshots)
        {
            if (!_snapshots.Any(s => s.Info.Id == id))
            {
                throw new KeyNotFoundException($"No snapshot '{SnapshotAliases.Printable(id)}' to alias as '{alias}'.");
            }

            _aliases[alias] = id;
        }

        return ValueTask.CompletedTask;
    }

    /// <inheritdoc />
    public ValueTask<bool> RemoveAliasAsync(string alias, CancellationToken cancellationToken)
    {
        lock (_snapshots)
        {
            return ValueTask.FromResult(_aliases.Remove(alias));
        }
    }

    /// <inheritdoc />
    public ValueTask<IReadOnlyDictionary<string, string>> ListAliasesAsync(CancellationToken cancellationToken)
    {
        lock (_snapshots)
        {
            return ValueTask.FromResult<IReadOnlyDictionary<string, string>>(new Dictionary<string, string>(_aliases, StringComparer.Ordinal));
        }
    }
}
