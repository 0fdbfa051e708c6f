namespace LiveLearning.Models;

/// <summary>
/// One trainable tensor of a model under full-parameter training: its Hugging Face name, its shape, its float32 values
/// (which the model reads directly: writing them changes the model) and, beside them, its gradient.
/// </summary>
public sealed class ModelTensor
{
    internal ModelTensor(string name, int[] shape, float[] values)
    {
        Name = name;
        Shape = shape;
        ValueArray = values;
        GradientArray = new float[values.Length];
    }

    /// <summary>The tensor's name in the checkpoint, e.g. <c>model.layers.0.self_attn.q_proj.weight</c>.</summary>
    public string Name { get; }

    /// <summary>The shape: <c>[rows, cols]</c> for matrices, <c>[length]</c> for norms and biases.</summary>
    public IReadOnlyList<int> Shape { get; }

    /// <summary>Row-major float32 values. The model computes with these very values, so a change is seen by the next pass.</summary>
    public Memory<float> Values => ValueArray;

    /// <summary>The gradient of the last <see cref="FullParameterTrainer.ComputeGradients(IReadOnlyList{TrainingSequence}, SequenceObjective?)"/>, same layout as <see cref="Values"/>.</summary>
    public Memory<float> Gradient => GradientArray;

    /// <summary>Whether this is a matrix (weight decay applies to matrices, not to norms or biases).</summary>
    public bool IsMatrix => Shape.Count == 2;

    internal float[] ValueArray { get; }

    internal float[] GradientArray { get; }
}
