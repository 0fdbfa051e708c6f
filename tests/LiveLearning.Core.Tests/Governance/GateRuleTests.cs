using FsCheck;
using FsCheck.Fluent;
using LiveLearning.Governance;
using Microsoft.Extensions.Time.Testing;
using NUnit.Framework;

namespace LiveLearning.Tests.Governance;

[TestFixture]
public sealed class GateRuleTests
{
    private static readonly DateTimeOffset Start = new(2026, 12, 4, 12, 0, 0, TimeSpan.Zero);

    [Test]
    public async Task AnExactDuplicateIsCaughtAfterNormalisation()
    {
        var rule = new DuplicateRule();
        Accept(rule, Demo("What is the capital of France?", "Paris."), 1);
        Assert.That(await Check(rule, Demo("  what is the CAPITAL   of france? ", "paris.")), Does.Contain("exact duplicate"));
        Assert.That(await Check(rule, Demo("What is the capital of France?", "Paris."), scope: "other"), Is.Null, "scopes keep their own windows");
        Assert.That(await Check(rule, new Rating { Prompt = "What is the capital of France?", Completion = "Paris.", Positive = true, Source = "a" }), Is.Null, "a rating is not a demonstration");
    }

    [Test]
    public async Task ANearDuplicateIsCaughtAndADifferentItemIsNot()
    {
        var rule = new DuplicateRule();
        string text = "The quarterly report shows revenue grew by twelve percent while operating costs stayed flat across all regions.";
        Accept(rule, Demo("Summarise the report.", text), 7);
        string? near = await Check(rule, Demo("Summarise the report.", text.Replace("twelve", "eleven", StringComparison.Ordinal)));
        Assert.That(near, Does.Contain("near duplicate").And.Contain("#7"));
        Assert.That(await Check(rule, Demo("Summarise the report.", "Costs rose sharply in the northern region, so margins fell to a five-year low.")), Is.Null);
    }

    [Test]
    public async Task OnlyAcceptedItemsAreRememberedAndTheWindowForgetsTheOldest()
    {
        var rule = new DuplicateRule(new DuplicateRuleOptions { Window = 2, NearThreshold = 0 });
        Assert.That(await Check(rule, Demo("p", "one")), Is.Null);
        Assert.That(await Check(rule, Demo("p", "one")), Is.Null, "checked but never accepted: not remembered");
        Accept(rule, Demo("p", "one"), 1);
        Accept(rule, Demo("p", "two"), 2);
        Assert.That(await Check(rule, Demo("p", "one")), Is.Not.Null);
        Accept(rule, Demo("p", "three"), 3);
        Assert.That(await Check(rule, Demo("p", "one")), Is.Null, "pushed out of a window of 2");
        Assert.That(await Check(rule, Demo("p", "two")), Is.Not.Null);
    }

    [Test]
    public void MinHashEstimatesJaccardWithinItsStandardError()
    {
        // Two sets of shingles with a known overlap: texts built from distinct words share exactly the common words' shingles.
        Prop.ForAll(Gen.Choose(5, 60).ToArbitrary(), common =>
        {
            string shared = string.Join(' ', Enumerable.Range(0, common).Select(i => $"w{i:D4}x"));
            string a = shared + " " + string.Join(' ', Enumerable.Range(0, 60 - common).Select(i => $"a{i:D4}y"));
            string b = shared + " " + string.Join(' ', Enumerable.Range(0, 60 - common).Select(i => $"b{i:D4}z"));
            double exact = Jaccard(Shingles(a), Shingles(b));
            double estimate = MinHash.Similarity(MinHash.Signature(a, 5), MinHash.Signature(b, 5));
            double se = Math.Sqrt(exact * (1 - exact) / MinHash.Hashes);
            return Math.Abs(estimate - exact) <= (4 * se) + 0.02;
        }).QuickCheckThrowOnFailure();
    }

    [Test]
    public void SignaturesAreDeterministicAndIdenticalTextsAgreeEverywhere()
    {
        ulong[] a = MinHash.Signature("the same words in the same order", 5);
        ulong[] b = MinHash.Signature("the same words in the same order", 5);
        Assert.That(a, Is.EqualTo(b));
        Assert.That(MinHash.Similarity(a, b), Is.EqualTo(1.0));
        Assert.That(MinHash.Fnv1a("a"), Is.Not.EqualTo(MinHash.Fnv1a("b")));
    }

    [Test]
    public async Task TokenBudgetsLimitAnItemAndASourceOverItsWindow()
    {
        var time = new FakeTimeProvider(Start);
        var rule = new TokenBudgetRule(new TokenBudgetOptions { MaxTokensPerItem = 100, MaxTokensPerSource = 250, Window = TimeSpan.FromMinutes(10) }, time);
        Assert.That(await rule.CheckAsync(Context(Demo("p", "c"), tokens: 101), CancellationToken.None), Does.Contain("101 tokens; at most 100"));
        rule.OnAccepted(Context(Demo("p", "c"), tokens: 100), 1);
        rule.OnAccepted(Context(Demo("p", "c"), tokens: 100), 2);
        Assert.That(await rule.CheckAsync(Context(Demo("p", "c"), tokens: 50), CancellationToken.None), Is.Null, "250 exactly is within");
        Assert.That(await rule.CheckAsync(Context(Demo("p", "c"), tokens: 51), CancellationToken.None), Does.Contain("used 200 of its 250"));
        Assert.That(await rule.CheckAsync(Context(Demo("p", "c", source: "b"), tokens: 100), CancellationToken.None), Is.Null, "another source has its own budget");
        time.Advance(TimeSpan.FromMinutes(10));
        Assert.That(await rule.CheckAsync(Context(Demo("p", "c"), tokens: 100), CancellationToken.None), Is.Null, "the window slid past both charges");
    }

    [Test]
    public async Task ARateLimitAllowsItsBurstThenRefillsAtItsRate()
    {
        var time = new FakeTimeProvider(Start);
        var rule = new RateLimitRule(new RateLimitOptions { Default = new RateLimit(2, 3) }, time);
        for (int i = 0; i < 3; i++)
        {
            Assert.That(await rule.CheckAsync(Context(Demo("p", $"c{i}")), CancellationToken.None), Is.Null);
            rule.OnAccepted(Context(Demo("p", $"c{i}")), i);
        }

        Assert.That(await rule.CheckAsync(Context(Demo("p", "c")), CancellationToken.None), Does.Contain("over its rate (2/s, burst 3)"));
        Assert.That(await rule.CheckAsync(Context(Demo("p", "c", source: "b")), CancellationToken.None), Is.Null);
        time.Advance(TimeSpan.FromMilliseconds(500));
        Assert.That(await rule.CheckAsync(Context(Demo("p", "c")), CancellationToken.None), Is.Null, "half a second at 2/s is one token");
    }

    [Test]
    public async Task APerSourceRateOverridesTheDefaultUntilCleared()
    {
        var time = new FakeTimeProvider(Start);
        var rule = new RateLimitRule(new RateLimitOptions { Default = new RateLimit(1, 10) }, time);
        rule.SetRate("spammer", new RateLimit(0, 0));
        Assert.That(await rule.CheckAsync(Context(Demo("p", "c", source: "spammer")), CancellationToken.None), Does.Contain("0/s, burst 0"));
        Assert.That(rule.Rates, Does.ContainKey("spammer"));
        Assert.That(rule.ClearRate("spammer"), Is.True);
        Assert.That(await rule.CheckAsync(Context(Demo("p", "c", source: "spammer")), CancellationToken.None), Is.Null);
        Assert.That(() => rule.SetRate("x", new RateLimit(double.NaN, 1)), Throws.InstanceOf<ArgumentOutOfRangeException>());
    }

    [Test]
    public async Task TheInfluenceCapHoldsOneSourceToItsShareOfTheWindow()
    {
        var rule = new InfluenceCapRule(new InfluenceCapOptions { MaxShare = 0.5, Window = 10, MinItems = 4 });
        int seq = 0;
        for (int i = 0; i < 3; i++)
        {
            rule.OnAccepted(Context(Demo("p", "c", source: "flood")), ++seq);
        }

        Assert.That(await rule.CheckAsync(Context(Demo("p", "c", source: "flood")), CancellationToken.None), Does.Contain("4 of the scope's last 4 items"), "the window is big enough to cap");
        rule.OnAccepted(Context(Demo("p", "c", source: "a")), ++seq);
        rule.OnAccepted(Context(Demo("p", "c", source: "b")), ++seq);
        Assert.That(await rule.CheckAsync(Context(Demo("p", "c", source: "flood")), CancellationToken.None), Does.Contain("4 of the scope's last 6 items"));
        rule.OnAccepted(Context(Demo("p", "c", source: "c")), ++seq);
        rule.OnAccepted(Context(Demo("p", "c", source: "d")), ++seq);
        Assert.That(await rule.CheckAsync(Context(Demo("p", "c", source: "flood")), CancellationToken.None), Is.Null, "4 of 8 is exactly the share allowed");
        for (int i = 0; i < 10; i++)
        {
            rule.OnAccepted(Context(Demo("p", "c", source: $"other{i}")), ++seq);
        }

        Assert.That(await rule.CheckAsync(Context(Demo("p", "c", source: "flood")), CancellationToken.None), Is.Null, "its old items left the window of 10");
    }

    [Test]
    public void RulesRefuseSettingsOutOfRange()
    {
        Assert.That(() => new DuplicateRule(new DuplicateRuleOptions { NearThreshold = 1.5 }), Throws.ArgumentException.With.Message.Contains("NearThreshold"));
        Assert.That(() => new InfluenceCapRule(new InfluenceCapOptions { MaxShare = 0 }), Throws.ArgumentException.With.Message.Contains("MaxShare"));
        Assert.That(() => new TokenBudgetRule(new TokenBudgetOptions { Window = TimeSpan.Zero }), Throws.ArgumentException.With.Message.Contains("Window"));
        Assert.That(() => new RateLimitRule(new RateLimitOptions { Default = new RateLimit(-1, 1) }), Throws.InstanceOf<ArgumentOutOfRangeException>());
    }

    private static Demonstration Demo(string prompt, string completion, string source = "a") => new() { Prompt = prompt, Completion = completion, Source = source };

    private static GateContext Context(Feedback f, string scope = "default", int tokens = 2) => new("m", scope, f, tokens / 2, tokens - (tokens / 2), 0);

    private static ValueTask<string?> Check(IFeedbackRule rule, Feedback f, string scope = "default") => rule.CheckAsync(Context(f, scope), CancellationToken.None);

    private static void Accept(IFeedbackAcceptanceObserver rule, Feedback f, long sequence, string scope = "default") => rule.OnAccepted(Context(f, scope), sequence);

    private static HashSet<string> Shingles(string text) => [.. Enumerable.Range(0, text.Length - 4).Select(i => text.Substring(i, 5))];

    private static double Jaccard(HashSet<string> a, HashSet<string> b) => (double)a.Intersect(b).Count() / a.Union(b).Count();
}
