using Microsoft.Extensions.AI;

namespace LiveLearning.Governance;

/// <summary>How a guard example passes.</summary>
public enum GuardCheck
{
    /// <summary>Greedy decoding after the prompt produces the expected text (compared with white space trimmed at both ends).</summary>
    ExactAnswer,

    /// <summary>The expected text's mean log-probability per token after the prompt is at least <see cref="GuardExample.MinMeanLogProbability"/>.</summary>
    LogLikelihoodFloor,
}

/// <summary>An example the owner says must keep passing, whatever the model learns.</summary>
public sealed record GuardExample
{
    /// <summary>A name for reports and the ledger (default: the prompt, shortened).</summary>
    public string? Name { get; init; }

    /// <summary>A plain-text prompt (or use <see cref="Messages"/>).</summary>
    public string? Prompt { get; init; }

    /// <summary>A conversation, answered with the model's chat template (instead of <see cref="Prompt"/>).</summary>
    public IReadOnlyList<ChatMessage>? Messages { get; init; }

    /// <summary>The expected answer.</summary>
    public required string Expected { get; init; }

    /// <summary>How it passes. Default <see cref="GuardCheck.ExactAnswer"/>.</summary>
    public GuardCheck Check { get; init; } = GuardCheck.ExactAnswer;

    /// <summary>The floor of <see cref="GuardCheck.LogLikelihoodFloor"/>, a mean log-probability per token (≤ 0).</summary>
    public double? MinMeanLogProbability { get; init; }

    /// <summary>The scope it guards, or null for every scope.</summary>
    public string? Scope { get; init; }

    internal string DisplayName => Name ?? Shorten(Prompt ?? Messages?.LastOrDefault()?.Text ?? Expected);

    private static string Shorten(string text) => text.Length <= 40 ? text : text[..37] + "...";
}

/// <summary>Held-out text the base model already handles: its perplexity must not grow beyond the tolerance.</summary>
/// <param name="Text">The text (scored after <paramref name="Prompt"/>, or from its second token when there is none).</param>
/// <param name="Prompt">Optional context before the text (not scored).</param>
/// <param name="Scope">The scope it probes, or null for every scope.</param>
public sealed record ProbeText(string Text, string? Prompt = null, string? Scope = null);

/// <summary>Settings of <see cref="RegressionEvaluator"/>.</summary>
public sealed record RegressionEvaluatorOptions
{
    /// <summary>The guard set.</summary>
    public IReadOnlyList<GuardExample> Guards { get; init; } = [];

    /// <summary>The probe set.</summary>
    public IReadOnlyList<ProbeText> Probes { get; init; } = [];

    /// <summary>
    /// Guard accuracy (a share, 0–1) a candidate may lose against the current version before it is refused. Default 0:
    /// a guard that passes now must keep passing (one newly failing guard is offset only by another newly passing).
    /// </summary>
    public double GuardTolerance { get; init; }

    /// <summary>
    /// Relative growth of the probe set's perplexity over the base model's (no adapters) a candidate may have. Against
    /// the base, not the current version, so small regressions cannot compound. Default 0.05 (5 %).
    /// </summary>
    public double PerplexityTolerance { get; init; } = 0.05;

    /// <summary>Most tokens generated for an exact answer beyond the expected answer's own. Default 4.</summary>
    public int ExtraAnswerTokens { get; init; } = 4;

    /// <summary>Throws when a setting or an example is invalid, naming it.</summary>
    /// <exception cref="ArgumentException">What is wrong.</exception>
    public void Validate()
    {
        if (!(GuardTolerance is >= 0 and <= 1))
        {
            throw new ArgumentException($"GuardTolerance must be in [0, 1]; it is {GuardTolerance}.");
        }

        if (!(PerplexityTolerance >= 0 && double.IsFinite(PerplexityTolerance)))
        {
            throw new ArgumentException($"PerplexityTolerance must be finite and ≥ 0; it is {PerplexityTolerance}.");
        }

        ArgumentOutOfRangeException.ThrowIfNegative(ExtraAnswerTokens);
        for (int i = 0; i < Guards.Count; i++)
        {
            GuardExample g = Guards[i];
            if ((g.Prompt is null) == (g.Messages is null))
            {
                throw new ArgumentException($"Guard {i} ('{g.DisplayName}') needs a Prompt or Messages (one of them).");
            }

            if (g.Check == GuardCheck.LogLikelihoodFloor && g.MinMeanLogProbability is not (<= 0 and > double.NegativeInfinity))
            {
                throw new ArgumentException($"Guard {i} ('{g.DisplayName}') checks a log-likelihood floor and needs MinMeanLogProbability ≤ 0.");
            }
        }

        for (int i = 0; i < Probes.Count; i++)
        {
            if (string.IsNullOrEmpty(Probes[i].Text))
            {
                throw new ArgumentException($"Probe {i} has no text.");
            }
        }
    }
}
