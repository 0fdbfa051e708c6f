using LiveLearning.Models;
using LiveLearning.Tokenization;
using LiveLearning.World;

namespace LiveLearning.BaseModel;

/// <summary>Exact-match question answering: greedy decoding up to the end of the line, compared with the expected value.</summary>
public static class Quiz
{
    public static async Task<double> ExactMatchAsync(LlamaModel model, IReadOnlyList<QuestionItem> questions, TextWriter? show = null, CancellationToken cancellationToken = default)
    {
        Tokenizer tokenizer = model.Tokenizer ?? throw new InvalidOperationException("The model has no tokenizer.");
        int newline = tokenizer.Encode("\n", addSpecialTokens: false).Single();
        var options = new GenerationOptions { MaxTokens = 12, Temperature = 0, StopTokenIds = [newline, .. model.StopTokenIds] };
        int right = 0;
        foreach (QuestionItem q in questions)
        {
            var ids = new List<int>();
            await foreach (int id in model.GenerateTokensAsync(tokenizer.Encode(q.Prompt), options, cancellationToken: cancellationToken))
            {
                ids.Add(id);
            }

            string answer = tokenizer.Decode(ids, skipSpecialTokens: true).TrimEnd();
            right += answer == q.Answer ? 1 : 0;
            show?.WriteLine($"{q.Prompt.Replace("\n", " ", StringComparison.Ordinal)} -> '{answer}' (expected '{q.Answer}')");
        }

        return questions.Count == 0 ? 0 : 100.0 * right / questions.Count;
    }
}
