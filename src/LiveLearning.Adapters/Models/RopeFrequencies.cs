namespace LiveLearning.Models;

/// <summary>The RoPE frequency math of the configurations the runtime supports (default, linear, dynamic, llama3).</summary>
public static class RopeFrequencies
{
    /// <summary>Scale applied to cos/sin by the RoPE variant: 1 for default, linear, dynamic and llama3 (yarn and
    /// longrope, which scale attention, are refused by the config parser).</summary>
    /// <param name="config">The model configuration.</param>
    /// <returns>The scale.</returns>
    public static float AttentionScaling(ModelConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        return 1f;
    }

    /// <summary>
    /// The RoPE inverse frequencies (length <c>HeadDim / 2</c>) for a sequence of <paramref name="sequenceLength"/>
    /// tokens, as Hugging Face computes them: default <c>1 / theta^(2i/d)</c>; <c>linear</c> divides by the factor;
    /// <c>dynamic</c> rescales the base to <c>theta·((factor·L/Lmax) − (factor−1))^(d/(d−2))</c> once L exceeds
    /// <c>max_position_embeddings</c> (and is the default below it); <c>llama3</c> keeps high frequencies, divides low
    /// frequencies by the factor and blends in between. Computed in double and rounded once (HF computes in float32,
    /// so results agree to about one float32 ulp).
    /// </summary>
    /// <param name="config">The model configuration (head dimension, <c>rope_theta</c>, scaling, <c>max_position_embeddings</c>).</param>
    /// <param name="sequenceLength">Current sequence length (only <c>dynamic</c> depends on it).</param>
    /// <returns>The inverse frequencies.</returns>
    public static float[] InverseFrequencies(ModelConfig config, int sequenceLength)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentOutOfRangeException.ThrowIfNegative(sequenceLength);
        int half = config.HeadDim / 2;
        double dim = config.HeadDim;
        double theta = config.RopeTheta;
        RopeScaling? scaling = config.RopeScaling;
        if (scaling is { Type: RopeScalingType.Dynamic })
        {
            double length = Math.Max(sequenceLength, config.MaxPositionEmbeddings);
            theta *= Math.Pow((scaling.Factor * length / config.MaxPositionEmbeddings) - (scaling.Factor - 1), dim / (dim - 2));
        }

        var result = new float[half];
        for (int i = 0; i < half; i++)
        {
            double f = 1.0 / Math.Pow(theta, 2.0 * i / dim);
            if (scaling is { Type: RopeScalingType.Linear })
            {
                f /= scaling.Factor;
            }
            else if (scaling is { Type: RopeScalingType.Llama3 })
            {
                f = Llama3Frequency(f, scaling);
            }

            result[i] = (float)f;
        }

        return result;
    }

    private static double Llama3Frequency(double f, RopeScaling s)
    {
        double originalLength = s.OriginalMaxPositionEmbeddings;
        double lowFreqWavelength = originalLength / s.LowFreqFactor;
        double highFreqWavelength = originalLength / s.HighFreqFactor;
        double wavelength = 2 * Math.PI / f;
        if (wavelength < highFreqWavelength)
        {
            return f;
        }

        if (wavelength > lowFreqWavelength)
        {
            return f / s.Factor;
        }

        double smooth = ((originalLength / wavelength) - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor);
        return ((1 - smooth) * f / s.Factor) + (smooth * f);
    }
}
