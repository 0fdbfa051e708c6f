using LiveLearning.Numerics;
using NUnit.Framework;
using static LiveLearning.Tests.Numerics.NnTestHelpers;

namespace LiveLearning.Tests.Numerics;

[TestFixture]
[Category("Kernels")]
public sealed class CrossEntropyTests
{
    private static int[] Targets(int tokens, int vocab, int seed)
    {
        var rng = new Random(seed);
        var targets = new int[tokens];
        for (int t = 0; t < tokens; t++)
        {
            targets[t] = t % 3 == 1 ? -100 : rng.Next(vocab);
        }

        return targets;
    }

    /// <summary>Mean cross-entropy in double, for finite differences.</summary>
    private static double LossD(double[] logits, int[] targets, int tokens, int vocab)
    {
        double total = 0;
        int count = 0;
        for (int t = 0; t < tokens; t++)
        {
            if (targets[t] < 0)
            {
                continue;
            }

            count++;
            double max = double.NegativeInfinity;
            for (int j = 0; j < vocab; j++)
            {
                max = Math.Max(max, logits[(t * vocab) + j]);
            }

            double sum = 0;
            for (int j = 0; j < vocab; j++)
            {
                sum += Math.Exp(logits[(t * vocab) + j] - max);
            }

            total += max + Math.Log(sum) - logits[(t * vocab) + targets[t]];
        }

        return count == 0 ? 0 : total / count;
    }

    [Test]
    public void ForwardBackwardMatchesDoubleReferenceAtEveryVocabWithoutOutOfBoundsWrites()
    {
        const int tokens = 4;
        foreach (int vocab in NonEmptyLengths)
        {
            float[] logits = TestData.Uniform(tokens * vocab, 1200 + vocab, 15f);
            int[] targets = Targets(tokens, vocab, vocab);
            var d = TestData.Guarded(tokens * vocab, fill: 99f);
            float loss = CrossEntropy.ForwardBackward(d.Span, logits, targets, tokens, vocab, 0.5f);
            var expected = new float[tokens * vocab];
            float expectedLoss = NnReference.CrossEntropy(expected, logits, targets, tokens, vocab, 0.5f);
            AssertClose(loss, expectedLoss, 1e-6, 1e-6, $"loss vocab={vocab}");
            AssertClose(d.Span, expected, 2e-5, 1e-7, $"dLogits vocab={vocab}");
            d.AssertGuardsIntact();

            var logProbs = TestData.Guarded(tokens, fill: 99f);
            CrossEntropy.TargetLogProbabilities(logProbs.Span, logits, targets, tokens, vocab);
            var row = new float[vocab];
            for (int t = 0; t < tokens; t++)
            {
                float want = 0;
                if (targets[t] >= 0)
                {
                    NnReference.LogSoftmax(row, logits.AsSpan(t * vocab, vocab));
                    want = row[targets[t]];
                }

                AssertClose(logProbs.Span[t], want, 1e-6, 2e-6, $"log p row {t} vocab={vocab}");
            }

            logProbs.AssertGuardsIntact();
        }
    }

    [TestCase(1)]
    [TestCase(5)]
    [TestCase(37)]
    [TestCase(300)]
    public void GradientMatchesFiniteDifferencesOfTheMeanLoss(int vocab)
    {
        const int tokens = 3;
        float[] logits = TestData.Uniform(tokens * vocab, 70 + vocab, 4f);
        int[] targets = Targets(tokens, vocab, 71 + vocab);
        var d = new float[tokens * vocab];
        CrossEntropy.ForwardBackward(d, logits, targets, tokens, vocab);
        double[] fd = FiniteDifferenceGradient(logits, x => LossD(x, targets, tokens, vocab));
        AssertGradientClose(d, fd, 1e-5, "dLogits", termScale: 1.0 / 2);
        AssertClose(CrossEntropy.ForwardBackward(Span<float>.Empty, logits, targets, tokens, vocab), LossD(Array.ConvertAll(logits, v => (double)v), targets, tokens, vocab), 1e-6, 1e-7, "loss");
    }

    [Test]
    public void IgnoredRowsGetZeroGradientAndDoNotCountInTheMean()
    {
        const int vocab = 50;
        float[] logits = TestData.Uniform(3 * vocab, 80, 3f);
        var d = Enumerable.Repeat(5f, 3 * vocab).ToArray();
        float loss = CrossEntropy.ForwardBackward(d, logits, [-100, 7, -1], 3, vocab);
        var single = new float[vocab];
        float lossSingle = CrossEntropy.ForwardBackward(single, logits.AsSpan(vocab, vocab), [7], 1, vocab);
        Assert.That(loss, Is.EqualTo(lossSingle));
        Assert.That(d.Take(vocab), Is.All.EqualTo(0f));
        Assert.That(d.Skip(2 * vocab), Is.All.EqualTo(0f));
        Assert.That(d.Skip(vocab).Take(vocab), Is.EqualTo(single));
        Assert.That(d.Sum(), Is.EqualTo(0f).Within(1e-6f), "each counted row of softmax − onehot sums to 0");
    }

    [Test]
    public void AllRowsIgnoredGivesZeroLossAndZeroGradient()
    {
        var d = Enumerable.Repeat(5f, 2 * 10).ToArray();
        float loss = CrossEntropy.ForwardBackward(d, TestData.Uniform(20, 81), [-100, -100], 2, 10);
        Assert.That(loss, Is.EqualTo(0f));
        Assert.That(d, Is.All.EqualTo(0f));
        Assert.That(CrossEntropy.ForwardBackward(Span<float>.Empty, ReadOnlySpan<float>.Empty, ReadOnlySpan<int>.Empty, 0, 10), Is.EqualTo(0f));
    }

    [Test]
    public void HugeLogitsGiveFiniteLossAndGradient()
    {
        const int vocab = 21;
        var logits = new float[2 * vocab];
        logits.AsSpan().Fill(-1e30f);
        logits[3] = 1e30f;
        logits[vocab + 5] = 1e30f;
        var d = new float[2 * vocab];
        float right = CrossEntropy.ForwardBackward(d, logits, [3, -100], 2, vocab);
        Assert.That(right, Is.EqualTo(0f).Within(1e-6f), "vector exp(0) may be an ulp above 1");
        Assert.That(d.All(float.IsFinite), Is.True);
        Assert.That(d, Is.All.EqualTo(0f).Within(1e-6f), "a certain, correct prediction has zero gradient");

        float wrong = CrossEntropy.ForwardBackward(d, logits, [3, 6], 2, vocab);
        Assert.That(float.IsFinite(wrong), Is.True);
        Assert.That(wrong, Is.EqualTo(1e30f).Within(1e24f), "mean of 0 and 2e30");
        Assert.That(d.All(float.IsFinite), Is.True);
        Assert.That(d[vocab + 5], Is.EqualTo(0.5f).Within(1e-6f));
        Assert.That(d[vocab + 6], Is.EqualTo(-0.5f).Within(1e-6f));
    }

    [Test]
    public void NaNLogitInACountedRowMakesTheLossNaN()
    {
        float[] logits = TestData.Uniform(2 * 33, 82);
        logits[33 + 30] = float.NaN;
        Assert.That(CrossEntropy.ForwardBackward(new float[66], logits, [1, 2], 2, 33), Is.NaN);
        Assert.That(CrossEntropy.ForwardBackward(new float[66], logits, [1, -100], 2, 33), Is.Not.NaN, "the NaN sits in an ignored row");
        var lp = new float[2];
        CrossEntropy.TargetLogProbabilities(lp, logits, [1, 2], 2, 33);
        Assert.That(lp[1], Is.NaN);
        Assert.That(lp[0], Is.Not.NaN);
    }

    [Test]
    public void PoolGivesBitIdenticalResultsToTheCallingThread()
    {
        const int tokens = 9;
        const int vocab = 1537;
        float[] logits = TestData.Uniform(tokens * vocab, 83, 10f);
        int[] targets = Targets(tokens, vocab, 84);
        var serial = new float[tokens * vocab];
        var parallel = new float[tokens * vocab];
        float a = CrossEntropy.ForwardBackward(serial, logits, targets, tokens, vocab);
        using var pool = new ComputePool(2);
        float b = CrossEntropy.ForwardBackward(parallel, logits, targets, tokens, vocab, pool: pool);
        Assert.That(b, Is.EqualTo(a));
        Assert.That(parallel, Is.EqualTo(serial));
        var lpSerial = new float[tokens];
        var lpParallel = new float[tokens];
        CrossEntropy.TargetLogProbabilities(lpSerial, logits, targets, tokens, vocab);
        CrossEntropy.TargetLogProbabilities(lpParallel, logits, targets, tokens, vocab, pool);
        Assert.That(lpParallel, Is.EqualTo(lpSerial));
    }

    [Test]
    public void GradientInPlaceOverTheLogitsGivesTheSameResult()
    {
        const int tokens = 3;
        const int vocab = 130;
        float[] logits = TestData.Uniform(tokens * vocab, 85, 6f);
        int[] targets = Targets(tokens, vocab, 86);
        var d = new float[logits.Length];
        float loss = CrossEntropy.ForwardBackward(d, logits, targets, tokens, vocab);
        float[] inPlace = (float[])logits.Clone();
        float lossInPlace = CrossEntropy.ForwardBackward(inPlace, inPlace, targets, tokens, vocab);
        Assert.That(lossInPlace, Is.EqualTo(loss));
        Assert.That(inPlace, Is.EqualTo(d));
    }

    [Test]
    public void BadArgumentsThrowWithTheArgumentNameAndWriteNothing()
    {
        float[] logits = new float[2 * 4];
        float[] d = Enumerable.Repeat(3f, 8).ToArray();
        Assert.Multiple(() =>
        {
            Assert.That(() => CrossEntropy.ForwardBackward(d, logits, [0, 4], 2, 4), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("targets"));
            Assert.That(d, Is.All.EqualTo(3f));
            Assert.That(() => CrossEntropy.ForwardBackward(d, logits, [0], 2, 4), Throws.ArgumentException.With.Property("ParamName").EqualTo("targets"));
            Assert.That(() => CrossEntropy.ForwardBackward(d, new float[7], [0, 1], 2, 4), Throws.ArgumentException.With.Property("ParamName").EqualTo("logits"));
            Assert.That(() => CrossEntropy.ForwardBackward(new float[9], logits, [0, 1], 2, 4), Throws.ArgumentException.With.Property("ParamName").EqualTo("dLogits"));
            Assert.That(() => CrossEntropy.ForwardBackward(d, logits, [0, 1], 2, 0), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("vocab"));
            Assert.That(() => CrossEntropy.ForwardBackward(d, logits, [0, 1], -2, 4), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("tokens"));
            float[] shared = new float[9];
            Assert.That(() => CrossEntropy.ForwardBackward(shared.AsSpan(1), shared.AsSpan(0, 8), [0, 1], 2, 4), Throws.ArgumentException.With.Property("ParamName").EqualTo("dLogits"));
            Assert.That(() => CrossEntropy.TargetLogProbabilities(new float[3], logits, [0, 1], 2, 4), Throws.ArgumentException.With.Property("ParamName").EqualTo("logProbs"));
            Assert.That(() => CrossEntropy.TargetLogProbabilities(new float[2], logits, [0, 9], 2, 4), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("targets"));
        });
    }
}
