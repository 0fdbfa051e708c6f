using System.Text.Json.Nodes;
using LiveLearning.Tokenization;
using NUnit.Framework;

namespace LiveLearning.Tests.Tokenization;

/// <summary>Malformed, inconsistent or unsupported tokenizer.json files give typed errors naming the field.</summary>
[TestFixture]
public sealed class TokenizerFormatTests
{
    private static JsonObject Gpt2() => JsonNode.Parse(Fixtures.Json("gpt2.tokenizer.json"))!.AsObject();

    private static TokenizerFormatException Fails(JsonNode json) =>
        Assert.Throws<TokenizerFormatException>(() => Tokenizer.FromJson(json.ToJsonString(), "bad.json"))!;

    [Test]
    public void Truncatedjsonthrowsaformaterrornamingthefile()
    {
        string text = Fixtures.Json("gpt2.tokenizer.json");
        var ex = Assert.Throws<TokenizerFormatException>(() => Tokenizer.FromJson(text[..(text.Length / 2)], "half.json"))!;
        using (Assert.EnterMultipleScope())
        {
            Assert.That(ex.SourceName, Is.EqualTo("half.json"));
            Assert.That(ex.Field, Is.EqualTo("(json)"));
            Assert.That(ex.InnerException, Is.Not.Null);
        }
    }

    [Test]
    public void Nonobjectrootandmissingmodelarerejected()
    {
        using (Assert.EnterMultipleScope())
        {
            Assert.That(Assert.Throws<TokenizerFormatException>(() => Tokenizer.FromJson("[1, 2]", "x.json"))!.Field, Is.EqualTo("(root)"));
            Assert.That(Assert.Throws<TokenizerFormatException>(() => Tokenizer.FromJson("{}", "x.json"))!.Field, Is.EqualTo("model"));
        }
    }

    [TestCase("model", "WordPiece", "model.type")]
    [TestCase("model", "Unigram", "model.type")]
    [TestCase("normalizer", "Precompiled", "normalizer.type")]
    [TestCase("pre_tokenizer", "BertPreTokenizer", "pre_tokenizer.type")]
    [TestCase("post_processor", "Frobnicate", "post_processor.type")]
    [TestCase("decoder", "WordPiece", "decoder.type")]
    public void Unknowncomponenttypeisrefusednamingthetype(string component, string type, string field)
    {
        var json = Gpt2();
        if (json[component] is JsonObject obj)
        {
            obj["type"] = type;
        }
        else
        {
            json[component] = new JsonObject { ["type"] = type };
        }

        var ex = Fails(json);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(ex.Field, Is.EqualTo(field));
            Assert.That(ex.Message, Does.Contain(type));
        }
    }

    [Test]
    public void Unknowncomponentinsideasequencenamesitsposition()
    {
        var json = JsonNode.Parse(Fixtures.Json("smollm2.tokenizer.json"))!;
        json["pre_tokenizer"]!["pretokenizers"]![1]!["type"] = "Whitespace";
        Assert.That(Fails(json).Field, Is.EqualTo("pre_tokenizer.pretokenizers[1].type"));
    }

    [Test]
    public void Mergewithunknowntokenisrejected()
    {
        var json = Gpt2();
        json["model"]!["merges"]!.AsArray().Add("Ġzzqq Ġxxyy");
        var ex = Fails(json);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(ex.Field, Does.StartWith("model.merges["));
            Assert.That(ex.Message, Does.Contain("Ġzzqq"));
        }
    }

    [Test]
    public void Mergewhoseresultisnotinthevocabularyisrejected()
    {
        var json = Gpt2();
        json["model"]!["merges"]!.AsArray().Add("q z");
        Assert.That(Fails(json).Message, Does.Contain("'qz'"));
    }

    [TestCase("\"a\"")]
    [TestCase("\"a b c\"")]
    [TestCase("[\"a\"]")]
    [TestCase("[\"a\", 1]")]
    [TestCase("42")]
    public void Malformedmergeentriesarerejected(string entry)
    {
        var json = Gpt2();
        json["model"]!["merges"]!.AsArray().Insert(0, JsonNode.Parse(entry));
        Assert.That(Fails(json).Field, Is.EqualTo("model.merges[0]"));
    }

    [TestCase(-1)]
    [TestCase(1L << 40)]
    [TestCase(Tokenizer.MaxVocabularySize)]
    public void Vocabularyidsoutofrangearerejected(long id)
    {
        var json = Gpt2();
        json["model"]!["vocab"]!["zz-new"] = id;
        Assert.That(Fails(json).Field, Is.EqualTo("model.vocab.zz-new"));
    }

    [Test]
    public void Duplicatevocabularyidsarerejected()
    {
        var json = Gpt2();
        json["model"]!["vocab"]!["zz-new"] = 5;
        Assert.That(Fails(json).Message, Does.Contain("id 5"));
    }

    [Test]
    public void Addedtokenwithbadidoremptycontentisrejected()
    {
        var json = Gpt2();
        json["added_tokens"]![0]!["id"] = -3;
        var json2 = Gpt2();
        json2["added_tokens"]![0]!["content"] = "";
        using (Assert.EnterMultipleScope())
        {
            Assert.That(Fails(json).Field, Is.EqualTo("added_tokens[0].id"));
            Assert.That(Fails(json2).Field, Is.EqualTo("added_tokens[0].content"));
        }
    }

    [Test]
    public void Unknownunktokenisrejected()
    {
        var json = JsonNode.Parse(Fixtures.Json("llama2-legacy.tokenizer.json"))!;
        json["model"]!["unk_token"] = "<nope>";
        Assert.That(Fails(json).Field, Is.EqualTo("model.unk_token"));
    }

    [Test]
    public void Templatewithunknownspecialtokenoroutofrangeidisrejected()
    {
        var json = JsonNode.Parse(Fixtures.Json("llama2-legacy.tokenizer.json"))!;
        json["post_processor"]!["single"]![0]!["SpecialToken"]!["id"] = "<bos>";
        var json2 = JsonNode.Parse(Fixtures.Json("llama2-legacy.tokenizer.json"))!;
        json2["post_processor"]!["special_tokens"]!["<s>"]!["ids"]![0] = 1_000_000;
        using (Assert.EnterMultipleScope())
        {
            Assert.That(Fails(json).Field, Is.EqualTo("post_processor.single[0]"));
            Assert.That(Fails(json2).Field, Is.EqualTo("post_processor.special_tokens.<s>.ids[0]"));
        }
    }

    [Test]
    public void Invalidsplitregexandbehaviourarerejected()
    {
        var json = JsonNode.Parse(Fixtures.Json("qwen2.tokenizer.json"))!;
        json["pre_tokenizer"]!["pretokenizers"]![0]!["pattern"]!["Regex"] = "(unclosed";
        var json2 = JsonNode.Parse(Fixtures.Json("qwen2.tokenizer.json"))!;
        json2["pre_tokenizer"]!["pretokenizers"]![0]!["behavior"] = "Sideways";
        using (Assert.EnterMultipleScope())
        {
            Assert.That(Fails(json).Field, Is.EqualTo("pre_tokenizer.pretokenizers[0].pattern.Regex"));
            Assert.That(Fails(json2).Field, Is.EqualTo("pre_tokenizer.pretokenizers[0].behavior"));
        }
    }

    [Test]
    public void Wrongvaluekindsarerejectedwiththefield()
    {
        var json = Gpt2();
        json["pre_tokenizer"]!["add_prefix_space"] = "yes";
        var json2 = Gpt2();
        json2["model"]!["vocab"] = new JsonArray();
        using (Assert.EnterMultipleScope())
        {
            Assert.That(Fails(json).Field, Is.EqualTo("pre_tokenizer.add_prefix_space"));
            Assert.That(Fails(json2).Field, Is.EqualTo("model.vocab"));
        }
    }

    [Test]
    public void Deeplynestedjsonisrejectednotoverflowingthestack()
    {
        string deep = new string('[', 100_000) + new string(']', 100_000);
        Assert.That(Assert.Throws<TokenizerFormatException>(() => Tokenizer.FromJson(deep, "deep.json"))!.Field, Is.EqualTo("(json)"));
    }

    [Test]
    public void Bothmergeserializationsloadtothesametokenizer()
    {
        var legacy = Gpt2();
        var pairs = Gpt2();
        var pairMerges = new JsonArray();
        foreach (var m in legacy["model"]!["merges"]!.AsArray())
        {
            string[] parts = m!.GetValue<string>().Split(' ');
            pairMerges.Add(new JsonArray(parts[0], parts[1]));
        }
        pairs["model"]!["merges"] = pairMerges;
        var a = Tokenizer.FromJson(legacy.ToJsonString(), "legacy.json");
        var b = Tokenizer.FromJson(pairs.ToJsonString(), "pairs.json");
        foreach (var c in Fixtures.ExpectedFor("gpt2").Cases)
        {
            Assert.That(b.Encode(c.Text), Is.EqualTo(a.Encode(c.Text)));
        }
    }

    [Test]
    public void Missingfilethrowsfilenotfound()
    {
        Assert.Throws<FileNotFoundException>(() => Tokenizer.Load(Fixtures.PathOf("does-not-exist.json")));
    }
}
