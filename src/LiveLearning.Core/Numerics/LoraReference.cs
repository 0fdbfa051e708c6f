namespace LiveLearning.Numerics;

/// <summary>
/// Plain scalar LoRA forward and backward with the same contracts as <see cref="LoraKernels"/>: the test oracle.
/// Sums are accumulated in double precision and rounded once per output element.
/// </summary>
internal static class LoraReference
{
    /// <summary>
    /// <c>h[t, r] = Σ_i x[t, i]·a[r, i]</c> (written) and <c>y[t, o] += scale · Σ_r h[t, r]·b[o, r]</c> (accumulated).
    /// </summary>
    /// <param name="y">Output <c>[tokens, outFeatures]</c>, accumulated into.</param>
    /// <param name="h">Output <c>[tokens, rank]</c>, overwritten.</param>
    /// <param name="x">Input <c>[tokens, inFeatures]</c>.</param>
    /// <param name="a">LoRA A, <c>[rank, inFeatures]</c>.</param>
    /// <param name="b">LoRA B, <c>[outFeatures, rank]</c>.</param>
    /// <param name="tokens">Number of token rows.</param>
    /// <param name="inFeatures">Input features.</param>
    /// <param name="outFeatures">Output features.</param>
    /// <param name="rank">LoRA rank, 1 to <see cref="LoraKernels.MaxRank"/>.</param>
    /// <param name="scale">The LoRA scaling.</param>
    /// <exception cref="ArgumentException">Same argument checks as <see cref="LoraKernels.Forward"/>.</exception>
    public static void Forward(Span<float> y, Span<float> h, ReadOnlySpan<float> x, ReadOnlySpan<float> a, ReadOnlySpan<float> b, int tokens, int inFeatures, int outFeatures, int rank, float scale)
    {
        LoraKernels.ValidateForward(y, h, x, a, b, tokens, inFeatures, outFeatures, rank);
        for (int t = 0; t < tokens; t++)
        {
            for (int r = 0; r < rank; r++)
            {
                double sum = 0;
                for (int i = 0; i < inFeatures; i++)
                {
                    sum += (double)x[(t * inFeatures) + i] * a[(r * inFeatures) + i];
                }

                h[(t * rank) + r] = (float)sum;
            }

            for (int o = 0; o < outFeatures; o++)
            {
                double sum = 0;
                for (int r = 0; r < rank; r++)
                {
                    sum += (double)h[(t * rank) + r] * b[(o * rank) + r];
                }

                y[(t * outFeatures) + o] = (float)(y[(t * outFeatures) + o] + (scale * sum));
            }
        }
    }

    /// <summary>
    /// <c>dH = scale·dy·B</c> (written), <c>dB += scale·dyᵀ·h</c>, <c>dA += dHᵀ·x</c>, <c>dx += dH·A</c> (skipped when dx is empty).
    /// </summary>
    /// <param name="dA">Gradient of A, <c>[rank, inFeatures]</c>, accumulated into.</param>
    /// <param name="dB">Gradient of B, <c>[outFeatures, rank]</c>, accumulated into.</param>
    /// <param name="dx">Gradient of x, <c>[tokens, inFeatures]</c>, accumulated into; empty to skip.</param>
    /// <param name="dh">Scratch <c>[tokens, rank]</c>, overwritten with dH.</param>
    /// <param name="dy">Gradient of y, <c>[tokens, outFeatures]</c>.</param>
    /// <param name="x">The forward's input.</param>
    /// <param name="h">The forward's h.</param>
    /// <param name="a">LoRA A.</param>
    /// <param name="b">LoRA B.</param>
    /// <param name="tokens">Number of token rows.</param>
    /// <param name="inFeatures">Input features.</param>
    /// <param name="outFeatures">Output features.</param>
    /// <param name="rank">LoRA rank.</param>
    /// <param name="scale">The LoRA scaling.</param>
    /// <exception cref="ArgumentException">Same argument checks as <see cref="LoraKernels.Backward"/>.</exception>
    public static void Backward(Span<float> dA, Span<float> dB, Span<float> dx, Span<float> dh, ReadOnlySpan<float> dy, ReadOnlySpan<float> x, ReadOnlySpan<float> h, ReadOnlySpan<float> a, ReadOnlySpan<float> b, int tokens, int inFeatures, int outFeatures, int rank, float scale)
    {
        LoraKernels.ValidateBackward(dA, dB, dx, dh, dy, x, h, a, b, tokens, inFeatures, outFeatures, rank);
        for (int t = 0; t < tokens; t++)
        {
            for (int r = 0; r < rank; r++)
            {
                double sum = 0;
                for (int o = 0; o < outFeatures; o++)
                {
                    sum += (double)dy[(t * outFeatures) + o] * b[(o * rank) + r];
                }

                dh[(t * rank) + r] = (float)(scale * sum);
            }
        }

        for (int o = 0; o < outFeatures; o++)
        {
            for (int r = 0; r < rank; r++)
            {
                double sum = 0;
                for (int t = 0; t < tokens; t++)
                {
                    sum += (double)dy[(t * outFeatures) + o] * h[(t * rank) + r];
                }

                dB[(o * rank) + r] = (float)(dB[(o * rank) + r] + (scale * sum));
            }
        }

        for (int r = 0; r < rank; r++)
        {
            for (int i = 0; i < inFeatures; i++)
            {
                double sum = 0;
                for (int t = 0; t < tokens; t++)
                {
                    sum += (double)dh[(t * rank) + r] * x[(t * inFeatures) + i];
                }

                dA[(r * inFeatures) + i] = (float)(dA[(r * inFeatures) + i] + sum);
            }
        }

        if (dx.IsEmpty)
        {
            return;
        }

        for (int t = 0; t < tokens; t++)
        {
            for (int i = 0; i < inFeatures; i++)
            {
                double sum = 0;
                for (int r = 0; r < rank; r++)
                {
                    sum += (double)dh[(t * rank) + r] * a[(r * inFeatures) + i];
                }

                dx[(t * inFeatures) + i] = (float)(dx[(t * inFeatures) + i] + sum);
            }
        }
    }
}
