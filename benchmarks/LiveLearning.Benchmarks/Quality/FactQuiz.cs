using LiveLearning.World;

namespace LiveLearning.Benchmarks.Quality;

/// <summary>Exact match through the public API: greedy completion up to the end of the line, compared with the expected value.</summary>
internal static class FactQuiz
{
    private static readonly GenerationOptions Greedy = new() { MaxTokens = 12, Temperature = 0, StopStrings = ["\n"] };

    /// <summary>Per question, whether the model's answer is exactly the expected one.</summary>
    public static async Task<bool[]> AnswersAsync(ILiveModel model, IReadOnlyList<QuestionItem> questions, string? scope = null, CancellationToken cancellationToken = default)
    {
        var right = new bool[questions.Count];
        for (int i = 0; i < questions.Count; i++)
        {
            LiveCompletion c = await model.CompleteAsync(questions[i].Prompt, Greedy, scope, cancellationToken);
            right[i] = c.Text.TrimEnd('\n', ' ') == questions[i].Answer;
            if (!right[i] && Environment.GetEnvironmentVariable("LIVELEARNING_QUALITY_SHOW") == "1")
            {
                Console.WriteLine($"    wrong: {questions[i].Prompt.Replace("\n", " ", StringComparison.Ordinal)} -> '{c.Text}' (expected '{questions[i].Answer}')");
            }
        }

        return right;
    }

    /// <summary>Exact-match percentage.</summary>
    public static async Task<double> PercentAsync(ILiveModel model, IReadOnlyList<QuestionItem> questions, string? scope = null, CancellationToken cancellationToken = default) =>
        Percent(await AnswersAsync(model, questions, scope, cancellationToken));

    public static double Percent(bool[] right) => right.Length == 0 ? 0 : 100.0 * right.Count(r => r) / right.Length;

    /// <summary>Mean per-token perplexity of texts (each scored as a completion of its first word).</summary>
    public static async Task<double> PerplexityAsync(ILiveModel model, IReadOnlyList<string> texts, string? scope = null, CancellationToken cancellationToken = default)
    {
        double logLikelihood = 0;
        long tokens = 0;
        foreach (string text in texts)
        {
            int split = text.IndexOf(' ', StringComparison.Ordinal);
            LiveScore s = await model.ScoreAsync(text[..split], text[split..], scope, cancellationToken);
            logLikelihood += s.Score.LogLikelihood;
            tokens += s.Score.TokenCount;
        }

        return Math.Exp(-logLikelihood / Math.Max(1, tokens));
    }
}
