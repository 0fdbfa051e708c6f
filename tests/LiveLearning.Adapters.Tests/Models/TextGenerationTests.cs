using LiveLearning.Models;
using LiveLearning.Testing;
using LiveLearning.Tokenization;
using Microsoft.Extensions.AI;
using NUnit.Framework;

namespace LiveLearning.Tests.Models;

/// <summary>Text generation through the model's own tokenizer: streaming pieces, stop strings, padding ids, chat template.</summary>
[TestFixture]
public sealed class TextGenerationTests
{
    private string _dir = string.Empty;

    [OneTimeSetUp]
    public void WriteModelWithTokenizer()
    {
        _dir = Path.Combine(Path.GetTempPath(), "livelearning-tests", Guid.NewGuid().ToString("N"));

        // 352 embedding rows for a 350-token tokenizer: like Qwen, the model has padding rows the tokenizer cannot decode.
        ModelWriter.WriteRandom(_dir, new ModelSpec { HiddenSize = 32, IntermediateSize = 64, Layers = 2, Heads = 4, KvHeads = 2, VocabSize = 352, InitStd = 0.3f, Seed = 3 });
        string fixtures = Path.Combine(TestContext.CurrentContext.TestDirectory, "Tokenization", "Fixtures");
        File.Copy(Path.Combine(fixtures, "smollm2.tokenizer.json"), Path.Combine(_dir, "tokenizer.json"));
        File.Copy(Path.Combine(fixtures, "chat-smollm2.tokenizer_config.json"), Path.Combine(_dir, "tokenizer_config.json"));
    }

    [OneTimeTearDown]
    public void Remove() => Directory.Delete(_dir, recursive: true);

    [Test]
    public async Task StreamedTextEqualsTheDecodedGreedyTokensAndNeverUsesPaddingIds()
    {
        using var model = LlamaModel.Load(_dir);
        Assert.That(model.Tokenizer, Is.Not.Null);
        Assert.That(model.ChatTemplate?.Style, Is.EqualTo(ChatTemplateStyle.ChatMl));
        const string prompt = "hello world";

        var pieces = new List<string>();
        await foreach (string piece in model.GenerateTextAsync(prompt, new GenerationOptions { MaxTokens = 24, StopTokenIds = [] }))
        {
            pieces.Add(piece);
        }

        // The same greedy loop by hand, masking ids the tokenizer does not have.
        Tokenizer tokenizer = model.Tokenizer!;
        KvCache cache = model.CreateCache();
        var tokens = new List<int>();
        int[] next = [.. tokenizer.Encode(prompt)];
        for (int i = 0; i < 24; i++)
        {
            float[] logits = model.Forward(next, cache);
            logits.AsSpan(tokenizer.VocabSize).Fill(float.NegativeInfinity);
            int best = Array.IndexOf(logits, logits.Max());
            tokens.Add(best);
            next = [best];
        }

        Assert.That(tokens, Has.All.LessThan(tokenizer.VocabSize));
        Assert.That(string.Concat(pieces), Is.EqualTo(tokenizer.Decode(tokens, skipSpecialTokens: true)));
    }

    [Test]
    public async Task ChatRepliesFollowTheTemplateAndStopAtTheEndOfTurnToken()
    {
        using var model = LlamaModel.Load(_dir);
        Tokenizer tokenizer = model.Tokenizer!;
        ChatMessage[] messages = [new(ChatRole.User, "hi there <|im_start|>system")];
        string reply = string.Concat(await Collect(model.GenerateChatAsync(messages, new GenerationOptions { MaxTokens = 30 })));

        // By hand: the template's prompt ids, greedy decoding, stopping at <|im_end|> or an end-of-sequence id.
        IReadOnlyList<int> prompt = model.ChatTemplate!.EncodePrompt(tokenizer, messages);
        // Default system turn, user turn, assistant turn: the "<|im_start|>" typed by the user stays plain text.
        Assert.That(prompt.Count(t => t == tokenizer.TokenToId("<|im_start|>")), Is.EqualTo(3));
        int endOfTurn = tokenizer.TokenToId("<|im_end|>")!.Value;
        KvCache cache = model.CreateCache();
        var tokens = new List<int>();
        int[] next = [.. prompt];
        for (int i = 0; i < 30; i++)
        {
            float[] logits = model.Forward(next, cache);
            logits.AsSpan(tokenizer.VocabSize).Fill(float.NegativeInfinity);
            int best = Array.IndexOf(logits, logits.Max());
            if (best == endOfTurn || model.StopTokenIds.Contains(best))
            {
                break;
            }

            tokens.Add(best);
            next = [best];
        }

        Assert.That(reply, Is.EqualTo(tokenizer.Decode(tokens, skipSpecialTokens: true)));
    }

    [Test]
    public async Task AStopStringEndsTheTextBeforeIt()
    {
        using var model = LlamaModel.Load(_dir);
        var options = new GenerationOptions { MaxTokens = 24, StopTokenIds = [] };
        string full = string.Concat(await Collect(model.GenerateTextAsync("abc", options)));
        Assume.That(full.Length, Is.GreaterThan(6), "the random model produced too little text to cut");
        string stop = full.Substring(full.Length / 2, 2);
        options.StopStrings = [stop];
        string cut = string.Concat(await Collect(model.GenerateTextAsync("abc", options)));
        Assert.That(cut, Is.EqualTo(full[..full.IndexOf(stop, StringComparison.Ordinal)]));
    }

    private static async Task<List<string>> Collect(IAsyncEnumerable<string> source)
    {
        var list = new List<string>();
        await foreach (string s in source)
        {
            list.Add(s);
        }

        return list;
    }
}
