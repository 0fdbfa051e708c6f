using System.Buffers;
using System.Numerics.Tensors;
using LiveLearning.Numerics;

namespace LiveLearning.Models;

// The forward and backward passes. Shapes: N = tokens of the whole batch, C = hidden, Q = heads·headDim,
// K = kvHeads·headDim, I = intermediate, V = vocab. Activations are row-major [N, features].
public sealed partial class LlamaModel
{
    private BatchPlan Plan(IReadOnlyList<SequenceBatch> sequences, bool requireFresh, IModelAdapter? defaultAdapter)
    {
        var planned = new PlannedSequence[sequences.Count];
        int offset = 0;
        for (int i = 0; i < sequences.Count; i++)
        {
            SequenceBatch s = sequences[i] ?? throw new ArgumentException($"Sequence {i} is null.", nameof(sequences));
            if (s.TokenIds is null)
            {
                throw new ArgumentException($"Sequence {i} has no token ids.", nameof(sequences));
            }

            if (requireFresh && s.Cache is not null)
            {
                throw new ArgumentException($"Sequence {i}: this operation runs whole sequences from position 0 and takes no cache.", nameof(sequences));
            }

            if (s.Cache is not null && sequences.Take(i).Any(o => ReferenceEquals(o.Cache, s.Cache)))
            {
                throw new ArgumentException($"Sequence {i} shares its cache with an earlier sequence of the batch.", nameof(sequences));
            }

            foreach (int id in s.TokenIds)
            {
                if ((uint)id >= (uint)_vocab)
                {
                    throw new ArgumentOutOfRangeException(nameof(sequences), id, $"Sequence {i}: token id {id} is outside the vocabulary [0, {_vocab}).");
                }
            }

            int start = s.Cache?.Length ?? 0;
            if (start + s.TokenIds.Length > ContextLength)
            {
                throw new ArgumentException($"Sequence {i} would reach {start + s.TokenIds.Length} positions; the context length is {ContextLength}.", nameof(sequences));
            }

            if (_slidingWindow is int window && start + s.TokenIds.Length > window)
            {
                throw new NotSupportedException($"Sequence {i} would reach {start + s.TokenIds.Length} positions, beyond sliding_window {window}; sliding-window attention is not supported yet.");
            }

            planned[i] = new PlannedSequence(i, s, start, offset, s.TokenIds.Length, s.Adapter ?? defaultAdapter);
            offset += s.TokenIds.Length;
        }

        var ids = new int[offset];
        var positions = new int[offset];
        foreach (PlannedSequence s in planned)
        {
            s.Source.TokenIds.CopyTo(ids, s.Offset);
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

    /// <summary>
    /// The forward pass. Writes logits for <paramref name="logitRows"/> (batch row indices) into <paramref name="logits"/>
    /// ([rows, V]). With a tape, keeps what the backward pass needs; with caches, appends keys and values (the caller
    /// advances the caches after success, so a failed pass leaves them logically unchanged).
    /// </summary>
    private void RunForward(BatchPlan plan, Tape? tape, int[] logitRows, Span<float> logits, Arena arena)
    {
        int n = plan.TotalTokens;
        int c = _hidden;
        Span<float> x = arena.Rent(n * c);
        for (int t = 0; t < n; t++)
        {
            _weights.Embedding.ReadRow(plan.Ids[t], x.Slice(t * c, c));
        }

        Span<float> h = arena.Rent(n * c);
        Span<float> q = arena.Rent(n * _qWidth);
        Span<float> k = arena.Rent(n * _kvWidth);
        Span<float> v = arena.Rent(n * _kvWidth);
        Span<float> o = arena.Rent(n * _qWidth);
        Span<float> gate = arena.Rent(n * _intermediate);
        Span<float> up = arena.Rent(n * _intermediate);
        Span<float> m = arena.Rent(n * _intermediate);

        // Without a tape, the last layer's output matters only on the logit rows: past its keys and values (which the
        // caches keep), it runs on those rows alone (a 64-token prefill skips 63/64 of that layer's other products).
        BatchPlan? logitPlan = tape is null ? LogitRowsPlan(plan, logitRows) : null;
        BatchPlan queries = plan;

        for (int l = 0; l < Config.NumLayers; l++)
        {
            LayerWeights w = _weights.Layers[l];
            LayerTape? lt = tape?.Layer(l);
            if (lt is not null)
            {
                x.CopyTo(lt.XIn);
            }

            // Attention block: h = RMSNorm(x); q, k, v projections; RoPE; causal attention; x += o·Woᵀ.
            Span<float> h1 = lt is null ? h : lt.H1;
            RmsNorm.Forward(h1, lt is null ? Span<float>.Empty : lt.Rstd1.Span, x, w.InputNorm, n, c, _eps, _pool);
            Span<float> ql = lt is null ? q : lt.Q;
            Span<float> kl = lt is null ? k : lt.K;
            Span<float> vl = lt is null ? v : lt.V;
            if (logitPlan is null || l < Config.NumLayers - 1)
            {
                Gemm.LinearShared(h1, n, ql, w.Projections[(int)Projection.QProj], kl, w.Projections[(int)Projection.KProj], vl, w.Projections[(int)Projection.VProj], _pool);
                AddBiasAndAdapter(ql, h1, l, Projection.QProj, plan, lt, n, arena);
            }
            else
            {
                // Last layer, logit rows only: keys and values for every row, then queries, residual and MLP on the
                // logit rows (gathered in logit-row order, which is the order the final norm and the head want).
                Gemm.LinearShared(h1, n, kl, w.Projections[(int)Projection.KProj], vl, w.Projections[(int)Projection.VProj], pool: _pool);
                queries = logitPlan;
                int logitCount = queries.TotalTokens;
                Span<float> hq = arena.Rent(logitCount * c);
                Span<float> xq = arena.Rent(logitCount * c);
                for (int r = 0; r < logitCount; r++)
                {
                    h1.Slice(logitRows[r] * c, c).CopyTo(hq.Slice(r * c, c));
                    x.Slice(logitRows[r] * c, c).CopyTo(xq.Slice(r * c, c));
                }

                ql = ql[..(logitCount * _qWidth)];
                Project(ql, hq, l, Projection.QProj, queries, lt, logitCount, accumulate: false, arena);
                x = xq;
            }

            AddBiasAndAdapter(kl, h1, l, Projection.KProj, plan, lt, n, arena);
            AddBiasAndAdapter(vl, h1, l, Projection.VProj, plan, lt, n, arena);
            Rope.Forward(ql, queries.Positions, _heads, _headDim, _rope, _pool);
            Rope.Forward(kl, plan.Positions, _kvHeads, _headDim, _rope, _pool);

            Span<float> ol = lt is null ? o : lt.O;
            for (int i = 0; i < plan.Sequences.Length; i++)
            {
                // s: the sequence's keys and values (every new row); sq: its query rows (the same, or a suffix).
                PlannedSequence s = plan.Sequences[i];
                PlannedSequence sq = queries.Sequences[i];
                if (sq.Length == 0)
                {
                    continue;
                }

                ReadOnlySpan<float> qs = ql.Slice(sq.Offset * _qWidth, sq.Length * _qWidth);
                Span<float> os = ol.Slice(sq.Offset * _qWidth, sq.Length * _qWidth);
                Span<float> lse = lt is null ? Span<float>.Empty : lt.Lse.Slice(sq.Offset * _heads, sq.Length * _heads);
                KvCache? cache = s.Source.Cache;
                if (cache is null)
                {
                    ReadOnlySpan<float> ks = kl.Slice(s.Offset * _kvWidth, s.Length * _kvWidth);
                    ReadOnlySpan<float> vs = vl.Slice(s.Offset * _kvWidth, s.Length * _kvWidth);
                    Attention.Forward(os, lse, qs, ks, vs, sq.Length, sq.Start, s.Length, _heads, _kvHeads, _headDim, _attentionScale, _pool);
                }
                else
                {
                    int end = s.Start + s.Length;
                    cache.EnsureCapacity(end);
                    kl.Slice(s.Offset * _kvWidth, s.Length * _kvWidth).CopyTo(cache.Keys(l, end)[(s.Start * _kvWidth)..]);
                    vl.Slice(s.Offset * _kvWidth, s.Length * _kvWidth).CopyTo(cache.Values(l, end)[(s.Start * _kvWidth)..]);
                    Attention.Forward(os, lse, qs, cache.Keys(l, end), cache.Values(l, end), sq.Length, sq.Start, end, _heads, _kvHeads, _headDim, _attentionScale, _pool);
                }
            }

            plan = queries;
            n = plan.TotalTokens;
            ol = ol[..(n * _qWidth)];
            Project(x, ol, l, Projection.OProj, plan, lt, n, accumulate: true, arena);
            if (lt is not null)
            {
                x.CopyTo(lt.XMid);
            }

            // MLP block: h = RMSNorm(x); x += down(silu(gate(h)) ⊙ up(h)).
            Span<float> h2 = (lt is null || lt.H2.Length == 0 ? h : lt.H2)[..(n * c)];
            RmsNorm.Forward(h2, lt is null ? Span<float>.Empty : lt.Rstd2.Span, x, w.PostAttentionNorm, n, c, _eps, _pool);
            Span<float> gl = (lt is null ? gate : lt.Gate)[..(n * _intermediate)];
            Span<float> ul = (lt is null ? up : lt.Up)[..(n * _intermediate)];
            Span<float> ml = (lt is null || lt.M.Length == 0 ? m : lt.M)[..(n * _intermediate)];
            Gemm.LinearShared(h2, n, gl, w.Projections[(int)Projection.GateProj], ul, w.Projections[(int)Projection.UpProj], pool: _pool);
            AddBiasAndAdapter(gl, h2, l, Projection.GateProj, plan, lt, n, arena);
            AddBiasAndAdapter(ul, h2, l, Projection.UpProj, plan, lt, n, arena);
            SwiGluRows(ml, gl, ul, default, default, n);
            Project(x, ml, l, Projection.DownProj, plan, lt, n, accumulate: true, arena);
        }

        // Final norm only on the rows whose logits are wanted (all rows when training; already gathered when the last
        // layer ran on them alone).
        int rows = logitRows.Length;
        Span<float> selected = x;
        if (logitPlan is null)
        {
            selected = arena.Rent(rows * c);
            for (int r = 0; r < rows; r++)
            {
                x.Slice(logitRows[r] * c, c).CopyTo(selected.Slice(r * c, c));
            }
        }

        if (tape is not null)
        {
            selected.CopyTo(tape.FinalIn);
        }

        Span<float> normed = tape is null ? h[..(rows * c)] : tape.FinalNormed.Span;
        RmsNorm.Forward(normed, tape is null ? Span<float>.Empty : tape.FinalRstd.Span, selected, _weights.FinalNorm, rows, c, _eps, _pool);
        if (tape is null)
        {
            // Training leaves the LM head to the caller, which runs it in row chunks fused with the loss (see LossAndHeadGradient).
            Gemm.Linear(logits[..(rows * _vocab)], normed, _weights.LmHead, rows, accumulate: false, _pool);
        }
    }

    /// <summary>
    /// LM head + cross-entropy + LM-head input gradient, in chunks of at most 2^23 logits (32 MB) so only one chunk of
    /// logits [rows, V] is ever held (at V = 49152 a 4×64-token batch would otherwise keep two 50 MB buffers). Each chunk
    /// streams the head weight twice, so chunks are as large as that cap allows (at V = 49152 a 4×64 batch runs as two
    /// chunks of 128 rows: measured 64 → 128 rows, the head products 4-8 % faster). Writes dNormed [N, C] and returns
    /// the mean loss over counted rows; each chunk's gradient is scaled so the result equals the unchunked mean.
    /// </summary>
    private float LossAndHeadGradient(Span<float> dNormed, ReadOnlySpan<float> normed, int[] targets, int counted, bool wantGradient, Arena arena)
    {
        int n = targets.Length;
        int c = _hidden;
        int maxRows = Math.Max(1, (1 << 23) / _vocab);
        int chunks = Math.Max(1, (n + maxRows - 1) / maxRows);
        int chunkRows = (n + chunks - 1) / chunks;
        Span<float> logits = arena.Rent(Math.Min(chunkRows, n) * _vocab);
        double lossSum = 0;
        for (int r0 = 0; r0 < n; r0 += chunkRows)
        {
            int rows = Math.Min(chunkRows, n - r0);
            ReadOnlySpan<int> t = targets.AsSpan(r0, rows);
            int countedHere = 0;
            foreach (int target in t)
            {
                countedHere += target >= 0 ? 1 : 0;
            }

            Span<float> chunk = logits[..(rows * _vocab)];
            Gemm.Linear(chunk, normed.Slice(r0 * c, rows * c), _weights.LmHead, rows, accumulate: false, _pool);
            float gradScale = counted == 0 ? 0f : (float)((double)countedHere / counted);
            float loss = CrossEntropy.ForwardBackward(wantGradient ? chunk : Span<float>.Empty, chunk, t, rows, _vocab, gradScale, _pool);
            lossSum += (double)loss * countedHere;
            if (wantGradient)
            {
                Gemm.LinearBackwardInput(dNormed.Slice(r0 * c, rows * c), chunk, _weights.LmHead, rows, accumulate: false, _pool);
            }
        }

        return counted == 0 ? 0f : (float)(lossSum / counted);
    }

    /// <summary>
    /// SwiGLU forward (<paramref name="dGate"/> empty: <c>y = silu(gate)·up</c>) or backward (<paramref name="y"/> is the
    /// output gradient; overwrites <paramref name="dGate"/> and <paramref name="dUp"/>), split by rows over the
    /// pool: it is element-wise and exp-heavy, and would otherwise leave the other core idle.
    /// </summary>
    private unsafe void SwiGluRows(Span<float> y, ReadOnlySpan<float> gate, ReadOnlySpan<float> up, Span<float> dGate, Span<float> dUp, int rows)
    {
        int width = _intermediate;
        fixed (float* py = y, pg = gate, pu = up, pdg = dGate, pdu = dUp)
        {
            var job = new SwiGluJob { Y = py, Gate = pg, Up = pu, DGate = pdg, DUp = pdu, Rows = rows, Width = width, Backward = !dGate.IsEmpty };
            job.Items = ComputePool.RowItems(_pool, rows, (long)rows * width);
            _pool.For(job.Items, ref job);
        }
    }

    private unsafe struct SwiGluJob : IParallelJob
    {
        public float* Y;
        public float* Gate;
        public float* Up;
        public float* DGate;
        public float* DUp;
        public int Rows;
        public int Width;
        public int Items;
        public bool Backward;

        public readonly void Execute(int index)
        {
            (int first, int end) = ComputePool.ItemRange(Rows, index, Items);
            int count = end - first;
            nint offset = (nint)first * Width;
            int length = count * Width;
            if (Backward)
            {
                // The gradients start at zero: each item clears its own rows just before accumulating into them.
                new Span<float>(DGate + offset, length).Clear();
                new Span<float>(DUp + offset, length).Clear();
                Activations.SwiGluBackward(new Span<float>(DGate + offset, length), new Span<float>(DUp + offset, length), new ReadOnlySpan<float>(Y + offset, length), new ReadOnlySpan<float>(Gate + offset, length), new ReadOnlySpan<float>(Up + offset, length));
            }
            else
            {
                Activations.SwiGlu(new Span<float>(Y + offset, length), new ReadOnlySpan<float>(Gate + offset, length), new ReadOnlySpan<float>(Up + offset, length));
            }
        }
    }

    /// <summary>y (=|+=) x·Wᵀ + b + adapter delta, for one projection of one layer (each run of sequences with its own adapter).</summary>
    private void Project(Span<float> y, ReadOnlySpan<float> x, int layer, Projection projection, BatchPlan plan, LayerTape? lt, int n, bool accumulate, Arena arena)
    {
        Gemm.Linear(y, x, _weights.Layers[layer].Projections[(int)projection], n, accumulate, _pool);
        AddBiasAndAdapter(y, x, layer, projection, plan, lt, n, arena);
    }

    /// <summary>y += b + adapter delta, after the base product y (=|+=) x·Wᵀ of one projection of one layer.</summary>
    private void AddBiasAndAdapter(Span<float> y, ReadOnlySpan<float> x, int layer, Projection projection, BatchPlan plan, LayerTape? lt, int n, Arena arena)
    {
        LayerWeights w = _weights.Layers[layer];
        WeightMatrix weight = w.Projections[(int)projection];
        if (w.Biases[(int)projection] is { } bias)
        {
            for (int t = 0; t < n; t++)
            {
                Span<float> row = y.Slice(t * weight.Rows, weight.Rows);
                TensorPrimitives.Add(row, bias, row);
            }
        }

        foreach (AdapterRun run in plan.Runs)
        {
            if (run.Adapter?.GetSlot(layer, projection) is not { } slot || run.Length == 0)
            {
                continue;
            }

            CheckSlot(slot, weight, layer, projection);
            int width = slot.SavedFloatsPerToken;
            Span<float> saved = lt is not null ? lt.Saved(projection).Slice(run.Offset * width, run.Length * width) : arena.Rent(run.Length * width);
            slot.Forward(
                y.Slice(run.Offset * weight.Rows, run.Length * weight.Rows),
                saved,
                x.Slice(run.Offset * weight.Cols, run.Length * weight.Cols),
                run.Length,
                training: lt is not null,
                _pool);
        }
    }

    private static void CheckSlot(IAdapterSlot slot, WeightMatrix weight, int layer, Projection projection)
    {
        if (slot.InFeatures != weight.Cols || slot.OutFeatures != weight.Rows)
        {
            throw new InvalidOperationException($"The adapter slot on {ProjectionNames.ModulePath(layer, projection)} is [{slot.OutFeatures}, {slot.InFeatures}] but the projection is [{weight.Rows}, {weight.Cols}].");
        }
    }

    /// <summary>The backward pass from dNormed [N, C] (the gradient at the final norm's output) down to the lowest adapted layer.</summary>
    private void Backward(BatchPlan plan, IModelAdapter adapter, AdapterGradients gradients, Tape tape, ReadOnlySpan<float> dNormed, Arena arena)
    {
        int n = plan.TotalTokens;
        int c = _hidden;
        Span<float> dx = arena.Rent(n * c);
        dx.Clear();
        RmsNorm.Backward(dx, default, dNormed, tape.FinalIn, _weights.FinalNorm, tape.FinalRstd, n, c, _pool);

        Span<float> dh = arena.Rent(n * c);
        Span<float> dm = arena.Rent(n * _intermediate);
        Span<float> dGate = arena.Rent(n * _intermediate);
        Span<float> dUp = arena.Rent(n * _intermediate);
        Span<float> dO = arena.Rent(n * _qWidth);
        Span<float> dq = arena.Rent(n * _qWidth);
        Span<float> dk = arena.Rent(n * _kvWidth);
        Span<float> dv = arena.Rent(n * _kvWidth);

        for (int l = Config.NumLayers - 1; l >= tape.LowestLayer; l--)
        {
            LayerWeights w = _weights.Layers[l];
            LayerTape lt = tape.Layer(l)!;

            // Below the lowest adapted layer nothing is trained and the embeddings are frozen, so that layer's own input
            // gradient is never read: it stops at the last product an adapter slot there still needs a gradient through
            // (slots get an empty dx and skip their input gradient). The parameter gradients are unchanged, bit for bit.
            bool lowest = l == tape.LowestLayer;
            bool needQkv = !lowest || HasSlot(adapter, l, Projection.QProj, Projection.KProj, Projection.VProj);
            bool needAttentionOut = needQkv || HasSlot(adapter, l, Projection.OProj);
            bool needMlpIn = needAttentionOut || HasSlot(adapter, l, Projection.GateProj, Projection.UpProj);

            // MLP block. dx is the gradient w.r.t. the layer output; the residual passes it through unchanged.
            if (!needMlpIn)
            {
                AdapterBackward(Span<float>.Empty, dx, lt.M, l, Projection.DownProj, adapter, gradients, lt, n);
                continue;
            }

            BackProject(dm, dx, lt.M, l, Projection.DownProj, adapter, gradients, lt, n);
            SwiGluRows(dm, lt.Gate, lt.Up, dGate, dUp, n);
            Span<float> dhMlp = needAttentionOut ? dh : Span<float>.Empty;
            if (needAttentionOut)
            {
                Gemm.LinearBackwardInputShared(dh, n, dGate, w.Projections[(int)Projection.GateProj], dUp, w.Projections[(int)Projection.UpProj], pool: _pool);
            }

            AdapterBackward(dhMlp, dGate, lt.H2, l, Projection.GateProj, adapter, gradients, lt, n);
            AdapterBackward(dhMlp, dUp, lt.H2, l, Projection.UpProj, adapter, gradients, lt, n);
            if (!needAttentionOut)
            {
                continue;
            }

            RmsNorm.Backward(dx, default, dh, lt.XMid, w.PostAttentionNorm, lt.Rstd2, n, c, _pool);

            // Attention block.
            if (!needQkv)
            {
                AdapterBackward(Span<float>.Empty, dx, lt.O, l, Projection.OProj, adapter, gradients, lt, n);
                continue;
            }

            BackProject(dO, dx, lt.O, l, Projection.OProj, adapter, gradients, lt, n);
            dq.Clear();
            dk.Clear();
            dv.Clear();
            foreach (PlannedSequence s in plan.Sequences)
            {
                if (s.Length == 0)
                {
                    continue;
                }

                int qo = s.Offset * _qWidth;
                int qn = s.Length * _qWidth;
                int ko = s.Offset * _kvWidth;
                int kn = s.Length * _kvWidth;
                Attention.Backward(
                    dq.Slice(qo, qn), dk.Slice(ko, kn), dv.Slice(ko, kn),
                    dO.Slice(qo, qn), lt.O.Slice(qo, qn), lt.Lse.Slice(s.Offset * _heads, s.Length * _heads),
                    lt.Q.Slice(qo, qn), lt.K.Slice(ko, kn), lt.V.Slice(ko, kn),
                    s.Length, 0, s.Length, _heads, _kvHeads, _headDim, _attentionScale, _pool);
            }

            Rope.Backward(dq, plan.Positions, _heads, _headDim, _rope, _pool);
            Rope.Backward(dk, plan.Positions, _kvHeads, _headDim, _rope, _pool);
            Span<float> dhAttention = lowest ? Span<float>.Empty : dh;
            if (!lowest)
            {
                Gemm.LinearBackwardInputShared(dh, n, dq, w.Projections[(int)Projection.QProj], dk, w.Projections[(int)Projection.KProj], dv, w.Projections[(int)Projection.VProj], pool: _pool);
            }

            AdapterBackward(dhAttention, dq, lt.H1, l, Projection.QProj, adapter, gradients, lt, n);
            AdapterBackward(dhAttention, dk, lt.H1, l, Projection.KProj, adapter, gradients, lt, n);
            AdapterBackward(dhAttention, dv, lt.H1, l, Projection.VProj, adapter, gradients, lt, n);
            if (!lowest)
            {
                RmsNorm.Backward(dx, default, dh, lt.XIn, w.InputNorm, lt.Rstd1, n, c, _pool);
            }
        }
    }

    private static bool HasSlot(IModelAdapter adapter, int layer, params ReadOnlySpan<Projection> projections)
    {
        foreach (Projection p in projections)
        {
            if (adapter.GetSlot(layer, p) is not null)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>dx = dy·W, plus the adapter slot's input gradient and parameter gradients.</summary>
    private void BackProject(Span<float> dx, ReadOnlySpan<float> dy, ReadOnlySpan<float> x, int layer, Projection projection, IModelAdapter adapter, AdapterGradients gradients, LayerTape lt, int n)
    {
        Gemm.LinearBackwardInput(dx, dy, _weights.Layers[layer].Projections[(int)projection], n, accumulate: false, _pool);
        AdapterBackward(dx, dy, x, layer, projection, adapter, gradients, lt, n);
    }

    /// <summary>The adapter slot's share of a projection's backward pass (if it has one): dx += its input gradient, plus its parameter gradients.</summary>
    private void AdapterBackward(Span<float> dx, ReadOnlySpan<float> dy, ReadOnlySpan<float> x, int layer, Projection projection, IModelAdapter adapter, AdapterGradients gradients, LayerTape lt, int n)
    {
        if (adapter.GetSlot(layer, projection) is { } slot)
        {
            slot.Backward(dx, gradients.Get(layer, projection), dy, x, lt.Saved(projection), n, _pool);
        }
    }

    private sealed record PlannedSequence(int Index, SequenceBatch Source, int Start, int Offset, int Length, IModelAdapter? Adapter);

    private readonly record struct AdapterRun(int Offset, int Length, IModelAdapter? Adapter);

    private sealed class BatchPlan(PlannedSequence[] sequences, int[] ids, int[] positions, AdapterRun[] runs)
    {
        public AdapterRun[] Runs { get; } = runs;

        public PlannedSequence[] Sequences { get; } = sequences;

        public int[] Ids { get; } = ids;

        public int[] Positions { get; } = positions;

        public int TotalTokens => Ids.Length;
    }

    /// <summary>Activations of one layer kept for the backward pass.</summary>
    private sealed class LayerTape
    {
        private readonly Segment[] _saved = new Segment[ProjectionNames.Count];
        private readonly int[] _savedLength = new int[ProjectionNames.Count];

        public LayerTape(LlamaModel model, int layer, int n, IModelAdapter adapter, Arena arena)
        {
            int c = model._hidden;

            // H2 (the MLP input) and M (the down_proj input) are read back only by adapter slots on gate/up and down:
            // without such slots the forward uses scratch for them and the tape skips them.
            bool keepH2 = adapter.GetSlot(layer, Projection.GateProj) is not null || adapter.GetSlot(layer, Projection.UpProj) is not null;
            bool keepM = adapter.GetSlot(layer, Projection.DownProj) is not null;
            long total = (4L * n * c) + (2L * n) + (2L * n * model._qWidth) + (2L * n * model._kvWidth) + ((long)n * model._heads)
                + (2L * n * model._intermediate) + (keepH2 ? (long)n * c : 0) + (keepM ? (long)n * model._intermediate : 0);
            foreach (Projection p in ProjectionNames.All)
            {
                if (adapter.GetSlot(layer, p) is { } slot)
                {
                    _savedLength[(int)p] = n * slot.SavedFloatsPerToken;
                    total += _savedLength[(int)p];
                }
            }

            if (total > Array.MaxLength)
            {
                throw new ArgumentException($"The batch needs {total} floats of activations per layer; split it into smaller batches.", nameof(n));
            }

            // One block per layer (ArrayPool buckets then hold one array per layer instead of fifteen, so every rented
            // block is returned to the pool rather than dropped as garbage when a bucket overflows).
            Segment block = arena.RentArray((int)total);
            int offset = 0;
            Segment Take(int length)
            {
                var segment = new Segment(block.Array, offset, length);
                offset += length;
                return segment;
            }

            XIn = Take(n * c);
            H1 = Take(n * c);
            Rstd1 = Take(n);
            Q = Take(n * model._qWidth);
            K = Take(n * model._kvWidth);
            V = Take(n * model._kvWidth);
            O = Take(n * model._qWidth);
            Lse = Take(n * model._heads);
            XMid = Take(n * c);
            H2 = keepH2 ? Take(n * c) : default;
            Rstd2 = Take(n);
            Gate = Take(n * model._intermediate);
            Up = Take(n * model._intermediate);
            M = keepM ? Take(n * model._intermediate) : default;
            foreach (Projection p in ProjectionNames.All)
            {
                if (_savedLength[(int)p] > 0)
                {
                    _saved[(int)p] = Take(_savedLength[(int)p]);
                }
            }

            Bytes = sizeof(float) * total;
        }

        public Segment XIn { get; }

        public Segment H1 { get; }

        public Segment Rstd1 { get; }

        public Segment Q { get; }

        public Segment K { get; }

        public Segment V { get; }

        public Segment O { get; }

        public Segment Lse { get; }

        public Segment XMid { get; }

        public Segment H2 { get; }

        public Segment Rstd2 { get; }

        public Segment Gate { get; }

        public Segment Up { get; }

        public Segment M { get; }

        public long Bytes { get; }

        public Span<float> Saved(Projection p) => _saved[(int)p].Length == 0 ? Span<float>.Empty : _saved[(int)p].Span;
    }

    /// <summary>Everything the backward pass needs, for the layers at or above the lowest adapted one.</summary>
    private sealed class Tape
    {
        private readonly LayerTape?[] _layers;

        public Tape(LlamaModel model, BatchPlan plan, IModelAdapter adapter, int lowestLayer, Arena arena)
        {
            int n = plan.TotalTokens;
            LowestLayer = lowestLayer;
            _layers = new LayerTape?[model.Config.NumLayers];
            for (int l = lowestLayer; l < _layers.Length; l++)
            {
                _layers[l] = new LayerTape(model, l, n, adapter, arena);
                Bytes += _layers[l]!.Bytes;
            }

            FinalIn = arena.RentArray(n * model._hidden);
            FinalNormed = arena.RentArray(n * model._hidden);
            FinalRstd = arena.RentArray(n);
            Bytes += sizeof(float) * ((2L * n * model._hidden) + n);
        }

        public int LowestLayer { get; }

        public long Bytes { get; }

        public Segment FinalIn { get; }

        public Segment FinalNormed { get; }

        public Segment FinalRstd { get; }

        public LayerTape? Layer(int l) => _layers[l];
    }
}

/// <summary>A rented array and the length in use; converts to spans implicitly.</summary>
internal readonly record struct Segment(float[] Array, int Offset, int Length)
{
    public Segment(float[] array, int length)
        : this(array, 0, length)
    {
    }

    public Span<float> Span => Array.AsSpan(Offset, Length);

    public static implicit operator Span<float>(Segment s) => s.Span;

    public static implicit operator ReadOnlySpan<float>(Segment s) => s.Span;

    public Span<float> Slice(int start, int length) => Span.Slice(start, length);

    public void CopyTo(Span<float> destination) => Span.CopyTo(destination);
}

/// <summary>Scratch memory for one pass, rented from the shared array pool and returned when the pass ends.</summary>
internal sealed class Arena : IDisposable
{
    private readonly List<float[]> _rented = [];

    public Span<float> Rent(int length) => RentArray(length).Span;

    public Segment RentArray(int length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        float[] a = ArrayPool<float>.Shared.Rent(Math.Max(1, length));
        _rented.Add(a);
        return new Segment(a, length);
    }

    public void Dispose()
    {
        foreach (float[] a in _rented)
        {
            ArrayPool<float>.Shared.Return(a);
        }

        _rented.Clear();
    }
}
