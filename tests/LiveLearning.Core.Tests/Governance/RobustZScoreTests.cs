using LiveLearning.Governance;
using NUnit.Framework;

namespace LiveLearning.Tests.Governance;

[TestFixture]
public sealed class RobustZScoreTests
{
    [Test]
    public void MedianAndScaleFollowTheDefinition()
    {
        var z = new RobustZScore(5, minScaleFraction: 0);
        foreach (double v in new[] { 1.0, 2, 3, 4, 100 })
        {
            z.Add(v);
        }

        (double median, double scale) = z.Statistics();
        Assert.That(median, Is.EqualTo(3));
        Assert.That(scale, Is.EqualTo(1.4826 * 1).Within(1e-12), "deviations 2,1,0,1,97: their median is 1");
        Assert.That(z.Score(13), Is.EqualTo(10 / 1.4826).Within(1e-9));
        Assert.That(z.Score(3), Is.Zero);
    }

    [Test]
    public void TheWindowSlidesAndIgnoresNonFiniteValues()
    {
        var z = new RobustZScore(3);
        z.Add(double.NaN);
        Assert.That(z.Count, Is.Zero);
        Assert.That(z.Score(5), Is.Zero, "an empty window judges nothing");
        foreach (double v in new[] { 100.0, 100, 100, 1, 2, 3 })
        {
            z.Add(v);
        }

        Assert.That(z.Count, Is.EqualTo(3));
        Assert.That(z.Statistics().Median, Is.EqualTo(2), "only the last three remain");
        Assert.That(z.Score(double.PositiveInfinity), Is.EqualTo(double.PositiveInfinity));
    }

    [Test]
    public void IdenticalValuesDoNotMakeEveryOtherValueInfinitelySurprising()
    {
        var z = new RobustZScore(8);
        for (int i = 0; i < 8; i++)
        {
            z.Add(2.0);
        }

        Assert.That(z.Score(2.2), Is.EqualTo(0.2 / (0.02 * 2)).Within(1e-9), "the scale's floor is 2 % of the median");
    }

    [Test]
    public void AFewWildValuesBarelyMoveTheReferenceUnlikeTheMean([Random(1, 1000, 20)] int seed)
    {
        // The law: with fewer than a quarter of the window wild, the median stays within the normal values' range and a
        // normal value never scores as an outlier, whatever the wild values are.
        var random = new Random(seed);
        var z = new RobustZScore(64);
        for (int i = 0; i < 64; i++)
        {
            bool wild = i % 5 == 0 && i < 60;
            z.Add(wild ? 1e6 * random.NextDouble() : 3 + random.NextDouble());
        }

        (double median, _) = z.Statistics();
        Assert.That(median, Is.InRange(3.0, 4.0));
        Assert.That(z.Score(3.5), Is.LessThan(8));
        Assert.That(z.Score(50), Is.GreaterThan(8), "a value far outside the normal ones stands out");
    }

    [Test]
    public void BadArgumentsAreRefused()
    {
        Assert.That(() => new RobustZScore(2), Throws.TypeOf<ArgumentOutOfRangeException>());
        Assert.That(() => new RobustZScore(8, double.NaN), Throws.TypeOf<ArgumentOutOfRangeException>());
    }
}
