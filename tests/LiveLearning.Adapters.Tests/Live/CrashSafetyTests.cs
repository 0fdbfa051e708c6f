using LiveLearning.CrashHarness;
using NUnit.Framework;

namespace LiveLearning.Tests.Live;

/// <summary>
/// SIGKILL at random points while a child process learns under load: after every kill, every acknowledged item is in
/// the journal exactly once, every snapshot verifies, and the next child recovers, serves and learns.
/// </summary>
[TestFixture]
[Category("Crash")]
public sealed class CrashSafetyTests
{
    [Test]
    [CancelAfter(900_000)]
    public async Task FiftyKillsLoseNothingAndEveryRestartServesAndLearns(CancellationToken cancellationToken)
    {
        // CI runs the Release build: 50 kills. A Debug build learns (and so recovers) many times slower: 10 there.
        bool optimized = typeof(LiveModel).Assembly.GetCustomAttributes(typeof(System.Diagnostics.DebuggableAttribute), false)
            is not [System.Diagnostics.DebuggableAttribute { IsJITOptimizerDisabled: true }];
        int kills = optimized ? 50 : 10;
        CrashReport report = await Harness.RunAsync(new CrashOptions { Kills = kills, Seed = 2026, MaxRun = TimeSpan.FromMilliseconds(400) }, TestContext.Out, cancellationToken);
        TestContext.Out.WriteLine(report);
        Assert.That(report.Problems, Is.Empty);
        Assert.That(report.Lost, Is.Zero);
        Assert.That(report.Duplicated, Is.Zero);
        Assert.That(report.UnreadableSnapshots, Is.Zero);
        Assert.That(report.FailedRestarts, Is.Zero);
        Assert.That(report.Kills, Is.EqualTo(kills));
        Assert.That(report.Acknowledged, Is.GreaterThanOrEqualTo(kills), "every child acknowledged items");
        Assert.That(report.JournalRecords, Is.GreaterThanOrEqualTo(report.Acknowledged));
    }
}
