using FsCheck;
using FsCheck.Fluent;
using LiveLearning.Governance;
using NUnit.Framework;

namespace LiveLearning.Tests.Governance;

[TestFixture]
public sealed class DriftDetectorTests
{
    private static IEnumerable<IDriftDetector> Detectors()
    {
        yield return new PageHinkley();
        yield return new Adwin();
    }

    [TestCaseSource(nameof(Detectors))]
    public void AStationaryNoisyLossRaisesNoAlarm(IDriftDetector detector)
    {
        var random = new Random(7);
        // As the learner does: reset after each alarm. σ = 1 nat is noisier than most per-token losses.
        int alarms = Enumerable.Range(0, 5_000).Count(_ => AddAndReset(detector, 2.0 + Normal(random)));
        Assert.That(alarms, Is.Zero);
    }

    [TestCaseSource(nameof(Detectors))]
    public void ARiseInTheMeanIsCaughtSoonAfterItHappens(IDriftDetector detector)
    {
        var random = new Random(11);
        for (int i = 0; i < 1_000; i++)
        {
            Assert.That(detector.Add(2.0 + (0.5 * Normal(random))), Is.False);
        }

        int delay = Enumerable.Range(1, 1_000).First(_ => detector.Add(3.0 + (0.5 * Normal(random))));
        TestContext.Out.WriteLine($"{detector.Name}: alarm {delay} items after a rise of 2σ; {detector.LastAlarm!.Message}");
        Assert.That(delay, Is.LessThanOrEqualTo(100));
        Assert.That(detector.LastAlarm.Figures, Is.Not.Empty);
    }

    [TestCaseSource(nameof(Detectors))]
    public void AFallingLossIsNotDrift(IDriftDetector detector)
    {
        var random = new Random(13);
        int alarms = Enumerable.Range(0, 2_000).Count(i => AddAndReset(detector, (i < 1_000 ? 3.0 : 2.0) + (0.3 * Normal(random))));
        Assert.That(alarms, Is.Zero, "a model that learns lowers its loss: no alarm");
    }

    [Test]
    public void AdwinDropsTheOlderWindowAfterAChange()
    {
        var adwin = new Adwin();
        var random = new Random(3);
        for (int i = 0; i < 2_000; i++)
        {
            adwin.Add(1.0 + (0.1 * Normal(random)));
        }

        Assert.That(adwin.Width, Is.EqualTo(2_000));
        for (int i = 0; i < 300; i++)
        {
            adwin.Add(5.0 + (0.1 * Normal(random)));
        }

        Assert.That(adwin.Width, Is.LessThan(400), "the old regime is forgotten");
        Assert.That(adwin.Mean, Is.EqualTo(5.0).Within(0.1));
    }

    [Test]
    public void AdwinsMeanIsExactlyTheMeanOfTheValuesInItsWindow()
    {
        Prop.ForAll(Gen.ArrayOf(Gen.Choose(0, 1000)).ToArbitrary(), values =>
        {
            var adwin = new Adwin(new AdwinOptions { MaxBucketsPerRow = 2 });
            foreach (int v in values)
            {
                adwin.Add(v / 100.0);
            }

            if (adwin.Width == 0)
            {
                return values.Length == 0;
            }

            double expected = values.TakeLast((int)adwin.Width).Average(v => v / 100.0);
            return Math.Abs(adwin.Mean - expected) < 1e-9;
        }).QuickCheckThrowOnFailure();
    }

    [Test]
    public void ResetForgetsAndNonFiniteValuesAreIgnored()
    {
        var ph = new PageHinkley(new PageHinkleyOptions { MinItems = 1, Threshold = 1 });
        Assert.That(ph.Add(double.NaN), Is.False);
        Assert.That(ph.Add(0), Is.False);
        Assert.That(ph.Add(10), Is.True);
        ph.Reset();
        Assert.That(ph.Add(10), Is.False, "after a reset, 10 is the running mean");
        Assert.That(() => new PageHinkley(new PageHinkleyOptions { Threshold = 0 }), Throws.ArgumentException);
        Assert.That(() => new Adwin(new AdwinOptions { Delta = 1 }), Throws.ArgumentException);
    }

    private static bool AddAndReset(IDriftDetector detector, double value)
    {
        bool alarm = detector.Add(value);
        if (alarm)
        {
            detector.Reset();
        }

        return alarm;
    }

    private static double Normal(Random random) => Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
}
