using LiveLearning.Backends;

namespace LiveLearning.Storage;

/// <summary>How one adapter tensor differs between two snapshots.</summary>
public enum TensorChangeKind
{
    /// <summary>On both sides with the same shape and values (a norm of 0).</summary>
    Unchanged,

    /// <summary>On both sides with the same shape; the norm is that of the difference.</summary>
    Changed,

    /// <summary>Only in the later snapshot; the norm is the tensor's own.</summary>
    Added,

    /// <summary>Only in the earlier snapshot; the norm is the tensor's own.</summary>
    Removed,

    /// <summary>On both sides with different shapes (e.g. another LoRA rank): counted as removed and added, so the norm is √(‖from‖² + ‖to‖²).</summary>
    Reshaped,
}

/// <summary>The change of one adapter tensor (one module's LoRA factor, for LoRA).</summary>
/// <param name="Name">The tensor's name.</param>
/// <param name="Change">Unchanged, changed, added, removed or reshaped.</param>
/// <param name="ChangeNorm">The L2 norm of the change (see <see cref="TensorChangeKind"/>).</param>
public sealed record TensorDifference(string Name, TensorChangeKind Change, double ChangeNorm);

/// <summary>What changed from one snapshot to another: the weights, per tensor and in total, and the learning between them.</summary>
/// <param name="From">The earlier snapshot's description.</param>
/// <param name="To">The later snapshot's description.</param>
/// <param name="Tensors">Every tensor of either side: those of <paramref name="To"/> in its order, then those only in <paramref name="From"/>.</param>
/// <param name="TotalChangeNorm">The L2 norm of the whole weight change (absent tensors counted as zero): √Σ norm².</param>
/// <param name="Steps">Trainer steps of <paramref name="To"/> minus those of <paramref name="From"/>.</param>
/// <param name="Items">Feedback items learned (<see cref="AdapterVersion.Items"/>) of <paramref name="To"/> minus those of <paramref name="From"/>.</param>
/// <param name="FromJournalPosition">The last journal sequence <paramref name="From"/>'s trainer state includes.</param>
/// <param name="ToJournalPosition">The last journal sequence <paramref name="To"/>'s trainer state includes (the records after <paramref name="FromJournalPosition"/> up to this one are what was learned in between).</param>
public sealed record SnapshotDifference(
    SnapshotInfo From,
    SnapshotInfo To,
    IReadOnlyList<TensorDifference> Tensors,
    double TotalChangeNorm,
    long Steps,
    long Items,
    long FromJournalPosition,
    long ToJournalPosition);

/// <summary>Compares two snapshots' adapter weights (e.g. to see which modules a stretch of feedback moved, and how far).</summary>
public static class SnapshotDiff
{
    /// <summary>Compares <paramref name="from"/> with <paramref name="to"/>, matching adapter tensors by name.</summary>
    /// <param name="from">The earlier snapshot.</param>
    /// <param name="to">The later snapshot.</param>
    /// <returns>The per-tensor and total L2 norms of the change, and the steps, items and journal span between them.</returns>
    /// <exception cref="ArgumentException">A snapshot holds two tensors of one name, or a tensor's values do not fill its shape.</exception>
    public static SnapshotDifference Compare(Snapshot from, Snapshot to)
    {
        ArgumentNullException.ThrowIfNull(from);
        ArgumentNullException.ThrowIfNull(to);
        Dictionary<string, NamedTensor> before = ByName(from, nameof(from));
        Dictionary<string, NamedTensor> after = ByName(to, nameof(to));

        var tensors = new List<TensorDifference>(after.Count + before.Count);
        foreach (NamedTensor t in to.Weights.Tensors)
        {
            if (!before.TryGetValue(t.Name, out NamedTensor? old))
            {
                tensors.Add(new TensorDifference(t.Name, TensorChangeKind.Added, Math.Sqrt(SquaredNorm(t.Values.Span))));
            }
            else if (!old.Shape.SequenceEqual(t.Shape))
            {
                tensors.Add(new TensorDifference(t.Name, TensorChangeKind.Reshaped, Math.Sqrt(SquaredNorm(old.Values.Span) + SquaredNorm(t.Values.Span))));
            }
            else
            {
                double norm = Math.Sqrt(SquaredDistance(old.Values.Span, t.Values.Span));
                tensors.Add(new TensorDifference(t.Name, norm == 0 ? TensorChangeKind.Unchanged : TensorChangeKind.Changed, norm));
            }
        }

        foreach (NamedTensor t in from.Weights.Tensors)
        {
            if (!after.ContainsKey(t.Name))
            {
                tensors.Add(new TensorDifference(t.Name, TensorChangeKind.Removed, Math.Sqrt(SquaredNorm(t.Values.Span))));
            }
        }

        double total = Math.Sqrt(tensors.Sum(d => d.ChangeNorm * d.ChangeNorm));
        return new SnapshotDifference(
            from.Info,
            to.Info,
            tensors,
            total,
            to.Trainer.Step - from.Trainer.Step,
            to.Info.Version.Items - from.Info.Version.Items,
            from.JournalPosition,
            to.JournalPosition);
    }

    private static Dictionary<string, NamedTensor> ByName(Snapshot snapshot, string parameter)
    {
        var byName = new Dictionary<string, NamedTensor>(StringComparer.Ordinal);
        foreach (NamedTensor t in snapshot.Weights.Tensors)
        {
            long elements = 1;
            foreach (int d in t.Shape)
            {
                elements *= d;
            }

            if (elements != t.Values.Length)
            {
                throw new ArgumentException($"Tensor '{SnapshotAliases.Printable(t.Name)}' of snapshot '{SnapshotAliases.Printable(snapshot.Info.Id)}' has {t.Values.Length} values for a shape of {elements}.", parameter);
            }

            if (!byName.TryAdd(t.Name, t))
            {
                throw new ArgumentException($"Snapshot '{SnapshotAliases.Printable(snapshot.Info.Id)}' holds two tensors named '{SnapshotAliases.Printable(t.Name)}'.", parameter);
            }
        }

        return byName;
    }

    private static double SquaredNorm(ReadOnlySpan<float> values)
    {
        double sum = 0;
        foreach (float v in values)
        {
            sum += (double)v * v;
        }

        return sum;
    }

    private static double SquaredDistance(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        double sum = 0;
        for (int i = 0; i < a.Length; i++)
        {
            double d = (double)b[i] - a[i];
            sum += d * d;
        }

        return sum;
    }
}
