using Microsoft.Extensions.AI;
using NUnit.Framework;

namespace LiveLearning.Tests.Live;

/// <summary>What the live loop must achieve on a small model: corrections learned exactly, preferences and ratings moving the right way.</summary>
[TestFixture]
public sealed class LiveLearningOutcomeTests
{
    private static readonly (string Prompt, string Completion)[] Corrections =
    [
        ("The capital of France is", " Paris."),
        ("Two plus two is", " four."),
        ("The sky is", " blue today."),
    ];

    [Test]
    public async Task AHandfulOfCorrectionsAreReproducedByGreedyDecodingWithinTwentyStepsEach()
    {
        // Three corrections learned together, 20 optimizer steps on their batch (StepsPerItem = 20).
        var log = new CapturingLoggerProvider();
        await using LiveModel model = LiveTestKit.Create(o => o.Learner.StepsPerItem = 20, new LiveModelServices { LoggerFactory = log });
        foreach ((string prompt, string completion) in Corrections)
        {
            string before = (await model.CompleteAsync(prompt, new GenerationOptions { MaxTokens = 16 })).Text;
            Assert.That(before, Is.Not.EqualTo(completion), "the base model does not already say it");
        }

        model.PauseLearning();
        foreach ((string prompt, string completion) in Corrections)
        {
            LearnReceipt receipt = await model.LearnAsync(new Demonstration { Prompt = prompt, Completion = completion });
            Assert.That(receipt.Accepted, Is.True, receipt.Message);
        }

        model.ResumeLearning();
        await model.WaitForIdleAsync();
        Assert.That(model.GetStatistics()[model.Version.Scope].Steps, Is.EqualTo(20));
        foreach ((string prompt, string completion) in Corrections)
        {
            LiveCompletion after = await model.CompleteAsync(prompt, new GenerationOptions { MaxTokens = 16 });
            Assert.That(after.Text, Is.EqualTo(completion), prompt);
            Assert.That(after.FinishReason, Is.EqualTo(LiveFinishReason.Stop), "it learned where to stop");
            Assert.That(after.Version, Is.EqualTo(model.Version));
        }
    }

    [Test]
    public async Task APreferencePairRaisesTheChosenMinusRejectedMargin()
    {
        await using LiveModel model = LiveTestKit.Create(o => o.Learner.StepsPerItem = 10);
        const string Prompt = "My favourite colour is";
        double before = await Margin(model, Prompt, " green", " purple");
        LearnReceipt receipt = await model.LearnAsync(new Preference { Prompt = Prompt, Chosen = " green", Rejected = " purple" });
        Assert.That(receipt.Accepted, Is.True, receipt.Message);
        await model.WaitForIdleAsync();
        double after = await Margin(model, Prompt, " green", " purple");
        TestContext.Out.WriteLine($"log p(chosen) - log p(rejected): {before:F3} -> {after:F3}");
        Assert.That(after, Is.GreaterThan(before + 1.0), "ten DPO steps move the margin by more than one nat");
        ProgressiveValidation progressive = model.GetStatistics()["default"].Progressive;
        Assert.That(progressive.PreferenceItems, Is.EqualTo(1));
        // Progressive validation reports DPO's implicit reward margin before learning: a fresh adapter adds nothing to the
        // reference's preference, so it is 0 (up to the rounding of two code paths scoring the same weights).
        Assert.That(progressive.MeanPreferenceMargin, Is.EqualTo(0).Within(1e-3));
        Assert.That(progressive.PreferenceAccuracy, Is.Zero.Or.EqualTo(1), "one item: right or not");
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task ARatingOfAServedResponseMovesItsLikelihoodTheRightWay(bool thumbsUp)
    {
        await using LiveModel model = LiveTestKit.Create(o => o.Learner.StepsPerItem = 10);
        const string Prompt = "Tell me a joke:";
        LiveCompletion served = await model.CompleteAsync(Prompt, new GenerationOptions { MaxTokens = 12, Temperature = 1, Seed = 3 });
        Assert.That(served.Text, Is.Not.Empty);
        double before = (await model.ScoreAsync(Prompt, served.Text)).Score.LogLikelihood;
        LearnReceipt receipt = await model.LearnAsync(thumbsUp ? Feedback.ThumbsUp(served.ResponseId) : Feedback.ThumbsDown(served.ResponseId));
        Assert.That(receipt.Accepted, Is.True, receipt.Message);
        await model.WaitForIdleAsync();
        double after = (await model.ScoreAsync(Prompt, served.Text)).Score.LogLikelihood;
        TestContext.Out.WriteLine($"log p(served): {before:F3} -> {after:F3}");
        Assert.That(after, thumbsUp ? Is.GreaterThan(before + 0.5) : Is.LessThan(before - 0.5));
    }

    [Test]
    public async Task ACorrectionByResponseIdTeachesTheAnswerToTheServedPrompt()
    {
        await using LiveModel model = LiveTestKit.Create(o => o.Learner.StepsPerItem = 20);
        ChatMessage[] chat = [new(ChatRole.User, "What is the capital of France?")];
        LiveCompletion served = await model.CompleteAsync(chat, new GenerationOptions { MaxTokens = 12 });
        Assert.That(served.Text, Is.Not.EqualTo("Paris."));
        LearnReceipt receipt = await model.LearnAsync(Feedback.Correction(served.ResponseId, "Paris."));
        Assert.That(receipt.Accepted, Is.True, receipt.Message);
        await model.WaitForIdleAsync();
        LiveCompletion again = await model.CompleteAsync(chat, new GenerationOptions { MaxTokens = 12 });
        Assert.That(again.Text, Is.EqualTo("Paris."));
        Assert.That(again.FinishReason, Is.EqualTo(LiveFinishReason.Stop), "the end-of-turn token was learned too");
    }

    private static async Task<double> Margin(LiveModel model, string prompt, string chosen, string rejected) =>
        (await model.ScoreAsync(prompt, chosen)).Score.LogLikelihood - (await model.ScoreAsync(prompt, rejected)).Score.LogLikelihood;
}
