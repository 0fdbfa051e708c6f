using System.Text.Json;
using LiveLearning.Lora;
using LiveLearning.Models;
using LiveLearning.Storage;
using LiveLearning.Tests.Models;
using NUnit.Framework;

namespace LiveLearning.Tests.Lora;

/// <summary>PEFT import/export: byte-exact files, lossless round trips, the independent rsLoRA/pattern fixture, and clear refusals.</summary>
[TestFixture]
public sealed class PeftFormatTests
{
    private string _temp = null!;

    [SetUp]
    public void SetUp()
    {
        _temp = Path.Combine(Path.GetTempPath(), "ll-peft-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_temp);
    }

    [TearDown]
    public void TearDown() => Directory.Delete(_temp, recursive: true);

    [Test]
    public void ExportOfATinyAdapterIsByteIdenticalToTheIndependentWriter()
    {
        // Golden files written by Fixtures/Lora/generate_lora.py with PEFT's json.dumps(indent=2, sort_keys=True)
        // and the spec-derived safetensors writer of Fixtures/Models/generate.py.
        var layers = new Dictionary<(int, Projection), LoraLayer>
        {
            [(0, Projection.QProj)] = new LoraLayer([0.5f, -1f], [1f, 2f, -0.25f], 2, 3, 1, alpha: 2, useRsLora: false),
        };
        var config = new LoraConfig { Rank = 1, Alpha = 2, TargetModules = ["q_proj"], BaseModelName = "tiny" };
        new LoraAdapter(1, layers, config).SavePeft(_temp);
        string golden = LoraTestKit.LoraFixture("tiny-golden");
        byte[] weights = File.ReadAllBytes(Path.Combine(_temp, LoraAdapter.WeightsFileName));
        byte[] expected = File.ReadAllBytes(Path.Combine(golden, LoraAdapter.WeightsFileName));
        Assert.That(weights[..8], Is.EqualTo(expected[..8]), "header length");
        ulong n = BitConverter.ToUInt64(expected, 0);
        Assert.That(System.Text.Encoding.UTF8.GetString(weights, 8, (int)n), Is.EqualTo(System.Text.Encoding.UTF8.GetString(expected, 8, (int)n)), "header JSON");
        Assert.That(weights, Is.EqualTo(expected), "whole file");
        Assert.That(File.ReadAllText(Path.Combine(_temp, LoraAdapter.ConfigFileName)), Is.EqualTo(File.ReadAllText(Path.Combine(golden, LoraAdapter.ConfigFileName))));
    }

    [Test]
    public void RoundTripGivesIdenticalTensorsAndConfig()
    {
        using var model = LoraTestKit.LoadModel();
        var config = new LoraConfig
        {
            Rank = 4,
            Alpha = 7.5,
            Dropout = 0.05,
            UseRsLora = true,
            TargetModules = ["q_proj", "v_proj", "mlp.down_proj"],
            RankPattern = new Dictionary<string, int> { ["v_proj"] = 3 },
            AlphaPattern = new Dictionary<string, double> { ["model.layers.1.mlp.down_proj"] = 2.25 },
            BaseModelName = "llama-gqa-tied",
        };
        LoraAdapter original = LoraTestKit.RandomAdapter(model, config, seed: 3);
        original.SavePeft(_temp);
        LoraAdapter back = LoraAdapter.LoadPeft(_temp, model);

        Assert.That(back.Config.Rank, Is.EqualTo(config.Rank));
        Assert.That(back.Config.Alpha, Is.EqualTo(config.Alpha));
        Assert.That(back.Config.Dropout, Is.EqualTo(config.Dropout));
        Assert.That(back.Config.UseRsLora, Is.True);
        Assert.That(back.Config.TargetModules, Is.EqualTo(config.TargetModules));
        Assert.That(back.Config.RankPattern, Is.EquivalentTo(config.RankPattern));
        Assert.That(back.Config.AlphaPattern, Is.EquivalentTo(config.AlphaPattern));
        Assert.That(back.Config.BaseModelName, Is.EqualTo(config.BaseModelName));
        Assert.That(LoraAdapter.ConfigJson(back.Config), Is.EqualTo(LoraAdapter.ConfigJson(config)));
        Assert.That(back.Entries().Select(e => (e.Layer, e.Projection)), Is.EqualTo(original.Entries().Select(e => (e.Layer, e.Projection))));
        foreach ((int l, Projection p, LoraLayer a) in original.Entries())
        {
            LoraLayer b = back.GetLayer(l, p)!;
            Assert.That(b.A.ToArray(), Is.EqualTo(a.A.ToArray()));
            Assert.That(b.B.ToArray(), Is.EqualTo(a.B.ToArray()));
            Assert.That((b.Rank, b.Alpha, b.Scale), Is.EqualTo((a.Rank, a.Alpha, a.Scale)));
        }

        // Second export is byte-identical.
        string again = Path.Combine(_temp, "again");
        back.SavePeft(again);
        Assert.That(File.ReadAllBytes(Path.Combine(again, LoraAdapter.WeightsFileName)), Is.EqualTo(File.ReadAllBytes(Path.Combine(_temp, LoraAdapter.WeightsFileName))));
    }

    [Test]
    public void ACombinedAdapterWithMixedRanksExportsAndLoadsBack()
    {
        // Combine gives per-module ranks and alphas (and layers on only some projections): the derived config must
        // describe them with rank_pattern / alpha_pattern so the file loads back to the same deltas.
        using var model = LoraTestKit.LoadModel();
        LoraAdapter x = LoraTestKit.RandomAdapter(model, new LoraConfig { Rank = 4, TargetModules = ["q_proj", "v_proj"] }, seed: 1);
        LoraAdapter y = LoraTestKit.RandomAdapter(model, new LoraConfig { Rank = 2, TargetModulesRegex = @"model\.layers\.1\.mlp\.down_proj|.*q_proj" }, seed: 2);
        LoraAdapter combined = LoraAdapter.Combine([(x, 0.5f), (y, 2f)]);
        combined.SavePeft(_temp);
        LoraAdapter back = LoraAdapter.LoadPeft(_temp, model);
        Assert.That(back.ModuleCount, Is.EqualTo(combined.ModuleCount));
        foreach ((int l, Projection p, LoraLayer a) in combined.Entries())
        {
            LoraLayer b = back.GetLayer(l, p)!;
            Assert.That((b.Rank, b.Scale), Is.EqualTo((a.Rank, a.Scale)), ProjectionNames.ModulePath(l, p));
            Assert.That(LoraMerge.Delta(b), Is.EqualTo(LoraMerge.Delta(a)));
        }
    }

    [Test]
    public void ExportedFilesFollowThePeftLayout()
    {
        using var model = LoraTestKit.LoadModel();
        LoraAdapter adapter = LoraTestKit.RandomAdapter(model, new LoraConfig { Rank = 2 }, seed: 1);
        adapter.SavePeft(_temp);
        using SafeTensorsFile file = SafeTensorsFile.Open(Path.Combine(_temp, LoraAdapter.WeightsFileName));
        Assert.That(file.Metadata, Is.EquivalentTo(new Dictionary<string, string> { ["format"] = "pt" }));
        Assert.That(file.Names, Is.Ordered.Using((IComparer<string>)StringComparer.Ordinal));
        Assert.That(file.GetInfo("base_model.model.model.layers.1.self_attn.v_proj.lora_A.weight").Shape, Is.EqualTo(new long[] { 2, 64 }));
        Assert.That(file.GetInfo("base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight").Shape, Is.EqualTo(new long[] { 32, 2 }));
        Assert.That(file.Names, Has.Count.EqualTo(8));
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(_temp, LoraAdapter.ConfigFileName)));
        string[] keys = doc.RootElement.EnumerateObject().Select(p => p.Name).ToArray();
        Assert.That(keys, Is.Ordered.Using((IComparer<string>)StringComparer.Ordinal));
        Assert.That(keys, Does.Not.Contain("rank_pattern").And.Not.Contain("alpha_pattern"), "patterns are written only when used");
        Assert.That(doc.RootElement.GetProperty("inference_mode").GetBoolean(), Is.True);
        Assert.That(doc.RootElement.GetProperty("peft_type").GetString(), Is.EqualTo("LORA"));
    }

    [Test]
    public void IndependentRsLoraPatternFixtureGivesTheReferenceLogitsLossAndGradients()
    {
        string dir = LoraTestKit.LoraFixture("rslora-patterns");
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "expected.json")));
        JsonElement root = doc.RootElement;
        using var model = LoraTestKit.LoadModel();
        LoraAdapter adapter = LoraAdapter.LoadPeft(dir, model);
        Assert.That(adapter.Config.UseRsLora, Is.True);
        Assert.That(adapter.Config.TargetModulesRegex, Is.Not.Null);
        foreach (JsonProperty module in root.GetProperty("modules").EnumerateObject())
        {
            string[] parts = module.Name.Split('.');
            Assert.That(ProjectionNames.TryParse(parts[4], out Projection p), Is.True);
            LoraLayer lora = adapter.GetLayer(int.Parse(parts[2], System.Globalization.CultureInfo.InvariantCulture), p)!;
            Assert.That(lora.Rank, Is.EqualTo(module.Value.GetProperty("r").GetInt32()), module.Name);
            Assert.That(lora.Scale, Is.EqualTo((float)module.Value.GetProperty("scale").GetDouble()), module.Name);
        }

        Assert.That(adapter.ModuleCount, Is.EqualTo(root.GetProperty("modules").EnumerateObject().Count()));
        int[] ids = ModelFixture.Ints(root.GetProperty("input_ids"));
        float[] logits = model.Forward(ids, null, allPositions: true, adapter);
        LlamaModelTests.AssertClose(logits, ModelFixture.Floats(root.GetProperty("logits_with_adapter")), 1e-4f, "logits");

        var gradients = new AdapterGradients(adapter, model.Config.NumLayers);
        GradientResult r = model.ComputeGradients([new TrainingSequence(ids, ModelFixture.Ints(root.GetProperty("labels")))], adapter, gradients);
        Assert.That(r.Loss, Is.EqualTo(root.GetProperty("loss").GetDouble()).Within(1e-4));
        int checkedTensors = 0;
        foreach (JsonProperty entry in root.GetProperty("gradients").EnumerateObject())
        {
            (int layer, Projection projection, bool isA) = LlamaModelTests.ParsePeftKey(entry.Name);
            LoraLayer slot = adapter.GetLayer(layer, projection)!;
            Span<float> g = gradients.Get(layer, projection);
            float[] actual = isA ? g[..slot.A.Length].ToArray() : g[slot.A.Length..].ToArray();
            float[] expected = ModelFixture.Floats(entry.Value);
            LlamaModelTests.AssertClose(actual, expected, 1e-3f * Math.Max(expected.Max(MathF.Abs), 1e-6f), entry.Name);
            checkedTensors++;
        }

        Assert.That(checkedTensors, Is.EqualTo(20));
    }

    [Test]
    public void PrefixlessAndDefaultInfixKeysLoadToo()
    {
        using var model = LoraTestKit.LoadModel();
        LoraAdapter adapter = LoraTestKit.RandomAdapter(model, new LoraConfig { Rank = 2 }, seed: 5);
        var entries = new List<SafeTensorsEntry>();
        foreach ((int l, Projection p, LoraLayer lora) in adapter.Entries())
        {
            string module = ProjectionNames.ModulePath(l, p);
            entries.Add(SafeTensorsEntry.FromFloat32(module + ".lora_A.default.weight", lora.A, lora.Rank, lora.InFeatures));
            entries.Add(SafeTensorsEntry.FromFloat32(module + ".lora_B.weight", lora.B, lora.OutFeatures, lora.Rank));
        }

        SafeTensorsWriter.Write(Path.Combine(_temp, LoraAdapter.WeightsFileName), entries);
        File.WriteAllText(Path.Combine(_temp, LoraAdapter.ConfigFileName), LoraAdapter.ConfigJson(adapter.Config));
        LoraAdapter back = LoraAdapter.LoadPeft(_temp, model);
        Assert.That(back.GetLayer(1, Projection.VProj)!.B.ToArray(), Is.EqualTo(adapter.GetLayer(1, Projection.VProj)!.B.ToArray()));
    }

    public static IEnumerable<TestCaseData> RefusedConfigs()
    {
        yield return new TestCaseData("use_dora", "true", "DoRA").SetName("Dora");
        yield return new TestCaseData("modules_to_save", "[\"lm_head\"]", "modules_to_save").SetName("ModulesToSave");
        yield return new TestCaseData("fan_in_fan_out", "true", "fan_in_fan_out").SetName("FanInFanOut");
        yield return new TestCaseData("lora_bias", "true", "lora_bias").SetName("LoraBias");
        yield return new TestCaseData("bias", "\"all\"", "bias").SetName("BiasAll");
        yield return new TestCaseData("layers_to_transform", "[0]", "layers_to_transform").SetName("LayersToTransform");
        yield return new TestCaseData("peft_type", "\"IA3\"", "IA3").SetName("NotLora");
        yield return new TestCaseData("init_lora_weights", "\"pissa\"", "base weights").SetName("Pissa");
        yield return new TestCaseData("r", "0", "Rank").SetName("RankZero");
    }

    [TestCaseSource(nameof(RefusedConfigs))]
    public void UnrepresentableConfigsAreRefusedNamingTheKey(string key, string json, string messagePart)
    {
        using var model = LoraTestKit.LoadModel();
        LoraTestKit.RandomAdapter(model, new LoraConfig { Rank = 2 }, seed: 1).SavePeft(_temp);
        string path = Path.Combine(_temp, LoraAdapter.ConfigFileName);
        var node = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        node[key] = System.Text.Json.Nodes.JsonNode.Parse(json);
        File.WriteAllText(path, node.ToJsonString());
        Assert.That(() => LoraAdapter.LoadPeft(_temp, model), Throws.InstanceOf<ModelLoadException>().With.Message.Contains(messagePart));
    }

    public static IEnumerable<TestCaseData> RefusedTensors()
    {
        yield return new TestCaseData("base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector", new long[] { 64 }, "DoRA").SetName("MagnitudeVector");
        yield return new TestCaseData("base_model.model.lm_head.weight", new long[] { 256, 64 }, "modules_to_save").SetName("LmHead");
        yield return new TestCaseData("base_model.model.model.embed_tokens.lora_embedding_A", new long[] { 2, 256 }, "embedding").SetName("EmbeddingLora");
        yield return new TestCaseData("base_model.model.model.layers.0.self_attn.q_proj.lora_B.bias", new long[] { 64 }, "lora_bias").SetName("LoraBias");
        yield return new TestCaseData("base_model.model.model.layers.7.self_attn.q_proj.lora_A.weight", new long[] { 2, 64 }, "layer 7").SetName("LayerOutOfRange");
        yield return new TestCaseData("base_model.model.model.layers.0.self_attn.k_proj.lora_A.weight", new long[] { 2, 64 }, "target_modules").SetName("UntargetedModule");
        yield return new TestCaseData("base_model.model.model.layers.0.self_attn.qq_proj.lora_A.weight", new long[] { 2, 64 }, "not a projection").SetName("UnknownModule");
    }

    [TestCaseSource(nameof(RefusedTensors))]
    public void UnrepresentableOrUnfittingTensorsAreRefusedNamingTheTensor(string name, long[] shape, string messagePart)
    {
        using var model = LoraTestKit.LoadModel();
        LoraAdapter adapter = LoraTestKit.RandomAdapter(model, new LoraConfig { Rank = 2 }, seed: 1);
        adapter.SavePeft(_temp);
        WriteWithExtra(adapter, name, shape);
        Assert.That(
            () => LoraAdapter.LoadPeft(_temp, model),
            Throws.InstanceOf<ModelLoadException>().With.Message.Contains(messagePart).And.Message.Contains(name.Replace("base_model.model.", string.Empty, StringComparison.Ordinal).Split(".lora_")[0].Split(".weight")[0]));
    }

    [Test]
    public void AShapeMismatchIsRefusedNamingTheFirstMismatchingTensor()
    {
        using var model = LoraTestKit.LoadModel();
        using var other = LlamaModel.Load(ModelFixture.DirectoryOf("llama3-rope"), new ModelOptions { LoadTokenizer = false });

        // llama3-rope's q_proj is [128, 64]; on llama-gqa-tied ([64, 64]) layer 0's q_proj B is the first mismatch.
        LoraTestKit.RandomAdapter(other, new LoraConfig { Rank = 2 }, seed: 1).SavePeft(_temp);
        Assert.That(
            () => LoraAdapter.LoadPeft(_temp, model),
            Throws.InstanceOf<ModelLoadException>().With.Message.Contains("model.layers.0.self_attn.q_proj.lora_B.weight").And.Message.Contains("[64, 2]"));

        // A rank that disagrees with the config (r=2 in the file, r=3 in the config).
        string path = Path.Combine(_temp, LoraAdapter.ConfigFileName);
        LoraTestKit.RandomAdapter(model, new LoraConfig { Rank = 2 }, seed: 1).SavePeft(_temp);
        File.WriteAllText(path, File.ReadAllText(path).Replace("\"r\": 2", "\"r\": 3", StringComparison.Ordinal));
        Assert.That(() => LoraAdapter.LoadPeft(_temp, model), Throws.InstanceOf<ModelLoadException>().With.Message.Contains("model.layers.0.self_attn.q_proj.lora_A.weight").And.Message.Contains("rank 3"));
    }

    [Test]
    public void AMissingHalfOfAPairIsRefused()
    {
        using var model = LoraTestKit.LoadModel();
        LoraAdapter adapter = LoraTestKit.RandomAdapter(model, new LoraConfig { Rank = 2 }, seed: 1);
        adapter.SavePeft(_temp);
        string file = Path.Combine(_temp, LoraAdapter.WeightsFileName);
        var entries = new List<SafeTensorsEntry>();
        using (SafeTensorsFile f = SafeTensorsFile.Load(File.ReadAllBytes(file), file))
        {
            foreach (string n in f.Names.Where(n => !n.Contains("layers.1.self_attn.v_proj.lora_B", StringComparison.Ordinal)))
            {
                TensorInfo info = f.GetInfo(n);
                entries.Add(new SafeTensorsEntry(n, info.DType, [.. info.Shape], f.GetBytes(n).ToArray()));
            }
        }

        SafeTensorsWriter.Write(file, entries);
        Assert.That(() => LoraAdapter.LoadPeft(_temp, model), Throws.InstanceOf<ModelLoadException>().With.Message.Contains("model.layers.1.self_attn.v_proj").And.Message.Contains("no lora_B"));
    }

    private void WriteWithExtra(LoraAdapter adapter, string name, long[] shape)
    {
        var entries = new List<SafeTensorsEntry>();
        foreach ((int l, Projection p, LoraLayer lora) in adapter.Entries())
        {
            string module = "base_model.model." + ProjectionNames.ModulePath(l, p);
            entries.Add(SafeTensorsEntry.FromFloat32(module + ".lora_A.weight", lora.A, lora.Rank, lora.InFeatures));
            entries.Add(SafeTensorsEntry.FromFloat32(module + ".lora_B.weight", lora.B, lora.OutFeatures, lora.Rank));
        }

        entries.Add(SafeTensorsEntry.FromFloat32(name, new float[shape.Aggregate(1L, (a, b) => a * b)], shape));
        SafeTensorsWriter.Write(Path.Combine(_temp, LoraAdapter.WeightsFileName), entries, new Dictionary<string, string> { ["format"] = "pt" });
    }
}
