using LiveLearning.Lora;
using LiveLearning.Models;
using LiveLearning.Tests.Models;

namespace LiveLearning.Tests.Lora;

/// <summary>Shared helpers for the LoRA tests: fixture models and seeded adapters with nonzero B.</summary>
internal static class LoraTestKit
{
    public const string Model = "llama-gqa-tied";

    public static string LoraFixture(string name) =>
        Path.Combine(NUnit.Framework.TestContext.CurrentContext.TestDirectory, "Fixtures", "Lora", name);

    public static LlamaModel LoadModel(string name = Model, int threads = 2) =>
        LlamaModel.Load(ModelFixture.DirectoryOf(name), new ModelOptions { ThreadCount = threads, LoadTokenizer = false });

    /// <summary>A fresh adapter from <paramref name="config"/> whose B is seeded noise (so it changes the output).</summary>
    public static LoraAdapter RandomAdapter(LlamaModel model, LoraConfig config, int seed, float bScale = 0.05f)
    {
        LoraAdapter fresh = LoraAdapter.CreateFresh(config, model);
        var rng = new Random(seed);
        var layers = new Dictionary<(int, Projection), LoraLayer>();
        foreach ((int l, Projection p, LoraLayer x) in fresh.Entries())
        {
            float[] b = new float[x.B.Length];
            for (int i = 0; i < b.Length; i++)
            {
                b[i] = (float)((rng.NextDouble() * 2) - 1) * bScale;
            }

            layers[(l, p)] = new LoraLayer(x.A, b, x.InFeatures, x.OutFeatures, x.Rank, x.Alpha, x.UseRsLora, x.Dropout);
        }

        return new LoraAdapter(fresh.NumLayers, layers, config);
    }

    public static int[] Ids(int seed, int length, int vocab)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, length).Select(_ => rng.Next(3, vocab)).ToArray();
    }

    public static float MaxAbsDiff(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        NUnit.Framework.Assert.That(a.Length, NUnit.Framework.Is.EqualTo(b.Length));
        float worst = 0;
        for (int i = 0; i < a.Length; i++)
        {
            float d = MathF.Abs(a[i] - b[i]);
            if (!(d <= worst))
            {
                worst = d;
            }
        }

        return worst;
    }
}
