using System.Numerics.Tensors;
using LiveLearning.Models;
using LiveLearning.Numerics;
using LiveLearning.Storage;

namespace LiveLearning.Lora;

/// <summary>
/// Merging a LoRA delta into a copy of a frozen weight (<c>W' = W + scale·B·A</c>) and taking it out again. The
/// frozen weights are never modified: merging produces F32 copies (a BF16/F16 base is widened first, so nothing is
/// rounded back to 16 bits), and unmerging subtracts the very same F32 delta, so <c>unmerge(merge(W)) = W</c> within
/// one float32 rounding of <c>W + Δ</c>.
/// </summary>
/// <remarks>
/// Merged weights make the adapter free at inference (one GEMM, no LoRA kernels) but cost a full F32 copy of each
/// adapted matrix and give up the instant version swap; the unmerged path shares the base and adds the fused LoRA
/// kernels (the benchmark figure <c>lora_overhead_prefill_pct</c> measures that overhead).
/// </remarks>
public static class LoraMerge
{
    /// <summary>The delta <c>scale·B·A</c> of a layer, <c>[out, in]</c> row-major F32.</summary>
    /// <param name="lora">The layer.</param>
    /// <returns>The delta.</returns>
    public static float[] Delta(LoraLayer lora)
    {
        ArgumentNullException.ThrowIfNull(lora);
        int inF = lora.InFeatures;
        float[] delta = new float[lora.OutFeatures * inF];
        ReadOnlySpan<float> a = lora.A;
        ReadOnlySpan<float> b = lora.B;
        for (int o = 0; o < lora.OutFeatures; o++)
        {
            Span<float> row = delta.AsSpan(o * inF, inF);
            for (int r = 0; r < lora.Rank; r++)
            {
                TensorPrimitives.MultiplyAdd(a.Slice(r * inF, inF), lora.Scale * b[(o * lora.Rank) + r], row, row);
            }
        }

        return delta;
    }

    /// <summary><c>W + scale·B·A</c> as a new F32 matrix (the base <paramref name="weight"/> is not changed).</summary>
    /// <param name="weight">The frozen weight, any stored precision, <c>[out, in]</c>.</param>
    /// <param name="lora">The layer (same shape).</param>
    /// <returns>The merged F32 copy.</returns>
    /// <exception cref="ArgumentException">The shapes differ, or the merge would produce a non-finite value (nothing is returned).</exception>
    public static float[] Merge(WeightMatrix weight, LoraLayer lora)
    {
        CheckShape(weight.Rows, weight.Cols, lora);
        float[] merged = new float[weight.Rows * weight.Cols];
        for (int r = 0; r < weight.Rows; r++)
        {
            weight.ReadRow(r, merged.AsSpan(r * weight.Cols, weight.Cols));
        }

        TensorPrimitives.Add(merged, Delta(lora), merged);
        if (!float.IsFinite(TensorPrimitives.Sum(merged)) && merged.Any(v => !float.IsFinite(v)))
        {
            throw new ArgumentException("Merging would produce NaN or infinity (safe merge refused).", nameof(lora));
        }

        return merged;
    }

    /// <summary>Subtracts <c>scale·B·A</c> from a merged F32 matrix in place.</summary>
    /// <param name="merged">The merged matrix <c>[out, in]</c>.</param>
    /// <param name="lora">The layer that was merged.</param>
    public static void Unmerge(Span<float> merged, LoraLayer lora)
    {
        ArgumentNullException.ThrowIfNull(lora);
        if (merged.Length != lora.OutFeatures * lora.InFeatures)
        {
            throw new ArgumentException($"merged has {merged.Length} values; [out {lora.OutFeatures}, in {lora.InFeatures}] needs {lora.OutFeatures * lora.InFeatures}.", nameof(merged));
        }

        TensorPrimitives.Subtract(merged, Delta(lora), merged);
    }

    /// <summary>
    /// Writes a copy of <paramref name="model"/>'s checkpoint with <paramref name="adapter"/> merged in: every adapted
    /// projection as F32 <c>W + scale·B·A</c>, every other tensor byte-for-byte, plus the model's config and tokenizer
    /// files. The result loads with <see cref="LlamaModel.Load(string, ModelOptions?)"/> and needs no adapter.
    /// </summary>
    /// <param name="model">The base model.</param>
    /// <param name="adapter">The adapter to merge (any scale multiplier included).</param>
    /// <param name="directory">Destination directory (created; must differ from the model's).</param>
    public static void SaveMerged(LlamaModel model, LoraAdapter adapter, string directory)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(adapter);
        ArgumentException.ThrowIfNullOrEmpty(directory);
        if (Path.GetFullPath(directory).TrimEnd(Path.DirectorySeparatorChar) == Path.GetFullPath(model.Directory).TrimEnd(Path.DirectorySeparatorChar))
        {
            throw new ArgumentException("The merged copy must go to another directory than the base model.", nameof(directory));
        }

        if (adapter.NumLayers != model.Config.NumLayers)
        {
            throw new ArgumentException($"The adapter has {adapter.NumLayers} layers; the model has {model.Config.NumLayers}.", nameof(adapter));
        }

        var replaced = new Dictionary<string, LoraLayer>(StringComparer.Ordinal);
        foreach ((int l, Projection p, LoraLayer lora) in adapter.Entries())
        {
            replaced[ProjectionNames.ModulePath(l, p) + ".weight"] = lora;
        }

        System.IO.Directory.CreateDirectory(directory);
        using SafeTensorsCheckpoint checkpoint = SafeTensorsCheckpoint.Open(model.Directory);
        var entries = new List<SafeTensorsEntry>();
        foreach (string name in checkpoint.Names)
        {
            if (replaced.TryGetValue(name, out LoraLayer? lora))
            {
                WeightMatrix w = checkpoint.GetMatrix(name);
                entries.Add(SafeTensorsEntry.FromFloat32(name, Merge(w, lora), w.Rows, w.Cols));
                replaced.Remove(name);
            }
            else
            {
                TensorInfo info = checkpoint.GetInfo(name);
                entries.Add(new SafeTensorsEntry(name, info.DType, [.. info.Shape], checkpoint.GetBytes(name).ToArray()));
            }
        }

        if (replaced.Count > 0)
        {
            throw new ArgumentException($"The checkpoint has no tensor '{replaced.Keys.First()}' to merge into.", nameof(adapter));
        }

        SafeTensorsWriter.Write(Path.Combine(directory, SafeTensorsCheckpoint.SingleFileName), entries, new Dictionary<string, string> { ["format"] = "pt" });
        foreach (string file in new[] { "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json" })
        {
            string source = Path.Combine(model.Directory, file);
            if (File.Exists(source))
            {
                File.Copy(source, Path.Combine(directory, file), overwrite: true);
            }
        }
    }

    private static void CheckShape(int rows, int cols, LoraLayer lora)
    {
        ArgumentNullException.ThrowIfNull(lora);
        if (rows != lora.OutFeatures || cols != lora.InFeatures)
        {
            throw new ArgumentException($"The weight is [{rows}, {cols}] but the LoRA layer is [{lora.OutFeatures}, {lora.InFeatures}].", nameof(lora));
        }
    }
}
