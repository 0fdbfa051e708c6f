using LiveLearning.Governance;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using NUnit.Framework;

namespace LiveLearning.Tests.Live;

/// <summary>The gate's built-in rules in a live model: counting accepted items only, naming the rule, owner rate changes.</summary>
[TestFixture]
public sealed class LiveModelGateRuleTests
{
    [Test]
    public async Task ADuplicateOfAnAcceptedItemIsDroppedAndTheReceiptNamesTheRule()
    {
        var ledger = new InMemoryLedger();
        await using LiveModel model = LiveTestKit.Create(services: new LiveModelServices { Ledger = ledger, Gates = [new PolicyGate(new DuplicateRule(), RulePolicy.Drop)] });
        LearnReceipt first = await model.LearnAsync(new Demonstration { Prompt = "Capital of Zorbia?", Completion = " Quux" });
        LearnReceipt again = await model.LearnAsync(new Demonstration { Prompt = "capital of  zorbia?", Completion = " quux" });
        Assert.That(first.Accepted, Is.True);
        Assert.That(again.Accepted, Is.False);
        Assert.That(again.Rule, Is.EqualTo("duplicate"));
        Assert.That(ledger.Entries.Where(e => e.Event == LedgerEvent.Rejected).Select(e => e.Rule), Is.EqualTo(new[] { "duplicate" }));
    }

    [Test]
    public async Task AnItemALaterRuleRefusedCostsItsSourceNothing()
    {
        // The rate rule comes first and would count the item if it counted checks; only acceptance counts.
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 4, 12, 0, 0, TimeSpan.Zero));
        var rate = new RateLimitRule(new RateLimitOptions { Default = new RateLimit(0, 1) }, time);
        IFeedbackGate[] gates = [new PolicyGate(rate, RulePolicy.Drop), new PolicyGate(new DelegateRule("no-spam", c => c.Feedback is Demonstration { Completion: " spam" } ? "spam" : null), RulePolicy.Drop)];
        await using LiveModel model = LiveTestKit.Create(services: new LiveModelServices { Time = time, Gates = gates });
        Assert.That((await model.LearnAsync(new Demonstration { Prompt = "p", Completion = " spam" })).Rule, Is.EqualTo("no-spam"));
        Assert.That((await model.LearnAsync(new Demonstration { Prompt = "p", Completion = " ham" })).Accepted, Is.True, "the refused item took no token");
        Assert.That((await model.LearnAsync(new Demonstration { Prompt = "p", Completion = " eggs" })).Rule, Is.EqualTo("rate-limit"));
    }

    [Test]
    public async Task AnOwnerSetsAndClearsASourceRateAndTheLedgerSaysWho()
    {
        var ledger = new InMemoryLedger();
        var time = new FakeTimeProvider(new DateTimeOffset(2026, 12, 4, 12, 0, 0, TimeSpan.Zero));
        var rate = new RateLimitRule(new RateLimitOptions { Default = new RateLimit(10, 10) }, time);
        await using LiveModel model = LiveTestKit.Create(services: new LiveModelServices { Time = time, Ledger = ledger, Gates = [new PolicyGate(rate, RulePolicy.Drop)] });
        model.SetSourceRate("bot-7", new RateLimit(0, 0), actor: "owner");
        Assert.That((await model.LearnAsync(new Demonstration { Prompt = "p", Completion = " x", Source = "bot-7" })).Rule, Is.EqualTo("rate-limit"));
        model.SetSourceRate("bot-7", null, actor: "owner");
        Assert.That((await model.LearnAsync(new Demonstration { Prompt = "p", Completion = " x", Source = "bot-7" })).Accepted, Is.True);
        LedgerEntry[] changes = [.. ledger.Entries.Where(e => e.Event == LedgerEvent.ControlChanged)];
        Assert.That(changes.Select(e => e.Message), Is.EqualTo(new[] { "Source 'bot-7' limited to 0/s, burst 0.", "Source 'bot-7' returned to the default rate." }));
        Assert.That(changes.Select(e => e.Actor), Is.All.EqualTo("owner"));

        await using LiveModel ungated = LiveTestKit.Create();
        Assert.That(() => ungated.SetSourceRate("bot-7", new RateLimit(1, 1)), Throws.InvalidOperationException.With.Message.Contains("no rate-limit rule"));
    }

    [Test]
    public async Task TheBuilderRegistersRulesWithTheirPoliciesInOrder()
    {
        var services = new ServiceCollection();
        services.AddSingleton<TimeProvider>(new FakeTimeProvider(new DateTimeOffset(2026, 12, 4, 12, 0, 0, TimeSpan.Zero)));
        services.AddLiveLearning()
            .AddGateRule(new SchemaRule(), RulePolicy.Fail)
            .AddGateRule(sp => new RateLimitRule(new RateLimitOptions { Default = new RateLimit(0, 1) }, sp.GetRequiredService<TimeProvider>()))
            .AddGateRule("no-secrets", c => c.Feedback is Demonstration d && d.Completion.Contains("password", StringComparison.OrdinalIgnoreCase) ? "mentions a password" : null, RulePolicy.Quarantine)
            .AddLoraModel("m", o => o.ModelDirectory = LiveTestKit.ModelDirectory);
        await using ServiceProvider provider = services.BuildServiceProvider();
        ILiveModel model = provider.GetRequiredService<ILiveModel>();

        Assert.That(provider.GetServices<IFeedbackGate>().Select(g => (g.Name, ((PolicyGate)g).Policy)), Is.EqualTo(new[] { ("schema", RulePolicy.Fail), ("rate-limit", RulePolicy.Drop), ("no-secrets", RulePolicy.Quarantine) }));
        Assert.That(() => model.LearnAsync(new Demonstration { Prompt = "p", Completion = "c", Source = "a b" }), Throws.InstanceOf<FeedbackRuleException>().With.Property(nameof(FeedbackRuleException.Rule)).EqualTo("schema"));
        LearnReceipt held = await model.LearnAsync(new Demonstration { Prompt = "p", Completion = "my password is hunter2" });
        Assert.That(held.QuarantineId, Is.Not.Null);
        Assert.That((await model.LearnAsync(new Demonstration { Prompt = "p", Completion = " fine" })).Accepted, Is.True, "the quarantined item took no token");
        Assert.That((await model.LearnAsync(new Demonstration { Prompt = "p", Completion = " more" })).Rule, Is.EqualTo("rate-limit"));
        Assert.That(() => new ServiceCollection().AddLiveLearning().AddGateRule(_ => new SchemaRule(), (RulePolicy)99), Throws.InstanceOf<ArgumentOutOfRangeException>());
    }
}
