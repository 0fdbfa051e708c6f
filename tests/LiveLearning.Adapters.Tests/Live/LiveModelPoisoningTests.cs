using LiveLearning.Governance;
using NUnit.Framework;

namespace LiveLearning.Tests.Live;

/// <summary>
/// One source floods contradictory feedback: with the influence cap and the regression evaluator the served model's
/// guard accuracy does not move; without them (the control) it does.
/// </summary>
[TestFixture]
public sealed class LiveModelPoisoningTests
{
    private const int Guards = 10;

    [Test]
    public async Task AFloodingSourceIsCappedAndCannotMoveGuardAccuracy()
    {
        GuardExample[] guards = await CurrentAnswersAsync();
        var ledger = new InMemoryLedger();
        var services = new LiveModelServices
        {
            Ledger = ledger,
            Gates = [new PolicyGate(new InfluenceCapRule(new InfluenceCapOptions { MaxShare = 0.25, Window = 40, MinItems = 8 }), RulePolicy.Drop)],
            Evaluator = new RegressionEvaluator(new RegressionEvaluatorOptions { Guards = guards }),
        };
        await using LiveModel defended = LiveTestKit.Create(services: services);
        (int sent, int accepted) = await FloodAsync(defended);

        double accuracy = await AccuracyAsync(defended, guards);
        TestContext.Out.WriteLine($"defended: attacker accepted {accepted}/{sent}, guard accuracy {accuracy:P0}, refused candidates {ledger.Entries.Count(e => e.Event == LedgerEvent.PromotionRefused)}");
        Assert.That(accuracy, Is.GreaterThanOrEqualTo(0.99), "guard accuracy moved by at most 1 point");
        Assert.That(accepted, Is.LessThanOrEqualTo(sent / 2), "most of the flood was refused at the gate");
        Assert.That(ledger.Entries.Count(e => e.Event == LedgerEvent.Rejected && e.Rule == "influence-cap" && e.Source == "mallory"), Is.EqualTo(sent - accepted));
        Assert.That(ledger.Entries.Where(e => e.Event == LedgerEvent.Rejected && e.Rule == "influence-cap").Select(e => e.Source).Distinct(), Is.EqualTo(new[] { "mallory" }), "honest sources were never capped");
    }

    [Test]
    public async Task WithoutTheDefencesTheSameFloodMovesGuardAccuracy()
    {
        // The control: proof that the flood above is strong enough to matter.
        GuardExample[] guards = await CurrentAnswersAsync();
        await using LiveModel undefended = LiveTestKit.Create();
        (int sent, int accepted) = await FloodAsync(undefended);
        double accuracy = await AccuracyAsync(undefended, guards);
        TestContext.Out.WriteLine($"undefended: attacker accepted {accepted}/{sent}, guard accuracy {accuracy:P0}");
        Assert.That(accepted, Is.EqualTo(sent));
        Assert.That(accuracy, Is.LessThan(0.9));
    }

    /// <summary>Four honest sources send one unrelated item each per round; mallory sends five contradicting the guards.</summary>
    private static async Task<(int Sent, int Accepted)> FloodAsync(LiveModel model)
    {
        int sent = 0, accepted = 0;
        for (int round = 0; round < 12; round++)
        {
            for (int s = 0; s < 4; s++)
            {
                await model.LearnAsync(new Demonstration { Prompt = $"Fact {s}-{round}?", Completion = " noted", Source = $"honest-{s}" });
            }

            for (int k = 0; k < 5; k++)
            {
                sent++;
                LearnReceipt r = await model.LearnAsync(new Demonstration { Prompt = GuardPrompt((round * 5 + k) % Guards), Completion = " WRONG WRONG", Source = "mallory" });
                accepted += r.Accepted ? 1 : 0;
            }

            await model.WaitForIdleAsync();
        }

        return (sent, accepted);
    }

    private static string GuardPrompt(int i) => $"Guard question {i}?";

    /// <summary>What the fresh model answers each guard prompt now (greedy): the owner says it must keep answering so.</summary>
    private static async Task<GuardExample[]> CurrentAnswersAsync()
    {
        await using LiveModel fresh = LiveTestKit.Create();
        var guards = new GuardExample[Guards];
        for (int i = 0; i < Guards; i++)
        {
            string answer = (await fresh.CompleteAsync(GuardPrompt(i), new GenerationOptions { MaxTokens = 3 })).Text;
            guards[i] = new GuardExample { Name = $"guard {i}", Prompt = GuardPrompt(i), Expected = answer };
        }

        return guards;
    }

    private static async Task<double> AccuracyAsync(LiveModel model, GuardExample[] guards)
    {
        int passed = 0;
        foreach (GuardExample g in guards)
        {
            string answer = (await model.CompleteAsync(g.Prompt!, new GenerationOptions { MaxTokens = 3 })).Text;
            passed += answer.Trim().StartsWith(g.Expected.Trim(), StringComparison.Ordinal) ? 1 : 0;
        }

        return (double)passed / guards.Length;
    }
}
