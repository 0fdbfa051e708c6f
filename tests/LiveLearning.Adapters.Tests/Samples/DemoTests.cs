using LiveLearning.Demo;
using NUnit.Framework;

namespace LiveLearning.Tests.Samples;

/// <summary>The README's demo command: it runs to the end, every claim it prints holds, and it says where its data is.</summary>
[TestFixture]
public sealed class DemoTests
{
    [Test]
    [CancelAfter(600_000)]
    public async Task TheDemoTellsItsStoryAndEveryCheckPasses(CancellationToken cancellationToken)
    {
        string data = Path.Combine(Path.GetTempPath(), "livelearning-demo-test-" + Guid.NewGuid().ToString("N"));
        var output = new StringWriter();
        try
        {
            int exit = await DemoRunner.RunAsync(new DemoOptions { DataDirectory = data }, output, cancellationToken);
            string text = output.ToString();
            TestContext.Out.WriteLine(text);
            Assert.That(exit, Is.Zero);
            Assert.That(text, Does.Contain("demo: all 14 checks passed").And.Not.Contain("✗"));
            Assert.That(text, Does.Contain("the gate refused").And.Contain("influence-cap"));
            Assert.That(text, Does.Contain("the evaluator refused what got through: Candidate"));
            Assert.That(text, Does.Contain("rolled back to last-good").And.Contain("forgot alice: 1 item erased"));
            Assert.That(text, Does.Contain($"ledger:    {Path.Combine(data, "ledger.db")}").And.Contain("hash chain verified"));
            Assert.That(File.Exists(Path.Combine(data, "ledger.db")), Is.True);
        }
        finally
        {
            if (Directory.Exists(data))
            {
                Directory.Delete(data, recursive: true);
            }
        }
    }
}
