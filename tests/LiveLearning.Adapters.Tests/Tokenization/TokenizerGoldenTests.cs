using LiveLearning.Tokenization;
using NUnit.Framework;

namespace LiveLearning.Tests.Tokenization;

/// <summary>
/// Every fixture recipe (GPT-2, SmolLM2, Qwen2, Llama-3, Llama-2 legacy, TinyLlama/Metaspace, unk without byte
/// fallback) against ids, tokens, normalizer output, pre-tokens and decodes recorded from Hugging Face tokenizers.
/// </summary>
[TestFixture]
public sealed class TokenizerGoldenTests
{
    private static IEnumerable<string> Names => Fixtures.TokenizerNames;

    [TestCaseSource(nameof(Names))]
    public void Encodewithspecialtokensmatcheshuggingfaceids(string name)
    {
        var tokenizer = Fixtures.Load(name);
        using (Assert.EnterMultipleScope())
        {
            foreach (var c in Fixtures.ExpectedFor(name).Cases)
            {
                Assert.That(tokenizer.Encode(c.Text), Is.EqualTo(c.Ids), $"text {c}");
            }
        }
    }

    [TestCaseSource(nameof(Names))]
    public void Encodewithoutspecialtokensmatcheshuggingfaceids(string name)
    {
        var tokenizer = Fixtures.Load(name);
        using (Assert.EnterMultipleScope())
        {
            foreach (var c in Fixtures.ExpectedFor(name).Cases)
            {
                Assert.That(tokenizer.Encode(c.Text, addSpecialTokens: false), Is.EqualTo(c.IdsWithoutSpecialTokens), $"text {c}");
            }
        }
    }

    [TestCaseSource(nameof(Names))]
    public void IdToTokenandTokenToIdmatchhuggingfacetokens(string name)
    {
        var tokenizer = Fixtures.Load(name);
        using (Assert.EnterMultipleScope())
        {
            foreach (var c in Fixtures.ExpectedFor(name).Cases)
            {
                // Hugging Face reports an lstrip/rstrip added token with the whitespace it absorbed.
                string[] tokens = c.Tokens.Select(t => tokenizer.TokenToId(t.Trim()) is int id && tokenizer.IdToToken(id) == t.Trim() && tokenizer.TokenToId(t) is null ? t.Trim() : t).ToArray();
                Assert.That(c.Ids.Select(tokenizer.IdToToken), Is.EqualTo(tokens), $"text {c}");
                Assert.That(tokens.Select(t => tokenizer.TokenToId(t)), Is.EqualTo(c.Ids.Select(i => (int?)i)), $"text {c}");
            }
        }
    }

    [TestCaseSource(nameof(Names))]
    public void Normalizerandpretokenizermatchhuggingface(string name)
    {
        var tokenizer = Fixtures.Load(name);
        using (Assert.EnterMultipleScope())
        {
            foreach (var c in Fixtures.ExpectedFor(name).Cases)
            {
                Assert.That(tokenizer.Normalize(c.Text), Is.EqualTo(c.Normalized), $"normalized {c}");
                if (c.PreTokens is not null)
                {
                    Assert.That(tokenizer.PreTokenize(c.Normalized), Is.EqualTo(c.PreTokens), $"pre-tokens {c}");
                }
            }
        }
    }

    [TestCaseSource(nameof(Names))]
    public void Decodematcheshuggingfacewithandwithoutspecialtokens(string name)
    {
        var tokenizer = Fixtures.Load(name);
        var expected = Fixtures.ExpectedFor(name);
        using (Assert.EnterMultipleScope())
        {
            foreach (var c in expected.Cases)
            {
                Assert.That(tokenizer.Decode(c.Ids), Is.EqualTo(c.Decoded), $"text {c}");
                Assert.That(tokenizer.Decode(c.Ids, skipSpecialTokens: true), Is.EqualTo(c.DecodedSkipSpecial), $"text {c}");
            }
            foreach (var d in expected.DecodeCases)
            {
                Assert.That(tokenizer.Decode(d.Ids), Is.EqualTo(d.Decoded), $"ids [{string.Join(", ", d.Ids)}]");
                Assert.That(tokenizer.Decode(d.Ids, skipSpecialTokens: true), Is.EqualTo(d.DecodedSkipSpecial), $"ids [{string.Join(", ", d.Ids)}]");
            }
        }
    }

    [TestCaseSource(nameof(Names))]
    public void VocabSizematcheshuggingface(string name) =>
        Assert.That(Fixtures.Load(name).VocabSize, Is.EqualTo(Fixtures.ExpectedFor(name).VocabSize));

    [TestCaseSource(nameof(Names))]
    public void StreamdecoderpiecesconcatenatetoDecode(string name)
    {
        var tokenizer = Fixtures.Load(name);
        var expected = Fixtures.ExpectedFor(name);
        var sequences = expected.Cases.Select(c => c.Ids).Concat(expected.DecodeCases.Select(d => d.Ids));
        using (Assert.EnterMultipleScope())
        {
            foreach (int[] ids in sequences)
            {
                foreach (bool skip in new[] { false, true })
                {
                    var stream = tokenizer.CreateStreamDecoder(skip);
                    string streamed = string.Concat(ids.Select(stream.Append)) + stream.Flush();
                    Assert.That(streamed, Is.EqualTo(tokenizer.Decode(ids, skip)), $"ids [{string.Join(", ", ids)}], skip {skip}");
                }
            }
        }
    }

    private static IEnumerable<string> ByteLevelNames => Fixtures.ByteLevelNames;

    [TestCaseSource(nameof(ByteLevelNames))]
    public void BytelevelDecodeofEncodegivesbackthenormalizedtext(string name)
    {
        var tokenizer = Fixtures.Load(name);
        using (Assert.EnterMultipleScope())
        {
            foreach (var c in Fixtures.ExpectedFor(name).Cases)
            {
                var ids = tokenizer.Encode(c.Text, addSpecialTokens: false);
                Assert.That(tokenizer.Decode(ids), Is.EqualTo(c.Normalized), $"text {c}");
            }
        }
    }
}
