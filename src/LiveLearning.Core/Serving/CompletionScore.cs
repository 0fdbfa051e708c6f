namespace LiveLearning;

/// <summary>Log-likelihood of a completion given a prompt.</summary>
/// <param name="LogLikelihood">Sum of the completion tokens' log-probabilities (natural log).</param>
/// <param name="TokenLogProbabilities">Log-probability of each completion token.</param>
public sealed record CompletionScore(double LogLikelihood, float[] TokenLogProbabilities)
{
    /// <summary>Number of completion tokens scored.</summary>
    public int TokenCount => TokenLogProbabilities.Length;

    /// <summary>Mean log-probability per completion token (0 for an empty completion).</summary>
    public double MeanLogProbability => TokenLogProbabilities.Length == 0 ? 0 : LogLikelihood / TokenLogProbabilities.Length;
}
