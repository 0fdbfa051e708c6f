using System.Text.Json;
using LiveLearning.Tokenization;
using NUnit.Framework;

namespace LiveLearning.Tests.Tokenization;

/// <summary>Loads the committed tokenizer fixtures and the goldens the oracle scripts produced.</summary>
internal static class Fixtures
{
    public static readonly string[] TokenizerNames =
        ["gpt2", "gpt2-prefix", "smollm2", "qwen2", "llama3", "llama2-legacy", "tinyllama", "llama2-unk", "addedflags",
         "split-removed", "split-merged-previous", "split-merged-next", "split-contiguous", "split-invert", "digits-runs", "metaspace-split"];

    /// <summary>Byte-level fixtures: Decode(Encode(x)) must give back x (after the normalizer).</summary>
    public static readonly string[] ByteLevelNames = ["gpt2", "smollm2", "qwen2", "llama3"];

    public static string PathOf(string fileName) =>
        Path.Combine(TestContext.CurrentContext.TestDirectory, "Tokenization", "Fixtures", fileName);

    private static readonly Dictionary<string, Tokenizer> Cache = [];

    public static Tokenizer Load(string name)
    {
        lock (Cache)
        {
            if (!Cache.TryGetValue(name, out var t))
            {
                t = Tokenizer.Load(PathOf(name + ".tokenizer.json"));
                Cache[name] = t;
            }
            return t;
        }
    }

    public static string Json(string fileName) => File.ReadAllText(PathOf(fileName));

    public sealed record EncodeCase(string Text, string Normalized, string[]? PreTokens, int[] Ids, string[] Tokens, int[] IdsWithoutSpecialTokens, string Decoded, string DecodedSkipSpecial)
    {
        public override string ToString() => JsonSerializer.Serialize(Text);
    }

    public sealed record DecodeCase(int[] Ids, string Decoded, string DecodedSkipSpecial);

    public sealed record Expected(int VocabSize, EncodeCase[] Cases, DecodeCase[] DecodeCases);

    public static Expected ExpectedFor(string name)
    {
        using var doc = JsonDocument.Parse(Json(name + ".expected.json"));
        var root = doc.RootElement;
        var cases = root.GetProperty("cases").EnumerateArray().Select(c => new EncodeCase(
            c.GetProperty("text").GetString()!,
            c.GetProperty("normalized").GetString()!,
            c.GetProperty("preTokens").ValueKind == JsonValueKind.Null ? null : c.GetProperty("preTokens").EnumerateArray().Select(x => x.GetString()!).ToArray(),
            Ints(c.GetProperty("ids")),
            c.GetProperty("tokens").EnumerateArray().Select(x => x.GetString()!).ToArray(),
            Ints(c.GetProperty("idsWithoutSpecialTokens")),
            c.GetProperty("decoded").GetString()!,
            c.GetProperty("decodedSkipSpecial").GetString()!)).ToArray();
        var decodeCases = root.GetProperty("decodeCases").EnumerateArray().Select(c => new DecodeCase(
            Ints(c.GetProperty("ids")), c.GetProperty("decoded").GetString()!, c.GetProperty("decodedSkipSpecial").GetString()!)).ToArray();
        return new Expected(root.GetProperty("vocabSize").GetInt32(), cases, decodeCases);
    }

    private static int[] Ints(JsonElement array) => array.EnumerateArray().Select(x => x.GetInt32()).ToArray();
}
