using LiveLearning.Backends;
using LiveLearning.Governance;
using LiveLearning.Lora;
using LiveLearning.Models;
using LiveLearning.Testing;
using LiveLearning.World;
using Microsoft.Extensions.DependencyInjection;

namespace LiveLearning.Benchmarks.Quality;

// The benchmark's other parts: preferences, personal over organisational scopes, a poisoned stream, the offline batch recipe.
internal sealed partial class QualityBench
{
    private const string Style = ", according to the registry";

    /// <summary>
    /// Preferences: answers that name their source (<c>value, according to the registry</c>) preferred over the bare value,
    /// taught as DPO pairs in one model and as thumbs up/down ratings (KTO) in another; the win rate of the styled
    /// answer (the greedy answer names its source) on prompts never taught, before and after.
    /// </summary>
    private async Task PreferencesAsync(CancellationToken cancellationToken)
    {
        Fact[] facts = [.. _world.WorldA.SelectMany(SyntheticWorld.FactsOf).Where((_, i) => i % 7 == 0)];
        List<QuestionItem> taught = Corpus.Questions(facts.Take(settings.Facts), heldOut: false);
        List<QuestionItem> unseen = Corpus.Questions(facts.Skip(settings.Facts).Take(60), heldOut: false);
        await using (ServiceProvider provider = Build(replay: true))
        {
            ILiveModel model = provider.GetRequiredService<ILiveModel>();
            Report("preference_winrate_before", await WinRateAsync(model, unseen, cancellationToken));
            // Both answers end their line, as answers do in this base's Q/A format: the choice the pairs teach is then
            // the one greedy decoding makes after the value (go on naming the source, or end the line).
            await TeachAsync(model, [.. taught.Select(q => (Feedback)new Preference { Prompt = q.Prompt, Chosen = q.Answer + Style + "\n", Rejected = q.Answer + "\n", Source = "style-guide" })], cancellationToken);
            Report("preference_winrate_after", await WinRateAsync(model, unseen, cancellationToken));
        }

        await using (ServiceProvider provider = Build(replay: true))
        {
            ILiveModel model = provider.GetRequiredService<ILiveModel>();
            List<Feedback> ratings = [];
            foreach (QuestionItem q in taught)
            {
                ratings.Add(new Rating { Prompt = q.Prompt, Completion = q.Answer + Style + "\n", Positive = true, Source = "style-guide" });
                ratings.Add(new Rating { Prompt = q.Prompt, Completion = q.Answer + "\n", Positive = false, Source = "style-guide" });
            }

            await TeachAsync(model, ratings, cancellationToken);
            Report("preference_winrate_after_kto", await WinRateAsync(model, unseen, cancellationToken));
        }
    }

    /// <summary>
    /// Personal over organisational: scope <c>acme</c> is taught facts A, its user scope <c>acme/alice</c> facts B on
    /// top; <c>acme/bob</c> (same organisation) is taught nothing. Alice should answer A and B, Bob A only.
    /// </summary>
    private async Task ScopesAsync(CancellationToken cancellationToken)
    {
        Fact[] newFacts = [.. _world.NewPeople.Skip(40).SelectMany(SyntheticWorld.FactsOf).Where((_, i) => i % 5 == 0)];
        List<QuestionItem> a = Corpus.Questions(newFacts.Take(settings.Facts / 2), heldOut: false);
        List<QuestionItem> b = Corpus.Questions(newFacts.Skip(settings.Facts / 2).Take(settings.Facts / 2), heldOut: false);
        await using ServiceProvider provider = Build(replay: true, o =>
        {
            o.Scopes.Add(new ScopeOptions { Name = "acme" });
            o.Scopes.Add(new ScopeOptions { Name = "acme/alice", Parent = "acme" });
            o.Scopes.Add(new ScopeOptions { Name = "acme/bob", Parent = "acme" });
        });
        ILiveModel model = provider.GetRequiredService<ILiveModel>();
        await TeachAsync(model, [.. a.Select(q => (Feedback)new Demonstration { Prompt = q.Prompt, Completion = q.Answer, Scope = "acme", Source = "acme-admin" })], cancellationToken, "acme");
        await TeachAsync(model, [.. b.Select(q => (Feedback)new Demonstration { Prompt = q.Prompt, Completion = q.Answer, Scope = "acme/alice", Source = "alice" })], cancellationToken, "acme/alice");
        await model.WaitForIdleAsync("acme/bob", cancellationToken);
        bool[] aliceA = await FactQuiz.AnswersAsync(model, a, "acme/alice", cancellationToken);
        bool[] aliceB = await FactQuiz.AnswersAsync(model, b, "acme/alice", cancellationToken);
        bool[] bobA = await FactQuiz.AnswersAsync(model, a, "acme/bob", cancellationToken);
        bool[] bobB = await FactQuiz.AnswersAsync(model, b, "acme/bob", cancellationToken);
        Report("scope_org_pct", FactQuiz.Percent(aliceA));
        Report("scope_user_pct", FactQuiz.Percent(aliceB));
        Report("scope_org_shared_pct", FactQuiz.Percent(bobA));

        // Isolation: of what Alice's scope learned, the share Bob does not get (100: nothing leaks).
        int learned = aliceB.Count(x => x);
        int leaked = aliceB.Zip(bobB).Count(p => p.First && p.Second);
        Report("scope_isolation_pct", learned == 0 ? 100 : 100.0 * (learned - leaked) / learned);
    }

    /// <summary>
    /// A poisoned stream: honest sources teach new facts while one source floods contradictions of guarded world-A
    /// facts; the model runs with an influence cap at the gate and the regression evaluator over the guards, as an
    /// owner would configure them. Reports the flood's share stopped at the gate, candidates refused, and guard accuracy.
    /// </summary>
    private async Task PoisonAsync(IReadOnlyList<Demonstration> honest, CancellationToken cancellationToken)
    {
        Fact[] guarded = [.. _world.WorldA.Skip(200).SelectMany(SyntheticWorld.FactsOf).Where(f => f.Attribute == World.Attribute.BirthCity).Take(20)];
        List<QuestionItem> guards = Corpus.Questions(guarded, heldOut: false);
        await using ServiceProvider provider = Build(replay: true, configureServices: builder => builder
            .AddGateRule(new InfluenceCapRule(new InfluenceCapOptions { MaxShare = 0.25, Window = 40, MinItems = 8 }))
            .UseRegressionEvaluator(new RegressionEvaluatorOptions { Guards = [.. guards.Select(q => new GuardExample { Prompt = q.Prompt, Expected = q.Answer })] }));
        ILiveModel model = provider.GetRequiredService<ILiveModel>();
        var ledger = (InMemoryLedger)provider.GetRequiredService<ILearningLedger>();
        Report("poison_guard_before_pct", await FactQuiz.PercentAsync(model, guards, cancellationToken: cancellationToken));
        int sent = 0;
        int stopped = 0;
        var rng = new Random(5);
        for (int i = 0; i < honest.Count; i++)
        {
            await model.LearnAsync(honest[i] with { Source = $"honest-{i % 4}" }, cancellationToken);

            // (Learning runs as the stream arrives, as it would in production: this part measures defences, not recall.)
            for (int k = 0; k < 2; k++)
            {
                QuestionItem g = guards[(sent / 2) % guards.Count];
                string lie = " " + _world.WorldA[rng.Next(_world.WorldA.Count)][World.Attribute.BirthCity];
                LearnReceipt receipt = await model.LearnAsync(new Demonstration { Prompt = g.Prompt, Completion = lie == g.Answer ? " Atlantis" : lie, Source = "mallory" }, cancellationToken);
                sent++;
                stopped += receipt.Accepted ? 0 : 1;
            }
        }

        await model.WaitForIdleAsync(cancellationToken: cancellationToken);
        Report("poison_stopped_pct", 100.0 * stopped / sent);
        Report("poison_refused_candidates", ledger.Entries.Count(e => e.Event == LedgerEvent.PromotionRefused));
        Report("poison_guard_pct", await FactQuiz.PercentAsync(model, guards, cancellationToken: cancellationToken));
    }

    /// <summary>
    /// The usual recipe: the same demonstrations as an offline batch LoRA fine-tune with PEFT-like defaults (r=8, α=16 on
    /// q and v, AdamW at 2e-4, shuffled epochs of batches of 4) and the online loop's optimizer budget (as many steps as
    /// it took, at least 3 epochs), on the engine directly; acquisition and retention as above.
    /// </summary>
    private async Task BatchRecipeAsync(IReadOnlyList<Demonstration> items, List<QuestionItem> taught, List<QuestionItem> retention, int budget, CancellationToken cancellationToken)
    {
        using LlamaModel model = LlamaModel.Load(BundledModel.Directory);
        using var backend = new LoraBackend(model, new LoraConfig { Rank = 8, Alpha = 16, TargetModules = ["q_proj", "v_proj"], Seed = 1 }, ownsModel: false);
        var state = new LoraTrainingState(LoraAdapter.CreateFresh(new LoraConfig { Rank = 8, Alpha = 16, TargetModules = ["q_proj", "v_proj"], Seed = 1 }, model));
        TrainingSequence[] data = [.. items.Select(d =>
        {
            IReadOnlyList<int> prompt = backend.EncodePrompt(d.Prompt!);
            IReadOnlyList<int> completion = backend.EncodeCompletion(d.Completion, PromptKind.Text, appendEnd: true);
            return new TrainingSequence([.. prompt, .. completion], [.. prompt.Select(_ => -100), .. completion]);
        })];
        var optimizer = new OptimizerOptions { LearningRate = 2e-4f, MaxGradNorm = 1.0 };
        var rng = new Random(3);
        int perEpoch = (data.Length + 3) / 4;
        int total = Math.Max(budget, 3 * perEpoch);
        int steps = 0;
        while (steps < total)
        {
            TrainingSequence[] order = [.. data.OrderBy(_ => rng.Next())];
            for (int i = 0; i < order.Length && steps < total; i += 4)
            {
                state.TrainStep(model, order[i..Math.Min(order.Length, i + 4)], optimizer);
                steps++;
            }
        }

        LoraAdapter adapter = state.Publish();
        Report("batch_steps", steps);
        Report("batch_acquisition_pct", await EngineQuizAsync(model, adapter, taught, cancellationToken));
        Report("batch_retention_pct", await EngineQuizAsync(model, adapter, retention, cancellationToken));
    }

    private static async Task<double> EngineQuizAsync(LlamaModel model, IModelAdapter adapter, List<QuestionItem> questions, CancellationToken cancellationToken)
    {
        int right = 0;
        var options = new GenerationOptions { MaxTokens = 12, Temperature = 0, StopStrings = ["\n"] };
        foreach (QuestionItem q in questions)
        {
            var text = new System.Text.StringBuilder();
            await foreach (string piece in model.GenerateTextAsync(q.Prompt, options, adapter, cancellationToken))
            {
                text.Append(piece);
            }

            right += text.ToString().TrimEnd('\n', ' ') == q.Answer ? 1 : 0;
        }

        return questions.Count == 0 ? 0 : 100.0 * right / questions.Count;
    }

    /// <summary>The share of unseen prompts whose greedy answer is in the preferred style (names its source).</summary>
    private static async Task<double> WinRateAsync(ILiveModel model, List<QuestionItem> prompts, CancellationToken cancellationToken)
    {
        int wins = 0;
        var options = new GenerationOptions { MaxTokens = 24, Temperature = 0, StopStrings = ["\n"] };
        foreach (QuestionItem q in prompts)
        {
            LiveCompletion c = await model.CompleteAsync(q.Prompt, options, cancellationToken: cancellationToken);
            wins += c.Text.Contains(Style.TrimStart(','), StringComparison.Ordinal) ? 1 : 0;
            if (Environment.GetEnvironmentVariable("LIVELEARNING_QUALITY_SHOW") == "1" && wins < 3)
            {
                Console.WriteLine($"    style: {q.Prompt.Replace("\n", " ", StringComparison.Ordinal)} -> '{c.Text}'");
            }
        }

        return 100.0 * wins / prompts.Count;
    }
}
