namespace LiveLearning.Numerics;

/// <summary>
/// Plain scalar causal GQA attention accumulated in double precision: the test oracle for <see cref="Attention"/>.
/// Same layouts and argument meanings as <see cref="Attention.Forward"/> and <c>Attention.Backward</c>;
/// slow, written for clarity, and checks only what indexing needs.
/// </summary>
internal static class AttentionReference
{
    /// <summary>Reference of <see cref="Attention.Forward"/>: the full softmax of each row, in double.</summary>
    /// <param name="output">Result <c>[tokens, heads, headDim]</c> (overwritten).</param>
    /// <param name="logSumExp">Empty, or <c>[tokens, heads]</c> row log-sum-exp of the scaled scores.</param>
    /// <param name="q">Queries <c>[tokens, heads, headDim]</c>.</param>
    /// <param name="k">Keys <c>[kvLength, kvHeads, headDim]</c>.</param>
    /// <param name="v">Values <c>[kvLength, kvHeads, headDim]</c>.</param>
    /// <param name="tokens">Query tokens.</param>
    /// <param name="startPosition">Absolute position of the first query.</param>
    /// <param name="kvLength">Rows in the KV cache.</param>
    /// <param name="heads">Query heads.</param>
    /// <param name="kvHeads">Key/value heads (divides <paramref name="heads"/>).</param>
    /// <param name="headDim">Elements per head.</param>
    /// <param name="scale">Score scale.</param>
    public static void Forward(Span<float> output, Span<float> logSumExp, ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, int tokens, int startPosition, int kvLength, int heads, int kvHeads, int headDim, float scale)
    {
        Check(tokens, startPosition, kvLength, heads, kvHeads);
        int group = heads / kvHeads;
        var p = new double[startPosition + tokens];
        for (int t = 0; t < tokens; t++)
        {
            for (int h = 0; h < heads; h++)
            {
                int n = startPosition + t + 1;
                double lse = Probabilities(p, q, k, t, h, h / group, n, heads, kvHeads, headDim, scale);
                for (int e = 0; e < headDim; e++)
                {
                    double sum = 0;
                    for (int j = 0; j < n; j++)
                    {
                        sum += p[j] * v[(((j * kvHeads) + (h / group)) * headDim) + e];
                    }

                    output[(((t * heads) + h) * headDim) + e] = (float)sum;
                }

                if (!logSumExp.IsEmpty)
                {
                    logSumExp[(t * heads) + h] = (float)lse;
                }
            }
        }
    }

    /// <summary>
    /// Reference of <c>Attention.Backward</c> (accumulates into the gradients). It recomputes the
    /// probabilities and the output from <paramref name="q"/>, <paramref name="k"/> and <paramref name="v"/> in double,
    /// so <paramref name="output"/> and <paramref name="logSumExp"/> are not read: the oracle depends on nothing the
    /// kernel under test produced.
    /// </summary>
    /// <param name="dq">Query gradient <c>[tokens, heads, headDim]</c> (accumulated).</param>
    /// <param name="dk">Key gradient <c>[kvLength, kvHeads, headDim]</c> (accumulated).</param>
    /// <param name="dv">Value gradient <c>[kvLength, kvHeads, headDim]</c> (accumulated).</param>
    /// <param name="dOutput">Upstream gradient <c>[tokens, heads, headDim]</c>.</param>
    /// <param name="output">Forward output (not read; kept for signature parity).</param>
    /// <param name="logSumExp">Forward log-sum-exp (not read; kept for signature parity).</param>
    /// <param name="q">Queries.</param>
    /// <param name="k">Keys.</param>
    /// <param name="v">Values.</param>
    /// <param name="tokens">Query tokens.</param>
    /// <param name="startPosition">Absolute position of the first query.</param>
    /// <param name="kvLength">Rows in the KV cache.</param>
    /// <param name="heads">Query heads.</param>
    /// <param name="kvHeads">Key/value heads.</param>
    /// <param name="headDim">Elements per head.</param>
    /// <param name="scale">Score scale.</param>
    public static void Backward(Span<float> dq, Span<float> dk, Span<float> dv, ReadOnlySpan<float> dOutput, ReadOnlySpan<float> output, ReadOnlySpan<float> logSumExp, ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v, int tokens, int startPosition, int kvLength, int heads, int kvHeads, int headDim, float scale)
    {
        _ = output;
        _ = logSumExp;
        Check(tokens, startPosition, kvLength, heads, kvHeads);
        int group = heads / kvHeads;
        int keys = startPosition + tokens;
        var p = new double[keys];
        var dp = new double[keys];
        var dqAcc = new double[tokens * heads * headDim];
        var dkAcc = new double[keys * kvHeads * headDim];
        var dvAcc = new double[keys * kvHeads * headDim];
        for (int t = 0; t < tokens; t++)
        {
            for (int h = 0; h < heads; h++)
            {
                int g = h / group;
                int n = startPosition + t + 1;
                int qRow = ((t * heads) + h) * headDim;
                Probabilities(p, q, k, t, h, g, n, heads, kvHeads, headDim, scale);
                double rowDot = 0;
                for (int j = 0; j < n; j++)
                {
                    double sum = 0;
                    for (int e = 0; e < headDim; e++)
                    {
                        sum += (double)dOutput[qRow + e] * v[(((j * kvHeads) + g) * headDim) + e];
                    }

                    dp[j] = sum;
                    rowDot += p[j] * sum;
                }

                for (int j = 0; j < n; j++)
                {
                    double ds = p[j] * (dp[j] - rowDot);
                    int kvRow = ((j * kvHeads) + g) * headDim;
                    for (int e = 0; e < headDim; e++)
                    {
                        dqAcc[qRow + e] += scale * ds * k[kvRow + e];
                        dkAcc[kvRow + e] += scale * ds * q[qRow + e];
                        dvAcc[kvRow + e] += p[j] * dOutput[qRow + e];
                    }
                }
            }
        }

        for (int i = 0; i < dqAcc.Length; i++)
        {
            dq[i] += (float)dqAcc[i];
        }

        for (int i = 0; i < dkAcc.Length; i++)
        {
            dk[i] += (float)dkAcc[i];
            dv[i] += (float)dvAcc[i];
        }
    }

    private static void Check(int tokens, int startPosition, int kvLength, int heads, int kvHeads)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(tokens);
        ArgumentOutOfRangeException.ThrowIfNegative(startPosition);
        ArgumentOutOfRangeException.ThrowIfLessThan(kvHeads, 1);
        if (heads < 1 || heads % kvHeads != 0)
        {
            throw new ArgumentException($"heads ({heads}) must be a positive multiple of kvHeads ({kvHeads}).", nameof(heads));
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(kvLength, startPosition + tokens);
    }

    /// <summary>Fills <c>p[0..n)</c> with the softmax of the scaled scores of one query row; returns the log-sum-exp.</summary>
    private static double Probabilities(double[] p, ReadOnlySpan<float> q, ReadOnlySpan<float> k, int t, int h, int g, int n, int heads, int kvHeads, int headDim, float scale)
    {
        double max = double.NegativeInfinity;
        for (int j = 0; j < n; j++)
        {
            double s = 0;
            for (int e = 0; e < headDim; e++)
            {
                s += (double)q[(((t * heads) + h) * headDim) + e] * k[(((j * kvHeads) + g) * headDim) + e];
            }

            p[j] = s * scale;
            max = Math.Max(max, p[j]); // propagates NaN
        }

        double total = 0;
        for (int j = 0; j < n; j++)
        {
            p[j] = Math.Exp(p[j] - max);
            total += p[j];
        }

        for (int j = 0; j < n; j++)
        {
            p[j] /= total;
        }

        return max + Math.Log(total);
    }
}
