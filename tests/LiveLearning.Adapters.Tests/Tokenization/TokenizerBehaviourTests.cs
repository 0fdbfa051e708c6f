using System.Text;
using LiveLearning.Tokenization;
using NUnit.Framework;

namespace LiveLearning.Tests.Tokenization;

/// <summary>Properties the goldens do not pin: merge-loop correctness, long inputs, concurrency, streaming, flags.</summary>
[TestFixture]
public sealed class TokenizerBehaviourTests
{
    [TestCase("gpt2")]
    [TestCase("llama2-legacy")]
    public void Rankorderedheapmergeequalsthenaivelowestrankleftmostloop(string name)
    {
        var tokenizer = Fixtures.Load(name);
        var json = System.Text.Json.JsonDocument.Parse(Fixtures.Json(name + ".tokenizer.json"));
        var model = json.RootElement.GetProperty("model");
        var vocab = model.GetProperty("vocab").EnumerateObject().ToDictionary(p => p.Name, p => p.Value.GetInt32());
        var ranks = new Dictionary<(string, string), int>();
        int rank = 0;
        foreach (var m in model.GetProperty("merges").EnumerateArray())
        {
            string[] parts = m.GetString()!.Split(' ');
            ranks.TryAdd((parts[0], parts[1]), rank++);
        }

        // Words made of vocabulary characters, so no byte fallback / unk is involved.
        string[] alphabet = vocab.Keys.Where(k => k.Length == 1 && !char.IsSurrogate(k[0]) && k[0] != ' ' && k[0] != '<').ToArray();
        string frequent = new("theĠhello▁".Where(ch => vocab.ContainsKey(ch.ToString())).ToArray());
        var rng = new Random(42);
        int tested = 0;
        using (Assert.EnterMultipleScope())
        {
            for (int trial = 0; trial < 300; trial++)
            {
                var sb = new StringBuilder();
                int length = rng.Next(1, 40);
                for (int i = 0; i < length; i++)
                {
                    // Bias towards frequent letters so that many merges apply.
                    sb.Append(rng.Next(3) == 0 ? alphabet[rng.Next(alphabet.Length)] : frequent[rng.Next(frequent.Length)].ToString());
                }
                string word = sb.ToString();
                tested++;

                var expected = NaiveBpe(word, ranks).Select(t => vocab[t]).ToArray();
                var actual = new List<int>();
                tokenizer.EncodeWordForTests(word, actual);
                Assert.That(actual, Is.EqualTo(expected), $"word '{word}'");
            }
        }
        Assert.That(tested, Is.EqualTo(300));
    }

    /// <summary>The classic loop: merge the lowest-ranked adjacent pair (leftmost on ties) until none is left.</summary>
    private static List<string> NaiveBpe(string word, Dictionary<(string, string), int> ranks)
    {
        var symbols = word.Select(c => c.ToString()).ToList();
        while (true)
        {
            int best = -1, bestRank = int.MaxValue;
            for (int i = 0; i + 1 < symbols.Count; i++)
            {
                if (ranks.TryGetValue((symbols[i], symbols[i + 1]), out int r) && r < bestRank)
                {
                    bestRank = r;
                    best = i;
                }
            }
            if (best < 0)
            {
                return symbols;
            }

            symbols[best] += symbols[best + 1];
            symbols.RemoveAt(best + 1);
        }
    }

    [TestCase("llama2-legacy")]
    [TestCase("gpt2")]
    [TestCase("llama3")]
    public void A100kBsinglewordencodesandroundtrips(string name)
    {
        var tokenizer = Fixtures.Load(name);
        var rng = new Random(7);
        var sb = new StringBuilder(100_000);
        const string letters = "thequickbrownfoxjumpsoverlazydog";
        while (sb.Length < 100_000)
        {
            sb.Append(letters[rng.Next(letters.Length)]);
        }

        string text = sb.ToString();
        var ids = tokenizer.Encode(text, addSpecialTokens: false);
        Assert.That(tokenizer.Decode(ids), Is.EqualTo(text));
    }

    [Test]
    public void A50kBrunofonecharacterroundtrips()
    {
        var tokenizer = Fixtures.Load("llama2-legacy");
        var ids = tokenizer.Encode(new string('a', 50_000), addSpecialTokens: false);
        Assert.That(tokenizer.Decode(ids), Is.EqualTo(new string('a', 50_000)));
    }

    [Test]
    public void Concurrentencodinggivesthesameidsassequentialencoding()
    {
        var tokenizer = Tokenizer.Load(Fixtures.PathOf("qwen2.tokenizer.json")); // fresh instance: cold cache
        var texts = Fixtures.ExpectedFor("qwen2").Cases.Select(c => c.Text).ToArray();
        var expected = Fixtures.ExpectedFor("qwen2").Cases.Select(c => c.Ids).ToArray();
        var results = new int[texts.Length * 16][];
        Parallel.For(0, results.Length, i => results[i] = tokenizer.Encode(texts[i % texts.Length]).ToArray());
        using (Assert.EnterMultipleScope())
        {
            for (int i = 0; i < results.Length; i++)
            {
                Assert.That(results[i], Is.EqualTo(expected[i % texts.Length]));
            }
        }
    }

    [Test]
    public void Specialtokensintextareplaintextwhennotallowed()
    {
        var tokenizer = Fixtures.Load("qwen2");
        int imEnd = tokenizer.TokenToId("<|im_end|>")!.Value;
        var allowed = tokenizer.Encode("hi<|im_end|>there");
        var literal = tokenizer.Encode("hi<|im_end|>there", allowSpecialTokens: false);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(allowed, Does.Contain(imEnd));
            Assert.That(literal, Does.Not.Contain(imEnd));
            Assert.That(tokenizer.Decode(literal), Is.EqualTo("hi<|im_end|>there"));
            Assert.That(tokenizer.ContainsSpecialToken("x<|im_start|>"), Is.True);
            Assert.That(tokenizer.ContainsSpecialToken("x<|im_start|"), Is.False);
        }
    }

    [Test]
    public void Streamdecoderholdsamultitokenemojiuntilitslastbyte()
    {
        var tokenizer = Fixtures.Load("gpt2");
        var ids = tokenizer.Encode("a👩‍👩‍👧", addSpecialTokens: false);
        var stream = tokenizer.CreateStreamDecoder();
        var pieces = ids.Select(stream.Append).ToList();
        using (Assert.EnterMultipleScope())
        {
            Assert.That(pieces.Where(p => p.Length > 0).All(p => !p.Contains('\uFFFD', StringComparison.Ordinal)), Is.True, string.Join("|", pieces));
            Assert.That(string.Concat(pieces) + stream.Flush(), Is.EqualTo("a👩‍👩‍👧"));
            Assert.That(pieces[^1], Does.EndWith("👧"));
        }
    }

    [Test]
    public void Streamdecoderholdsbytefallbackrunsuntiltheyend()
    {
        var tokenizer = Fixtures.Load("llama2-legacy");
        var ids = tokenizer.Encode("x 🇯🇵 y", addSpecialTokens: false);
        var stream = tokenizer.CreateStreamDecoder();
        var pieces = ids.Select(stream.Append).ToList();
        using (Assert.EnterMultipleScope())
        {
            Assert.That(pieces.Any(p => p.Contains('\uFFFD', StringComparison.Ordinal)), Is.False, string.Join("|", pieces));
            Assert.That(string.Concat(pieces) + stream.Flush(), Is.EqualTo(tokenizer.Decode(ids)));
        }
    }

    [Test]
    public void Decoderejectsidsoutsidethevocabulary()
    {
        var tokenizer = Fixtures.Load("gpt2");
        using (Assert.EnterMultipleScope())
        {
            Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => tokenizer.Decode([1, tokenizer.VocabSize]))!.ParamName, Is.EqualTo("ids"));
            Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => tokenizer.Decode([-1]))!.ParamName, Is.EqualTo("ids"));
            Assert.That(Assert.Throws<ArgumentOutOfRangeException>(() => tokenizer.CreateStreamDecoder().Append(-5))!.ParamName, Is.EqualTo("id"));
            Assert.That(tokenizer.IdToToken(-1), Is.Null);
            Assert.That(tokenizer.IdToToken(int.MaxValue), Is.Null);
        }
    }

    [Test]
    public void Bosandeoscomefromthepostprocessoraddedtokensandconfig()
    {
        var llama2 = Fixtures.Load("llama2-legacy");
        var llama3 = Fixtures.Load("llama3");
        var gpt2 = Fixtures.Load("gpt2");
        var qwenWithConfig = Tokenizer.Load(Fixtures.PathOf("qwen2.tokenizer.json"), Fixtures.PathOf("chat-qwen25.tokenizer_config.json"));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(llama2.BosTokenId, Is.EqualTo(1));
            Assert.That(llama2.EosTokenId, Is.EqualTo(2));
            Assert.That(llama3.BosTokenId, Is.EqualTo(llama3.TokenToId("<|begin_of_text|>")));
            Assert.That(llama3.EosTokenId, Is.EqualTo(llama3.TokenToId("<|end_of_text|>")));
            Assert.That(gpt2.BosTokenId, Is.Null);
            Assert.That(gpt2.EosTokenId, Is.EqualTo(gpt2.TokenToId("<|endoftext|>")));
            Assert.That(qwenWithConfig.EosTokenId, Is.EqualTo(qwenWithConfig.TokenToId("<|im_end|>")));
        }
    }

    [Test]
    public void Confignaminganunknowneostokenthrowsnamingthefield()
    {
        string json = Fixtures.Json("gpt2.tokenizer.json");
        var ex = Assert.Throws<TokenizerFormatException>(() => Tokenizer.FromJson(json, "tokenizer.json", """{"eos_token": "<nope>"}""", "tokenizer_config.json"));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(ex!.Field, Is.EqualTo("eos_token"));
            Assert.That(ex.SourceName, Is.EqualTo("tokenizer_config.json"));
        }
    }
}
