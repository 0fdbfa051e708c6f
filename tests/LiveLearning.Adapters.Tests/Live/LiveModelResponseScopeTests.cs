using NUnit.Framework;

namespace LiveLearning.Tests.Live;

/// <summary>Feedback on a response teaches the scope that served it or one it stacks on, never a sibling's.</summary>
[TestFixture]
public sealed class LiveModelResponseScopeTests
{
    [Test]
    public async Task AResponseTeachesItsScopeOrAnAncestorButNotASibling()
    {
        await using LiveModel model = LiveTestKit.Create();
        model.CreateScope(new ScopeOptions { Name = "user-alice", Parent = "default" });
        model.CreateScope(new ScopeOptions { Name = "user-bob", Parent = "default" });
        LiveCompletion answer = await model.CompleteAsync("Alice's private question?", new GenerationOptions { MaxTokens = 2 }, "user-alice");

        LearnReceipt sibling = await model.LearnAsync(new Rating { ResponseId = answer.ResponseId, Positive = true, Scope = "user-bob" });
        Assert.That(sibling.Accepted, Is.False);
        Assert.That(sibling.Reason, Is.EqualTo(RejectionReason.ResponseScope));
        Assert.That(sibling.Message, Does.Contain("served by scope 'user-alice'"));

        Assert.That((await model.LearnAsync(new Rating { ResponseId = answer.ResponseId, Positive = true, Scope = "default" })).Accepted, Is.True, "the organisation's scope below it");
        Assert.That((await model.LearnAsync(new Rating { ResponseId = answer.ResponseId, Positive = true })).Accepted, Is.True, "no scope: the one that served it");
    }
}
