using System.Text.Json.Nodes;
using LiveLearning.Tokenization;
using NUnit.Framework;

namespace LiveLearning.Tests.Tokenization;

/// <summary>
/// Randomly corrupted tokenizer.json files either load (and then encode/decode without crashing) or fail with
/// <see cref="TokenizerFormatException"/>; never IndexOutOfRange, NullReference, KeyNotFound and the like.
/// </summary>
[TestFixture]
public sealed class TokenizerFuzzTests
{
    private static readonly string[] Texts = ["Hello world 123", " 日本語 👩‍👩‍👧\n\n", "hi<|im_end|></s><s>x", ""];

    [TestCase("qwen2", 1)]
    [TestCase("llama3", 2)]
    [TestCase("llama2-legacy", 3)]
    [TestCase("tinyllama", 4)]
    [TestCase("addedflags", 5)]
    public void Corruptedfilesfailwithtypederrorsorwork(string name, int seed)
    {
        string original = Fixtures.Json(name + ".tokenizer.json");
        var rng = new Random(seed);
        int loaded = 0, rejected = 0;
        for (int trial = 0; trial < 150; trial++)
        {
            var root = JsonNode.Parse(original)!;
            for (int m = 0, count = rng.Next(1, 4); m < count; m++)
            {
                Mutate(root, rng);
            }

            Tokenizer tokenizer;
            try
            {
                tokenizer = Tokenizer.FromJson(root.ToJsonString(), "fuzz.json");
            }
            catch (TokenizerFormatException)
            {
                rejected++;
                continue;
            }
            loaded++;
            foreach (string text in Texts)
            {
                var ids = tokenizer.Encode(text);
                Assert.That(ids.All(id => tokenizer.IdToToken(id) is not null), Is.True, $"trial {trial}: Encode produced an id without a token");
                _ = tokenizer.Decode(ids);
                var stream = tokenizer.CreateStreamDecoder(skipSpecialTokens: true);
                foreach (int id in ids)
                {
                    stream.Append(id);
                }

                stream.Flush();
            }
        }
        using (Assert.EnterMultipleScope())
        {
            Assert.That(loaded, Is.GreaterThan(0), "no corrupted file loaded: the encode/decode half is untested");
            Assert.That(rejected, Is.GreaterThan(0), "no corrupted file was rejected");
        }
        TestContext.Out.WriteLine($"{name}: {loaded} loaded, {rejected} rejected");
    }

    /// <summary>Replaces one random node (object property or array element) with a random value.</summary>
    private static void Mutate(JsonNode root, Random rng)
    {
        JsonNode node = root;
        for (int depth = 0; depth < 6; depth++)
        {
            JsonNode? child = node switch
            {
                JsonObject o when o.Count > 0 => o.ElementAt(rng.Next(o.Count)).Value,
                JsonArray a when a.Count > 0 => a[rng.Next(a.Count)],
                _ => null,
            };
            if (child is null || rng.Next(4) == 0)
            {
                break;
            }

            node = child;
        }
        JsonNode? replacement = rng.Next(9) switch
        {
            0 => JsonValue.Create(-1),
            1 => JsonValue.Create(rng.Next(0, 600)),
            2 => JsonValue.Create(int.MaxValue),
            3 => JsonValue.Create("Ġ"),
            4 => null,
            5 => new JsonArray(),
            6 => new JsonObject { ["type"] = "Sequence" },
            7 => JsonValue.Create(true),
            _ => JsonValue.Create("<0xZZ> x"),
        };
        switch (node)
        {
            case JsonObject o when o.Count > 0:
                o[o.ElementAt(rng.Next(o.Count)).Key] = replacement;
                break;
            case JsonArray a when a.Count > 0:
                a[rng.Next(a.Count)] = replacement;
                break;
        }
    }
}
