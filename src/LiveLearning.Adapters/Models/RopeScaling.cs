namespace LiveLearning.Models;

/// <summary>RoPE frequency scaling variants the runtime implements (Hugging Face <c>rope_type</c> names).</summary>
public enum RopeScalingType
{
    /// <summary><c>linear</c>: every inverse frequency divided by the factor.</summary>
    Linear,

    /// <summary><c>dynamic</c>: NTK-aware base rescaling once the sequence exceeds <c>max_position_embeddings</c>.</summary>
    Dynamic,

    /// <summary><c>llama3</c>: wavelength-dependent smooth scaling (Llama 3.1 / 3.2).</summary>
    Llama3,
}

/// <summary>The <c>rope_scaling</c> (or <c>rope_parameters</c>) settings of a config, validated.</summary>
public sealed class RopeScaling
{
    /// <summary>Creates a scaling description.</summary>
    /// <param name="type">The variant.</param>
    /// <param name="factor">Scaling factor (positive, finite).</param>
    /// <param name="lowFreqFactor"><c>low_freq_factor</c> (llama3 only, else 0).</param>
    /// <param name="highFreqFactor"><c>high_freq_factor</c> (llama3 only, else 0).</param>
    /// <param name="originalMaxPositionEmbeddings"><c>original_max_position_embeddings</c> (llama3 only, else 0).</param>
    public RopeScaling(RopeScalingType type, double factor, double lowFreqFactor = 0, double highFreqFactor = 0, int originalMaxPositionEmbeddings = 0)
    {
        Type = type;
        Factor = factor;
        LowFreqFactor = lowFreqFactor;
        HighFreqFactor = highFreqFactor;
        OriginalMaxPositionEmbeddings = originalMaxPositionEmbeddings;
    }

    /// <summary>The variant.</summary>
    public RopeScalingType Type { get; }

    /// <summary>Scaling factor.</summary>
    public double Factor { get; }

    /// <summary><c>low_freq_factor</c> (llama3).</summary>
    public double LowFreqFactor { get; }

    /// <summary><c>high_freq_factor</c> (llama3).</summary>
    public double HighFreqFactor { get; }

    /// <summary><c>original_max_position_embeddings</c> (llama3).</summary>
    public int OriginalMaxPositionEmbeddings { get; }
}
