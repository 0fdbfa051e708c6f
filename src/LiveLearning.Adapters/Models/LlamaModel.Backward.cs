using System.Buffers;
using System.Numerics.Tensors;
using LiveLearning.Numerics;

namespace LiveLearning.Models;

// The loss and the backward pass into the adapter slots (same shapes as the forward pass: N tokens, C hidden, ...).
public sealed partial class LlamaModel
{
    /// <summary>Most logits one LM-head chunk holds (2^23 floats, 32 MB).</summary>
    internal const int MaxHeadChunkLogits = 1 << 23;

    /// <summary>How <see cref="LossAndHeadGradient"/> splits <paramref name="rows"/> rows: the fewest chunks of at most
    /// <see cref="MaxHeadChunkLogits"/> logits, of near-equal size.</summary>
    internal static (int Chunks, int ChunkRows) HeadChunks(int rows, int vocab)
    {
        int maxRows = Math.Max(1, MaxHeadChunkLogits / vocab);
        int chunks = Math.Max(1, (rows + maxRows - 1) / maxRows);
        return (chunks, (rows + chunks - 1) / chunks);
    }

    /// <summary>
    /// LM head + cross-entropy + LM-head input gradient, in chunks of at most 2^23 logits (32 MB) so only one chunk of
    /// logits [rows, V] is ever held (at V = 49152 a 4×64-token batch would otherwise keep two 50 MB buffers). Each chunk
    /// streams the head weight twice, so chunks are as large as that cap allows (at V = 49152 a 4×64 batch runs as two
    /// chunks of 128 rows: measured 64 → 128 rows, the head products 4-8 % faster). Writes dNormed [N, C] and returns
    /// the mean loss over counted rows; each chunk's gradient is scaled so the result equals the unchunked mean.
    /// </summary>
    private float LossAndHeadGradient(Span<float> dNormed, ReadOnlySpan<float> normed, int[] targets, int counted, bool wantGradient, ParameterTensors? full, Arena arena)
    {
        int n = targets.Length;
        int c = _hidden;
        (_, int chunkRows) = HeadChunks(n, _vocab);
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
                HeadWeightGradient(full, chunk, normed.Slice(r0 * c, rows * c), rows);
            }
        }

        return counted == 0 ? 0f : (float)(lossSum / counted);
    }

    /// <summary>
    /// The head, loss and head input gradient under a <see cref="SequenceObjective"/>: row <c>t</c> of sequence <c>s</c>
    /// gets the gradient of <c>weights[s] · CE(t)</c>, the weights being the objective's derivative with respect to each
    /// sequence's summed cross-entropy. An objective that needs the log-likelihoods first (DPO, KTO) gets them from a
    /// head pass without gradient; with one chunk the logits of that pass are reused, with several the head is run twice.
    /// Writes <paramref name="logLikelihoods"/> (per sequence, the sum of its counted rows' target log-probabilities under
    /// the current parameters) and returns the objective's value.
    /// </summary>
    private double WeightedLossAndHeadGradient(Span<float> dNormed, ReadOnlySpan<float> normed, int[] targets, PlannedSequence[] sequences, SequenceObjective objective, bool wantGradient, Span<double> logLikelihoods, ParameterTensors? full, Arena arena)
    {
        int n = targets.Length;
        int c = _hidden;
        int count = sequences.Length;
        (int chunks, int chunkRows) = HeadChunks(n, _vocab);
        Span<float> logits = arena.Rent(Math.Min(chunkRows, n) * _vocab);
        int[] counted = new int[count];
        foreach (PlannedSequence s in sequences)
        {
            foreach (int target in targets.AsSpan(s.Offset, s.Length))
            {
                counted[s.Index] += target >= 0 ? 1 : 0;
            }
        }

        float[] weights = new float[count];
        logLikelihoods.Clear();
        double value = 0;
        bool kept = false;
        if (objective.NeedsLogLikelihoods)
        {
            Span<float> rowLogProbs = arena.Rent(chunkRows);
            for (int r0 = 0; r0 < n; r0 += chunkRows)
            {
                int rows = Math.Min(chunkRows, n - r0);
                Span<float> chunk = logits[..(rows * _vocab)];
                Gemm.Linear(chunk, normed.Slice(r0 * c, rows * c), _weights.LmHead, rows, accumulate: false, _pool);
                CrossEntropy.TargetLogProbabilities(rowLogProbs[..rows], chunk, targets.AsSpan(r0, rows), rows, _vocab, _pool);
                foreach (PlannedSequence s in sequences)
                {
                    int from = Math.Max(s.Offset, r0);
                    int to = Math.Min(s.Offset + s.Length, r0 + rows);
                    for (int r = from; r < to; r++)
                    {
                        logLikelihoods[s.Index] += rowLogProbs[r - r0];
                    }
                }
            }

            kept = chunks == 1;
            value = objective.Weigh(logLikelihoods, counted, weights);
        }
        else
        {
            objective.Weigh(ReadOnlySpan<double>.Empty, counted, weights);
        }

        double staticValue = 0;
        for (int r0 = 0; r0 < n; r0 += chunkRows)
        {
            int rows = Math.Min(chunkRows, n - r0);
            Span<float> chunk = logits[..(rows * _vocab)];
            if (!kept)
            {
                Gemm.Linear(chunk, normed.Slice(r0 * c, rows * c), _weights.LmHead, rows, accumulate: false, _pool);
            }

            // One call per piece of a sequence inside this chunk, scaled so each counted row's gradient is weights[s].
            foreach (PlannedSequence s in sequences)
            {
                int from = Math.Max(s.Offset, r0);
                int to = Math.Min(s.Offset + s.Length, r0 + rows);
                if (from >= to)
                {
                    continue;
                }

                ReadOnlySpan<int> t = targets.AsSpan(from, to - from);
                int piece = 0;
                foreach (int target in t)
                {
                    piece += target >= 0 ? 1 : 0;
                }

                Span<float> rowsOf = chunk.Slice((from - r0) * _vocab, (to - from) * _vocab);
                float meanLoss = CrossEntropy.ForwardBackward(wantGradient ? rowsOf : Span<float>.Empty, rowsOf, t, to - from, _vocab, (float)(weights[s.Index] * (double)piece), _pool);
                if (!objective.NeedsLogLikelihoods)
                {
                    logLikelihoods[s.Index] -= (double)meanLoss * piece;
                    staticValue += weights[s.Index] * ((double)meanLoss * piece);
                }
            }

            if (wantGradient)
            {
                Gemm.LinearBackwardInput(dNormed.Slice(r0 * c, rows * c), chunk, _weights.LmHead, rows, accumulate: false, _pool);
                HeadWeightGradient(full, chunk, normed.Slice(r0 * c, rows * c), rows);
            }
        }

        return objective.NeedsLogLikelihoods ? value : staticValue;
    }

    /// <summary>Under full-parameter training, dW_head += dlogitsᵀ·normed for one chunk of rows (into the embedding's
    /// gradient when the head is tied to it).</summary>
    private void HeadWeightGradient(ParameterTensors? full, ReadOnlySpan<float> dLogits, ReadOnlySpan<float> normed, int rows)
    {
        if (full is not null)
        {
            Gemm.LinearBackwardWeight(full.LmHead.GradientArray, dLogits, normed, rows, _vocab, _hidden, accumulate: true, _pool);
        }
    }

    /// <summary>
    /// The backward pass from dNormed [N, C] (the gradient at the final norm's output) down to the lowest adapted layer;
    /// under full-parameter training (<paramref name="full"/> set) down to the embeddings, with every weight's gradient
    /// accumulated beside the adapter slots' (dW = dyᵀ·x for each projection, db = Σ dy, the norms' dWeight, and the
    /// embedding rows the batch read).
    /// </summary>
    private void Backward(BatchPlan plan, IModelAdapter adapter, AdapterGradients gradients, Tape tape, ReadOnlySpan<float> dNormed, ParameterTensors? full, Arena arena)
    {
        int n = plan.TotalTokens;
        int c = _hidden;
        Span<float> dx = arena.Rent(n * c);
        dx.Clear();
        RmsNorm.Backward(dx, full is null ? default : full.FinalNorm.GradientArray, dNormed, tape.FinalIn, _weights.FinalNorm, tape.FinalRstd, n, c, _pool);

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
            bool lowest = l == tape.LowestLayer && full is null;
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
            WeightGradient(full, l, Projection.DownProj, dx, lt.M, n);
            SwiGluRows(dm, lt.Gate, lt.Up, dGate, dUp, n);
            WeightGradient(full, l, Projection.GateProj, dGate, lt.H2, n);
            WeightGradient(full, l, Projection.UpProj, dUp, lt.H2, n);
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

            RmsNorm.Backward(dx, full is null ? default : full.PostAttentionNorm(l).GradientArray, dh, lt.XMid, w.PostAttentionNorm, lt.Rstd2, n, c, _pool);

            // Attention block.
            if (!needQkv)
            {
                AdapterBackward(Span<float>.Empty, dx, lt.O, l, Projection.OProj, adapter, gradients, lt, n);
                continue;
            }

            BackProject(dO, dx, lt.O, l, Projection.OProj, adapter, gradients, lt, n);
            WeightGradient(full, l, Projection.OProj, dx, lt.O, n);
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
            WeightGradient(full, l, Projection.QProj, dq, lt.H1, n);
            WeightGradient(full, l, Projection.KProj, dk, lt.H1, n);
            WeightGradient(full, l, Projection.VProj, dv, lt.H1, n);
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
                RmsNorm.Backward(dx, full is null ? default : full.InputNorm(l).GradientArray, dh, lt.XIn, w.InputNorm, lt.Rstd1, n, c, _pool);
            }
        }

        if (full is not null)
        {
            // dx is now the gradient at the embedding output: each token's row adds into the row it read.
            float[] dEmbedding = full.Embedding.GradientArray;
            for (int t = 0; t < n; t++)
            {
                Span<float> row = dEmbedding.AsSpan(plan.Ids[t] * c, c);
                TensorPrimitives.Add(row, dx.Slice(t * c, c), row);
            }
        }
    }

    /// <summary>Under full-parameter training, dW += dyᵀ·x (and db += Σ_t dy) for one projection of one layer.</summary>
    private void WeightGradient(ParameterTensors? full, int layer, Projection projection, ReadOnlySpan<float> dy, ReadOnlySpan<float> x, int n)
    {
        if (full is null)
        {
            return;
        }

        ModelTensor weight = full.Projection(layer, projection);
        int outFeatures = weight.Shape[0];
        int inFeatures = weight.Shape[1];
        Gemm.LinearBackwardWeight(weight.GradientArray, dy[..(n * outFeatures)], x[..(n * inFeatures)], n, outFeatures, inFeatures, accumulate: true, _pool);
        if (full.Bias(layer, projection) is { } bias)
        {
            Span<float> db = bias.GradientArray;
            for (int t = 0; t < n; t++)
            {
                TensorPrimitives.Add(db, dy.Slice(t * outFeatures, outFeatures), db);
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
}
