namespace LiveLearning;

/// <summary>How the next token is chosen during generation.</summary>
public sealed class GenerationOptions
{
    /// <summary>Maximum number of new tokens. Default 128.</summary>
    public int MaxTokens { get; set; } = 128;

    /// <summary>Softmax temperature; 0 (the default) means greedy decoding.</summary>
    public float Temperature { get; set; }

    /// <summary>Keep only the <c>TopK</c> most likely tokens before sampling; 0 disables.</summary>
    public int TopK { get; set; }

    /// <summary>Keep the smallest set of tokens whose probability reaches <c>TopP</c>; 1 disables.</summary>
    public float TopP { get; set; } = 1f;

    /// <summary>
    /// Penalty for tokens already in the prompt or output (Hugging Face semantics: positive logits are divided by it,
    /// negative ones multiplied); 1 disables.
    /// </summary>
    public float RepetitionPenalty { get; set; } = 1f;

    /// <summary>Seed for sampling; the same seed, prompt and model give the same tokens. <see langword="null"/> picks one.</summary>
    public int? Seed { get; set; }

    /// <summary>Token ids that end generation (not emitted). <see langword="null"/> uses the model's end-of-sequence ids.</summary>
    public IReadOnlyCollection<int>? StopTokenIds { get; set; }

    /// <summary>Strings that end text generation; the text up to (not including) the first match is returned.</summary>
    public IReadOnlyList<string> StopStrings { get; set; } = [];

    /// <summary>A copy of these options (the collections are shared: they are read, never written).</summary>
    /// <returns>The copy.</returns>
    public GenerationOptions Clone() => (GenerationOptions)MemberwiseClone();

    /// <summary>Checks every option; called by every generation entry point before any work.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A numeric option is out of range (the option is named).</exception>
    /// <exception cref="ArgumentException"><see cref="StopStrings"/> is null or holds an empty string.</exception>
    public void Validate()
    {
        if (MaxTokens < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxTokens), MaxTokens, "MaxTokens must be non-negative.");
        }

        if (!(Temperature >= 0) || float.IsInfinity(Temperature))
        {
            throw new ArgumentOutOfRangeException(nameof(Temperature), Temperature, "Temperature must be a finite number >= 0.");
        }

        if (TopK < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(TopK), TopK, "TopK must be >= 0 (0 disables it).");
        }

        if (!(TopP > 0 && TopP <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(TopP), TopP, "TopP must be in (0, 1].");
        }

        if (!(RepetitionPenalty > 0) || float.IsInfinity(RepetitionPenalty))
        {
            throw new ArgumentOutOfRangeException(nameof(RepetitionPenalty), RepetitionPenalty, "RepetitionPenalty must be a finite number > 0.");
        }

        if (StopStrings is null || StopStrings.Any(string.IsNullOrEmpty))
        {
            throw new ArgumentException("StopStrings must not be null or contain empty strings.", nameof(StopStrings));
        }
    }
}
