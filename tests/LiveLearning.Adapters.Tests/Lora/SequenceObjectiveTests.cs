using LiveLearning.Lora;
using LiveLearning.Models;
using LiveLearning.Testing;
using NUnit.Framework;

namespace LiveLearning.Tests.Lora;

/// <summary>
/// Training under a <see cref="SequenceObjective"/>: per-sequence weights on the summed cross-entropy must give exactly
/// the weighted sum of each sequence's own gradient, with and without the log-likelihood pass, in one head chunk or several.
/// </summary>
[TestFixture]
public sealed class SequenceObjectiveTests
{
    [Test]
    public void MeanWeightsReproduceThePlainBatchMean()
    {
        using LlamaModel model = LoraTestKit.LoadModel();
        LoraAdapter adapter = LoraTestKit.RandomAdapter(model, new LoraConfig { Rank = 2, TargetModules = ["q_proj", "v_proj", "down_proj"] }, seed: 4);
        TrainingSequence[] batch = [Prompted(model, 1, 9, 4), Prompted(model, 2, 12, 7)];
        var plain = new AdapterGradients(adapter, model.Config.NumLayers);
        var weighted = new AdapterGradients(adapter, model.Config.NumLayers);
        GradientResult a = model.ComputeGradients(batch, adapter, plain);
        GradientResult b = model.ComputeGradients(batch, adapter, weighted, new FixedWeights(needsLogLikelihoods: false, 1f / a.CountedPositions, 1f / a.CountedPositions));
        Assert.That(b.Loss, Is.EqualTo(a.Loss).Within(1e-5 * Math.Abs(a.Loss)));
        AssertGradientsClose(adapter, weighted, plain, 1e-4f);
    }

    [TestCase(false, 300)]
    [TestCase(true, 300)]
    [TestCase(true, 32768)]
    public void SignedWeightsGiveTheWeightedSumOfEachSequencesOwnGradient(bool needsLogLikelihoods, int vocab)
    {
        // At vocabulary 32768 the batch's logits take several head chunks, so the log-likelihood pass runs the head twice.
        string dir = Path.Combine(Path.GetTempPath(), "ll-objective-" + Guid.NewGuid().ToString("N"));
        try
        {
            ModelWriter.WriteRandom(dir, new ModelSpec { VocabSize = vocab, Seed = 9 });
            using var model = LlamaModel.Load(dir, new ModelOptions { ThreadCount = 2, LoadTokenizer = false });
            int lengthA = vocab > 1000 ? 200 : 20;
            int lengthB = vocab > 1000 ? 150 : 14;
            Assert.That(LlamaModel.HeadChunks(lengthA + lengthB, vocab).Chunks, vocab > 1000 ? Is.GreaterThan(1) : Is.EqualTo(1));
            LoraAdapter adapter = LoraTestKit.RandomAdapter(model, new LoraConfig { Rank = 2, TargetModules = ["v_proj", "o_proj", "up_proj"] }, seed: 2);
            TrainingSequence sa = Prompted(model, 3, lengthA, 5);
            TrainingSequence sb = Prompted(model, 4, lengthB, 3);
            const float Wa = 0.7f;
            const float Wb = -0.45f;
            var both = new AdapterGradients(adapter, model.Config.NumLayers);
            var gA = new AdapterGradients(adapter, model.Config.NumLayers);
            var gB = new AdapterGradients(adapter, model.Config.NumLayers);
            var objective = new FixedWeights(needsLogLikelihoods, Wa, Wb);
            GradientResult r = model.ComputeGradients([sa, sb], adapter, both, objective);
            GradientResult ra = model.ComputeGradients([sa], adapter, gA);
            GradientResult rb = model.ComputeGradients([sb], adapter, gB);

            // The mean-loss gradient of one sequence times its count is the gradient of its summed cross-entropy.
            double llA = -ra.Loss * (double)ra.CountedPositions;
            double llB = -rb.Loss * (double)rb.CountedPositions;
            Assert.That(r.SequenceLogLikelihoods[0], Is.EqualTo(llA).Within(1e-4 * Math.Abs(llA)));
            Assert.That(r.SequenceLogLikelihoods[1], Is.EqualTo(llB).Within(1e-4 * Math.Abs(llB)));
            CompletionScore score = model.Score(sa.InputIds.Take(5).ToArray(), sa.InputIds.Skip(5).ToArray(), adapter);
            Assert.That(r.SequenceLogLikelihoods[0], Is.EqualTo(score.LogLikelihood).Within(1e-4 * Math.Abs(llA)), "the log-likelihood a score computes");
            if (needsLogLikelihoods)
            {
                Assert.That(objective.SeenLogLikelihoods, Is.EqualTo(r.SequenceLogLikelihoods), "the objective saw the same log-likelihoods");
            }

            double expectedLoss = needsLogLikelihoods ? FixedWeights.Value : (-Wa * llA) - (Wb * llB);
            Assert.That(r.Loss, Is.EqualTo(expectedLoss).Within(1e-4 * Math.Abs(expectedLoss)));
            foreach ((int l, Projection p, LoraLayer _) in adapter.Entries())
            {
                float[] expected = [.. gA.Get(l, p).ToArray().Zip(gB.Get(l, p).ToArray(), (x, y) => (Wa * ra.CountedPositions * x) + (Wb * rb.CountedPositions * y))];
                float scale = expected.Max(MathF.Abs);
                Assert.That(LoraTestKit.MaxAbsDiff(both.Get(l, p), expected), Is.LessThanOrEqualTo(2e-4f * scale), ProjectionNames.ModulePath(l, p));
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static TrainingSequence Prompted(LlamaModel model, int seed, int length, int prompt)
    {
        int[] ids = LoraTestKit.Ids(seed, length, model.Config.VocabSize);
        return TrainingSequence.Completion(ids[..prompt], ids[prompt..]);
    }

    private static void AssertGradientsClose(LoraAdapter adapter, AdapterGradients actual, AdapterGradients expected, float relative)
    {
        foreach ((int l, Projection p, LoraLayer _) in adapter.Entries())
        {
            float scale = expected.Get(l, p).ToArray().Max(MathF.Abs);
            Assert.That(LoraTestKit.MaxAbsDiff(actual.Get(l, p), expected.Get(l, p)), Is.LessThanOrEqualTo(relative * scale), ProjectionNames.ModulePath(l, p));
        }
    }

    private sealed class FixedWeights(bool needsLogLikelihoods, params float[] weights) : SequenceObjective
    {
        public const double Value = 1.25;

        public double[] SeenLogLikelihoods { get; private set; } = [];

        public override bool NeedsLogLikelihoods => needsLogLikelihoods;

        public override double Weigh(ReadOnlySpan<double> logLikelihoods, ReadOnlySpan<int> countedTokens, Span<float> output)
        {
            SeenLogLikelihoods = logLikelihoods.ToArray();
            weights.CopyTo(output);
            return Value;
        }
    }
}
