using LiveLearning.Lora;
using LiveLearning.Models;
using NUnit.Framework;

namespace LiveLearning.Tests.Lora;

/// <summary>Adapter behaviour on a real (fixture) model: fresh init, scale, combination, per-request choice, stacking, dropout.</summary>
[TestFixture]
public sealed class LoraAdapterTests
{
    private static readonly LoraConfig AllLinear = new() { Rank = 4, Alpha = 8, TargetModules = [LoraConfig.AllLinear], Seed = 11 };

    [Test]
    public void AFreshAdapterChangesNoOutputBitForBit()
    {
        using var model = LoraTestKit.LoadModel();
        LoraAdapter fresh = LoraAdapter.CreateFresh(AllLinear, model);
        int[] ids = LoraTestKit.Ids(1, 13, model.Config.VocabSize);
        Assert.That(model.Forward(ids, null, true, fresh), Is.EqualTo(model.Forward(ids, null, true)));
        Assert.That(fresh.Entries().All(e => e.Lora.B.ToArray().All(v => v == 0)), Is.True);
    }

    [Test]
    public void FreshAIsSeededKaimingUniform()
    {
        using var model = LoraTestKit.LoadModel();
        LoraAdapter a1 = LoraAdapter.CreateFresh(AllLinear, model);
        LoraAdapter a2 = LoraAdapter.CreateFresh(AllLinear, model);
        LoraAdapter other = LoraAdapter.CreateFresh(AllLinear with { Seed = 12 }, model);
        foreach ((int l, Projection p, LoraLayer lora) in a1.Entries())
        {
            float bound = (float)(1 / Math.Sqrt(lora.InFeatures));
            float[] a = lora.A.ToArray();
            Assert.That(a, Is.EqualTo(a2.GetLayer(l, p)!.A.ToArray()), "same seed, same A");
            Assert.That(a, Is.Not.EqualTo(other.GetLayer(l, p)!.A.ToArray()), "other seed, other A");
            Assert.That(a.All(v => MathF.Abs(v) <= bound), Is.True);

            // Uniform on [-b, b]: mean ≈ 0, variance ≈ b²/3 (256+ samples per layer).
            double mean = a.Average();
            double variance = a.Average(v => (v - mean) * (v - mean));
            Assert.That(mean, Is.EqualTo(0).Within(0.15 * bound));
            Assert.That(variance, Is.EqualTo(bound * bound / 3.0).Within(0.25 * bound * bound / 3.0));
        }

        Assert.That(a1.GetLayer(0, Projection.QProj)!.A.ToArray(), Is.Not.EqualTo(a1.GetLayer(1, Projection.QProj)!.A.ToArray()), "every slot has its own stream");
    }

    [Test]
    public void CreateFreshRefusesAConfigThatTargetsNothing()
    {
        using var model = LoraTestKit.LoadModel();
        Assert.That(() => LoraAdapter.CreateFresh(new LoraConfig { TargetModules = ["c_attn"] }, model), Throws.ArgumentException.With.Property("ParamName").EqualTo("config"));
        Assert.That(() => LoraAdapter.CreateFresh(new LoraConfig { Rank = 0 }, model), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("Rank"));
    }

    [Test]
    public void WithScaleMultipliesTheDeltaAndZeroSwitchesItOff()
    {
        using var model = LoraTestKit.LoadModel();
        LoraAdapter adapter = LoraTestKit.RandomAdapter(model, AllLinear, seed: 2);
        int[] ids = LoraTestKit.Ids(2, 9, model.Config.VocabSize);
        float[] base0 = model.Forward(ids, null, true);
        Assert.That(model.Forward(ids, null, true, adapter.WithScale(0f)), Is.EqualTo(base0));

        // Doubling the scale equals a combination with weight 2 (both exact up to float rounding).
        float[] doubled = model.Forward(ids, null, true, adapter.WithScale(2f));
        float[] combined = model.Forward(ids, null, true, LoraAdapter.Combine([(adapter, 2f)]));
        Assert.That(LoraTestKit.MaxAbsDiff(doubled, combined), Is.LessThan(1e-4f));
        Assert.That(LoraTestKit.MaxAbsDiff(doubled, model.Forward(ids, null, true, adapter)), Is.GreaterThan(1e-2f));
        Assert.That(adapter.WithScale(2f).GetLayer(0, Projection.QProj)!.Scale, Is.EqualTo(2f * adapter.GetLayer(0, Projection.QProj)!.Scale));
    }

    [Test]
    public void ALinearCombinationEqualsTheWeightedSumOfDeltas()
    {
        using var model = LoraTestKit.LoadModel();
        LoraAdapter x = LoraTestKit.RandomAdapter(model, AllLinear, seed: 3);
        LoraAdapter y = LoraTestKit.RandomAdapter(model, new LoraConfig { Rank = 2, Alpha = 3, UseRsLora = true, TargetModules = ["q_proj", "down_proj"], Seed = 5 }, seed: 4);
        LoraAdapter c = LoraAdapter.Combine([(x, 0.7f), (y, -1.5f)]);
        foreach ((int l, Projection p, LoraLayer lora) in c.Entries())
        {
            float[] expected = LoraMerge.Delta(x.GetLayer(l, p)!);
            for (int i = 0; i < expected.Length; i++)
            {
                expected[i] *= 0.7f;
            }

            if (y.GetLayer(l, p) is { } yl)
            {
                float[] dy = LoraMerge.Delta(yl);
                for (int i = 0; i < expected.Length; i++)
                {
                    expected[i] += -1.5f * dy[i];
                }
            }

            float[] actual = LoraMerge.Delta(lora);
            float scale = expected.Max(MathF.Abs);
            Assert.That(LoraTestKit.MaxAbsDiff(actual, expected), Is.LessThanOrEqualTo(1e-5f * scale), ProjectionNames.ModulePath(l, p));
            Assert.That(lora.Rank, Is.EqualTo(4 + (y.GetLayer(l, p)?.Rank ?? 0)));
        }

        Assert.That(() => LoraAdapter.Combine([]), Throws.ArgumentException.With.Property("ParamName").EqualTo("parts"));
        Assert.That(() => LoraAdapter.Combine([(x, float.NaN)]), Throws.ArgumentException.With.Property("ParamName").EqualTo("parts"));
    }

    [Test]
    public void OneBatchMixingTwoAdaptersAndNoneEqualsSeparateRuns()
    {
        using var model = LoraTestKit.LoadModel();
        LoraAdapter first = LoraTestKit.RandomAdapter(model, AllLinear, seed: 6);
        LoraAdapter second = LoraTestKit.RandomAdapter(model, new LoraConfig { Rank = 3, TargetModules = ["q_proj", "v_proj"] }, seed: 7);
        int v = model.Config.VocabSize;
        int[] s0 = LoraTestKit.Ids(10, 9, v);
        int[] s1 = LoraTestKit.Ids(11, 5, v);
        int[] s2 = LoraTestKit.Ids(12, 12, v);
        int[] s3 = LoraTestKit.Ids(13, 7, v);
        float[][] batch = model.ForwardBatch(
        [
            new ForwardSequence(s0, null, true, first),
            new ForwardSequence(s1, null, true, second),
            new ForwardSequence(s2, null, true),
            new ForwardSequence(s3, null, true, first),
        ]);
        float[] separate0 = model.Forward(s0, null, true, first);
        Assert.That(LoraTestKit.MaxAbsDiff(batch[0], separate0), Is.LessThan(1e-5f));
        Assert.That(LoraTestKit.MaxAbsDiff(batch[1], model.Forward(s1, null, true, second)), Is.LessThan(1e-5f));
        Assert.That(LoraTestKit.MaxAbsDiff(batch[2], model.Forward(s2, null, true)), Is.LessThan(1e-5f));
        Assert.That(LoraTestKit.MaxAbsDiff(batch[3], model.Forward(s3, null, true, first)), Is.LessThan(1e-5f));
        Assert.That(LoraTestKit.MaxAbsDiff(separate0, model.Forward(s0, null, true)), Is.GreaterThan(1e-2f), "the adapters matter");
    }

    [Test]
    public void AStackAppliesBothAdaptersAndTrainsOnlyTheTopOne()
    {
        using var model = LoraTestKit.LoadModel();
        LoraAdapter org = LoraTestKit.RandomAdapter(model, AllLinear, seed: 8);
        LoraAdapter user = LoraTestKit.RandomAdapter(model, new LoraConfig { Rank = 2, TargetModules = ["q_proj", "v_proj", "down_proj"] }, seed: 9);
        var stack = new StackedAdapter(model.Config.NumLayers, [org], user);
        int[] ids = LoraTestKit.Ids(20, 10, model.Config.VocabSize);
        float[] stacked = model.Forward(ids, null, true, stack);
        float[] summed = model.Forward(ids, null, true, LoraAdapter.Combine([(org, 1f), (user, 1f)]));
        Assert.That(LoraTestKit.MaxAbsDiff(stacked, summed), Is.LessThan(1e-4f));

        // Gradients: the stack's buffers are the user's own layout; they equal a finite difference with org present.
        var gradients = new AdapterGradients(stack, model.Config.NumLayers);
        var batch = new[] { TrainingSequence.AllTokens(ids) };
        model.ComputeGradients(batch, stack, gradients);
        Assert.That(gradients.Get(0, Projection.KProj).Length, Is.EqualTo(0), "org-only slots get no gradient");
        Assert.That(gradients.Get(1, Projection.VProj).Length, Is.EqualTo(user.GetLayer(1, Projection.VProj)!.ParameterCount));
        var withoutOrg = new AdapterGradients(user, model.Config.NumLayers);
        model.ComputeGradients(batch, user, withoutOrg);
        Assert.That(LoraTestKit.MaxAbsDiff(gradients.Get(1, Projection.VProj), withoutOrg.Get(1, Projection.VProj)), Is.GreaterThan(1e-6f), "the frozen adapter shapes the gradient");
        GradientChecks.CheckSlot(model, batch, user, 0, Projection.DownProj, gradients.Get(0, Projection.DownProj).ToArray(), u => new StackedAdapter(model.Config.NumLayers, [org], u));
    }

    [Test]
    public void GradientsThroughAFrozenDropoutAdapterPassAFiniteDifferenceCheck()
    {
        using var model = LoraTestKit.LoadModel(threads: 1);
        LoraAdapter orgPlain = LoraTestKit.RandomAdapter(model, AllLinear with { Dropout = 0.2 }, seed: 13, bScale: 0.1f);
        var org = new LoraAdapter(orgPlain.NumLayers, orgPlain.Entries().ToDictionary(e => (e.Layer, e.Projection), e => e.Lora.WithDropout(0.2f, 1000 + (ulong)e.Layer)), orgPlain.Config);
        LoraAdapter user = LoraTestKit.RandomAdapter(model, new LoraConfig { Rank = 2, TargetModules = ["q_proj", "up_proj"] }, seed: 14);
        var stack = new StackedAdapter(model.Config.NumLayers, [org], user);
        var batch = new[] { TrainingSequence.AllTokens(LoraTestKit.Ids(23, 9, model.Config.VocabSize)) };
        var gradients = new AdapterGradients(stack, model.Config.NumLayers);
        model.ComputeGradients(batch, stack, gradients);
        foreach (Projection p in new[] { Projection.QProj, Projection.UpProj })
        {
            GradientChecks.CheckSlot(model, batch, user, 0, p, gradients.Get(0, p).ToArray(), u => new StackedAdapter(model.Config.NumLayers, [org], u));
        }
    }

    [Test]
    public void DropoutAppliesOnlyWhileLearningAndIsReproducible()
    {
        using var model = LoraTestKit.LoadModel();
        LoraConfig config = AllLinear with { Dropout = 0.3 };
        LoraAdapter adapter = LoraTestKit.RandomAdapter(model, config, seed: 10);
        LoraAdapter noDropout = LoraTestKit.RandomAdapter(model, config with { Dropout = 0 }, seed: 10);
        int[] ids = LoraTestKit.Ids(21, 8, model.Config.VocabSize);
        Assert.That(model.Forward(ids, null, true, adapter), Is.EqualTo(model.Forward(ids, null, true, noDropout)), "inference never drops");

        var batch = new[] { TrainingSequence.AllTokens(ids) };
        float Loss(IModelAdapter a) => model.ComputeGradients(batch, a, new AdapterGradients(a, model.Config.NumLayers)).Loss;
        float lossDrop = Loss(adapter);
        Assert.That(Loss(adapter), Is.EqualTo(lossDrop), "same seed, same masks");
        Assert.That(lossDrop, Is.Not.EqualTo(Loss(noDropout)), "training drops");

        LoraLayer layer = adapter.GetLayer(0, Projection.QProj)!.WithDropout(0.3f, 77);
        int kept = 0;
        const int samples = 20000;
        for (int i = 0; i < samples; i++)
        {
            kept += layer.Keeps(i / 64, i % 64) ? 1 : 0;
        }

        Assert.That(kept / (double)samples, Is.EqualTo(0.7).Within(0.02));
    }

    [Test]
    public void DropoutGradientsPassAFiniteDifferenceCheck()
    {
        using var model = LoraTestKit.LoadModel(threads: 1);
        LoraAdapter adapter = LoraTestKit.RandomAdapter(model, AllLinear with { Dropout = 0.25 }, seed: 12);
        var layers = adapter.Entries().ToDictionary(e => (e.Layer, e.Projection), e => e.Lora.WithDropout(0.25f, (ulong)(e.Layer * 10) + (ulong)e.Projection));
        var withSeeds = new LoraAdapter(adapter.NumLayers, layers, adapter.Config);
        var batch = new[] { TrainingSequence.AllTokens(LoraTestKit.Ids(22, 10, model.Config.VocabSize)) };
        var gradients = new AdapterGradients(withSeeds, model.Config.NumLayers);
        model.ComputeGradients(batch, withSeeds, gradients);
        foreach (Projection p in new[] { Projection.QProj, Projection.UpProj, Projection.DownProj })
        {
            GradientChecks.CheckSlot(model, batch, withSeeds, 1, p, gradients.Get(1, p).ToArray(), a => a);
        }
    }
}
