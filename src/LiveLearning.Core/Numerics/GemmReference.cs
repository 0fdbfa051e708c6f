namespace LiveLearning.Numerics;

/// <summary>
/// Plain scalar versions of the <see cref="Gemm"/> operations, kept as the test oracle: the same arguments in the
/// same order, double-precision sums, no blocking, no threads.
/// </summary>
internal static class GemmReference
{
    /// <summary>Reference <see cref="Gemm.Linear(Span{float}, ReadOnlySpan{float}, in WeightMatrix, int, bool, ComputePool?)"/>.</summary>
    /// <param name="y">Output <c>[tokens, w.Rows]</c>.</param>
    /// <param name="x">Input <c>[tokens, w.Cols]</c>.</param>
    /// <param name="w">Weight <c>[out, in]</c>.</param>
    /// <param name="tokens">Rows of <paramref name="x"/>.</param>
    /// <param name="accumulate">Add to <paramref name="y"/>.</param>
    public static void Linear(Span<float> y, ReadOnlySpan<float> x, in WeightMatrix w, int tokens, bool accumulate = false)
        => Linear(y, x, Widen(w), tokens, w.Rows, w.Cols, accumulate);

    /// <summary>Reference <c>y[t,o] = (accumulate ? y : 0) + Σ_i x[t,i]·w[o,i]</c>.</summary>
    /// <param name="y">Output <c>[tokens, outFeatures]</c>.</param>
    /// <param name="x">Input <c>[tokens, inFeatures]</c>.</param>
    /// <param name="w">Weight <c>[outFeatures, inFeatures]</c>.</param>
    /// <param name="tokens">Rows of <paramref name="x"/>.</param>
    /// <param name="outFeatures">Rows of <paramref name="w"/>.</param>
    /// <param name="inFeatures">Columns of <paramref name="w"/>.</param>
    /// <param name="accumulate">Add to <paramref name="y"/>.</param>
    public static void Linear(Span<float> y, ReadOnlySpan<float> x, ReadOnlySpan<float> w, int tokens, int outFeatures, int inFeatures, bool accumulate = false)
    {
        Check(y.Length, tokens * outFeatures, nameof(y));
        Check(x.Length, tokens * inFeatures, nameof(x));
        Check(w.Length, outFeatures * inFeatures, nameof(w));
        for (int t = 0; t < tokens; t++)
        {
            for (int o = 0; o < outFeatures; o++)
            {
                double s = 0;
                for (int i = 0; i < inFeatures; i++)
                {
                    s += (double)x[(t * inFeatures) + i] * w[(o * inFeatures) + i];
                }

                int at = (t * outFeatures) + o;
                y[at] = accumulate ? (float)(y[at] + s) : (float)s;
            }
        }
    }

    /// <summary>Reference <see cref="Gemm.LinearBackwardInput(Span{float}, ReadOnlySpan{float}, in WeightMatrix, int, bool, ComputePool?)"/>.</summary>
    /// <param name="dx">Output <c>[tokens, w.Cols]</c>.</param>
    /// <param name="dy">Upstream gradient <c>[tokens, w.Rows]</c>.</param>
    /// <param name="w">Weight <c>[out, in]</c>.</param>
    /// <param name="tokens">Rows of <paramref name="dy"/>.</param>
    /// <param name="accumulate">Add to <paramref name="dx"/>.</param>
    public static void LinearBackwardInput(Span<float> dx, ReadOnlySpan<float> dy, in WeightMatrix w, int tokens, bool accumulate = false)
        => LinearBackwardInput(dx, dy, Widen(w), tokens, w.Rows, w.Cols, accumulate);

    /// <summary>Reference <c>dx[t,i] = (accumulate ? dx : 0) + Σ_o dy[t,o]·w[o,i]</c>.</summary>
    /// <param name="dx">Output <c>[tokens, inFeatures]</c>.</param>
    /// <param name="dy">Upstream gradient <c>[tokens, outFeatures]</c>.</param>
    /// <param name="w">Weight <c>[outFeatures, inFeatures]</c>.</param>
    /// <param name="tokens">Rows of <paramref name="dy"/>.</param>
    /// <param name="outFeatures">Rows of <paramref name="w"/>.</param>
    /// <param name="inFeatures">Columns of <paramref name="w"/>.</param>
    /// <param name="accumulate">Add to <paramref name="dx"/>.</param>
    public static void LinearBackwardInput(Span<float> dx, ReadOnlySpan<float> dy, ReadOnlySpan<float> w, int tokens, int outFeatures, int inFeatures, bool accumulate = false)
    {
        Check(dx.Length, tokens * inFeatures, nameof(dx));
        Check(dy.Length, tokens * outFeatures, nameof(dy));
        Check(w.Length, outFeatures * inFeatures, nameof(w));
        for (int t = 0; t < tokens; t++)
        {
            for (int i = 0; i < inFeatures; i++)
            {
                double s = 0;
                for (int o = 0; o < outFeatures; o++)
                {
                    s += (double)dy[(t * outFeatures) + o] * w[(o * inFeatures) + i];
                }

                int at = (t * inFeatures) + i;
                dx[at] = accumulate ? (float)(dx[at] + s) : (float)s;
            }
        }
    }

    /// <summary>Reference <c>dw[o,i] = (accumulate ? dw : 0) + Σ_t dy[t,o]·x[t,i]</c>.</summary>
    /// <param name="dw">Output <c>[outFeatures, inFeatures]</c>.</param>
    /// <param name="dy">Upstream gradient <c>[tokens, outFeatures]</c>.</param>
    /// <param name="x">Layer input <c>[tokens, inFeatures]</c>.</param>
    /// <param name="tokens">Rows of <paramref name="dy"/> and <paramref name="x"/>.</param>
    /// <param name="outFeatures">Columns of <paramref name="dy"/>.</param>
    /// <param name="inFeatures">Columns of <paramref name="x"/>.</param>
    /// <param name="accumulate">Add to <paramref name="dw"/>.</param>
    public static void LinearBackwardWeight(Span<float> dw, ReadOnlySpan<float> dy, ReadOnlySpan<float> x, int tokens, int outFeatures, int inFeatures, bool accumulate = false)
    {
        Check(dw.Length, outFeatures * inFeatures, nameof(dw));
        Check(dy.Length, tokens * outFeatures, nameof(dy));
        Check(x.Length, tokens * inFeatures, nameof(x));
        for (int o = 0; o < outFeatures; o++)
        {
            for (int i = 0; i < inFeatures; i++)
            {
                double s = 0;
                for (int t = 0; t < tokens; t++)
                {
                    s += (double)dy[(t * outFeatures) + o] * x[(t * inFeatures) + i];
                }

                int at = (o * inFeatures) + i;
                dw[at] = accumulate ? (float)(dw[at] + s) : (float)s;
            }
        }
    }

    /// <summary>Reference GEMV <c>y[o] = (accumulate ? y : 0) + Σ_i w[o,i]·x[i]</c>.</summary>
    /// <param name="y">Output of <c>w.Rows</c> elements.</param>
    /// <param name="x">Input of <c>w.Cols</c> elements.</param>
    /// <param name="w">Weight <c>[out, in]</c>.</param>
    /// <param name="accumulate">Add to <paramref name="y"/>.</param>
    public static void Gemv(Span<float> y, ReadOnlySpan<float> x, in WeightMatrix w, bool accumulate = false)
        => Linear(y, x, Widen(w), 1, w.Rows, w.Cols, accumulate);

    private static float[] Widen(in WeightMatrix w)
    {
        var all = new float[w.Rows * w.Cols];
        for (int r = 0; r < w.Rows; r++)
        {
            w.ReadRow(r, all.AsSpan(r * w.Cols, w.Cols));
        }

        return all;
    }

    private static void Check(int actual, int expected, string name)
    {
        if (actual != expected)
        {
            throw new ArgumentException($"{name} has {actual} elements but the shape needs {expected}.", name);
        }
    }
}
