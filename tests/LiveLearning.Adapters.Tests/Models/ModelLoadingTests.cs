using System.Text.Json.Nodes;
using LiveLearning.Models;
using LiveLearning.Storage;
using LiveLearning.Testing;
using NUnit.Framework;

namespace LiveLearning.Tests.Models;

/// <summary>Malformed model directories are refused with typed exceptions that name the file and the tensor or key.</summary>
[TestFixture]
public sealed class ModelLoadingTests
{
    private string _dir = string.Empty;

    [SetUp]
    public void CopyFixture()
    {
        _dir = Path.Combine(Path.GetTempPath(), "livelearning-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
        string source = ModelFixture.DirectoryOf("llama-gqa-tied");
        foreach (string file in new[] { "config.json", "model.safetensors" })
        {
            File.Copy(Path.Combine(source, file), Path.Combine(_dir, file));
        }
    }

    [TearDown]
    public void Remove() => Directory.Delete(_dir, recursive: true);

    [Test]
    public void AMissingTensorIsNamed()
    {
        EditConfig(c => c["num_hidden_layers"] = 3);
        Assert.That(() => LlamaModel.Load(_dir), Throws.TypeOf<ModelLoadException>()
            .With.Property(nameof(ModelLoadException.Item)).EqualTo("model.layers.2.input_layernorm.weight")
            .Or.Property(nameof(ModelLoadException.Item)).StartsWith("model.layers.2."));
    }

    [Test]
    public void AShapeThatDisagreesWithTheConfigIsNamed()
    {
        EditConfig(c => c["intermediate_size"] = 128);
        Assert.That(() => LlamaModel.Load(_dir), Throws.TypeOf<ModelLoadException>()
            .With.Message.Contains("model.layers.0.mlp.gate_proj.weight").And.Message.Contains("[160, 64]"));
    }

    [Test]
    public void AnUnsupportedArchitectureNamesTheKeyAndValue()
    {
        EditConfig(c => c["model_type"] = "gpt2");
        Assert.That(() => LlamaModel.Load(_dir), Throws.TypeOf<ModelConfigException>().With.Message.Contains("model_type").And.Message.Contains("gpt2"));
    }

    [Test]
    public void AMissingConfigIsReported()
    {
        File.Delete(Path.Combine(_dir, "config.json"));
        Assert.That(() => LlamaModel.Load(_dir), Throws.TypeOf<ModelLoadException>().With.Message.Contains("config.json"));
    }

    [Test]
    public void ATruncatedWeightsFileIsReportedAsAFormatError()
    {
        string path = Path.Combine(_dir, "model.safetensors");
        byte[] bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
        Assert.That(() => LlamaModel.Load(_dir), Throws.InstanceOf<SafeTensorsFormatException>());
    }

    [Test]
    public void AModelWrittenByModelWriterLoadsAndRuns()
    {
        string dir = Path.Combine(_dir, "written");
        ModelWriter.WriteRandom(dir, new ModelSpec { HiddenSize = 32, IntermediateSize = 48, Layers = 1, Heads = 4, KvHeads = 2, VocabSize = 50, WeightType = LiveLearning.Numerics.WeightType.BF16 });
        using var model = LlamaModel.Load(dir);
        float[] logits = model.Forward([1, 2, 3], null, allPositions: true);
        Assert.That(logits, Has.Length.EqualTo(3 * 50));
        Assert.That(logits.All(float.IsFinite), Is.True);
        // BF16 matrices stay 2 bytes per weight; norm vectors are widened to float32.
        const long matrices = 2L * ((50 * 32) + (32 * 32) + (16 * 32) + (16 * 32) + (32 * 32) + (3 * 48 * 32));
        Assert.That(model.WeightBytes, Is.EqualTo(matrices + (3 * 32 * 4)));
    }

    private void EditConfig(Action<JsonObject> edit)
    {
        string path = Path.Combine(_dir, "config.json");
        JsonObject config = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        edit(config);
        File.WriteAllText(path, config.ToJsonString());
    }
}
