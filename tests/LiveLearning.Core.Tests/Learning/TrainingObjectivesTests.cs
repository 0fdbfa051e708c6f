using FsCheck;
using FsCheck.Fluent;
using LiveLearning.Backends;
using NUnit.Framework;

namespace LiveLearning.Tests.Learning;

[TestFixture]
public sealed class TrainingObjectivesTests
{
    private const double Ln2 = 0.69314718055994530942;

    /// <summary>A batch mixing completions, preferences and ratings, with the settings and inputs of one <see cref="TrainingObjectives.Weigh"/> call.</summary>
    public sealed record Batch(TrainingExample[] Examples, ObjectiveOptions Options, double[] LogLikelihoods, int[] CountedTokens, int Seed)
    {
        public override string ToString() => $"seed {Seed}: {Examples.Length} examples ({string.Join(", ", Examples.Select(e => $"{e.Objective}{(e.Objective == TrainingObjective.Rating ? e.Desirable ? "+" : "-" : "")} w={e.Weight:G4}"))}), {Options}";
    }

    [Test]
    public void EachWeightIsTheDerivativeOfTheObjectiveWithRespectToItsSequencesCrossEntropy()
    {
        PropertyRuns.Check(Prop.ForAll(Batches().ToArbitrary(), WeightsMatchFiniteDifferences), seed: 4242, cases: 300);
    }

    [Test]
    public void ScalingEveryExampleWeightScalesTheObjectiveAndEverySequenceWeight()
    {
        // Weights count in absolute terms (the objective is the mean of w_i · L_i over the N examples), so an item of
        // weight 2 pulls twice as hard whether it is alone in its batch or not.
        PropertyRuns.Check(
            Prop.ForAll(Batches().ToArbitrary(), Gen.Elements(0.001, 0.5, 3.0, 1000.0).ToArbitrary(), (batch, scale) =>
            {
                TrainingExample[] scaled = [.. batch.Examples.Select(e => e with { Weight = e.Weight * scale })];
                var a = new float[batch.CountedTokens.Length];
                var b = new float[batch.CountedTokens.Length];
                double la = TrainingObjectives.Weigh(batch.Examples, batch.Options, batch.LogLikelihoods, batch.CountedTokens, a);
                double lb = TrainingObjectives.Weigh(scaled, batch.Options, batch.LogLikelihoods, batch.CountedTokens, b);
                bool weightsAgree = a.Zip(b).All(p => Math.Abs((scale * p.First) - p.Second) <= 1e-5 * Math.Max(1e-3, Math.Abs(scale * p.First)));
                return Math.Abs((scale * la) - lb) <= 1e-12 * Math.Max(1, Math.Abs(scale * la)) && weightsAgree;
            }),
            seed: 99,
            cases: 200);
    }

    [Test]
    public void DpoLossAtEqualMarginsIsLn2TimesTheMeanWeight()
    {
        var options = new ObjectiveOptions { DpoBeta = 0.3 };

        // Preferences only: each pair's loss is ln 2 whatever the margins' common value, so the batch's is ln 2 × the mean weight (1.5).
        TrainingExample[] preferences =
        [
            Preference(weight: 1, referenceChosen: -10, referenceRejected: -12),
            Preference(weight: 3, referenceChosen: -4, referenceRejected: -4),
            Preference(weight: 0.5, referenceChosen: -20, referenceRejected: -7),
        ];
        // ll_c − ref_c = ll_r − ref_r for each pair.
        double[] ll = [-11, -13, -5, -5, -21, -8];
        var weights = new float[6];
        double loss = TrainingObjectives.Weigh(preferences, options, ll, [3, 3, 4, 4, 5, 5], weights);

        // One preference (weight 2, one of three examples) among completions whose cross-entropy is 0.
        TrainingExample[] mixed = [Completion(weight: 1), Preference(weight: 2, referenceChosen: -3, referenceRejected: -9), Completion(weight: 2)];
        var mixedWeights = new float[4];
        double mixedLoss = TrainingObjectives.Weigh(mixed, options, [0, -4, -10, 0], [2, 5, 5, 7], mixedWeights);

        using (Assert.EnterMultipleScope())
        {
            Assert.That(loss, Is.EqualTo(1.5 * Ln2).Within(1e-15));
            for (int i = 0; i < 3; i++)
            {
                // σ(0) = 1/2: ±(w/N)·β/2 on chosen and rejected.
                double w = preferences[i].Weight / 3;
                Assert.That(weights[2 * i], Is.EqualTo(w * 0.3 / 2).Within(1e-7), $"chosen {i}");
                Assert.That(weights[(2 * i) + 1], Is.EqualTo(-w * 0.3 / 2).Within(1e-7), $"rejected {i}");
            }

            Assert.That(mixedLoss, Is.EqualTo(2.0 / 3 * Ln2).Within(1e-15));
        }
    }

    [Test]
    public void CompletionOnlyBatchWithoutLogLikelihoodsGivesMeanWeightsAndReturnsZero()
    {
        TrainingExample[] batch = [Completion(weight: 1), Completion(weight: 3), Completion(weight: 0.5), Completion(weight: 2)];
        int[] tokens = [4, 7, 1, 0];
        var weights = new float[4];
        double loss = TrainingObjectives.Weigh(batch, new ObjectiveOptions(), ReadOnlySpan<double>.Empty, tokens, weights);
        const double total = 4; // examples: the mean is over the batch's items, whatever their weights
        using (Assert.EnterMultipleScope())
        {
            Assert.That(loss, Is.Zero);
            Assert.That(TrainingObjectives.NeedsLogLikelihoods(batch), Is.False);
            Assert.That(weights[0], Is.EqualTo((float)(1 / total / 4)));
            Assert.That(weights[1], Is.EqualTo((float)(3 / total / 7)));
            Assert.That(weights[2], Is.EqualTo((float)(0.5 / total / 1)));
            Assert.That(weights[3], Is.Zero, "a completion without labelled tokens weighs nothing");
        }
    }

    [Test]
    public void CompletionOnlyBatchWithLogLikelihoodsReturnsTheWeightedMeanCrossEntropy()
    {
        TrainingExample[] batch = [Completion(weight: 1), Completion(weight: 3)];
        var weights = new float[2];
        double loss = TrainingObjectives.Weigh(batch, new ObjectiveOptions(), [-8, -14], [4, 7], weights);
        Assert.That(loss, Is.EqualTo(((1 * 8.0 / 4) + (3 * 14.0 / 7)) / 2).Within(1e-15));
    }

    [Test]
    public void SequencesAreCountedExampleByExample()
    {
        TrainingExample[] batch = [Completion(1), Preference(1, 0, 0), Rating(1, desirable: false, reference: 0), Preference(1, 0, 0)];
        using (Assert.EnterMultipleScope())
        {
            Assert.That(TrainingObjectives.SequenceCount(batch), Is.EqualTo(6));
            Assert.That(TrainingObjectives.NeedsLogLikelihoods(batch), Is.True);
            Assert.That(TrainingObjectives.NeedsLogLikelihoods([Completion(1), Rating(1, true, 0)]), Is.True);
            Assert.That(TrainingObjectives.SequenceCount([]), Is.Zero);
        }
    }

    [Test]
    public void MismatchedSpansAndMissingLogLikelihoodsAreRefused()
    {
        var options = new ObjectiveOptions();
        TrainingExample[] mixed = [Completion(1), Preference(1, -3, -4)];
        TrainingExample[] rated = [Rating(1, desirable: true, reference: -2)];
        using (Assert.EnterMultipleScope())
        {
            Assert.That(() => TrainingObjectives.Weigh(mixed, options, new double[3], new int[2], new float[3]), Throws.ArgumentException, "countedTokens too short");
            Assert.That(() => TrainingObjectives.Weigh(mixed, options, new double[3], new int[3], new float[4]), Throws.ArgumentException, "weights too long");
            Assert.That(() => TrainingObjectives.Weigh(mixed, options, new double[2], new int[3], new float[3]), Throws.ArgumentException, "logLikelihoods too short");
            Assert.That(() => TrainingObjectives.Weigh(mixed, options, new double[4], new int[3], new float[3]), Throws.ArgumentException, "logLikelihoods too long");
            Assert.That(() => TrainingObjectives.Weigh(mixed, options, ReadOnlySpan<double>.Empty, new int[3], new float[3]), Throws.ArgumentException, "preference without log-likelihoods");
            Assert.That(() => TrainingObjectives.Weigh(rated, options, ReadOnlySpan<double>.Empty, new int[1], new float[1]), Throws.ArgumentException, "rating without log-likelihoods");
            Assert.That(() => TrainingObjectives.Weigh(null!, options, ReadOnlySpan<double>.Empty, [], []), Throws.ArgumentNullException);
            Assert.That(() => TrainingObjectives.Weigh(rated, null!, new double[1], new int[1], new float[1]), Throws.ArgumentNullException);
        }
    }

    [Test]
    public void SigmoidAndSoftplusAreFiniteAndAccurateUpToMagnitude1000()
    {
        var problems = new List<string>();
        for (int i = -4000; i <= 4000; i++)
        {
            double x = i / 4.0;
            double sigmoid = TrainingObjectives.Sigmoid(x);
            double softplus = TrainingObjectives.Softplus(x);

            // σ: relative accuracy, down to the underflow of e^x (for x < −700, σ(x) = e^x to double precision).
            double sigmoidReference = x >= -700 ? 1 / (1 + Math.Exp(-x)) : Math.Exp(x);

            // softplus = −log σ(−x): accurate to a few ulps of max(1, value) (what a loss sum can resolve).
            double softplusReference = SoftplusReference(x);
            if (!double.IsFinite(sigmoid) || !double.IsFinite(softplus)
                || !(Math.Abs(sigmoid - sigmoidReference) <= 1e-15 * sigmoidReference)
                || !(Math.Abs(sigmoid + TrainingObjectives.Sigmoid(-x) - 1) <= 4.5e-16)
                || !(Math.Abs(softplus - softplusReference) <= 1e-15 * Math.Max(1, softplusReference)))
            {
                problems.Add($"x = {x}: sigmoid {sigmoid:R} (reference {sigmoidReference:R}), softplus {softplus:R} (reference {softplusReference:R})");
            }
        }

        using (Assert.EnterMultipleScope())
        {
            Assert.That(problems, Is.Empty, string.Join("\n", problems.Take(10)));
            Assert.That(TrainingObjectives.Sigmoid(1000), Is.EqualTo(1));
            Assert.That(TrainingObjectives.Sigmoid(-1000), Is.Zero);
            Assert.That(TrainingObjectives.Softplus(1000), Is.EqualTo(1000));
            Assert.That(TrainingObjectives.Softplus(-1000), Is.Zero);
            Assert.That(TrainingObjectives.Softplus(0), Is.EqualTo(Ln2).Within(1e-16));
        }
    }

    /// <summary>log(1 + e^x) from a series where e^x is small and from −log σ(−x) elsewhere, independent of the code under test.</summary>
    private static double SoftplusReference(double x)
    {
        if (x > 40)
        {
            return x + Math.Exp(-x);
        }

        double u = Math.Exp(x);
        return u < 1e-4 ? u - (u * u / 2) + (u * u * u / 3) : Math.Log(1 + u);
    }

    private static bool WeightsMatchFiniteDifferences(Batch batch)
    {
        int n = batch.CountedTokens.Length;
        var weights = new float[n];
        var scratch = new float[n];
        TrainingObjectives.Weigh(batch.Examples, batch.Options, batch.LogLikelihoods, batch.CountedTokens, weights);
        const double h = 1e-4;
        for (int s = 0; s < n; s++)
        {
            double[] plus = (double[])batch.LogLikelihoods.Clone();
            double[] minus = (double[])batch.LogLikelihoods.Clone();
            plus[s] += h;
            minus[s] -= h;
            double lossPlus = TrainingObjectives.Weigh(batch.Examples, batch.Options, plus, batch.CountedTokens, scratch);
            double lossMinus = TrainingObjectives.Weigh(batch.Examples, batch.Options, minus, batch.CountedTokens, scratch);

            // CE_s = −ll_s, so ∂L/∂CE_s = −∂L/∂ll_s.
            double derivative = -(lossPlus - lossMinus) / (2 * h);
            if (Math.Abs(weights[s] - derivative) > 1e-8 + (1e-5 * Math.Abs(derivative)))
            {
                throw new AssertionException($"sequence {s}: weight {weights[s]:R}, finite difference {derivative:R} ({batch})");
            }
        }

        return true;
    }

    private static Gen<Batch> Batches() =>
        Gen.Choose(0, int.MaxValue).SelectMany(seed => Gen.Choose(1, 8).Select(count => MakeBatch(seed, count)));

    private static Batch MakeBatch(int seed, int count)
    {
        var rng = new Random(seed);
        double Uniform(double lo, double hi) => lo + ((hi - lo) * rng.NextDouble());
        var examples = new TrainingExample[count];
        var ll = new List<double>();
        var tokens = new List<int>();
        for (int i = 0; i < count; i++)
        {
            // Example weights over four orders of magnitude.
            double weight = Math.Pow(10, Uniform(-2, 2));
            switch (rng.Next(3))
            {
                case 0:
                    examples[i] = Completion(weight);
                    ll.Add(Uniform(-40, 0));
                    tokens.Add(rng.Next(8) == 0 ? 0 : rng.Next(1, 30));
                    break;
                case 1:
                    examples[i] = Preference(weight, Uniform(-40, -1), Uniform(-40, -1));
                    ll.Add(Uniform(-40, -1));
                    ll.Add(Uniform(-40, -1));
                    tokens.Add(rng.Next(1, 30));
                    tokens.Add(rng.Next(1, 30));
                    break;
                default:
                    examples[i] = Rating(weight, rng.Next(2) == 0, Uniform(-40, -1));
                    ll.Add(Uniform(-40, -1));
                    tokens.Add(rng.Next(1, 30));
                    break;
            }
        }

        var options = new ObjectiveOptions
        {
            DpoBeta = Uniform(0.01, 2),
            KtoBeta = Uniform(0.01, 2),
            KtoDesirableWeight = Uniform(0, 3),
            KtoUndesirableWeight = Uniform(0, 3),
            KtoReferencePoint = Uniform(0, 5),
        };
        return new Batch(examples, options, [.. ll], [.. tokens], seed);
    }

    private static TrainingExample Completion(double weight) => new(TrainingObjective.Completion, [1, 2], [3, 4]) { Weight = weight };

    private static TrainingExample Preference(double weight, double referenceChosen, double referenceRejected) =>
        new(TrainingObjective.Preference, [1, 2], [3, 4])
        {
            Rejected = [5, 6],
            Weight = weight,
            ReferenceLogLikelihood = referenceChosen,
            ReferenceRejectedLogLikelihood = referenceRejected,
        };

    private static TrainingExample Rating(double weight, bool desirable, double reference) =>
        new(TrainingObjective.Rating, [1, 2], [3, 4]) { Weight = weight, Desirable = desirable, ReferenceLogLikelihood = reference };
}
