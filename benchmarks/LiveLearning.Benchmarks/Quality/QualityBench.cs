using System.Diagnostics;
using LiveLearning.Testing;
using LiveLearning.World;
using Microsoft.Extensions.DependencyInjection;
using WorldAttribute = LiveLearning.World.Attribute;

namespace LiveLearning.Benchmarks.Quality;

/// <summary>What the quality benchmark teaches and measures, and the overrides an experiment may set (none: the library's defaults).</summary>
internal sealed record QualitySettings
{
    /// <summary>New facts taught, and as many changed facts.</summary>
    public int Facts { get; init; } = 20;

    /// <summary>World-A questions measuring retention (held-out phrasings, facts not changed).</summary>
    public int RetentionQuestions { get; init; } = 300;

    /// <summary>Held-out world-A biographies for probe perplexity.</summary>
    public int ProbeTexts { get; init; } = 60;

    /// <summary>Override of the learner's learning rate (experiments only).</summary>
    public float? LearningRate { get; init; }

    /// <summary>Override of steps per item (experiments only).</summary>
    public int? StepsPerItem { get; init; }

    /// <summary>Override of the replay ratio (experiments only).</summary>
    public double? ReplayRatio { get; init; }

    /// <summary>Override of the rehearsal pool size (experiments only).</summary>
    public int? RehearsalSamples { get; init; }

    /// <summary>Override of rehearsed samples per new item (experiments only).</summary>
    public double? RehearsalPerItem { get; init; }

    /// <summary>Override of the rehearsal prompt (experiments only).</summary>
    public string? RehearsalPrompt { get; init; }

    /// <summary>Override of the LoRA target modules (experiments only).</summary>
    public string[]? TargetModules { get; init; }
}

/// <summary>
/// The learning-quality benchmark on the bundled base: everything is taught through the public <see cref="ILiveModel"/>
/// API of a model built by DI with the library's defaults (unless an experiment overrides one), and measured by exact
/// match on questions and by perplexity.
/// </summary>
internal sealed partial class QualityBench(QualitySettings settings, TextWriter log)
{
    private readonly SyntheticWorld _world = SyntheticWorld.Generate(BundledModel.WorldSeed, BundledModel.WorldAPeople, BundledModel.NewPeople, BundledModel.ChangedFacts);
    private readonly Dictionary<string, double> _metrics = new(StringComparer.Ordinal);
    private int _onlineSteps;

    public IReadOnlyDictionary<string, double> Metrics => _metrics;

    public async Task RunAsync(CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        (List<Demonstration> items, List<QuestionItem> taught, List<QuestionItem> paraphrased) = Teaching();
        List<QuestionItem> retention = RetentionQuestions();
        List<string> probe = Corpus.ProbeText(_world, seed: 7, settings.ProbeTexts);

        // With replay (the default) and, as an ablation, without.
        await using (ServiceProvider provider = Build(replay: true))
        {
            ILiveModel model = provider.GetRequiredService<ILiveModel>();
            bool[] baseRetention = await FactQuiz.AnswersAsync(model, retention, cancellationToken: cancellationToken);
            double basePerplexity = await FactQuiz.PerplexityAsync(model, probe, cancellationToken: cancellationToken);
            bool[] baseTaught = await FactQuiz.AnswersAsync(model, taught, cancellationToken: cancellationToken);
            SnapshotInfo before = await model.SnapshotAsync("before-teaching", cancellationToken: cancellationToken);
            Report("base_world_a_pct", FactQuiz.Percent(baseRetention));
            Report("base_taught_pct", FactQuiz.Percent(baseTaught));

            await TeachAsync(model, items, cancellationToken);
            ScopeStatistics stats = model.GetStatistics()[model.GetVersion().Scope];
            _onlineSteps = (int)stats.Steps;
            Report("acquisition_pct", await FactQuiz.PercentAsync(model, taught, cancellationToken: cancellationToken));
            Report("generalisation_pct", await FactQuiz.PercentAsync(model, paraphrased, cancellationToken: cancellationToken));
            Report("steps_per_fact", (double)stats.Steps / items.Count);
            Report("retention_pct", await FactQuiz.PercentAsync(model, retention, cancellationToken: cancellationToken));
            Report("probe_ppl_change_pct", 100 * ((await FactQuiz.PerplexityAsync(model, probe, cancellationToken: cancellationToken) / basePerplexity) - 1));

            // Forget one of the three sources: its facts go back to what the base knew, the others stay.
            string forgotten = items[0].Source;
            List<QuestionItem> ofForgotten = [.. taught.Where((_, i) => items[i].Source == forgotten)];
            List<QuestionItem> ofOthers = [.. taught.Where((_, i) => items[i].Source != forgotten)];
            double baseForgotten = FactQuiz.Percent([.. baseTaught.Where((_, i) => items[i].Source == forgotten)]);
            ForgetReport report = await model.ForgetSourceAsync(forgotten, "quality benchmark", "benchmark", cancellationToken: cancellationToken);
            Report("forget_recall_pct", await FactQuiz.PercentAsync(model, ofForgotten, cancellationToken: cancellationToken));
            Report("forget_recall_base_pct", baseForgotten);
            Report("forget_kept_pct", await FactQuiz.PercentAsync(model, ofOthers, cancellationToken: cancellationToken));
            Report("forget_items_removed", report.ItemsForgotten);

            // Rollback to the version before teaching: world-A answers exactly the base's.
            await model.RollbackAsync(before.Version.Id, "quality benchmark", "benchmark", cancellationToken);
            bool[] rolledBack = await FactQuiz.AnswersAsync(model, retention, cancellationToken: cancellationToken);
            Report("rollback_world_a_pct", FactQuiz.Percent(rolledBack));
            Report("rollback_equals_base", rolledBack.SequenceEqual(baseRetention) ? 1 : 0);
        }

        await using (ServiceProvider provider = Build(replay: false))
        {
            ILiveModel model = provider.GetRequiredService<ILiveModel>();
            await TeachAsync(model, items, cancellationToken);
            Report("acquisition_no_replay_pct", await FactQuiz.PercentAsync(model, taught, cancellationToken: cancellationToken));
            Report("retention_no_replay_pct", await FactQuiz.PercentAsync(model, retention, cancellationToken: cancellationToken));
        }

        await BatchRecipeAsync(items, taught, retention, _onlineSteps, cancellationToken);
        await PreferencesAsync(cancellationToken);
        await ScopesAsync(cancellationToken);
        await PoisonAsync(items, cancellationToken);
        Report("seconds", clock.Elapsed.TotalSeconds);
    }

    /// <summary>K facts about new people and K changed world-A facts, each taught once with a training phrasing by one of three sources.</summary>
    private (List<Demonstration> Items, List<QuestionItem> Taught, List<QuestionItem> Paraphrased) Teaching()
    {
        var facts = new List<Fact>();
        WorldAttribute[] attributes = Enum.GetValues<WorldAttribute>();
        for (int i = 0; i < settings.Facts; i++)
        {
            Person p = _world.NewPeople[i % _world.NewPeople.Count];
            facts.Add(new Fact(p.Name, attributes[i % attributes.Length], p[attributes[i % attributes.Length]]));
        }

        facts.AddRange(_world.ChangedFacts.Take(settings.Facts));
        var items = new List<Demonstration>();
        var taught = new List<QuestionItem>();
        var paraphrased = new List<QuestionItem>();
        for (int i = 0; i < facts.Count; i++)
        {
            Fact f = facts[i];
            QuestionItem q = Corpus.Question(f, Templates.TrainingQuestions[f.Attribute][i % Templates.TrainingQuestions[f.Attribute].Length]);
            taught.Add(q);
            items.Add(new Demonstration { Prompt = q.Prompt, Completion = q.Answer, Source = $"teacher-{i % 3}" });
            paraphrased.AddRange(Templates.HeldOutQuestions[f.Attribute].Select(t => Corpus.Question(f, t)));
        }

        return (items, taught, paraphrased);
    }

    /// <summary>World-A questions in held-out phrasings, about facts no teaching changes.</summary>
    private List<QuestionItem> RetentionQuestions()
    {
        var changed = _world.ChangedFacts.Select(f => (f.Person, f.Attribute)).ToHashSet();
        List<Fact> unchanged = [.. _world.WorldA.SelectMany(SyntheticWorld.FactsOf).Where(f => !changed.Contains((f.Person, f.Attribute)))];
        int stride = Math.Max(1, unchanged.Count / settings.RetentionQuestions);
        return [.. Corpus.Questions(unchanged.Where((_, i) => i % stride == 0).Take(settings.RetentionQuestions), heldOut: true)];
    }

    /// <summary>Queues every item while learning is paused, then lets the learner run: the batches, and so every figure,
    /// do not depend on timing.</summary>
    private static async Task TeachAsync(ILiveModel model, IReadOnlyList<Feedback> items, CancellationToken cancellationToken, string? scope = null)
    {
        model.PauseLearning(scope, "benchmark");
        try
        {
            await QueueAsync(model, items, cancellationToken);
        }
        finally
        {
            model.ResumeLearning(scope, "benchmark");
        }

        await model.WaitForIdleAsync(scope, cancellationToken);
    }

    private static async Task QueueAsync(ILiveModel model, IReadOnlyList<Feedback> items, CancellationToken cancellationToken)
    {
        foreach (Feedback item in items)
        {
            LearnReceipt receipt = await model.LearnAsync(item, cancellationToken);
            if (!receipt.Accepted)
            {
                throw new InvalidOperationException($"The benchmark's item was refused: {receipt.Message}");
            }
        }
    }

    private ServiceProvider Build(bool replay, Action<LiveModelOptions>? live = null, Func<LiveLearningBuilder, LiveLearningBuilder>? configureServices = null)
    {
        var services = new ServiceCollection();
        LiveLearningBuilder builder = services.AddLiveLearning();
        builder = configureServices?.Invoke(builder) ?? builder;
        builder.AddLoraModel("default", o =>
        {
            o.ModelDirectory = BundledModel.Directory;
            live?.Invoke(o.Live);
            if (settings.LearningRate is { } lr)
            {
                o.Live.Learner.Optimizer = o.Live.Learner.Optimizer with { LearningRate = lr };
            }

            if (settings.StepsPerItem is { } steps)
            {
                o.Live.Learner.StepsPerItem = steps;
            }

            if (settings.ReplayRatio is { } ratio)
            {
                o.Live.Replay.Ratio = ratio;
            }

            if (settings.RehearsalSamples is { } samples)
            {
                o.Live.Replay.Rehearsal.Samples = samples;
            }

            if (settings.RehearsalPerItem is { } perItem)
            {
                o.Live.Replay.Rehearsal.PerItem = perItem;
            }

            if (settings.RehearsalPrompt is { } prompt)
            {
                o.Live.Replay.Rehearsal.Prompt = prompt;
            }

            if (settings.TargetModules is { } modules)
            {
                o.Lora = o.Lora with { TargetModules = modules };
            }

            if (!replay)
            {
                o.Live.Replay.Ratio = 0;
            }
        });
        return services.BuildServiceProvider();
    }

    private void Report(string name, double value)
    {
        _metrics[name] = Math.Round(value, 3);
        log.WriteLine(System.FormattableString.Invariant($"  {name,-32} {value,10:0.###}"));
    }
}
