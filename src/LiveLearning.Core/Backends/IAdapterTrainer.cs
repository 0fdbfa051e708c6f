namespace LiveLearning.Backends;

/// <summary>
/// The mutable training state of one adapter scope: parameters, gradients, optimizer state. Single writer: one learner
/// uses it at a time, and readers only ever see what <see cref="Publish"/> returns.
/// </summary>
public interface IAdapterTrainer
{
    /// <summary>Trainable parameters.</summary>
    long ParameterCount { get; }

    /// <summary>Bytes this trainer holds at rest (optimizer state and any buffers it keeps between steps).</summary>
    long StateBytes { get; }

    /// <summary>Optimizer steps taken.</summary>
    long Step { get; }

    /// <summary>
    /// Forward and backward pass over <paramref name="batch"/> under the objectives of its examples; overwrites the
    /// gradients. Returns the objective's value and each example's log-likelihoods under the parameters before the
    /// update (what progressive validation reports).
    /// </summary>
    /// <param name="batch">The examples (at least one).</param>
    /// <param name="objectives">DPO and KTO settings, and the KTO reference point of this step.</param>
    /// <param name="frozenBelow">Adapters applied under this one without training (a parent scope's), bottom-up; empty for none.</param>
    /// <returns>The step's loss and scores.</returns>
    TrainingStepResult ComputeGradients(IReadOnlyList<TrainingExample> batch, ObjectiveOptions objectives, IReadOnlyList<IAdapterWeights> frozenBelow);

    /// <summary>Scales the gradients so their global L2 norm is at most <paramref name="maxNorm"/> (+∞: no clipping).</summary>
    /// <param name="maxNorm">Largest norm (&gt; 0).</param>
    /// <returns>The norm before clipping (NaN or ∞ when a gradient is not finite; nothing is changed then).</returns>
    double ClipGradients(double maxNorm);

    /// <summary>One optimizer step with the current gradients.</summary>
    /// <param name="options">The optimizer settings.</param>
    /// <exception cref="InvalidOperationException">A gradient is not finite (nothing is changed).</exception>
    void ApplyOptimizer(OptimizerOptions options);

    /// <summary>A new immutable version holding a copy of the current parameters.</summary>
    /// <returns>The weights.</returns>
    IAdapterWeights Publish();

    /// <summary>Releases what is only needed during steps (gradients; parameters equal to the last published version),
    /// so an idle scope costs little more than its optimizer state. The next step restores them.</summary>
    /// <param name="published">The version last published from this trainer (its parameters are the trainer's).</param>
    void Trim(IAdapterWeights published);

    /// <summary>Everything needed to continue exactly: parameters, optimizer moments, step count.</summary>
    /// <returns>A copy of the state.</returns>
    TrainerState Capture();

    /// <summary>Continues from a captured state: the steps that follow equal those that followed the capture.</summary>
    /// <param name="state">A state from <see cref="Capture"/> of a trainer of the same backend and shape.</param>
    /// <exception cref="FormatException">The state does not fit this trainer (the message names the tensor).</exception>
    void Restore(TrainerState state);

    /// <summary>Sets the parameters to <paramref name="weights"/> and clears the optimizer moments (a rollback); the step count is kept.</summary>
    /// <param name="weights">Weights of this scope's shape.</param>
    void Reset(IAdapterWeights weights);
}

/// <summary>An immutable published adapter version's weights, as the backend serves them.</summary>
public interface IAdapterWeights
{
    /// <summary>Number of parameters.</summary>
    long ParameterCount { get; }

    /// <summary>The weights as named tensors in the backend's interchange format (PEFT names for LoRA) plus metadata
    /// (e.g. <c>adapter_config.json</c>); the buffers are read-only views, not copies.</summary>
    /// <returns>The data.</returns>
    AdapterWeightsData Export();
}

/// <summary>One named float tensor.</summary>
/// <param name="Name">The name (e.g. <c>base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight</c>).</param>
/// <param name="Shape">Dimensions.</param>
/// <param name="Values">Row-major values (the product of <paramref name="Shape"/>).</param>
public sealed record NamedTensor(string Name, IReadOnlyList<int> Shape, ReadOnlyMemory<float> Values);

/// <summary>Adapter weights as tensors and metadata: what a snapshot stores and an import reads.</summary>
/// <param name="Tensors">The tensors, in a stable order.</param>
/// <param name="Metadata">Named texts (e.g. <c>adapter_config.json</c>).</param>
public sealed record AdapterWeightsData(IReadOnlyList<NamedTensor> Tensors, IReadOnlyDictionary<string, string> Metadata);

/// <summary>A trainer's full state: tensors (parameters and optimizer moments) and the step count.</summary>
/// <param name="Step">Optimizer steps taken.</param>
/// <param name="Tensors">The tensors.</param>
/// <param name="Metadata">Named texts the backend needs to restore (e.g. the adapter config).</param>
public sealed record TrainerState(long Step, IReadOnlyList<NamedTensor> Tensors, IReadOnlyDictionary<string, string> Metadata);
