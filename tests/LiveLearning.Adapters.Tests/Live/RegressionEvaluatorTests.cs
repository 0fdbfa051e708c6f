using LiveLearning.Governance;
using NUnit.Framework;

namespace LiveLearning.Tests.Live;

/// <summary>The guard and probe sets in a live model: harmful updates refused with their figures, harmless ones promoted.</summary>
[TestFixture]
public sealed class RegressionEvaluatorTests
{
    private const string Prompt = "The capital of France is";

    [Test]
    public async Task AHarmfulUpdateIsRefusedAndTheLedgerShowsTheFigures()
    {
        // What the model answers now is what the owner says must keep passing.
        string answer = await GreedyAnswerAsync(Prompt);
        var ledger = new InMemoryLedger();
        var evaluator = new RegressionEvaluator(new RegressionEvaluatorOptions { Guards = [new GuardExample { Name = "capital", Prompt = Prompt, Expected = answer }] });
        await using LiveModel model = LiveTestKit.Create(o => o.Learner.StepsPerItem = 30, new LiveModelServices { Evaluator = evaluator, Ledger = ledger });
        AdapterVersion before = model.Version;

        await model.LearnAsync(new Demonstration { Prompt = Prompt, Completion = " Berlin, of course." });
        await model.WaitForIdleAsync();

        // The first steps may still pass; once a candidate fails the guard, it and every later one is refused (learning
        // restarts from the serving version each time), so what serves is the last version that passed.
        LedgerEntry refused = ledger.Entries.First(e => e.Event == LedgerEvent.PromotionRefused);
        string lastGood = ledger.Entries.Last(e => e.Event == LedgerEvent.Published)?.VersionId ?? before.Id;
        Assert.That(model.Version.Id, Is.EqualTo(lastGood));
        Assert.That(ledger.Entries.Where(e => e.Event == LedgerEvent.Published).Select(e => e.Figures!["guard_accuracy_candidate"]), Is.All.EqualTo(1.0));
        Assert.That(refused.Message, Does.Contain("guard accuracy would fall from 100.0% to 0.0%").And.Contain("'capital'"));
        Assert.That(refused.Figures, Is.Not.Null);
        Assert.That(refused.Figures!["guard_accuracy_current"], Is.EqualTo(1.0));
        Assert.That(refused.Figures["guard_accuracy_candidate"], Is.EqualTo(0.0));
        Assert.That(refused.Figures["guards_newly_failing"], Is.EqualTo(1.0));
        Assert.That((await model.CompleteAsync(Prompt, new GenerationOptions { MaxTokens = 8 })).Text.Trim(), Does.StartWith(answer.Trim()));
    }

    [Test]
    public async Task AnUpdateThatLeavesTheGuardsPassingIsPromotedWithItsFigures()
    {
        string answer = await GreedyAnswerAsync(Prompt);
        var ledger = new InMemoryLedger();
        var evaluator = new RegressionEvaluator(new RegressionEvaluatorOptions
        {
            Guards = [new GuardExample { Prompt = Prompt, Expected = answer }],
            Probes = [new ProbeText("A quick brown fox jumps over the lazy dog.")],
            PerplexityTolerance = 1.0,
        });
        await using LiveModel model = LiveTestKit.Create(services: new LiveModelServices { Evaluator = evaluator, Ledger = ledger });
        await model.LearnAsync(new Demonstration { Prompt = "Name of the cat?", Completion = " Tom" });
        await model.WaitForIdleAsync();

        LedgerEntry published = ledger.Entries.Last(e => e.Event == LedgerEvent.Published);
        Assert.That(published.Message, Does.Contain("evaluation: no regression"));
        Assert.That(published.Figures!.Keys, Is.SupersetOf(new[] { "guard_accuracy_candidate", "probe_perplexity_base", "probe_perplexity_candidate" }));
        Assert.That(published.Figures["probe_perplexity_candidate"], Is.GreaterThan(1.0).And.LessThanOrEqualTo(2 * published.Figures["probe_perplexity_base"]));
        Assert.That(LedgerChain.Verify(ledger.Entries).Valid, Is.True, "figures are part of the chained hash");
    }

    [Test]
    public async Task ProbePerplexityAboveItsToleranceRefusesTheCandidate()
    {
        var ledger = new InMemoryLedger();
        var evaluator = new RegressionEvaluator(new RegressionEvaluatorOptions { Probes = [new ProbeText("7 3 9 1 4 8 2 6 0 5")], PerplexityTolerance = 0.05 });
        await using LiveModel model = LiveTestKit.Create(o => o.Learner.StepsPerItem = 30, new LiveModelServices { Evaluator = evaluator, Ledger = ledger });
        await model.LearnAsync(new Demonstration { Prompt = Prompt, Completion = " Berlin." });
        await model.WaitForIdleAsync();

        LedgerEntry refused = ledger.Entries.First(e => e.Event == LedgerEvent.PromotionRefused);
        Assert.That(refused.Message, Does.Contain("probe perplexity would be"));
        Assert.That(refused.Figures!["probe_perplexity_candidate"], Is.GreaterThan(1.05 * refused.Figures["probe_perplexity_base"]));
        Assert.That(ledger.Entries.Where(e => e.Event == LedgerEvent.Published).Select(e => e.Figures!["probe_perplexity_candidate"] / e.Figures["probe_perplexity_base"]), Is.All.LessThanOrEqualTo(1.05), "everything served is within tolerance");
    }

    [Test]
    public async Task ALogLikelihoodFloorPassesOrFailsOnTheMeanLogProbability()
    {
        await using LiveModel model = LiveTestKit.Create();
        double mean = (await model.ScoreAsync(Prompt, " Paris")).Score.MeanLogProbability;
        var passes = new GuardExample { Prompt = Prompt, Expected = " Paris", Check = GuardCheck.LogLikelihoodFloor, MinMeanLogProbability = mean - 0.01 };
        var fails = passes with { MinMeanLogProbability = Math.Min(0, mean + 0.01) };
        var ledger = new InMemoryLedger();
        await using LiveModel guarded = LiveTestKit.Create(services: new LiveModelServices { Ledger = ledger, Evaluator = new RegressionEvaluator(new RegressionEvaluatorOptions { Guards = [passes, fails] }) });
        await guarded.LearnAsync(new Demonstration { Prompt = "Name of the cat?", Completion = " Tom" });
        await guarded.WaitForIdleAsync();
        LedgerEntry decided = ledger.Entries.Last(e => e.Event is LedgerEvent.Published or LedgerEvent.PromotionRefused);
        Assert.That(decided.Figures!["guard_accuracy_current"], Is.EqualTo(0.5), "one of the two floors holds for the fresh adapter");
    }

    [Test]
    public void InvalidSetsAreRefusedNamingTheExample()
    {
        Assert.That(() => new RegressionEvaluator(new RegressionEvaluatorOptions { Guards = [new GuardExample { Expected = "x" }] }), Throws.ArgumentException.With.Message.Contains("Guard 0"));
        Assert.That(() => new RegressionEvaluator(new RegressionEvaluatorOptions { Guards = [new GuardExample { Prompt = "p", Expected = "x", Check = GuardCheck.LogLikelihoodFloor }] }), Throws.ArgumentException.With.Message.Contains("MinMeanLogProbability"));
        Assert.That(() => new RegressionEvaluator(new RegressionEvaluatorOptions { PerplexityTolerance = double.NaN }), Throws.ArgumentException.With.Message.Contains("PerplexityTolerance"));
        Assert.That(() => new RegressionEvaluator(new RegressionEvaluatorOptions { Probes = [new ProbeText("")] }), Throws.ArgumentException.With.Message.Contains("Probe 0"));
    }

    private static async Task<string> GreedyAnswerAsync(string prompt)
    {
        await using LiveModel model = LiveTestKit.Create();
        return (await model.CompleteAsync(prompt, new GenerationOptions { MaxTokens = 3 })).Text;
    }
}
