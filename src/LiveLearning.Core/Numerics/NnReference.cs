namespace LiveLearning.Numerics;

/// <summary>
/// Plain scalar implementations of the neural-net kernels (<see cref="RmsNorm"/>, <see cref="Rope"/>,
/// <see cref="Activations"/>, <see cref="Softmax"/>, <see cref="CrossEntropy"/>, <see cref="Optimizers"/>):
/// the readable definition of each, kept as the test oracle for the SIMD paths. No argument checks.
/// </summary>
internal static class NnReference
{
    public static void RmsNormForward(Span<float> y, Span<float> rstd, ReadOnlySpan<float> x, ReadOnlySpan<float> weight, int tokens, int dim, float eps)
    {
        for (int t = 0; t < tokens; t++)
        {
            double sumSquares = 0;
            for (int j = 0; j < dim; j++)
            {
                double v = x[(t * dim) + j];
                sumSquares += v * v;
            }

            float r = (float)(1.0 / Math.Sqrt((sumSquares / dim) + eps));
            if (!rstd.IsEmpty)
            {
                rstd[t] = r;
            }

            for (int j = 0; j < dim; j++)
            {
                y[(t * dim) + j] = x[(t * dim) + j] * r * weight[j];
            }
        }
    }

    public static void RmsNormBackward(Span<float> dx, Span<float> dWeight, ReadOnlySpan<float> dy, ReadOnlySpan<float> x, ReadOnlySpan<float> weight, ReadOnlySpan<float> rstd, int tokens, int dim)
    {
        for (int t = 0; t < tokens; t++)
        {
            double r = rstd[t];
            double dot = 0;
            for (int j = 0; j < dim; j++)
            {
                dot += (double)dy[(t * dim) + j] * weight[j] * x[(t * dim) + j];
            }

            double c = r * r * r * dot / dim;
            for (int j = 0; j < dim; j++)
            {
                int i = (t * dim) + j;
                dx[i] += (float)((r * dy[i] * weight[j]) - (c * x[i]));
                if (!dWeight.IsEmpty)
                {
                    dWeight[j] += (float)(dy[i] * x[i] * r);
                }
            }
        }
    }

    /// <summary>Rotates in place with cos/sin computed on the spot (no table); <paramref name="transpose"/> applies Rᵀ.</summary>
    public static void Rope(Span<float> x, ReadOnlySpan<int> positions, int heads, int headDim, ReadOnlySpan<float> inverseFrequencies, float attentionScaling, bool transpose)
    {
        int half = headDim / 2;
        for (int t = 0; t < positions.Length; t++)
        {
            for (int h = 0; h < heads; h++)
            {
                int b = ((t * heads) + h) * headDim;
                for (int j = 0; j < half; j++)
                {
                    float angle = (float)positions[t] * inverseFrequencies[j];
                    float c = (float)(Math.Cos(angle) * attentionScaling);
                    float s = (float)(Math.Sin(angle) * attentionScaling);
                    if (transpose)
                    {
                        s = -s;
                    }

                    float x1 = x[b + j];
                    float x2 = x[b + j + half];
                    x[b + j] = (x1 * c) - (x2 * s);
                    x[b + j + half] = (x2 * c) + (x1 * s);
                }
            }
        }
    }

    public static float Sigmoid(float x) => 1f / (1f + MathF.Exp(-x));

    public static void Silu(Span<float> y, ReadOnlySpan<float> x)
    {
        for (int i = 0; i < y.Length; i++)
        {
            y[i] = x[i] * Sigmoid(x[i]);
        }
    }

    public static void SiluBackward(Span<float> dx, ReadOnlySpan<float> dy, ReadOnlySpan<float> x)
    {
        for (int i = 0; i < dx.Length; i++)
        {
            float s = Sigmoid(x[i]);
            dx[i] += dy[i] * s * (1f + (x[i] * (1f - s)));
        }
    }

    public static void SwiGlu(Span<float> y, ReadOnlySpan<float> gate, ReadOnlySpan<float> up)
    {
        for (int i = 0; i < y.Length; i++)
        {
            y[i] = gate[i] * Sigmoid(gate[i]) * up[i];
        }
    }

    public static void SwiGluBackward(Span<float> dGate, Span<float> dUp, ReadOnlySpan<float> dy, ReadOnlySpan<float> gate, ReadOnlySpan<float> up)
    {
        for (int i = 0; i < dGate.Length; i++)
        {
            float s = Sigmoid(gate[i]);
            dUp[i] += dy[i] * gate[i] * s;
            dGate[i] += dy[i] * up[i] * s * (1f + (gate[i] * (1f - s)));
        }
    }

    public static void Softmax(Span<float> y, ReadOnlySpan<float> x)
    {
        float max = float.NegativeInfinity;
        bool nan = false;
        foreach (float v in x)
        {
            nan |= float.IsNaN(v);
            max = Math.Max(max, v);
        }

        if (nan)
        {
            max = float.NaN;
        }

        double sum = 0;
        foreach (float v in x)
        {
            sum += Math.Exp(v - max);
        }

        for (int i = 0; i < y.Length; i++)
        {
            y[i] = (float)(Math.Exp(x[i] - max) / sum);
        }
    }

    public static void LogSoftmax(Span<float> y, ReadOnlySpan<float> x)
    {
        double max = double.NegativeInfinity;
        bool nan = false;
        foreach (float v in x)
        {
            nan |= float.IsNaN(v);
            max = Math.Max(max, v);
        }

        if (nan)
        {
            max = double.NaN;
        }

        double sum = 0;
        foreach (float v in x)
        {
            sum += Math.Exp(v - max);
        }

        double log = Math.Log(sum);
        for (int i = 0; i < y.Length; i++)
        {
            y[i] = (float)(x[i] - max - log);
        }
    }

    /// <summary>Loss and gradient of the mean cross-entropy, all in double.</summary>
    public static float CrossEntropy(Span<float> dLogits, ReadOnlySpan<float> logits, ReadOnlySpan<int> targets, int tokens, int vocab, float gradScale)
    {
        int count = 0;
        foreach (int t in targets)
        {
            count += t >= 0 ? 1 : 0;
        }

        double total = 0;
        var logProbs = new float[vocab];
        for (int t = 0; t < tokens; t++)
        {
            ReadOnlySpan<float> row = logits.Slice(t * vocab, vocab);
            if (targets[t] < 0)
            {
                if (!dLogits.IsEmpty)
                {
                    dLogits.Slice(t * vocab, vocab).Clear();
                }

                continue;
            }

            LogSoftmax(logProbs, row);
            total -= logProbs[targets[t]];
            if (!dLogits.IsEmpty)
            {
                for (int j = 0; j < vocab; j++)
                {
                    double p = Math.Exp(logProbs[j]);
                    dLogits[(t * vocab) + j] = (float)((p - (j == targets[t] ? 1 : 0)) * gradScale / count);
                }
            }
        }

        return count == 0 ? 0f : (float)(total / count);
    }

    public static void AdamWStep(Span<float> parameters, ReadOnlySpan<float> gradients, Span<float> m, Span<float> v, int step, float learningRate, float beta1, float beta2, float epsilon, float weightDecay)
    {
        double bc1 = 1 - Math.Pow(beta1, step);
        double bc2 = 1 - Math.Pow(beta2, step);
        for (int i = 0; i < parameters.Length; i++)
        {
            float p = parameters[i] * (1f - (learningRate * weightDecay));
            m[i] = (beta1 * m[i]) + ((1f - beta1) * gradients[i]);
            v[i] = (beta2 * v[i]) + ((1f - beta2) * gradients[i] * gradients[i]);
            float denom = (float)(Math.Sqrt(v[i]) / Math.Sqrt(bc2)) + epsilon;
            parameters[i] = p - (float)(learningRate / bc1 * m[i] / denom);
        }
    }

    public static void SgdMomentumStep(Span<float> parameters, ReadOnlySpan<float> gradients, Span<float> momentumBuffer, bool firstStep, float learningRate, float momentum, float dampening, float weightDecay, bool nesterov)
    {
        for (int i = 0; i < parameters.Length; i++)
        {
            float g = gradients[i] + (weightDecay * parameters[i]);
            if (momentum != 0)
            {
                momentumBuffer[i] = firstStep ? g : (momentum * momentumBuffer[i]) + ((1f - dampening) * g);
                g = nesterov ? g + (momentum * momentumBuffer[i]) : momentumBuffer[i];
            }

            parameters[i] -= learningRate * g;
        }
    }
}
