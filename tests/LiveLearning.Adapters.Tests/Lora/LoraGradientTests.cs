using LiveLearning.Lora;
using LiveLearning.Models;
using NUnit.Framework;

namespace LiveLearning.Tests.Lora;

/// <summary>Adapter gradients of every target module against central finite differences, with plain and rsLoRA/pattern scaling.</summary>
[TestFixture]
public sealed class LoraGradientTests
{
    public static IEnumerable<TestCaseData> Configs()
    {
        yield return new TestCaseData("llama-gqa-tied", new LoraConfig { Rank = 4, Alpha = 8, TargetModules = [LoraConfig.AllLinear], Seed = 1 }).SetName("AllLinearPlain");
        yield return new TestCaseData("qwen2-bias", new LoraConfig
        {
            Rank = 3,
            Alpha = 5,
            UseRsLora = true,
            TargetModules = [LoraConfig.AllLinear],
            RankPattern = new Dictionary<string, int> { ["gate_proj"] = 1, ["model.layers.1.self_attn.k_proj"] = 6 },
            AlphaPattern = new Dictionary<string, double> { ["o_proj"] = 2.5 },
            Seed = 2,
        }).SetName("AllLinearRsLoraPatternsQwen2Bias");
    }

    [TestCaseSource(nameof(Configs))]
    public void EveryTargetModulePassesAFiniteDifferenceCheck(string modelName, LoraConfig config)
    {
        using var model = LoraTestKit.LoadModel(modelName, threads: 1);
        LoraAdapter adapter = LoraTestKit.RandomAdapter(model, config, seed: 3, bScale: 0.1f);
        int[] ids = LoraTestKit.Ids(4, 9, model.Config.VocabSize);
        int[] labels = (int[])ids.Clone();
        labels[3] = -100;
        var batch = new[] { new TrainingSequence(ids, labels) };
        var gradients = new AdapterGradients(adapter, model.Config.NumLayers);
        model.ComputeGradients(batch, adapter, gradients);
        int checkedSlots = 0;
        foreach ((int l, Projection p, LoraLayer _) in adapter.Entries())
        {
            GradientChecks.CheckSlot(model, batch, adapter, l, p, gradients.Get(l, p).ToArray(), a => a);
            checkedSlots++;
        }

        Assert.That(checkedSlots, Is.EqualTo(14));
    }

    /// <summary>
    /// The backward pass stops inside the lowest adapted layer at the last product a slot there needs (its input gradient
    /// would only reach the frozen embeddings): each single-module layout exercises a different stopping point.
    /// </summary>
    [TestCase("down_proj", 0.0)]
    [TestCase("gate_proj", 0.0)]
    [TestCase("o_proj", 0.0)]
    [TestCase("k_proj", 0.0)]
    [TestCase("up_proj", 0.25)]
    public void GradientsAreRightWhenTheLowestAdaptedLayerHasOneModule(string module, double dropout)
    {
        using var model = LoraTestKit.LoadModel(threads: 1);
        var config = new LoraConfig { Rank = 3, Alpha = 6, Dropout = dropout, TargetModules = [module], Seed = 4 };
        LoraAdapter adapter = LoraTestKit.RandomAdapter(model, config, seed: 5, bScale: 0.1f);
        var batch = new[] { TrainingSequence.AllTokens(LoraTestKit.Ids(6, 7, model.Config.VocabSize)) };
        var gradients = new AdapterGradients(adapter, model.Config.NumLayers);
        model.ComputeGradients(batch, adapter, gradients);
        int checkedSlots = 0;
        foreach ((int l, Projection p, LoraLayer _) in adapter.Entries())
        {
            Assert.That(gradients.Get(l, p).ToArray().Max(MathF.Abs), Is.GreaterThan(0f), $"layer {l} {p}");
            GradientChecks.CheckSlot(model, batch, adapter, l, p, gradients.Get(l, p).ToArray(), a => a);
            checkedSlots++;
        }

        Assert.That(checkedSlots, Is.EqualTo(model.Config.NumLayers));
    }

    [Test]
    public void ScalingTheAdapterScalesTheBGradientExactlyAsTheConfigSays()
    {
        // dL/dB = scale · dyᵀ·h: with B = 0 the forward is the base model's, so the B gradient is exactly proportional
        // to the scale, and α/√r versus α/r differ by the factor √r.
        using var model = LoraTestKit.LoadModel(threads: 1);
        var plain = new LoraConfig { Rank = 4, Alpha = 8, TargetModules = ["v_proj"], Seed = 9 };
        LoraAdapter a = LoraAdapter.CreateFresh(plain, model);
        LoraAdapter rs = LoraAdapter.CreateFresh(plain with { UseRsLora = true }, model);
        var batch = new[] { TrainingSequence.AllTokens(LoraTestKit.Ids(5, 8, model.Config.VocabSize)) };
        var ga = new AdapterGradients(a, model.Config.NumLayers);
        var gr = new AdapterGradients(rs, model.Config.NumLayers);
        model.ComputeGradients(batch, a, ga);
        model.ComputeGradients(batch, rs, gr);
        Assert.That(a.GetLayer(0, Projection.VProj)!.Scale, Is.EqualTo(2f));
        Assert.That(rs.GetLayer(0, Projection.VProj)!.Scale, Is.EqualTo(4f));
        int aLength = a.GetLayer(1, Projection.VProj)!.A.Length;
        float[] b1 = ga.Get(1, Projection.VProj)[aLength..].ToArray();
        float[] b2 = gr.Get(1, Projection.VProj)[aLength..].ToArray();
        Assert.That(b1.Max(MathF.Abs), Is.GreaterThan(0f));
        for (int i = 0; i < b1.Length; i++)
        {
            Assert.That(b2[i], Is.EqualTo(2f * b1[i]).Within(1e-6f * MathF.Abs(b1[i]) + 1e-12f));
        }
    }
}
