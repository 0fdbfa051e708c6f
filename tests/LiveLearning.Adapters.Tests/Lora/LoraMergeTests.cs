using LiveLearning.Lora;
using LiveLearning.Models;
using LiveLearning.Numerics;
using LiveLearning.Tests.Models;
using NUnit.Framework;

namespace LiveLearning.Tests.Lora;

/// <summary>Merging into a copy of the base weights and unmerging, for F32 and BF16 bases.</summary>
[TestFixture]
public sealed class LoraMergeTests
{
    [TestCase("llama-gqa-tied")]
    [TestCase("llama-bf16")]
    public void AMergedCopyGivesTheUnmergedLogits(string name)
    {
        using var model = LoraTestKit.LoadModel(name);
        LoraAdapter adapter = LoraTestKit.RandomAdapter(model, new LoraConfig { Rank = 4, Alpha = 8, TargetModules = [LoraConfig.AllLinear], Seed = 1 }, seed: 2);
        string dir = Path.Combine(Path.GetTempPath(), "ll-merge-" + Guid.NewGuid().ToString("N"));
        try
        {
            LoraMerge.SaveMerged(model, adapter, dir);
            using var merged = LlamaModel.Load(dir, new ModelOptions { ThreadCount = 2, LoadTokenizer = false });
            int[] ids = LoraTestKit.Ids(3, 11, model.Config.VocabSize);
            float[] unmerged = model.Forward(ids, null, true, adapter);
            Assert.That(LoraTestKit.MaxAbsDiff(merged.Forward(ids, null, true), unmerged), Is.LessThan(1e-4f));
            Assert.That(LoraTestKit.MaxAbsDiff(unmerged, model.Forward(ids, null, true)), Is.GreaterThan(1e-2f));
            Assert.That(File.Exists(Path.Combine(model.Directory, "model.safetensors")), Is.True, "the base is untouched");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }

        Assert.That(() => LoraMerge.SaveMerged(model, adapter, model.Directory), Throws.ArgumentException.With.Property("ParamName").EqualTo("directory"));
    }

    [TestCase(WeightType.F32)]
    [TestCase(WeightType.BF16)]
    public void UnmergeRestoresTheWeightWithinOneFloat32Rounding(WeightType type)
    {
        var rng = new Random(4);
        const int rows = 48;
        const int cols = 40;
        float[] w = Enumerable.Range(0, rows * cols).Select(_ => (float)((rng.NextDouble() * 2) - 1)).ToArray();
        WeightMatrix weight = type == WeightType.F32
            ? WeightMatrix.FromF32(w, rows, cols)
            : WeightMatrix.From16Bit(w.Select(Precision.SingleToBF16).ToArray(), rows, cols, WeightType.BF16);
        float[] exact = new float[rows * cols];
        for (int r = 0; r < rows; r++)
        {
            weight.ReadRow(r, exact.AsSpan(r * cols, cols));
        }

        var lora = new LoraLayer(
            Enumerable.Range(0, 3 * cols).Select(_ => (float)rng.NextDouble() - 0.5f).ToArray(),
            Enumerable.Range(0, rows * 3).Select(_ => (float)rng.NextDouble() - 0.5f).ToArray(),
            cols, rows, 3, alpha: 6, useRsLora: false);
        float[] merged = LoraMerge.Merge(weight, lora);
        float[] delta = LoraMerge.Delta(lora);
        for (int i = 0; i < merged.Length; i++)
        {
            Assert.That(merged[i], Is.EqualTo(exact[i] + delta[i]), "W' = W + scale·B·A in F32");
        }

        // Reference delta in double: scale · Σ_r B[o,r]·A[r,i].
        for (int o = 0; o < rows; o += 7)
        {
            for (int i = 0; i < cols; i += 5)
            {
                double d = 0;
                for (int r = 0; r < 3; r++)
                {
                    d += (double)lora.B[(o * 3) + r] * lora.A[(r * cols) + i];
                }

                Assert.That(delta[(o * cols) + i], Is.EqualTo(2.0 * d).Within(1e-5));
            }
        }

        LoraMerge.Unmerge(merged, lora);
        for (int i = 0; i < merged.Length; i++)
        {
            float bound = MathF.BitIncrement(MathF.Abs(exact[i]) + MathF.Abs(delta[i])) - (MathF.Abs(exact[i]) + MathF.Abs(delta[i]));
            Assert.That(merged[i], Is.EqualTo(exact[i]).Within(bound), $"element {i}");
        }

        Assert.That(() => LoraMerge.Merge(WeightMatrix.FromF32(new float[4], 2, 2), lora), Throws.ArgumentException.With.Property("ParamName").EqualTo("lora"));
        Assert.That(() => LoraMerge.Unmerge(new float[3], lora), Throws.ArgumentException.With.Property("ParamName").EqualTo("merged"));
    }
}
