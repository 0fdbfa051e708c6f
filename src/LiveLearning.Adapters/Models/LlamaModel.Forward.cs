using System.Buffers;
using System.Numerics.Tensors;
using LiveLearning.Numerics;

namespace LiveLearning.Models;

// The forward pass. Shapes: N = tokens of the whole batch, C = hidden, Q = heads·headDim,
// K = kvHeads·headDim, I = intermediate, V = vocab. Activations are row-major [N, features].
public sealed partial class LlamaModel
{
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
}
