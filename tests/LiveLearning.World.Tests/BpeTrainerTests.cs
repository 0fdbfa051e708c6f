using LiveLearning.Tokenization;
using LiveLearning.World;
using NUnit.Framework;

namespace LiveLearning.Tests;

/// <summary>The tokenizer trainer: the files it writes are read by the library's tokenizer, round-trip, and compress the world's text.</summary>
[TestFixture]
public sealed class BpeTrainerTests
{
    private static readonly string[] Special = [Corpus.EndOfText, Corpus.ImStart, Corpus.ImEnd];

    private string _scratch = "";

    [SetUp]
    public void CreateScratch() => _scratch = Directory.CreateTempSubdirectory("bpe-").FullName;

    [TearDown]
    public void DeleteScratch() => Directory.Delete(_scratch, recursive: true);

    [Test]
    public void TheWrittenTokenizerRoundTripsTheWorldAndCompressesIt()
    {
        SyntheticWorld world = SyntheticWorld.Generate(seed: 2, worldAPeople: 60, newPeople: 10, changedFacts: 5);
        List<string> texts = Corpus.PretrainingEpoch(world, 2, 0);
        TrainedBpe bpe = BpeTrainer.Train(texts, 1024, Special);
        BpeTrainer.Write(_scratch, bpe, Corpus.EndOfText, Corpus.ImEnd);
        Tokenizer tokenizer = Tokenizer.Load(Path.Combine(_scratch, "tokenizer.json"), Path.Combine(_scratch, "tokenizer_config.json"));
        Assert.That(tokenizer.VocabSize, Is.EqualTo(bpe.Vocabulary.Count));
        Assert.That(tokenizer.TokenToId(Corpus.EndOfText), Is.EqualTo(0));
        Assert.That(tokenizer.EosTokenId, Is.EqualTo(bpe.Vocabulary[Corpus.ImEnd]));
        Assert.That(tokenizer.BosTokenId, Is.EqualTo(0));
        Assert.That(tokenizer.Encode("Q: Where?")[0], Is.EqualTo(0), "plain text gets the beginning-of-sequence token");
        Assert.That(tokenizer.Encode("Q: Where?", addSpecialTokens: false)[0], Is.Not.EqualTo(0));
        long characters = 0;
        long tokens = 0;
        foreach (string text in texts.Concat(Corpus.PretrainingEpoch(world, 2, 1)))
        {
            IReadOnlyList<int> ids = tokenizer.Encode(text, addSpecialTokens: false);
            Assert.That(tokenizer.Decode(ids), Is.EqualTo(text));
            Assert.That(ids, Does.Contain(0), "the end-of-text marker is one special token");
            characters += text.Length;
            tokens += ids.Count;
        }

        Assert.That((double)characters / tokens, Is.GreaterThan(3.0), "frequent words became single tokens");
        Assert.That(tokenizer.Encode(" born", addSpecialTokens: false), Has.Count.EqualTo(1));
        Assert.That(tokenizer.Encode("1991", addSpecialTokens: false), Has.Count.EqualTo(4), "digits stay one token each");
        Assert.That(tokenizer.Decode(tokenizer.Encode("Ünïcödé ✓ text", addSpecialTokens: false)), Is.EqualTo("Ünïcödé ✓ text"), "every byte is covered");
    }

    [Test]
    public void TrainingIsDeterministicAndStopsWhenNoPairRepeats()
    {
        string[] texts = ["abab abab", "abab cd"];
        TrainedBpe first = BpeTrainer.Train(texts, 10_000, Special);
        TrainedBpe second = BpeTrainer.Train(texts, 10_000, Special);
        Assert.That(second.Merges, Is.EqualTo(first.Merges));
        Assert.That(first.Merges[0], Is.EqualTo("a b"), "the most frequent pair merges first");
        Assert.That(first.Vocabulary.Count, Is.LessThan(10_000), "no pair that occurs once is merged");
        Assert.That(first.Vocabulary.Values, Is.Unique);
        Assert.That(() => BpeTrainer.Train(texts, 100, Special), Throws.InstanceOf<ArgumentOutOfRangeException>());
    }
}
