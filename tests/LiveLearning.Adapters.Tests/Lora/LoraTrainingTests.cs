using LiveLearning.Lora;
using LiveLearning.Models;
using LiveLearning.Tests.Models;
using NUnit.Framework;

namespace LiveLearning.Tests.Lora;

/// <summary>Training state (flat buffers, AdamW, LoRA+), immutable published versions and the adapter set under concurrent load.</summary>
[TestFixture]
public sealed class LoraTrainingTests
{
    [Test]
    public void TrainingStepsLowerTheLossAndPublishedVersionsNeverChange()
    {
        using var model = LoraTestKit.LoadModel();
        var config = new LoraConfig { Rank = 4, Alpha = 8, TargetModules = ["q_proj", "v_proj", "down_proj"], Seed = 3 };
        var state = new LoraTrainingState(LoraAdapter.CreateFresh(config, model));
        var batch = new[] { TrainingSequence.AllTokens(LoraTestKit.Ids(1, 12, model.Config.VocabSize)) };
        LoraAdapter v0 = state.Publish();
        float[] v0B = v0.GetLayer(0, Projection.QProj)!.B.ToArray();
        float first = state.TrainStep(model, batch, new OptimizerOptions { LearningRate = 1e-2f, MaxGradNorm = 1.0 });
        float last = first;
        for (int i = 0; i < 15; i++)
        {
            last = state.TrainStep(model, batch, new OptimizerOptions { LearningRate = 1e-2f, MaxGradNorm = 1.0 });
        }

        Assert.That(state.Step, Is.EqualTo(16));
        Assert.That(last, Is.LessThan(first - 0.5f));
        Assert.That(v0.GetLayer(0, Projection.QProj)!.B.ToArray(), Is.EqualTo(v0B), "a published version is a copy");
        LoraAdapter v1 = state.Publish();
        float lossV1 = model.ComputeGradients(batch, v1, new AdapterGradients(v1, model.Config.NumLayers)).Loss;
        Assert.That(lossV1, Is.LessThan(last), "the published version holds the trained parameters");
        Assert.That(v1.Config, Is.SameAs(config));
    }

    [Test]
    public void ARestoredStateContinuesBitForBitAsIfNeverStopped()
    {
        using var model = LoraTestKit.LoadModel();
        var config = new LoraConfig { Rank = 2, TargetModules = ["q_proj", "v_proj", "up_proj"], Dropout = 0.1, LoraPlusRatio = 4, Seed = 21 };
        var batch = new[] { TrainingSequence.AllTokens(LoraTestKit.Ids(8, 10, model.Config.VocabSize)) };
        var state = new LoraTrainingState(LoraAdapter.CreateFresh(config, model));
        for (int i = 0; i < 3; i++)
        {
            state.TrainStep(model, batch, new OptimizerOptions { LearningRate = 1e-2f, MaxGradNorm = 1.0 });
        }

        LoraAdapter saved = state.Publish();
        var restored = LoraTrainingState.Restore(saved, state.FirstMoment, state.SecondMoment, state.Step);
        for (int i = 0; i < 3; i++)
        {
            float a = state.TrainStep(model, batch, new OptimizerOptions { LearningRate = 1e-2f, MaxGradNorm = 1.0 });
            float b = restored.TrainStep(model, batch, new OptimizerOptions { LearningRate = 1e-2f, MaxGradNorm = 1.0 });
            Assert.That(b, Is.EqualTo(a), $"loss at step {i}");
        }

        Assert.That(restored.Parameters.ToArray(), Is.EqualTo(state.Parameters.ToArray()));
        Assert.That(restored.Step, Is.EqualTo(6));
        Assert.That(() => LoraTrainingState.Restore(saved, new float[3], state.SecondMoment, 1), Throws.ArgumentException.With.Property("ParamName").EqualTo("firstMoment"));
    }

    [Test]
    public void LoraPlusScalesOnlyTheLearningRateOfB()
    {
        using var model = LoraTestKit.LoadModel();
        var config = new LoraConfig { Rank = 2, TargetModules = ["v_proj"], Seed = 4 };
        LoraAdapter start = LoraTestKit.RandomAdapter(model, config, seed: 5);
        var batch = new[] { TrainingSequence.AllTokens(LoraTestKit.Ids(2, 8, model.Config.VocabSize)) };
        var plain = new LoraTrainingState(start);
        var plus = new LoraTrainingState(new LoraAdapter(start.NumLayers, start.Entries().ToDictionary(e => (e.Layer, e.Projection), e => e.Lora), config with { LoraPlusRatio = 16 }));
        plain.TrainStep(model, batch, new OptimizerOptions { LearningRate = 1e-3f, MaxGradNorm = null });
        plus.TrainStep(model, batch, new OptimizerOptions { LearningRate = 1e-3f, MaxGradNorm = null });

        // First AdamW step moves every parameter by lr·sign(g) (|m̂/√v̂| = 1): 1e-3 for A, 16e-3 for B with LoRA+.
        LoraLayer s = start.GetLayer(0, Projection.VProj)!;
        LoraLayer p1 = plain.Publish().GetLayer(0, Projection.VProj)!;
        LoraLayer p16 = plus.Publish().GetLayer(0, Projection.VProj)!;
        Assert.That(MaxStep(p1.A, s.A), Is.EqualTo(1e-3f).Within(2e-5f));
        Assert.That(MaxStep(p16.A, s.A), Is.EqualTo(1e-3f).Within(2e-5f));
        Assert.That(MaxStep(p1.B, s.B), Is.EqualTo(1e-3f).Within(2e-5f));
        Assert.That(MaxStep(p16.B, s.B), Is.EqualTo(16e-3f).Within(2e-4f));
    }

    [Test]
    public void StackedTrainingLeavesTheFrozenAdapterUntouched()
    {
        using var model = LoraTestKit.LoadModel();
        var set = new LoraAdapterSet(model);
        LoraAdapter org = LoraTestKit.RandomAdapter(model, new LoraConfig { Rank = 4, TargetModules = [LoraConfig.AllLinear] }, seed: 6);
        set.Add("org", org);
        float[] orgB = org.GetLayer(1, Projection.VProj)!.B.ToArray();
        var user = new LoraTrainingState(LoraAdapter.CreateFresh(new LoraConfig { Rank = 2, Seed = 7 }, model));
        var batch = new[] { TrainingSequence.AllTokens(LoraTestKit.Ids(3, 10, model.Config.VocabSize)) };
        float first = user.TrainStep(model, batch, new OptimizerOptions { LearningRate = 1e-2f, MaxGradNorm = null }, frozenBelow: set.Frozen("org"));
        float last = first;
        for (int i = 0; i < 8; i++)
        {
            last = user.TrainStep(model, batch, new OptimizerOptions { LearningRate = 1e-2f, MaxGradNorm = null }, frozenBelow: set.Frozen("org"));
        }

        Assert.That(last, Is.LessThan(first));
        Assert.That(set.Get("org").GetLayer(1, Projection.VProj)!.B.ToArray(), Is.EqualTo(orgB));
        set.Add("user", user.Publish());
        IModelAdapter both = set.Resolve("org", "user")!;
        float lossBoth = model.ComputeGradients(batch, both, new AdapterGradients(both, model.Config.NumLayers)).Loss;
        Assert.That(lossBoth, Is.LessThan(first));
    }

    [Test]
    public void TheSetAddsRemovesEnablesAndScales()
    {
        using var model = LoraTestKit.LoadModel();
        var set = new LoraAdapterSet(model);
        LoraAdapter a = LoraTestKit.RandomAdapter(model, new LoraConfig { Rank = 2 }, seed: 1);
        LoraAdapter b = LoraTestKit.RandomAdapter(model, new LoraConfig { Rank = 3, TargetModules = ["down_proj"] }, seed: 2);
        int[] ids = LoraTestKit.Ids(4, 9, model.Config.VocabSize);
        Assert.That(set.Active(), Is.Null);
        set.Add("a", a);
        set.Add("b", b);
        Assert.That(set.Names, Is.EqualTo(new[] { "a", "b" }));
        Assert.That(() => set.Add("a", b), Throws.ArgumentException.With.Property("ParamName").EqualTo("name"));
        float[] both = model.Forward(ids, null, true, set.Active());
        Assert.That(LoraTestKit.MaxAbsDiff(both, model.Forward(ids, null, true, LoraAdapter.Combine([(a, 1f), (b, 1f)]))), Is.LessThan(1e-4f));
        set.SetEnabled("b", false);
        Assert.That(model.Forward(ids, null, true, set.Active()), Is.EqualTo(model.Forward(ids, null, true, a)));
        set.SetScale("a", 0.5f);
        Assert.That(set.GetScale("a"), Is.EqualTo(0.5f));
        Assert.That(model.Forward(ids, null, true, set.Active()), Is.EqualTo(model.Forward(ids, null, true, a.WithScale(0.5f))));
        Assert.That(set.Remove("a"), Is.True);
        Assert.That(set.Remove("a"), Is.False);
        Assert.That(set.Active(), Is.Null, "b is disabled, a is gone");
        Assert.That(() => set.Get("a"), Throws.ArgumentException.With.Message.Contains("'a'"));
        Assert.That(() => set.SetScale("b", float.NaN), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("scale"));

        LoraAdapter loaded = set.Load("fixture", ModelFixture.Load(LoraTestKit.Model).AdapterDirectory);
        Assert.That(set.Get("fixture"), Is.SameAs(loaded));
        Assert.That(model.Forward(ids, null, true, set.Resolve("fixture")), Is.EqualTo(model.Forward(ids, null, true, LoraAdapter.LoadPeft(ModelFixture.Load(LoraTestKit.Model).AdapterDirectory, model))));

        using var other = LoraTestKit.LoadModel("llama3-rope");
        LoraAdapter misfit = LoraTestKit.RandomAdapter(other, new LoraConfig { Rank = 2 }, seed: 1);
        Assert.That(() => set.Add("misfit", misfit), Throws.ArgumentException.With.Message.Contains("model.layers.0.self_attn.q_proj"));
    }

    [Test]
    public void ReadersKeepTheVersionTheyStartedWithWhileAWriterPublishes()
    {
        using var model = LoraTestKit.LoadModel();
        var config = new LoraConfig { Rank = 4, TargetModules = [LoraConfig.AllLinear], Seed = 8 };
        LoraAdapter shape = LoraTestKit.RandomAdapter(model, config, seed: 9, bScale: 0.02f);
        const int versions = 6;

        // Version k has B = k·B₀: every version's output is distinct and known in advance.
        LoraAdapter Version(int k) => new(shape.NumLayers, shape.Entries().ToDictionary(
            e => (e.Layer, e.Projection),
            e => new LoraLayer(e.Lora.A, e.Lora.B.ToArray().Select(x => k * x).ToArray(), e.Lora.InFeatures, e.Lora.OutFeatures, e.Lora.Rank, e.Lora.Alpha, e.Lora.UseRsLora)), config);
        int[] ids = LoraTestKit.Ids(5, 16, model.Config.VocabSize);
        float[][] expected = Enumerable.Range(0, versions).Select(k => model.Forward(ids, null, true, Version(k))).ToArray();
        for (int k = 1; k < versions; k++)
        {
            Assert.That(LoraTestKit.MaxAbsDiff(expected[k], expected[k - 1]), Is.GreaterThan(1e-2f));
        }

        var set = new LoraAdapterSet(model);
        set.Add("user", Version(0));
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(2));
        int reads = 0;
        int publishes = 0;
        var seen = new int[versions];
        Task writer = Task.Run(() =>
        {
            int k = 0;
            while (!stop.IsCancellationRequested)
            {
                k = (k + 1) % versions;
                set.Publish("user", Version(k));
                Interlocked.Increment(ref publishes);
            }
        });
        Task[] readers = Enumerable.Range(0, 3).Select(_ => Task.Run(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                LoraAdapter version = set.Get("user");
                float ratio = version.GetLayer(0, Projection.QProj)!.B[0] / shape.GetLayer(0, Projection.QProj)!.B[0];
                int k = (int)MathF.Round(ratio);
                float[] logits = model.Forward(ids, null, true, version);
                float diff = LoraTestKit.MaxAbsDiff(logits, expected[k]);
                if (!(diff <= 1e-5f))
                {
                    throw new AssertionException($"read of version {k} differs by {diff}: a torn or changed version");
                }

                Interlocked.Increment(ref seen[k]);
                Interlocked.Increment(ref reads);
            }
        })).ToArray();
        Task.WaitAll([writer, .. readers]);
        Assert.That(reads, Is.GreaterThan(10));
        Assert.That(publishes, Is.GreaterThan(10));
        Assert.That(seen.Count(c => c > 0), Is.GreaterThan(1), "readers saw several versions");
    }

    [Test]
    public void AfterAResetTheNextAdamWStepIsTheFirstStepOfFreshMoments()
    {
        // Reset (a rollback, or a candidate the evaluator refused) clears the moments but keeps the step count, and
        // AdamW's bias correction uses that count: m̂ = 0.1·g / (1 − 0.9^51) and v̂ = 0.001·g² / (1 − 0.999^51), so the
        // first step after a reset at step 50 moves each parameter by 0.71·lr instead of lr (and by 2.5·lr to 5·lr for
        // hundreds of steps after a reset at step 1000): "fresh moments" are not what the optimizer then does.
        using var model = LoraTestKit.LoadModel();
        var config = new LoraConfig { Rank = 2, TargetModules = ["v_proj"], Seed = 4 };
        LoraAdapter start = LoraTestKit.RandomAdapter(model, config, seed: 5);
        var options = new OptimizerOptions { LearningRate = 1e-3f, MaxGradNorm = null };
        var elsewhere = new[] { TrainingSequence.AllTokens(LoraTestKit.Ids(9, 8, model.Config.VocabSize)) };
        var batch = new[] { TrainingSequence.AllTokens(LoraTestKit.Ids(2, 8, model.Config.VocabSize)) };
        var rolledBack = new LoraTrainingState(start);
        for (int i = 0; i < 50; i++)
        {
            rolledBack.TrainStep(model, elsewhere, options);
        }

        rolledBack.Reset(start);
        rolledBack.TrainStep(model, batch, options);
        var fresh = new LoraTrainingState(start);
        fresh.TrainStep(model, batch, options);

        LoraLayer s = start.GetLayer(0, Projection.VProj)!;
        Assert.That(MaxStep(fresh.Publish().GetLayer(0, Projection.VProj)!.B, s.B), Is.EqualTo(1e-3f).Within(2e-5f), "a fresh optimizer's first step is lr");
        Assert.That(MaxStep(rolledBack.Publish().GetLayer(0, Projection.VProj)!.B, s.B), Is.EqualTo(1e-3f).Within(2e-5f), "the first step after a reset is lr too");
        Assert.That(LoraTestKit.MaxAbsDiff(rolledBack.Parameters, fresh.Parameters), Is.LessThan(1e-6f), "same parameters, same gradient, fresh moments: the same step");
    }

    private static float MaxStep(ReadOnlySpan<float> after, ReadOnlySpan<float> before) => LoraTestKit.MaxAbsDiff(after, before);
}

/// <summary>Refusals of the training state and of layer construction.</summary>
[TestFixture]
public sealed class LoraRefusalTests
{
    [Test]
    public void ANonFiniteGradientIsRefusedAndNoParameterChanges()
    {
        using var model = LoraTestKit.LoadModel();
        var config = new LoraConfig { Rank = 2, Seed = 1 };
        LoraAdapter fresh = LoraAdapter.CreateFresh(config, model);
        LoraLayer q = fresh.GetLayer(0, Projection.QProj)!;
        float[] b = new float[q.B.Length];
        b[0] = float.NaN;
        var layers = fresh.Entries().ToDictionary(e => (e.Layer, e.Projection), e => e.Lora);
        layers[(0, Projection.QProj)] = new LoraLayer(q.A, b, q.InFeatures, q.OutFeatures, q.Rank, q.Alpha, q.UseRsLora);
        var state = new LoraTrainingState(new LoraAdapter(fresh.NumLayers, layers, config));
        float[] before = state.Parameters.ToArray();
        var batch = new[] { TrainingSequence.AllTokens(LoraTestKit.Ids(1, 6, model.Config.VocabSize)) };
        Assert.That(() => state.TrainStep(model, batch, new OptimizerOptions { LearningRate = 1e-3f, MaxGradNorm = null }), Throws.InvalidOperationException.With.Message.Contains("NaN"));
        Assert.That(state.Parameters.ToArray(), Is.EqualTo(before));
        Assert.That(state.Step, Is.EqualTo(0));
    }

    [Test]
    public void BadLayerArgumentsNameTheParameter()
    {
        Assert.That(() => new LoraLayer(new float[3], new float[4], 2, 2, 2, 1f), Throws.ArgumentException.With.Property("ParamName").EqualTo("a").And.Message.Contains("3 values"));
        Assert.That(() => new LoraLayer(new float[4], new float[3], 2, 2, 2, 1f), Throws.ArgumentException.With.Property("ParamName").EqualTo("b"));
        Assert.That(() => new LoraLayer(new float[0], new float[0], 2, 2, 0, 1f), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("rank"));
        Assert.That(() => new LoraLayer(new float[4], new float[4], 2, 2, 2, 1f * float.PositiveInfinity), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("scale"));
        Assert.That(() => new LoraLayer(new float[4], new float[4], 2, 2, 2, alpha: double.NaN, useRsLora: false), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("alpha"));
        Assert.That(() => new LoraLayer(new float[4], new float[4], 2, 2, 2, alpha: 1, useRsLora: false, dropout: 1f), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("dropout"));
        var ok = new LoraLayer(new float[4], new float[4], 2, 2, 2, 1f);
        Assert.That(() => ok.WithMultiplier(float.NaN), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("multiplier"));
        Assert.That(() => ok.Backward(new float[2], new float[3], new float[2], new float[2], new float[2], 1, null), Throws.ArgumentException.With.Property("ParamName").EqualTo("gradients"));
    }
}
