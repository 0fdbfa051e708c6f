using LiveLearning.Governance;
using NUnit.Framework;

namespace LiveLearning.Tests.Governance;

[TestFixture]
public sealed class SchemaRuleTests
{
    [Test]
    public async Task LimitsHoldExactlyAtTheBoundary()
    {
        var rule = new SchemaRule(new SchemaRuleOptions { MaxCompletionCharacters = 5 });
        Assert.That(await Check(rule, new Demonstration { Prompt = "p", Completion = "12345", Source = "a" }), Is.Null);
        Assert.That(await Check(rule, new Demonstration { Prompt = "p", Completion = "123456", Source = "a" }), Does.Contain("6 characters; at most 5"));
    }

    [TestCase("bad\u0001text", "control character U+0001")]
    [TestCase("was \uFFFD bytes", "not valid UTF-8")]
    public async Task InvalidTextIsNamed(string completion, string expected)
    {
        string? problem = await Check(new SchemaRule(), new Demonstration { Prompt = "p", Completion = completion, Source = "a" });
        Assert.That(problem, Does.Contain(expected));
    }

    [Test]
    public async Task AnUnpairedSurrogateIsNamed()
    {
        // Built at run time: an attribute argument cannot hold a lone surrogate.
        string completion = "half " + '\uD800' + " pair";
        Assert.That(await Check(new SchemaRule(), new Demonstration { Prompt = "p", Completion = completion, Source = "a" }), Does.Contain("unpaired surrogate"));
    }

    [Test]
    public async Task SourceIdsFollowThePattern()
    {
        Assert.That(await Check(new SchemaRule(), new Demonstration { Prompt = "p", Completion = "c", Source = "../etc" }), Is.Null.Or.Contain("source"));
        Assert.That(await Check(new SchemaRule(), new Demonstration { Prompt = "p", Completion = "c", Source = "a b" }), Does.Contain("source id does not match"));
        Assert.That(() => new SchemaRule(new SchemaRuleOptions { SourcePattern = "(" }), Throws.ArgumentException.With.Message.Contains("SourcePattern"));
    }

    [TestCase(RulePolicy.Warn, GateOutcome.Warn)]
    [TestCase(RulePolicy.Drop, GateOutcome.Reject)]
    [TestCase(RulePolicy.Quarantine, GateOutcome.Quarantine)]
    [TestCase(RulePolicy.Fail, GateOutcome.Fail)]
    public async Task APolicyTurnsAViolationIntoItsOutcome(RulePolicy policy, GateOutcome outcome)
    {
        var gate = new PolicyGate(new DelegateRule("no-x", c => c.Feedback.Source == "x" ? "x is not welcome" : null), policy);
        GateDecision refused = await gate.EvaluateAsync(Context(new Demonstration { Prompt = "p", Completion = "c", Source = "x" }), CancellationToken.None);
        GateDecision passed = await gate.EvaluateAsync(Context(new Demonstration { Prompt = "p", Completion = "c", Source = "y" }), CancellationToken.None);
        Assert.That(refused, Is.EqualTo(new GateDecision(outcome, "x is not welcome")));
        Assert.That(passed.Outcome, Is.EqualTo(GateOutcome.Accept));
        Assert.That(gate.Name, Is.EqualTo("no-x"));
    }

    private static GateContext Context(Feedback f) => new("m", "default", f, 1, 1, 0);

    private static ValueTask<string?> Check(IFeedbackRule rule, Feedback f) => rule.CheckAsync(Context(f), CancellationToken.None);
}
