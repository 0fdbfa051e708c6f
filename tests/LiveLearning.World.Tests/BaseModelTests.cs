using System.Text.Json;
using System.Text.Json.Nodes;
using LiveLearning.BaseModel;
using LiveLearning.Models;
using LiveLearning.Testing;
using LiveLearning.World;
using NUnit.Framework;

namespace LiveLearning.Tests;

/// <summary>The base-model build is deterministic, and the bundled base is the model its training record describes.</summary>
[TestFixture]
public sealed class BaseModelTests
{
    private static readonly Recipe Tiny = new()
    {
        WorldAPeople = 12,
        NewPeople = 4,
        ChangedFacts = 4,
        Hidden = 64,
        Layers = 2,
        Heads = 2,
        KvHeads = 1,
        Intermediate = 128,
        VocabularySize = 700,
        Epochs = 2,
        BatchDocuments = 8,
        WarmupSteps = 2,
        Threads = 2,
    };

    private string _scratch = "";

    [SetUp]
    public void CreateScratch() => _scratch = Directory.CreateTempSubdirectory("base-model-").FullName;

    [TearDown]
    public void DeleteScratch() => Directory.Delete(_scratch, recursive: true);

    [Test]
    public async Task TheSameRecipeBuildsTheSameBytes()
    {
        string first = Path.Combine(_scratch, "first");
        string second = Path.Combine(_scratch, "second");
        JsonObject card = await BaseModelBuilder.BuildAsync(Tiny, first, TextWriter.Null);
        await BaseModelBuilder.BuildAsync(Tiny, second, TextWriter.Null);
        foreach (string file in (string[])["model.safetensors", "tokenizer.json", "tokenizer_config.json", "config.json"])
        {
            Assert.That(File.ReadAllBytes(Path.Combine(second, file)), Is.EqualTo(File.ReadAllBytes(Path.Combine(first, file))), file);
        }

        Assert.That(Directory.Exists(first + ".work"), Is.False, "the work directory is removed");
        Assert.That(card["command"]!.GetValue<string>(), Does.Contain("build --out").And.Contain("--seed 1"));
        Assert.That(card["training_tokens"]!.GetValue<long>(), Is.Positive);
        using LlamaModel model = LlamaModel.Load(first);
        Assert.That(model.ChatTemplate, Is.Not.Null, "the chat template is read");
        Assert.That(model.Config.NumLayers, Is.EqualTo(2));
    }

    [Test]
    public async Task TheBundledBaseKnowsWorldAUnderPhrasingsItNeverSaw()
    {
        string directory = BundledModel.Directory;
        Assert.That(new FileInfo(Path.Combine(directory, "model.safetensors")).Length, Is.LessThanOrEqualTo(24L << 20), "at most 24 MB");
        using var record = JsonDocument.Parse(File.ReadAllText(Path.Combine(directory, "training.json")));
        Assert.That(record.RootElement.GetProperty("seed").GetInt32(), Is.EqualTo(BundledModel.WorldSeed));
        using LlamaModel model = LlamaModel.Load(directory);
        Assert.That(model.Config.TorchDtype, Is.EqualTo("bfloat16"));
        Assert.That(model.ChatTemplate, Is.Not.Null);

        SyntheticWorld world = SyntheticWorld.Generate(BundledModel.WorldSeed, BundledModel.WorldAPeople, BundledModel.NewPeople, BundledModel.ChangedFacts);
        List<QuestionItem> sample = [.. Corpus.Questions(world.WorldA.SelectMany(SyntheticWorld.FactsOf), heldOut: true, perFact: 3).Where((_, i) => i % 45 == 0)];
        double known = await Quiz.ExactMatchAsync(model, sample);
        List<QuestionItem> unknown = [.. Corpus.Questions(world.NewPeople.SelectMany(SyntheticWorld.FactsOf), heldOut: false).Where((_, i) => i % 5 == 0)];
        double guessed = await Quiz.ExactMatchAsync(model, unknown);
        TestContext.Out.WriteLine($"world A, held-out phrasings: {known:F1} % of {sample.Count}; new people: {guessed:F1} % of {unknown.Count}");
        Assert.That(known, Is.GreaterThanOrEqualTo(90), "world A is known beyond the phrasings it was trained on");
        Assert.That(guessed, Is.LessThan(25), "people it never saw are not known");
    }
}
