using System.Numerics.Tensors;

namespace LiveLearning.Numerics;

/// <summary>
/// Softmax cross-entropy over rows of logits <c>[tokens, vocab]</c>, fused with its gradient. Rows whose target
/// is negative (Hugging Face uses −100) are ignored. Everything is computed from the max-subtracted
/// log-sum-exp with double accumulation of the exponentials and of the loss.
/// </summary>
public static unsafe class CrossEntropy
{
    /// <summary>
    /// Returns the mean cross-entropy over counted rows (target ≥ 0), and writes
    /// <c>dLogits = (softmax(logits) − onehot(target)) · gradScale / count</c> for counted rows and 0 for ignored rows
    /// (overwrites, does not accumulate). With no counted row the loss is 0 and <paramref name="dLogits"/> is all 0.
    /// A NaN logit in a counted row makes the loss NaN.
    /// </summary>
    /// <param name="dLogits">Gradient <c>[tokens, vocab]</c>, or empty to compute only the loss. May be exactly <paramref name="logits"/> (overwrites them).</param>
    /// <param name="logits">Logits <c>[tokens, vocab]</c>.</param>
    /// <param name="targets">Target token per row (<c>[tokens]</c>); negative = ignored; otherwise below <paramref name="vocab"/>.</param>
    /// <param name="tokens">Number of rows.</param>
    /// <param name="vocab">Row length (at least 1).</param>
    /// <param name="gradScale">Extra factor on the gradient (e.g. for gradient accumulation).</param>
    /// <param name="pool">Pool to run rows in parallel, or <see langword="null"/> for the calling thread.</param>
    /// <returns>The mean loss, 0 when no row is counted.</returns>
    /// <exception cref="ArgumentException">A length does not match the shape, or <paramref name="dLogits"/> partially overlaps <paramref name="logits"/>.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A shape is out of range or a target is ≥ <paramref name="vocab"/>.</exception>
    public static float ForwardBackward(Span<float> dLogits, ReadOnlySpan<float> logits, ReadOnlySpan<int> targets, int tokens, int vocab, float gradScale = 1f, ComputePool? pool = null)
    {
        int count = Validate(logits, targets, tokens, vocab);
        if (!dLogits.IsEmpty)
        {
            KernelChecks.Length(dLogits.Length, (long)tokens * vocab, nameof(dLogits), "tokens*vocab (or 0)");
            KernelChecks.NoOverlap(dLogits, logits, nameof(dLogits), nameof(logits), allowIdentical: true);
        }

        if (tokens == 0)
        {
            return 0f;
        }

        var rowLoss = new double[tokens];
        fixed (float* pd = dLogits)
        fixed (float* pl = logits)
        fixed (int* pt = targets)
        fixed (double* pr = rowLoss)
        {
            var job = new RowJob
            {
                DLogits = dLogits.IsEmpty ? null : pd,
                Logits = pl,
                Targets = pt,
                RowValue = pr,
                Vocab = vocab,
                GradFactor = count == 0 ? 0f : (float)((double)gradScale / count),
                LogProbabilities = false,
            };
            ComputePool.Run(pool, tokens, ref job);
        }

        if (count == 0)
        {
            return 0f;
        }

        double total = 0;
        foreach (double loss in rowLoss)
        {
            total += loss;
        }

        return (float)(total / count);
    }

    /// <summary>
    /// Writes <c>log_softmax(logits)[t, targets[t]]</c> for every row (0 for ignored rows, target &lt; 0); used for scoring.
    /// </summary>
    /// <param name="logProbs">Output <c>[tokens]</c>.</param>
    /// <param name="logits">Logits <c>[tokens, vocab]</c>.</param>
    /// <param name="targets">Target token per row; negative = ignored; otherwise below <paramref name="vocab"/>.</param>
    /// <param name="tokens">Number of rows.</param>
    /// <param name="vocab">Row length (at least 1).</param>
    /// <param name="pool">Pool to run rows in parallel, or <see langword="null"/> for the calling thread.</param>
    /// <exception cref="ArgumentException">A length does not match the shape or <paramref name="logProbs"/> overlaps <paramref name="logits"/>.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A shape is out of range or a target is ≥ <paramref name="vocab"/>.</exception>
    public static void TargetLogProbabilities(Span<float> logProbs, ReadOnlySpan<float> logits, ReadOnlySpan<int> targets, int tokens, int vocab, ComputePool? pool = null)
    {
        Validate(logits, targets, tokens, vocab);
        KernelChecks.Length(logProbs.Length, tokens, nameof(logProbs), "tokens");
        KernelChecks.NoOverlap(logProbs, logits, nameof(logProbs), nameof(logits));
        if (tokens == 0)
        {
            return;
        }

        var rowValue = new double[tokens];
        fixed (float* pl = logits)
        fixed (int* pt = targets)
        fixed (double* pr = rowValue)
        {
            var job = new RowJob
            {
                DLogits = null,
                Logits = pl,
                Targets = pt,
                RowValue = pr,
                Vocab = vocab,
                GradFactor = 0f,
                LogProbabilities = true,
            };
            ComputePool.Run(pool, tokens, ref job);
        }

        for (int t = 0; t < tokens; t++)
        {
            logProbs[t] = (float)rowValue[t];
        }
    }

    /// <summary>Checks shapes and targets; returns the number of counted rows.</summary>
    private static int Validate(ReadOnlySpan<float> logits, ReadOnlySpan<int> targets, int tokens, int vocab)
    {
        KernelChecks.NonNegative(tokens, nameof(tokens));
        KernelChecks.Positive(vocab, nameof(vocab));
        KernelChecks.Length(logits.Length, (long)tokens * vocab, nameof(logits), "tokens*vocab");
        KernelChecks.Length(targets.Length, tokens, nameof(targets), "tokens");
        int count = 0;
        for (int t = 0; t < tokens; t++)
        {
            int target = targets[t];
            if (target >= vocab)
            {
                throw new ArgumentOutOfRangeException(nameof(targets), target, $"targets[{t}] = {target} is not below vocab = {vocab} (use a negative target to ignore a row).");
            }

            if (target >= 0)
            {
                count++;
            }
        }

        return count;
    }

    /// <summary>One row: loss (or target log-probability) into RowValue[t]; gradient row when DLogits is set.</summary>
    private struct RowJob : IParallelJob
    {
        public float* DLogits;
        public float* Logits;
        public int* Targets;
        public double* RowValue;
        public int Vocab;
        public float GradFactor;
        public bool LogProbabilities;

        public readonly void Execute(int index)
        {
            var x = new ReadOnlySpan<float>(Logits + ((long)index * Vocab), Vocab);
            Span<float> d = DLogits == null ? default : new Span<float>(DLogits + ((long)index * Vocab), Vocab);
            int target = Targets[index];
            if (target < 0)
            {
                RowValue[index] = 0;
                d.Clear();
                return;
            }

            float max = TensorPrimitives.Max(x);
            float targetLogit = x[target]; // read before d (possibly aliasing x) is written
            double sum = Softmax.ExpShiftedSum(d, x, max);
            double logProb = (double)targetLogit - max - Math.Log(sum);
            RowValue[index] = LogProbabilities ? logProb : -logProb;
            if (!d.IsEmpty)
            {
                float scale = (float)(GradFactor / sum);
                TensorPrimitives.Multiply(d, scale, d);
                d[target] -= GradFactor;
            }
        }
    }
}
