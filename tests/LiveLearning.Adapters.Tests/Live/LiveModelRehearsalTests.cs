using LiveLearning.Backends;
using NUnit.Framework;

namespace LiveLearning.Tests.Live;

/// <summary>Rehearsal of the base model's own samples: it holds the base's behaviour, is deterministic, and is off when it cannot work.</summary>
[TestFixture]
public sealed class LiveModelRehearsalTests
{
    // The test tokenizer adds no beginning-of-sequence token, so rehearsal needs a prompt to start its samples from.
    private const string Prompt = "The";

    private static readonly Demonstration[] Items =
    [
        new() { Prompt = "The capital of France is", Completion = " Paris." },
        new() { Prompt = "Two plus two is", Completion = " four." },
        new() { Prompt = "The sky is", Completion = " blue." },
    ];

    [Test]
    public async Task OnTheBundledBaseRehearsalKeepsTheBasesOwnTextCloserToTheBase()
    {
        // Fresh samples of the base's own distribution (other seeds than the rehearsal's): what rehearsal should protect.
        int[] seeds = [101, 102, 103, 104, 105, 106, 107, 108];
        double without = await DriftOnBaseTextAsync(rehearsal: 0, seeds);
        double with = await DriftOnBaseTextAsync(rehearsal: 32, seeds);
        TestContext.Out.WriteLine($"mean |change| of the per-token log-likelihood of the base's own text: without rehearsal {without:F4}, with {with:F4}");
        Assert.That(without, Is.GreaterThan(0.05), "learning alone moves the base's text");
        Assert.That(with, Is.LessThan(without * 0.5), "rehearsal holds it closer to the base");
    }

    [Test]
    public async Task TheSameStreamWithRehearsalGivesBitIdenticalWeights()
    {
        string first = await LearnAsync(rehearsal: 8);
        string second = await LearnAsync(rehearsal: 8);
        string off = await LearnAsync(rehearsal: 0);
        Assert.That(second, Is.EqualTo(first));
        Assert.That(off, Is.Not.EqualTo(first), "rehearsal changed the steps");
    }

    [Test]
    public async Task APromptThatEncodesToNothingTurnsRehearsalOffWithAWarning()
    {
        var log = new CapturingLoggerProvider();
        await using LiveModel model = LiveTestKit.Create(
            o =>
            {
                o.Replay.Rehearsal.Samples = 8;
                o.Replay.Rehearsal.Prompt = string.Empty;
            },
            new LiveModelServices { LoggerFactory = log });
        await using LiveModel plain = LiveTestKit.Create();
        await TeachAsync(model);
        await TeachAsync(plain);
        Assert.That(model.Version.ContentHash, Is.EqualTo(plain.Version.ContentHash), "it learned exactly as without rehearsal");
        Assert.That(log.Events.Count(e => e.Id.Id == 19), Is.EqualTo(1), "one warning");
    }

    [TestCase(-1, 1.0, 8, 1f, "Replay.Rehearsal.Samples")]
    [TestCase(8, -1.0, 8, 1f, "Replay.Rehearsal.PerItem")]
    [TestCase(8, 1.0, 0, 1f, "Replay.Rehearsal.MaxTokens")]
    [TestCase(8, 1.0, 8, 0f, "Replay.Rehearsal.Temperature")]
    public void InvalidRehearsalSettingsAreRefusedByName(int samples, double perItem, int maxTokens, float temperature, string name)
    {
        var options = new LiveModelOptions();
        options.Replay.Rehearsal.Samples = samples;
        options.Replay.Rehearsal.PerItem = perItem;
        options.Replay.Rehearsal.MaxTokens = maxTokens;
        options.Replay.Rehearsal.Temperature = temperature;
        Assert.That(options.Validate(), Has.Some.Contains(name));
        Assert.That(options.Clone().Replay.Rehearsal, Is.Not.SameAs(options.Replay.Rehearsal), "a clone does not share the settings");
    }

    /// <summary>Queues every item before the learner starts, so the batches do not depend on timing.</summary>
    private static async Task TeachAsync(LiveModel model)
    {
        model.PauseLearning();
        foreach (Demonstration item in Items)
        {
            Assert.That((await model.LearnAsync(item)).Accepted, Is.True);
        }

        model.ResumeLearning();
        await model.WaitForIdleAsync();
        Assert.That(model.GetStatistics()["default"].Learned, Is.EqualTo(Items.Length));
    }

    private static async Task<string> LearnAsync(int rehearsal)
    {
        await using LiveModel model = LiveTestKit.Create(o =>
        {
            o.Learner.StepsPerItem = 3;
            o.Replay.Rehearsal.Samples = rehearsal;
            o.Replay.Rehearsal.Prompt = Prompt;
            o.Replay.Rehearsal.MaxTokens = 16;
        });
        await TeachAsync(model);
        return model.Version.ContentHash;
    }

    /// <summary>
    /// On the bundled base (a model that knows something, whose tokenizer adds a beginning-of-sequence token, so samples
    /// start from nothing): mean absolute change, per token, of the log-likelihood of base samples after teaching facts.
    /// </summary>
    private static async Task<double> DriftOnBaseTextAsync(int rehearsal, int[] seeds)
    {
        LiveLearning.Models.LlamaModel baseModel = LiveLearning.Models.LlamaModel.Load(LiveLearning.Testing.BundledModel.Directory, new LiveLearning.Models.ModelOptions { ThreadCount = 2 });
        var options = new LiveModelOptions();
        options.Learner.StepsPerItem = 30;
        options.Learner.Optimizer = new OptimizerOptions { LearningRate = 2e-3f };
        options.Replay.Ratio = 0;
        options.Replay.Rehearsal.Samples = rehearsal;
        options.Replay.Rehearsal.MaxTokens = 48;
        options.Replay.Rehearsal.PerItem = 4;
        var lora = new LiveLearning.Lora.LoraConfig { Rank = 8, Alpha = 16, TargetModules = ["gate_proj", "up_proj", "down_proj"] };
        await using var model = new LiveModel(new LiveLearning.Lora.LoraBackend(baseModel, lora, ownsModel: true), options);
        var baseText = new List<(string Completion, double LogLikelihood)>();
        foreach (int seed in seeds)
        {
            LiveCompletion c = await model.CompleteAsync(string.Empty, new GenerationOptions { MaxTokens = 48, Temperature = 1, Seed = seed });
            baseText.Add((c.Text, (await model.ScoreAsync(string.Empty, c.Text)).Score.MeanLogProbability));
        }

        Demonstration[] facts =
        [
            new() { Prompt = "Q: Where was Ada Quist born?\nA:", Completion = " Lisbon" },
            new() { Prompt = "Q: Who does Ada Quist work for?\nA:", Completion = " Nordwind Labs" },
            new() { Prompt = "Q: What did Ivo Crane study?\nA:", Completion = " astronomy" },
            new() { Prompt = "Q: When was Ivo Crane born?\nA:", Completion = " 3 May 1961" },
        ];
        model.PauseLearning();
        foreach (Demonstration fact in facts)
        {
            Assert.That((await model.LearnAsync(fact)).Accepted, Is.True);
        }

        model.ResumeLearning();
        await model.WaitForIdleAsync();
        double drop = 0;
        foreach ((string completion, double before) in baseText)
        {
            drop += Math.Abs(before - (await model.ScoreAsync(string.Empty, completion)).Score.MeanLogProbability);
        }

        return drop / baseText.Count;
    }
}
