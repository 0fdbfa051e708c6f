using Microsoft.Extensions.AI;
using NUnit.Framework;

namespace LiveLearning.Tests.Live;

/// <summary>Bad input: each case is a typed exception or a rejected receipt naming the reason, and changes nothing.</summary>
[TestFixture]
public sealed class LiveModelInputTests
{
    private LiveModel _model = null!;

    [OneTimeSetUp]
    public void CreateModel() => _model = LiveTestKit.Create(o =>
    {
        o.MaxCompletionTokens = 64;
        o.Learner.BackPressure = BackPressure.FailFast;
    });

    [OneTimeTearDown]
    public async Task DisposeModel() => await _model.DisposeAsync();

    [Test]
    public async Task EmptyTextsAreRejectedWithTheReason()
    {
        await AssertRejected(new Demonstration { Prompt = "", Completion = " x" }, RejectionReason.EmptyText, "prompt");
        await AssertRejected(new Demonstration { Prompt = "Hello", Completion = "" }, RejectionReason.EmptyText, "completion");
        await AssertRejected(new Demonstration { Messages = [], Completion = " x" }, RejectionReason.EmptyText, "prompt");
        await AssertRejected(new Preference { Prompt = "Hello", Chosen = " a", Rejected = "" }, RejectionReason.EmptyText, "rejected");
    }

    [Test]
    public async Task TextPastTheContextOrTheLimitsIsRejectedAsTooLong()
    {
        string huge = string.Concat(Enumerable.Repeat("word ", 600));
        await AssertRejected(new Demonstration { Prompt = huge, Completion = " x" }, RejectionReason.TooLong, "context length");
        await AssertRejected(new Demonstration { Prompt = "Hi", Completion = string.Concat(Enumerable.Repeat(" abc", 40)) }, RejectionReason.TooLong, "MaxCompletionTokens");
        Assert.That(() => _model.CompleteAsync(huge), Throws.ArgumentException.With.Message.Contains("context length"));
        Assert.That(() => _model.CompleteAsync(""), Throws.ArgumentException.With.Message.Contains("empty"));
    }

    [TestCase(double.NaN)]
    [TestCase(double.PositiveInfinity)]
    [TestCase(0.0)]
    [TestCase(-1.0)]
    public async Task WeightsThatAreNotPositiveAndFiniteAreRejected(double weight) =>
        await AssertRejected(new Demonstration { Prompt = "Hi", Completion = " there", Weight = weight }, RejectionReason.InvalidWeight, "Weight");

    [Test]
    public async Task AnUnknownResponseIdIsRejectedAndAnUnknownScopeThrows()
    {
        await AssertRejected(Feedback.ThumbsUp("resp_does_not_exist"), RejectionReason.UnknownResponse, "resp_does_not_exist");
        Assert.That(async () => await _model.LearnAsync(new Demonstration { Prompt = "Hi", Completion = " x", Scope = "nobody" }), Throws.InstanceOf<ScopeNotFoundException>().With.Message.Contains("nobody"));
        Assert.That(() => _model.CompleteAsync("Hi", scope: "nobody"), Throws.InstanceOf<ScopeNotFoundException>());
        Assert.That(() => _model.GetVersion("nobody"), Throws.InstanceOf<ScopeNotFoundException>());
        Assert.That(async () => await _model.RollbackAsync("nobody@3"), Throws.InstanceOf<KeyNotFoundException>());
        Assert.That(async () => await _model.RollbackAsync("default@999"), Throws.InstanceOf<KeyNotFoundException>().With.Message.Contains("default@999"));
    }

    [Test]
    public void AnItemMustStateItsPromptInExactlyOneWay()
    {
        Assert.That(async () => await _model.LearnAsync(new Demonstration { Completion = " x" }), Throws.ArgumentException.With.Message.Contains("exactly one way"));
        Assert.That(async () => await _model.LearnAsync(new Demonstration { Prompt = "a", Messages = [new ChatMessage(ChatRole.User, "b")], Completion = " x" }), Throws.ArgumentException.With.Message.Contains("gives 2"));
        Assert.That(async () => await _model.LearnAsync(new Rating { Prompt = "a", Positive = true }), Throws.ArgumentException.With.Message.Contains("Completion"));
        Assert.That(async () => await _model.LearnAsync(new Demonstration { Prompt = "a", Completion = " x", Source = " " }), Throws.ArgumentException.With.Message.Contains("Source"));
        Assert.That(async () => await _model.LearnAsync(null!), Throws.ArgumentNullException);
    }

    [Test]
    public void ChatMessagesTheTemplateCannotRenderAreRefused()
    {
        Assert.That(() => _model.CompleteAsync([new ChatMessage(ChatRole.Tool, "42")]), Throws.ArgumentException.With.Message.Contains("role"));
        Assert.That(() => _model.CompleteAsync([new ChatMessage(ChatRole.User, [new DataContent(new byte[] { 1, 2 }, "image/png")])]), Throws.ArgumentException.With.Message.Contains("text only"));
    }

    [Test]
    public void BadGenerationOptionsNameTheOption()
    {
        Assert.That(() => _model.CompleteAsync("Hi", new GenerationOptions { TopP = 0 }), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("TopP"));
        Assert.That(() => _model.CompleteAsync("Hi", new GenerationOptions { Temperature = float.NaN }), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("Temperature"));
    }

    [Test]
    public async Task AFullQueueFailsFastWithAReceiptWhenSoConfigured()
    {
        await using LiveModel model = LiveTestKit.Create(o =>
        {
            o.Learner.QueueCapacity = 2;
            o.Learner.BackPressure = BackPressure.FailFast;
        });
        model.PauseLearning();
        Assert.That((await model.LearnAsync(new Demonstration { Prompt = "a", Completion = " b" })).Accepted, Is.True);
        Assert.That((await model.LearnAsync(new Demonstration { Prompt = "c", Completion = " d" })).Accepted, Is.True);
        LearnReceipt full = await model.LearnAsync(new Demonstration { Prompt = "e", Completion = " f" });
        Assert.That(full.Accepted, Is.False);
        Assert.That(full.Reason, Is.EqualTo(RejectionReason.QueueFull));
        model.ResumeLearning();
        await model.WaitForIdleAsync();
        Assert.That((await model.LearnAsync(new Demonstration { Prompt = "e", Completion = " f" })).Accepted, Is.True, "room again once learned");
    }

    [Test]
    public void InvalidOptionsAreRefusedWithEveryProblemNamed()
    {
        var options = new LiveModelOptions { DefaultScope = "bad scope", VersionHistoryCapacity = 0 };
        options.Learner.MaxBatchItems = 0;
        options.Learner.Optimizer = new OptimizerOptions { LearningRate = -1 };
        options.Scopes.Add(new ScopeOptions { Name = "child", Parent = "missing" });
        IReadOnlyList<string> problems = options.Validate();
        Assert.That(problems, Has.Some.Contains("DefaultScope"));
        Assert.That(problems, Has.Some.Contains("VersionHistoryCapacity"));
        Assert.That(problems, Has.Some.Contains("Learner.MaxBatchItems"));
        Assert.That(problems, Has.Some.Contains("Learner.Optimizer.LearningRate"));
        Assert.That(problems, Has.Some.Contains("Scopes[0].Parent"));
        var backend = new LiveLearning.Lora.LoraBackend(LiveLearning.Models.LlamaModel.Load(LiveTestKit.ModelDirectory), LiveTestKit.Lora, ownsModel: true);
        try
        {
            Assert.That(() => new LiveModel(backend, options, ownsBackend: false), Throws.ArgumentException.With.Message.Contains("Learner.MaxBatchItems"));
        }
        finally
        {
            backend.Dispose();
        }
    }

    private async Task AssertRejected(Feedback feedback, RejectionReason reason, string named)
    {
        long learnedBefore = _model.GetStatistics()["default"].Accepted;
        LearnReceipt receipt = await _model.LearnAsync(feedback);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(receipt.Accepted, Is.False);
            Assert.That(receipt.Reason, Is.EqualTo(reason));
            Assert.That(receipt.Message, Does.Contain(named).IgnoreCase);
            Assert.That(_model.GetStatistics()["default"].Accepted, Is.EqualTo(learnedBefore), "nothing was accepted");
        }
    }
}
