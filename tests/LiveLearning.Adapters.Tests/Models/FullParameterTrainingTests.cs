using LiveLearning.Models;
using LiveLearning.Numerics;
using LiveLearning.Testing;
using LiveLearning.Tokenization;
using NUnit.Framework;

namespace LiveLearning.Tests.Models;

/// <summary>Full-parameter training: every tensor's gradient against finite differences, the optimizer step, saving and reloading.</summary>
[TestFixture]
public sealed class FullParameterTrainingTests
{
    private string _scratch = "";

    [SetUp]
    public void CreateScratch() => _scratch = Directory.CreateTempSubdirectory("full-training-").FullName;

    [TearDown]
    public void DeleteScratch() => Directory.Delete(_scratch, recursive: true);

    [TestCase("llama-gqa-tied")]
    [TestCase("qwen2-bias")]
    [TestCase("mistral-basic")]
    public void EveryTensorsGradientMatchesFiniteDifferences(string name)
    {
        using FullParameterTrainer trainer = Open(name);
        TrainingSequence[] batch = Batch(trainer.Model.Config.VocabSize);
        trainer.ComputeGradients(batch);
        Assert.That(trainer.Parameters.Select(t => t.Name), Does.Contain("model.embed_tokens.weight").And.Contain("model.norm.weight").And.Contain("model.layers.0.self_attn.q_proj.weight"));
        foreach (ModelTensor tensor in trainer.Parameters)
        {
            CheckDirectionalDerivative(trainer, tensor, () => trainer.Model.ComputeGradientsCore(batch, EmptyAdapter.Instance, new AdapterGradients(EmptyAdapter.Instance, trainer.Model.Config.NumLayers), null, null).Loss);
        }
    }

    [Test]
    public void GradientsUnderASequenceObjectiveMatchFiniteDifferences()
    {
        using FullParameterTrainer trainer = Open("qwen2-bias");
        TrainingSequence[] batch = Batch(trainer.Model.Config.VocabSize);
        var objective = new LogisticPair();
        trainer.ComputeGradients(batch, objective);
        foreach (ModelTensor tensor in trainer.Parameters.Where(t => t.Name.Contains("layers.1", StringComparison.Ordinal) || t.Name.Contains("embed", StringComparison.Ordinal)))
        {
            CheckDirectionalDerivative(trainer, tensor, () => trainer.Model.ComputeGradientsCore(batch, EmptyAdapter.Instance, new AdapterGradients(EmptyAdapter.Instance, trainer.Model.Config.NumLayers), objective, null).Loss);
        }
    }

    [Test]
    public void StepsLowerTheLossAndTheSameDataGivesBitIdenticalWeights()
    {
        using FullParameterTrainer first = Open("llama-gqa-tied");
        using FullParameterTrainer second = Open("llama-gqa-tied");
        TrainingSequence[] batch = Batch(first.Model.Config.VocabSize);
        float initial = first.ComputeGradients(batch).Loss;
        FullTrainingStep last = default;
        for (int i = 0; i < 30; i++)
        {
            last = first.Step(batch, 1e-2f);
            second.Step(batch, 1e-2f);
        }

        float final = first.ComputeGradients(batch).Loss;
        Assert.That(last.Applied, Is.True);
        Assert.That(first.StepCount, Is.EqualTo(30));
        Assert.That(final, Is.LessThan(initial * 0.5f), $"loss {initial} -> {final}");
        for (int t = 0; t < first.Parameters.Count; t++)
        {
            Assert.That(first.Parameters[t].Values.ToArray(), Is.EqualTo(second.Parameters[t].Values.ToArray()), first.Parameters[t].Name);
        }
    }

    [Test]
    public void ASavedModelReloadsAndComputesWhatTheTrainerComputes()
    {
        using FullParameterTrainer trainer = Open("qwen2-bias");
        TrainingSequence[] batch = Batch(trainer.Model.Config.VocabSize);
        for (int i = 0; i < 5; i++)
        {
            trainer.Step(batch, 1e-2f);
        }

        int[] prompt = batch[0].InputIds.ToArray();
        float[] trained = trainer.Model.Forward(prompt, allPositions: true);
        string f32 = Path.Combine(_scratch, "f32");
        trainer.Save(f32, WeightType.F32);
        using (LlamaModel reloaded = LlamaModel.Load(f32))
        {
            Assert.That(reloaded.Forward(prompt, allPositions: true), Is.EqualTo(trained), "float32 weights reload bit for bit");
        }

        string bf16 = Path.Combine(_scratch, "bf16");
        trainer.Save(bf16, WeightType.BF16);
        Assert.That(File.ReadAllText(Path.Combine(bf16, "config.json")), Does.Contain("\"torch_dtype\": \"bfloat16\""));
        using LlamaModel narrow = LlamaModel.Load(bf16);
        Assert.That(narrow.WeightBytes, Is.LessThan(trainer.ParameterCount * 3), "stored in 16 bits");
        float[] logits = narrow.Forward(prompt, allPositions: true);
        Assert.That(MaxAbsDiff(logits, trained), Is.LessThan(0.05f), "bfloat16 rounding moves the logits only slightly");
    }

    [Test]
    public void TheReadmeExampleTrainsAndSaves()
    {
        string modelDirectory = Path.Combine(_scratch, "model");
        string outputDirectory = Path.Combine(_scratch, "trained");
        ModelWriter.WriteRandomWithTokenizer(modelDirectory, new ModelSpec { HiddenSize = 32, IntermediateSize = 64, Layers = 2, Heads = 4, KvHeads = 2, VocabSize = 350, Seed = 3 });
        // README full training example begins
        // Every tensor trainable: the same forward and backward passes, with weight gradients for every linear, norm and embedding.
        using var trainer = FullParameterTrainer.Open(modelDirectory, new FullTrainingOptions { LearningRate = 2e-3f, WeightDecay = 0.1f });
        Tokenizer tokenizer = trainer.Model.Tokenizer!;
        int[] ids = [.. tokenizer.Encode("Ada Abend was born in Lisbon.", addSpecialTokens: false)];
        for (int step = 0; step < 20; step++)
        {
            FullTrainingStep result = trainer.Step([new TrainingSequence(ids, ids)]);
            Console.WriteLine($"step {trainer.StepCount}: loss {result.Loss:F3}, gradient norm {result.GradientNorm:F2}");
        }

        trainer.Save(outputDirectory, WeightType.BF16);   // model.safetensors + config.json + tokenizer files
        // README full training example ends

        using FullParameterTrainer original = FullParameterTrainer.Open(modelDirectory);
        float before = original.ComputeGradients([new TrainingSequence(ids, ids)]).Loss;
        float after = trainer.ComputeGradients([new TrainingSequence(ids, ids)]).Loss;
        Assert.That(after, Is.LessThan(before * 0.8f), $"loss {before} -> {after}");
        Assert.That(trainer.StepCount, Is.EqualTo(20));
        using LlamaModel saved = LlamaModel.Load(outputDirectory);
        Assert.That(saved.Tokenizer, Is.Not.Null, "the tokenizer files are copied");
    }

    [Test]
    public void ATrainerSavesOverTheDirectoryItWasLoadedFrom()
    {
        string directory = CopyConfig("llama-gqa-tied", "in-place");
        FullParameterTrainer.WriteInitialWeights(directory, seed: 2);
        float[] trained;
        int[] prompt = [1, 2, 3, 4];
        using (FullParameterTrainer trainer = FullParameterTrainer.Open(directory, modelOptions: new ModelOptions { LoadTokenizer = false, ThreadCount = 1 }))
        {
            trainer.Step(Batch(trainer.Model.Config.VocabSize), 1e-2f);
            trainer.Save(directory, WeightType.F32);
            trained = trainer.Model.Forward(prompt);
        }

        using LlamaModel reloaded = LlamaModel.Load(directory, new ModelOptions { LoadTokenizer = false });
        Assert.That(reloaded.Forward(prompt), Is.EqualTo(trained));
        Assert.That(Directory.GetFiles(directory, "*.tmp"), Is.Empty, "no temporary file is left");
    }

    [Test]
    public void InitialWeightsAreDeterministicAndLoad()
    {
        string a = CopyConfig("llama-gqa-tied", "a");
        string b = CopyConfig("llama-gqa-tied", "b");
        string c = CopyConfig("llama-gqa-tied", "c");
        FullParameterTrainer.WriteInitialWeights(a, seed: 7);
        FullParameterTrainer.WriteInitialWeights(b, seed: 7);
        FullParameterTrainer.WriteInitialWeights(c, seed: 8);
        byte[] bytesA = File.ReadAllBytes(Path.Combine(a, "model.safetensors"));
        Assert.That(File.ReadAllBytes(Path.Combine(b, "model.safetensors")), Is.EqualTo(bytesA), "same seed, same bytes");
        Assert.That(File.ReadAllBytes(Path.Combine(c, "model.safetensors")), Is.Not.EqualTo(bytesA), "another seed, other weights");
        using FullParameterTrainer trainer = FullParameterTrainer.Open(a, modelOptions: new ModelOptions { LoadTokenizer = false, ThreadCount = 1 });
        ModelTensor q = trainer.Parameters.Single(t => t.Name == "model.layers.0.self_attn.q_proj.weight");
        double std = Math.Sqrt(q.Values.ToArray().Average(v => (double)v * v));
        Assert.That(std, Is.EqualTo(0.02).Within(0.004), "N(0, 0.02²) weights");
        Assert.That(trainer.Parameters.Single(t => t.Name == "model.norm.weight").Values.ToArray(), Is.All.EqualTo(1f));
    }

    [Test]
    public void ANonFiniteLossChangesNothing()
    {
        using FullParameterTrainer trainer = Open("llama-gqa-tied");
        TrainingSequence[] batch = Batch(trainer.Model.Config.VocabSize);
        ModelTensor norm = trainer.Parameters.Single(t => t.Name == "model.norm.weight");
        norm.Values.Span[0] = float.NaN;
        float[][] before = [.. trainer.Parameters.Select(t => t.Values.ToArray())];
        FullTrainingStep step = trainer.Step(batch);
        Assert.That(step.Applied, Is.False);
        Assert.That(trainer.StepCount, Is.Zero);
        for (int t = 0; t < before.Length; t++)
        {
            Assert.That(trainer.Parameters[t].Values.ToArray(), Is.EqualTo(before[t]), trainer.Parameters[t].Name);
        }
    }

    [Test]
    public void InvalidSettingsAreRefusedByName()
    {
        Assert.That(() => FullParameterTrainer.Open(ModelFixture.DirectoryOf("llama-gqa-tied"), new FullTrainingOptions { Beta2 = 1f }), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Message.Contains("Beta2"));
        using FullParameterTrainer trainer = Open("llama-gqa-tied");
        Assert.That(() => trainer.Step(Batch(trainer.Model.Config.VocabSize), float.NaN), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Message.Contains("learning rate"));
        Assert.That(() => FullParameterTrainer.WriteInitialWeights(_scratch, 1), Throws.InstanceOf<ModelLoadException>().With.Message.Contains("config.json"));
    }

    private static FullParameterTrainer Open(string name) =>
        FullParameterTrainer.Open(ModelFixture.DirectoryOf(name), modelOptions: new ModelOptions { ThreadCount = 1, LoadTokenizer = false });

    private static TrainingSequence[] Batch(int vocab)
    {
        var rng = new Random(11);
        int[] a = [.. Enumerable.Range(0, 9).Select(_ => rng.Next(vocab))];
        int[] b = [.. Enumerable.Range(0, 6).Select(_ => rng.Next(vocab))];
        int[] labelsA = (int[])a.Clone();
        labelsA[2] = -100;
        return [new TrainingSequence(a, labelsA), new TrainingSequence(b, (int[])b.Clone())];
    }

    /// <summary>
    /// <c>g·d</c> against <c>(L(θ+εd) − L(θ−εd)) / 2ε</c> along a seeded unit direction <c>d</c> over one tensor, in
    /// place on the trainer's values (restored afterwards).
    /// </summary>
    private static void CheckDirectionalDerivative(FullParameterTrainer trainer, ModelTensor tensor, Func<float> loss)
    {
        float[] values = tensor.Values.ToArray();
        float[] gradient = tensor.Gradient.ToArray();
        var rng = new Random(tensor.Name.Length * 131);
        double[] d = [.. values.Select(_ => (rng.NextDouble() * 2) - 1)];
        double norm = Math.Sqrt(d.Sum(x => x * x));
        double analytic = 0;
        for (int i = 0; i < d.Length; i++)
        {
            d[i] /= norm;
            analytic += gradient[i] * d[i];
        }

        const double eps = 1e-2;
        double Shifted(double sign)
        {
            Span<float> live = tensor.Values.Span;
            for (int i = 0; i < live.Length; i++)
            {
                live[i] = (float)(values[i] + (sign * eps * d[i]));
            }

            double l = loss();
            values.CopyTo(live);
            return l;
        }

        double numeric = (Shifted(1) - Shifted(-1)) / (2 * eps);
        Assert.That(analytic, Is.EqualTo(numeric).Within((0.02 * Math.Abs(numeric)) + 3e-4), tensor.Name);

        // A random direction averages an error in a few elements away (sparse embedding rows, one bias); so also
        // check single elements: the largest gradient and two at random.
        int largest = 0;
        for (int i = 1; i < gradient.Length; i++)
        {
            largest = Math.Abs(gradient[i]) > Math.Abs(gradient[largest]) ? i : largest;
        }

        foreach (int element in (int[])[largest, rng.Next(gradient.Length), rng.Next(gradient.Length)])
        {
            Array.Clear(d);
            d[element] = 1;
            double single = (Shifted(1) - Shifted(-1)) / (2 * eps);
            Assert.That(gradient[element], Is.EqualTo(single).Within((0.03 * Math.Abs(single)) + 3e-4), $"{tensor.Name}[{element}]");
        }
    }

    private static float MaxAbsDiff(float[] a, float[] b) => a.Zip(b, (x, y) => MathF.Abs(x - y)).Max();

    private string CopyConfig(string name, string to)
    {
        string directory = Path.Combine(_scratch, to);
        Directory.CreateDirectory(directory);
        File.Copy(Path.Combine(ModelFixture.DirectoryOf(name), "config.json"), Path.Combine(directory, "config.json"));
        return directory;
    }

    /// <summary>A DPO-like objective: a logistic loss on the difference of the two sequences' log-likelihoods.</summary>
    private sealed class LogisticPair : SequenceObjective
    {
        public override bool NeedsLogLikelihoods => true;

        public override double Weigh(ReadOnlySpan<double> logLikelihoods, ReadOnlySpan<int> countedTokens, Span<float> weights)
        {
            double z = 0.1 * (logLikelihoods[0] - logLikelihoods[1]);
            double sigma = 1 / (1 + Math.Exp(-z));

            // L = −log σ(z); ∂L/∂CE_0 = 0.1·(1−σ), ∂L/∂CE_1 = −0.1·(1−σ).
            weights[0] = (float)(0.1 * (1 - sigma));
            weights[1] = (float)(-0.1 * (1 - sigma));
            return -Math.Log(sigma);
        }
    }

    private sealed class EmptyAdapter : IModelAdapter
    {
        public static readonly EmptyAdapter Instance = new();

        public IAdapterSlot? GetSlot(int layer, Projection projection) => null;
    }
}
