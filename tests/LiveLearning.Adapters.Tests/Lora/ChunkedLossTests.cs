using LiveLearning.Lora;
using LiveLearning.Models;
using LiveLearning.Testing;
using NUnit.Framework;

namespace LiveLearning.Tests.Lora;

/// <summary>The training loss runs the LM head in row chunks; a chunked batch must equal the count-weighted separate runs.</summary>
[TestFixture]
public sealed class ChunkedLossTests
{
    [Test]
    public void ABatchSpanningSeveralLogitChunksEqualsItsSequencesRunSeparately()
    {
        // Sizes from the code's own chunk rule: the batch of both sequences takes three chunks while each sequence alone
        // takes two, so the splits differ and only the math can make the results agree.
        const int Vocab = 32768;
        int maxRows = LlamaModel.MaxHeadChunkLogits / Vocab;
        int lengthA = maxRows + 22;
        int lengthB = maxRows + 12;
        Assert.That(LlamaModel.HeadChunks(lengthA + lengthB, Vocab).Chunks, Is.EqualTo(3));
        Assert.That(LlamaModel.HeadChunks(lengthA, Vocab).Chunks, Is.EqualTo(2));
        Assert.That(LlamaModel.HeadChunks(lengthB, Vocab).Chunks, Is.EqualTo(2));
        string dir = Path.Combine(Path.GetTempPath(), "ll-chunk-" + Guid.NewGuid().ToString("N"));
        try
        {
            ModelWriter.WriteRandom(dir, new ModelSpec { VocabSize = Vocab, Seed = 3 });
            using var model = LlamaModel.Load(dir, new ModelOptions { ThreadCount = 2, LoadTokenizer = false });
            LoraAdapter adapter = LoraTestKit.RandomAdapter(model, new LoraConfig { Rank = 2, TargetModules = ["v_proj", "down_proj"] }, seed: 1);
            int[] a = LoraTestKit.Ids(1, lengthA, model.Config.VocabSize);
            int[] b = LoraTestKit.Ids(2, lengthB, model.Config.VocabSize);
            int[] labelsB = (int[])b.Clone();
            for (int i = 0; i < 40; i++)
            {
                labelsB[i] = -100;
            }

            var ta = TrainingSequence.AllTokens(a);
            var tb = new TrainingSequence(b, labelsB);
            var gAll = new AdapterGradients(adapter, model.Config.NumLayers);
            var gA = new AdapterGradients(adapter, model.Config.NumLayers);
            var gB = new AdapterGradients(adapter, model.Config.NumLayers);
            GradientResult all = model.ComputeGradients([ta, tb], adapter, gAll);
            GradientResult ra = model.ComputeGradients([ta], adapter, gA);
            GradientResult rb = model.ComputeGradients([tb], adapter, gB);
            Assert.That(all.CountedPositions, Is.EqualTo(ra.CountedPositions + rb.CountedPositions));
            double expected = ((ra.Loss * (double)ra.CountedPositions) + (rb.Loss * (double)rb.CountedPositions)) / all.CountedPositions;
            Assert.That(all.Loss, Is.EqualTo(expected).Within(1e-5 * expected));
            float wa = ra.CountedPositions / (float)all.CountedPositions;
            float wb = rb.CountedPositions / (float)all.CountedPositions;
            foreach ((int l, Projection p, LoraLayer _) in adapter.Entries())
            {
                float[] combined = gA.Get(l, p).ToArray().Zip(gB.Get(l, p).ToArray(), (x, y) => (wa * x) + (wb * y)).ToArray();
                float scale = combined.Max(MathF.Abs);
                Assert.That(LoraTestKit.MaxAbsDiff(gAll.Get(l, p), combined), Is.LessThanOrEqualTo(1e-4f * scale), ProjectionNames.ModulePath(l, p));
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
