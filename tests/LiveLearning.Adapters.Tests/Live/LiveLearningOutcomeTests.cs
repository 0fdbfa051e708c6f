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
}
