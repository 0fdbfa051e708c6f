using System.Text.Json;

namespace LiveLearning.Tests.Models;

/// <summary>A fixture model directory and the reference values an independent PyTorch implementation produced for it.</summary>
internal sealed class ModelFixture
{
    private ModelFixture(string name, JsonElement root)
    {
        Name = name;
        Root = root;
    }

    public static IEnumerable<string> Names =>
        ["llama-gqa-tied", "qwen2-bias", "llama3-rope", "llama-sharded", "llama-bf16", "llama-f16", "mistral-basic"];

    public string Name { get; }

    public JsonElement Root { get; }

    public string Directory => DirectoryOf(Name);

    public string AdapterDirectory => Path.Combine(Directory, Root.GetProperty("lora").GetProperty("adapter_dir").GetString()!);

    public static string DirectoryOf(string name) => Path.Combine(NUnit.Framework.TestContext.CurrentContext.TestDirectory, "Fixtures", "Models", name);

    public static ModelFixture Load(string name)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(DirectoryOf(name), "expected.json")));
        return new ModelFixture(name, doc.RootElement.Clone());
    }

    public int[] InputIds(int sequence) => Ints(Root.GetProperty("input_ids")[sequence]);

    public float[] Logits(int sequence) => Floats(Root.GetProperty("logits")[sequence]);

    public static int[] Ints(JsonElement e) => e.EnumerateArray().Select(x => x.GetInt32()).ToArray();

    /// <summary>Flattens nested arrays of numbers row-major.</summary>
    public static float[] Floats(JsonElement e)
    {
        var values = new List<float>();
        void Walk(JsonElement x)
        {
            if (x.ValueKind == JsonValueKind.Array)
            {
                foreach (JsonElement item in x.EnumerateArray())
                {
                    Walk(item);
                }
            }
            else
            {
                values.Add((float)x.GetDouble());
            }
        }

        Walk(e);
        return values.ToArray();
    }
}
