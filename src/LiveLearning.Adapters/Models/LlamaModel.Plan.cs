using System.Buffers;
using System.Numerics.Tensors;
using LiveLearning.Numerics;

namespace LiveLearning.Models;

// The batch plan: sequences laid out as one row range each, positions, and runs of rows that share an adapter.
public sealed partial class LlamaModel
{
    private BatchPlan Plan(IReadOnlyList<ForwardSequence> sequences, bool requireFresh, IModelAdapter? defaultAdapter)
    {
        var planned = new PlannedSequence[sequences.Count];
        int offset = 0;
        for (int i = 0; i < sequences.Count; i++)
        {
            ForwardSequence s = sequences[i] ?? throw new ArgumentException($"Sequence {i} is null.", nameof(sequences));
            if (requireFresh && s.Cache is not null)
            {
                throw new ArgumentException($"Sequence {i}: this operation runs whole sequences from position 0 and takes no cache.", nameof(sequences));
            }

            if (s.Cache is not null && sequences.Take(i).Any(o => ReferenceEquals(o.Cache, s.Cache)))
            {
                throw new ArgumentException($"Sequence {i} shares its cache with an earlier sequence of the batch.", nameof(sequences));
            }

            if (s.TokenIds is null)
            {
                throw new ArgumentException($"Sequence {i} has no token ids.", nameof(sequences));
            }

            foreach (int id in s.TokenIds)
            {
                if ((uint)id >= (uint)_vocab)
                {
                    throw new ArgumentOutOfRangeException(nameof(sequences), id, $"Sequence {i}: token id {id} is outside the vocabulary [0, {_vocab}).");
                }
            }

            int start = s.Cache?.Length ?? 0;
            if (start + s.TokenIds.Count > ContextLength)
            {
                throw new ArgumentException($"Sequence {i} would reach {start + s.TokenIds.Count} positions; the context length is {ContextLength}.", nameof(sequences));
            }

            if (_slidingWindow is int window && start + s.TokenIds.Count > window)
            {
                throw new NotSupportedException($"Sequence {i} would reach {start + s.TokenIds.Count} positions, beyond sliding_window {window}; sliding-window attention is not supported yet.");
            }

            planned[i] = new PlannedSequence(i, s, start, offset, s.TokenIds.Count, s.Adapter ?? defaultAdapter);
            offset += s.TokenIds.Count;
        }

        var ids = new int[offset];
        var positions = new int[offset];
        foreach (PlannedSequence s in planned)
        {
            if (s.Source.TokenIds is int[] array)
            {
                array.CopyTo(ids, s.Offset);
            }
            else
            {
                for (int t = 0; t < s.Length; t++)
                {
                    ids[s.Offset + t] = s.Source.TokenIds[t];
                }
            }

            for (int t = 0; t < s.Length; t++)
            {
                positions[s.Offset + t] = s.Start + t;
            }
        }

        return new BatchPlan(planned, ids, positions, AdapterRuns(planned));
    }

    /// <summary>Runs of consecutive sequences that share an adapter: each adapter slot is applied once per run.</summary>
    private static AdapterRun[] AdapterRuns(PlannedSequence[] planned)
    {
        var runs = new List<AdapterRun>();
        foreach (PlannedSequence s in planned)
        {
            if (runs.Count > 0 && ReferenceEquals(runs[^1].Adapter, s.Adapter))
            {
                runs[^1] = runs[^1] with { Length = runs[^1].Length + s.Length };
            }
            else
            {
                runs.Add(new AdapterRun(s.Offset, s.Length, s.Adapter));
            }
        }

        return [.. runs];
    }

    /// <summary>
    /// The plan of the logit rows alone (each sequence's rows must be a suffix of it, in order), or
    /// <see langword="null"/> when that is every row or the rows do not have that form.
    /// </summary>
    private static BatchPlan? LogitRowsPlan(BatchPlan plan, int[] logitRows)
    {
        if (logitRows.Length == plan.TotalTokens)
        {
            return null;
        }

        var planned = new PlannedSequence[plan.Sequences.Length];
        int r = 0;
        for (int q = 0; q < planned.Length; q++)
        {
            PlannedSequence s = plan.Sequences[q];
            int end = s.Offset + s.Length;
            int count = 0;
            while (r + count < logitRows.Length && logitRows[r + count] >= s.Offset && logitRows[r + count] < end)
            {
                count++;
            }

            for (int i = 0; i < count; i++)
            {
                if (logitRows[r + i] != end - count + i)
                {
                    return null;
                }
            }

            planned[q] = s with { Start = s.Start + s.Length - count, Offset = r, Length = count };
            r += count;
        }

        if (r != logitRows.Length)
        {
            return null;
        }

        int[] ids = new int[r];
        int[] positions = new int[r];
        for (int i = 0; i < r; i++)
        {
            ids[i] = plan.Ids[logitRows[i]];
            positions[i] = plan.Positions[logitRows[i]];
        }

        return new BatchPlan(planned, ids, positions, AdapterRuns(planned));
    }

    private sealed record PlannedSequence(int Index, ForwardSequence Source, int Start, int Offset, int Length, IModelAdapter? Adapter);

    private readonly record struct AdapterRun(int Offset, int Length, IModelAdapter? Adapter);

    private sealed class BatchPlan(PlannedSequence[] sequences, int[] ids, int[] positions, AdapterRun[] runs)
    {
        public AdapterRun[] Runs { get; } = runs;

        public PlannedSequence[] Sequences { get; } = sequences;

        public int[] Ids { get; } = ids;

        public int[] Positions { get; } = positions;

        public int TotalTokens => Ids.Length;
    }
}
