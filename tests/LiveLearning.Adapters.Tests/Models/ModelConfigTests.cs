using System.Text.Json.Nodes;
using LiveLearning.Models;
using NUnit.Framework;

namespace LiveLearning.Tests.Models;

[TestFixture]
public sealed class ModelConfigTests
{
    private const string Source = "config.json";

    // Shapes of published configs (SmolLM2-135M, Qwen2.5-0.5B, Llama-3.2-1B, Mistral-7B-v0.1), trimmed to the keys that matter.
    private const string SmolLm2 = """
        {
          "architectures": ["LlamaForCausalLM"], "attention_bias": false, "bos_token_id": 0, "eos_token_id": 0,
          "hidden_act": "silu", "hidden_size": 576, "initializer_range": 0.041666666666666664, "intermediate_size": 1536,
          "max_position_embeddings": 8192, "mlp_bias": false, "model_type": "llama", "num_attention_heads": 9,
          "num_hidden_layers": 30, "num_key_value_heads": 3, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
          "rope_scaling": null, "rope_theta": 100000, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
          "transformers_version": "4.42.3", "use_cache": true, "vocab_size": 49152
        }
        """;

    private const string Qwen25 = """
        {
          "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643, "eos_token_id": 151643,
          "hidden_act": "silu", "hidden_size": 896, "initializer_range": 0.02, "intermediate_size": 4864,
          "max_position_embeddings": 32768, "max_window_layers": 24, "model_type": "qwen2", "num_attention_heads": 14,
          "num_hidden_layers": 24, "num_key_value_heads": 2, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
          "sliding_window": 32768, "tie_word_embeddings": true, "torch_dtype": "bfloat16", "transformers_version": "4.40.1",
          "use_cache": true, "use_sliding_window": false, "vocab_size": 151936
        }
        """;

    private const string Llama32 = """
        {
          "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0, "bos_token_id": 128000,
          "eos_token_id": [128001, 128008, 128009], "head_dim": 64, "hidden_act": "silu", "hidden_size": 2048,
          "initializer_range": 0.02, "intermediate_size": 8192, "max_position_embeddings": 131072, "mlp_bias": false,
          "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 16, "num_key_value_heads": 8,
          "pretraining_tp": 1, "rms_norm_eps": 1e-05,
          "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0, "original_max_position_embeddings": 8192, "rope_type": "llama3"},
          "rope_theta": 500000.0, "tie_word_embeddings": true, "torch_dtype": "bfloat16", "use_cache": true, "vocab_size": 128256
        }
        """;

    private const string Mistral = """
        {
          "architectures": ["MistralForCausalLM"], "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
          "hidden_size": 4096, "intermediate_size": 14336, "max_position_embeddings": 32768, "model_type": "mistral",
          "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8, "rms_norm_eps": 1e-05,
          "rope_theta": 10000.0, "sliding_window": 4096, "tie_word_embeddings": false, "torch_dtype": "bfloat16", "vocab_size": 32000
        }
        """;

    // Produced by rope_golden.py (independent Python re-derivation of the HF formulas, rounded once to float32).
    private static readonly float[] Llama32Golden = [1.0f, 0.6636012196540833f, 0.44036659598350525f, 0.2922278344631195f, 0.1939227432012558f, 0.12868736684322357f, 0.08539710193872452f, 0.05666962265968323f, 0.03760603070259094f, 0.02495540864765644f, 0.016560440883040428f, 0.010989528149366379f, 0.007292664609849453f, 0.00483942124992609f, 0.0032114461064338684f, 0.0012905478943139315f, 0.00042955679236911237f, 9.708287689136341e-05f, 1.9461638657958247e-05f, 1.291476746700937e-05f, 8.570255886297673e-06f, 5.687232260243036e-06f, 3.7740542211395223e-06f, 2.504467147446121e-06f, 1.6619674170215148e-06f, 1.1028836297555245e-06f, 7.318749908336031e-07f, 4.856731266045244e-07f, 3.2229328894572973e-07f, 2.1387423032592778e-07f, 1.4192720243499934e-07f, 9.418306490260875e-08f];

    private static readonly float[] DynamicGolden = [1.0f, 0.26051709055900574f, 0.0678691565990448f, 0.017681075260043144f, 0.00460622226819396f, 0.001199999707750976f, 0.00031262042466551065f, 8.144296589307487e-05f];

    [Test]
    public void SmolLm2ConfigIsReadWithGqaAndTiedEmbeddings()
    {
        ModelConfig c = ModelConfig.Parse(SmolLm2, Source);
        Assert.That((c.ModelType, c.HiddenSize, c.IntermediateSize, c.NumLayers, c.NumHeads, c.NumKvHeads, c.HeadDim, c.VocabSize),
            Is.EqualTo(("llama", 576, 1536, 30, 9, 3, 64, 49152)));
        Assert.That((c.RmsNormEps, c.RopeTheta, c.RopeScaling, c.MaxPositionEmbeddings), Is.EqualTo((1e-5, 100000.0, (RopeScaling?)null, 8192)));
        Assert.That((c.TieWordEmbeddings, c.AttentionBias, c.OutputProjectionBias, c.MlpBias), Is.EqualTo((true, false, false, false)));
        Assert.That((c.BosTokenId, c.EosTokenIds, c.TorchDtype, c.HiddenAct), Is.EqualTo(((int?)0, new[] { 0 }, "bfloat16", "silu")));
        Assert.That((c.QueryDim, c.KeyValueDim, c.SlidingWindow, c.SlidingWindowForLayer(29)), Is.EqualTo((576, 192, (int?)null, (int?)null)));
        Assert.That(c.Architectures, Is.EqualTo(new[] { "LlamaForCausalLM" }));
    }

    [Test]
    public void Qwen25ConfigHasQkvBiasesButNoWindowUnlessEnabled()
    {
        ModelConfig c = ModelConfig.Parse(Qwen25, Source);
        Assert.That((c.HeadDim, c.NumKvHeads, c.RopeTheta, c.TieWordEmbeddings), Is.EqualTo((64, 2, 1_000_000.0, true)));
        Assert.That((c.AttentionBias, c.OutputProjectionBias, c.MlpBias), Is.EqualTo((true, false, false)));
        Assert.That((c.SlidingWindow, c.SlidingWindowForLayer(23)), Is.EqualTo(((int?)null, (int?)null)), "use_sliding_window is false");
        Assert.That(c.EosTokenIds, Is.EqualTo(new[] { 151643 }));
    }

    [Test]
    public void Qwen2SlidingWindowAppliesFromMaxWindowLayersOrLayerTypes()
    {
        JsonObject json = Node(Qwen25);
        json["use_sliding_window"] = true;
        json["sliding_window"] = 4096;
        json["max_window_layers"] = 20;
        ModelConfig c = ModelConfig.Parse(json.ToJsonString(), Source);
        Assert.That((c.SlidingWindow, c.SlidingWindowForLayer(19), c.SlidingWindowForLayer(20)), Is.EqualTo(((int?)4096, (int?)null, (int?)4096)));

        json["layer_types"] = new JsonArray([.. Enumerable.Range(0, 24).Select(i => (JsonNode)(i == 3 ? "sliding_attention" : "full_attention"))]);
        c = ModelConfig.Parse(json.ToJsonString(), Source);
        Assert.That((c.SlidingWindowForLayer(3), c.SlidingWindowForLayer(20)), Is.EqualTo(((int?)4096, (int?)null)));
        Assert.That(() => c.SlidingWindowForLayer(24), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("layer"));
    }

    [Test]
    public void MistralSlidingWindowDefaultsTo4096AndNullMeansFullAttention()
    {
        ModelConfig c = ModelConfig.Parse(Mistral, Source);
        Assert.That((c.SlidingWindow, c.SlidingWindowForLayer(0), c.SlidingWindowForLayer(31)), Is.EqualTo(((int?)4096, (int?)4096, (int?)4096)));

        JsonObject json = Node(Mistral);
        json["sliding_window"] = null;
        Assert.That(ModelConfig.Parse(json.ToJsonString(), Source).SlidingWindow, Is.Null);
        json.Remove("sliding_window");
        json.Remove("num_key_value_heads");
        json.Remove("max_position_embeddings");
        c = ModelConfig.Parse(json.ToJsonString(), Source);
        Assert.That((c.SlidingWindow, c.NumKvHeads, c.MaxPositionEmbeddings), Is.EqualTo(((int?)4096, 8, 131072)), "MistralConfig defaults");
    }

    [TestCase("llama", 12)]
    [TestCase("mistral", 8)]
    [TestCase("qwen2", 32)]
    public void AbsentKvHeadsUseTheModelTypeDefaultAndNullMeansNoGqa(string modelType, int expected)
    {
        var json = new JsonObject
        {
            ["model_type"] = modelType, ["hidden_size"] = 768, ["intermediate_size"] = 64, ["num_hidden_layers"] = 2,
            ["num_attention_heads"] = modelType == "llama" ? 12 : 32, ["vocab_size"] = 300,
        };
        if (modelType != "llama")
        {
            json["head_dim"] = 16;
        }

        Assert.That(ModelConfig.Parse(json.ToJsonString(), Source).NumKvHeads, Is.EqualTo(expected));
        json["num_key_value_heads"] = null;
        Assert.That(ModelConfig.Parse(json.ToJsonString(), Source).NumKvHeads, Is.EqualTo(json["num_attention_heads"]!.GetValue<int>()));
    }

    [Test]
    public void DefaultsOfAMinimalLlamaConfig()
    {
        ModelConfig c = ModelConfig.Parse("""{"model_type":"llama","hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,"num_attention_heads":4,"vocab_size":300}""", Source);
        Assert.That((c.NumKvHeads, c.HeadDim, c.RmsNormEps, c.RopeTheta, c.MaxPositionEmbeddings, c.TieWordEmbeddings), Is.EqualTo((4, 16, 1e-6, 10000.0, 2048, false)));
        Assert.That((c.BosTokenId, c.EosTokenIds, c.TorchDtype, c.HiddenAct, c.Architectures.Count), Is.EqualTo(((int?)1, new[] { 2 }, (string?)null, "silu", 0)));
        Assert.That(RopeFrequencies.AttentionScaling(c), Is.EqualTo(1f));
    }

    [Test]
    public void ExplicitHeadDimOverridesHiddenOverHeads()
    {
        JsonObject json = Node(Mistral);
        json["hidden_size"] = 5120;
        json["head_dim"] = 128;
        ModelConfig c = ModelConfig.Parse(json.ToJsonString(), Source);
        Assert.That((c.HeadDim, c.QueryDim, c.KeyValueDim), Is.EqualTo((128, 4096, 1024)));

        json["num_attention_heads"] = 7; // does not divide 5120, allowed because head_dim is explicit
        json["num_key_value_heads"] = 1;
        Assert.That(ModelConfig.Parse(json.ToJsonString(), Source).HeadDim, Is.EqualTo(128));
    }

    [Test]
    public void LlamaAttentionAndMlpBiasFlagsAreRecorded()
    {
        JsonObject json = Node(SmolLm2);
        json["attention_bias"] = true;
        json["mlp_bias"] = true;
        ModelConfig c = ModelConfig.Parse(json.ToJsonString(), Source);
        Assert.That((c.AttentionBias, c.OutputProjectionBias, c.MlpBias), Is.EqualTo((true, true, true)));
    }

    [Test]
    public void Transformers5RopeParametersAndDtypeAreRead()
    {
        JsonObject json = Node(Llama32);
        json.Remove("rope_scaling");
        json.Remove("rope_theta");
        json.Remove("torch_dtype");
        json["dtype"] = "float32";
        json["rope_parameters"] = new JsonObject
        {
            ["rope_type"] = "llama3", ["rope_theta"] = 500000.0, ["factor"] = 32.0, ["low_freq_factor"] = 1.0,
            ["high_freq_factor"] = 4.0, ["original_max_position_embeddings"] = 8192,
        };
        ModelConfig c = ModelConfig.Parse(json.ToJsonString(), Source);
        Assert.That((c.TorchDtype, c.RopeTheta, c.RopeScaling!.Type), Is.EqualTo(("float32", 500000.0, RopeScalingType.Llama3)));
        Assert.That(RopeFrequencies.InverseFrequencies(c, 1), Is.EqualTo(Llama32Golden).Within(2).Ulps);

        json["rope_parameters"] = new JsonObject { ["rope_type"] = "default", ["rope_theta"] = 1234.0 };
        c = ModelConfig.Parse(json.ToJsonString(), Source);
        Assert.That((c.RopeTheta, c.RopeScaling), Is.EqualTo((1234.0, (RopeScaling?)null)));
    }

    [Test]
    public void OlderTypeKeyIsAcceptedForRopeScaling()
    {
        JsonObject json = Node(SmolLm2);
        json["rope_scaling"] = new JsonObject { ["type"] = "linear", ["factor"] = 4.0 };
        ModelConfig c = ModelConfig.Parse(json.ToJsonString(), Source);
        Assert.That((c.RopeScaling!.Type, c.RopeScaling.Factor), Is.EqualTo((RopeScalingType.Linear, 4.0)));
    }

    [Test]
    public void DefaultFrequenciesAreOneOverThetaToTheTwoIOverD()
    {
        ModelConfig c = ModelConfig.Parse(SmolLm2, Source);
        float[] inv = RopeFrequencies.InverseFrequencies(c, 100);
        Assert.That(inv, Has.Length.EqualTo(32));
        for (int i = 0; i < 32; i++)
        {
            Assert.That(inv[i], Is.EqualTo((float)Math.Exp(-Math.Log(100000.0) * i / 32)).Within(1).Ulps, $"i = {i}");
        }
    }

    [Test]
    public void LinearScalingDividesEveryFrequencyByTheFactor()
    {
        JsonObject json = Node(SmolLm2);
        float[] plain = RopeFrequencies.InverseFrequencies(ModelConfig.Parse(json.ToJsonString(), Source), 0);
        json["rope_scaling"] = new JsonObject { ["rope_type"] = "linear", ["factor"] = 8.0 };
        float[] scaled = RopeFrequencies.InverseFrequencies(ModelConfig.Parse(json.ToJsonString(), Source), 0);
        Assert.That(scaled, Is.EqualTo(plain.Select(f => f / 8f).ToArray()).Within(1).Ulps);
    }

    [Test]
    public void DynamicScalingIsDefaultUpToMaxPositionsThenRescalesTheBase()
    {
        var json = new JsonObject
        {
            ["model_type"] = "llama", ["hidden_size"] = 64, ["intermediate_size"] = 128, ["num_hidden_layers"] = 1,
            ["num_attention_heads"] = 4, ["vocab_size"] = 300, ["max_position_embeddings"] = 2048,
            ["rope_scaling"] = new JsonObject { ["rope_type"] = "dynamic", ["factor"] = 2.0 },
        };
        ModelConfig c = ModelConfig.Parse(json.ToJsonString(), Source);
        float[] atMax = RopeFrequencies.InverseFrequencies(c, 2048);
        Assert.That(atMax, Is.EqualTo(Enumerable.Range(0, 8).Select(i => (float)Math.Pow(10000.0, -2.0 * i / 16)).ToArray()).Within(1).Ulps);
        Assert.That(RopeFrequencies.InverseFrequencies(c, 10), Is.EqualTo(atMax));

        float[] longer = RopeFrequencies.InverseFrequencies(c, 5000);
        Assert.That(longer, Is.EqualTo(DynamicGolden).Within(2).Ulps);
        double newBase = 10000.0 * Math.Pow((2.0 * 5000 / 2048) - 1, 16.0 / 14);
        Assert.That(longer[3], Is.EqualTo(1 / Math.Pow(newBase, 6.0 / 16)).Within(1e-5).Percent);
    }

    [Test]
    public void Llama3FrequenciesMatchAnIndependentDerivationAndTheGolden()
    {
        ModelConfig c = ModelConfig.Parse(Llama32, Source);
        Assert.That((c.RopeScaling!.Factor, c.RopeScaling.LowFreqFactor, c.RopeScaling.HighFreqFactor, c.RopeScaling.OriginalMaxPositionEmbeddings), Is.EqualTo((32.0, 1.0, 4.0, 8192)));
        float[] inv = RopeFrequencies.InverseFrequencies(c, 50);
        Assert.That(inv, Is.EqualTo(Llama32Golden).Within(2).Ulps);
        Assert.That(RopeFrequencies.InverseFrequencies(c, 200_000), Is.EqualTo(inv), "llama3 does not depend on the sequence length");

        // Re-derivation by regime: wavelength 2π/f against 8192/4 = 2048 and 8192/1 = 8192.
        int high = 0, low = 0, mid = 0;
        for (int i = 0; i < 32; i++)
        {
            double f = Math.Pow(500000.0, -i / 32.0);
            double wavelength = 2 * Math.PI / f;
            double expected;
            if (wavelength < 2048)
            {
                expected = f;
                high++;
            }
            else if (wavelength > 8192)
            {
                expected = f / 32;
                low++;
            }
            else
            {
                double s = ((8192 / wavelength) - 1) / 3;
                expected = (f / 32) + (s * (f - (f / 32)));
                mid++;
            }

            Assert.That(inv[i], Is.EqualTo(expected).Within(1e-5).Percent, $"i = {i}");
        }

        // Wavelengths 2π·500000^(i/32): i ≤ 14 below 2048; i = 15, 16, 17 (≈2947, 4443, 6694) in between; i ≥ 18 above 8192.
        Assert.That((high, mid, low), Is.EqualTo((15, 3, 14)), "each regime is exercised");
    }

    [Test]
    public void NegativeSequenceLengthIsRejected() =>
        Assert.That(() => RopeFrequencies.InverseFrequencies(ModelConfig.Parse(SmolLm2, Source), -1),
            Throws.InstanceOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("sequenceLength"));

    private static IEnumerable<TestCaseData> InvalidConfigs()
    {
        yield return Bad("unsupported model_type", j => j["model_type"] = "gpt2", "model_type", "gpt2");
        yield return Bad("missing model_type", j => j.Remove("model_type"), "model_type", "missing");
        yield return Bad("architecture of another model", j => j["architectures"] = new JsonArray("GPT2LMHeadModel"), "architectures", "GPT2LMHeadModel");
        yield return Bad("architectures not a list", j => j["architectures"] = "LlamaForCausalLM", "architectures", "LlamaForCausalLM");
        yield return Bad("missing hidden_size", j => j.Remove("hidden_size"), "hidden_size", "missing");
        yield return Bad("missing vocab_size", j => j.Remove("vocab_size"), "vocab_size", "missing");
        yield return Bad("hidden_size as string", j => j["hidden_size"] = "576", "hidden_size", "\"576\"");
        yield return Bad("fractional hidden_size", j => j["hidden_size"] = 576.5, "hidden_size", "576.5");
        yield return Bad("zero hidden_size", j => j["hidden_size"] = 0, "hidden_size", "0");
        yield return Bad("negative layers", j => j["num_hidden_layers"] = -3, "num_hidden_layers", "-3");
        yield return Bad("hidden_size too large for int", j => j["intermediate_size"] = 4294967296L, "intermediate_size", "4294967296");
        yield return Bad("heads do not divide hidden", j => j["num_attention_heads"] = 7, "num_attention_heads", "7");
        yield return Bad("kv heads do not divide heads", j => j["num_key_value_heads"] = 2, "num_key_value_heads", "2");
        yield return Bad("zero kv heads", j => j["num_key_value_heads"] = 0, "num_key_value_heads", "0");
        yield return Bad("odd head_dim", j => j["head_dim"] = 63, "head_dim", "63");
        yield return Bad("zero eps", j => j["rms_norm_eps"] = 0, "rms_norm_eps", "0");
        yield return Bad("negative eps", j => j["rms_norm_eps"] = -1e-5, "rms_norm_eps", "-1E-05");
        yield return Bad("zero theta", j => j["rope_theta"] = 0, "rope_theta", "0");
        yield return Bad("theta as string", j => j["rope_theta"] = "big", "rope_theta", "\"big\"");
        yield return Bad("gelu activation", j => j["hidden_act"] = "gelu", "hidden_act", "gelu");
        yield return Bad("partial rotary", j => j["partial_rotary_factor"] = 0.5, "partial_rotary_factor", "0.5");
        yield return Bad("tie as string", j => j["tie_word_embeddings"] = "yes", "tie_word_embeddings", "\"yes\"");
        yield return Bad("eos as string", j => j["eos_token_id"] = "2", "eos_token_id", "\"2\"");
        yield return Bad("eos list with a string", j => j["eos_token_id"] = new JsonArray(1, "x"), "eos_token_id", "\"x\"");
        yield return Bad("negative eos", j => j["eos_token_id"] = -1, "eos_token_id", "-1");
        yield return Bad("yarn scaling", j => j["rope_scaling"] = new JsonObject { ["rope_type"] = "yarn", ["factor"] = 4.0 }, "rope_scaling.rope_type", "yarn");
        yield return Bad("longrope scaling under the older key", j => j["rope_scaling"] = new JsonObject { ["type"] = "longrope", ["factor"] = 4.0 }, "rope_scaling.type", "longrope");
        yield return Bad("scaling without a type", j => j["rope_scaling"] = new JsonObject { ["factor"] = 4.0 }, "rope_scaling.rope_type", "missing");
        yield return Bad("linear scaling without factor", j => j["rope_scaling"] = new JsonObject { ["rope_type"] = "linear" }, "rope_scaling.factor", "missing");
        yield return Bad("negative factor", j => j["rope_scaling"] = new JsonObject { ["rope_type"] = "dynamic", ["factor"] = -2.0 }, "rope_scaling.factor", "-2");
        yield return Bad("scaling not an object", j => j["rope_scaling"] = 5, "rope_scaling", "5");
        yield return Bad("llama3 high not above low", j => j["rope_scaling"] = new JsonObject { ["rope_type"] = "llama3", ["factor"] = 8.0, ["low_freq_factor"] = 4.0, ["high_freq_factor"] = 4.0, ["original_max_position_embeddings"] = 8192 }, "rope_scaling.high_freq_factor", "4");
        yield return Bad("llama3 missing original length", j => j["rope_scaling"] = new JsonObject { ["rope_type"] = "llama3", ["factor"] = 8.0, ["low_freq_factor"] = 1.0, ["high_freq_factor"] = 4.0 }, "rope_scaling.original_max_position_embeddings", "missing");
        yield return Bad("yarn in rope_parameters", j => j["rope_parameters"] = new JsonObject { ["rope_type"] = "yarn", ["rope_theta"] = 10000.0, ["factor"] = 4.0 }, "rope_parameters.rope_type", "yarn");
        yield return Bad("per-layer rope_parameters", j => j["rope_parameters"] = new JsonObject { ["full_attention"] = new JsonObject { ["rope_type"] = "default" } }, "rope_parameters", "per-layer");
        yield return Bad("negative theta in rope_parameters", j => j["rope_parameters"] = new JsonObject { ["rope_type"] = "default", ["rope_theta"] = -1.0 }, "rope_parameters.rope_theta", "-1");
        yield return Bad("zero max positions", j => j["max_position_embeddings"] = 0, "max_position_embeddings", "0");
    }

    private static TestCaseData Bad(string what, Action<JsonObject> edit, string key, string mentions) =>
        new TestCaseData(edit, key, mentions).SetName($"InvalidConfigIsRefusedNamingKeyAndValue({what})");

    [TestCaseSource(nameof(InvalidConfigs))]
    public void InvalidConfigIsRefusedNamingKeyAndValue(Action<JsonObject> edit, string key, string mentions)
    {
        JsonObject json = Node(SmolLm2);
        edit(json);
        var e = Assert.Throws<ModelConfigException>(() => ModelConfig.Parse(json.ToJsonString(), Source));
        Assert.That(e!.Key, Is.EqualTo(key), e.Message);
        Assert.That(e.SourceName, Is.EqualTo(Source));
        Assert.That(e.Message, Does.Contain(Source).And.Contain($"'{key}'").And.Contain(mentions));
    }

    [TestCase("\"rms_norm_eps\": 1e-05", "\"rms_norm_eps\": NaN", "rms_norm_eps")]
    [TestCase("\"rope_theta\": 100000", "\"rope_theta\": Infinity", "rope_theta")]
    [TestCase("\"rope_theta\": 100000", "\"rope_theta\": -Infinity", "rope_theta")]
    public void NonFiniteLiteralsAsPythonWritesThemAreRefusedNamingTheKey(string original, string replacement, string key)
    {
        string json = SmolLm2.Replace(original, replacement, StringComparison.Ordinal);
        Assert.That(json, Is.Not.EqualTo(SmolLm2));
        var e = Assert.Throws<ModelConfigException>(() => ModelConfig.Parse(json, Source));
        Assert.That(e!.Key, Is.EqualTo(key), e.Message);
        Assert.That(e.Message, Does.Contain("NaN or Infinity"));
    }

    [TestCase("not json")]
    [TestCase("[1, 2]")]
    [TestCase("{\"model_type\": \"llama\", \"model_type\": \"llama\"}")]
    [TestCase("")]
    public void MalformedDocumentIsRefusedWithoutAKey(string json)
    {
        var e = Assert.Throws<ModelConfigException>(() => ModelConfig.Parse(json, Source));
        Assert.That((e!.Key, e.SourceName), Is.EqualTo(((string?)null, Source)));
    }

    [Test]
    public void LoadReadsAFileAndNamesItInErrors()
    {
        string dir = Path.Combine(Path.GetTempPath(), "ll-config-tests-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            string path = Path.Combine(dir, "config.json");
            File.WriteAllText(path, Qwen25);
            Assert.That(ModelConfig.Load(path).SourceName, Is.EqualTo(path));
            File.WriteAllText(path, Qwen25, new System.Text.UTF8Encoding(encoderShouldEmitUTF8Identifier: true));
            Assert.That(ModelConfig.Load(path).HiddenSize, Is.EqualTo(896), "a UTF-8 byte order mark is tolerated");
            File.WriteAllText(path, Qwen25.Replace("\"silu\"", "\"relu\"", StringComparison.Ordinal));
            var e = Assert.Throws<ModelConfigException>(() => ModelConfig.Load(path));
            Assert.That((e!.SourceName, e.Key), Is.EqualTo((path, "hidden_act")));
            Assert.That(e.Message, Does.Contain(path).And.Contain("relu"));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static JsonObject Node(string json) => JsonNode.Parse(json)!.AsObject();
}
