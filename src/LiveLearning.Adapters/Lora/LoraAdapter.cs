using LiveLearning.Models;

namespace LiveLearning.Lora;

/// <summary>
/// An immutable set of LoRA layers over a model: at most one per (layer, projection). Publishing a new version means
/// building a new <see cref="LoraAdapter"/> and swapping the reference; passes that started with the old one keep it.
/// </summary>
public sealed partial class LoraAdapter : IModelAdapter
{
    private readonly LoraLayer?[] _layers;

    /// <summary>Creates an adapter from its layers; the config is derived from them (most common rank and alpha, patterns for the rest).</summary>
    /// <param name="numLayers">Decoder layers of the model.</param>
    /// <param name="layers">The LoRA layers by (layer, projection).</param>
    public LoraAdapter(int numLayers, IReadOnlyDictionary<(int Layer, Projection Projection), LoraLayer> layers)
        : this(numLayers, layers, null)
    {
    }

    /// <summary>Creates an adapter from its layers and the config they were made with.</summary>
    /// <param name="numLayers">Decoder layers of the model.</param>
    /// <param name="layers">The LoRA layers by (layer, projection).</param>
    /// <param name="config">The config (written on export), or null to derive one from the layers.</param>
    /// <exception cref="ArgumentException">A layer index is out of range, or a layer disagrees with <paramref name="config"/>.</exception>
    public LoraAdapter(int numLayers, IReadOnlyDictionary<(int Layer, Projection Projection), LoraLayer> layers, LoraConfig? config)
    {
        ArgumentNullException.ThrowIfNull(layers);
        ArgumentOutOfRangeException.ThrowIfNegative(numLayers);
        NumLayers = numLayers;
        _layers = new LoraLayer?[numLayers * ProjectionNames.Count];
        foreach (((int layer, Projection projection), LoraLayer lora) in layers)
        {
            if ((uint)layer >= (uint)numLayers)
            {
                throw new ArgumentException($"Layer {layer} is outside the model's {numLayers} layers.", nameof(layers));
            }

            ArgumentNullException.ThrowIfNull(lora, nameof(layers));
            _layers[(layer * ProjectionNames.Count) + (int)projection] = lora;
        }

        if (config is null)
        {
            Config = DeriveConfig(Entries(), numLayers);
        }
        else
        {
            config.Validate();
            foreach ((int layer, Projection projection, LoraLayer lora) in Entries())
            {
                string path = ProjectionNames.ModulePath(layer, projection);
                if (!config.Targets(path) || config.RankFor(path) != lora.Rank || config.AlphaFor(path) != lora.Alpha || config.UseRsLora != lora.UseRsLora)
                {
                    throw new ArgumentException(
                        $"The layer on {path} (rank {lora.Rank}, alpha {lora.Alpha}, rsLoRA {lora.UseRsLora}) does not match the config (targeted {config.Targets(path)}, rank {config.RankFor(path)}, alpha {config.AlphaFor(path)}, rsLoRA {config.UseRsLora}).",
                        nameof(config));
                }
            }

            Config = config;
        }
    }

    /// <summary>Decoder layers of the model this adapter was made for.</summary>
    public int NumLayers { get; }

    /// <summary>The config: what <see cref="SavePeft"/> writes to <c>adapter_config.json</c>.</summary>
    public LoraConfig Config { get; }

    /// <summary>Number of adapted modules: one LoRA layer per (decoder layer, projection) pair, as PEFT counts modules.</summary>
    public int ModuleCount => _layers.Count(l => l is not null);

    /// <summary>Total trainable parameters (Σ rank·(in + out)).</summary>
    public long ParameterCount => _layers.Sum(l => (long)(l?.ParameterCount ?? 0));

    /// <inheritdoc />
    public IAdapterSlot? GetSlot(int layer, Projection projection) => GetLayer(layer, projection);

    /// <summary>The LoRA layer on (<paramref name="layer"/>, <paramref name="projection"/>), or <see langword="null"/>.</summary>
    /// <param name="layer">Layer index.</param>
    /// <param name="projection">Projection.</param>
    /// <returns>The layer or <see langword="null"/>.</returns>
    public LoraLayer? GetLayer(int layer, Projection projection) =>
        (uint)layer < (uint)NumLayers ? _layers[(layer * ProjectionNames.Count) + (int)projection] : null;

    /// <summary>Every layer with its position, in (layer, projection) order.</summary>
    /// <returns>The layers.</returns>
    public IEnumerable<(int Layer, Projection Projection, LoraLayer Lora)> Entries()
    {
        for (int i = 0; i < _layers.Length; i++)
        {
            if (_layers[i] is { } lora)
            {
                yield return (i / ProjectionNames.Count, (Projection)(i % ProjectionNames.Count), lora);
            }
        }
    }

    /// <summary>
    /// A fresh adapter for <paramref name="model"/>: on every targeted projection A is Kaiming-uniform
    /// U(−1/√in, 1/√in) (PEFT's default, seeded by <see cref="LoraConfig.Seed"/>) and B is zero, so the adapter
    /// changes no output, bit for bit.
    /// </summary>
    /// <param name="config">The config (validated).</param>
    /// <param name="model">The base model (layer count and projection shapes).</param>
    /// <returns>The adapter.</returns>
    /// <exception cref="ArgumentException">The config is invalid or targets no projection of the model.</exception>
    public static LoraAdapter CreateFresh(LoraConfig config, LlamaModel model)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(model);
        return CreateFresh(config, model.Config.NumLayers, model.ProjectionShape);
    }

    /// <summary>A fresh adapter for a model of <paramref name="numLayers"/> layers with the given projection shapes.</summary>
    /// <param name="config">The config (validated).</param>
    /// <param name="numLayers">Decoder layers.</param>
    /// <param name="shape">[out, in] of each projection.</param>
    /// <returns>The adapter.</returns>
    public static LoraAdapter CreateFresh(LoraConfig config, int numLayers, Func<Projection, (int OutFeatures, int InFeatures)> shape)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(shape);
        config.Validate();
        var layers = new Dictionary<(int, Projection), LoraLayer>();
        for (int l = 0; l < numLayers; l++)
        {
            foreach (Projection p in ProjectionNames.All)
            {
                string path = ProjectionNames.ModulePath(l, p);
                if (!config.Targets(path))
                {
                    continue;
                }

                (int outF, int inF) = shape(p);
                int r = config.RankFor(path);
                float[] a = new float[r * inF];
                KaimingUniform(a, inF, config.Seed, (ulong)((l * ProjectionNames.Count) + (int)p));
                layers[(l, p)] = new LoraLayer(a, new float[outF * r], inF, outF, r, config.AlphaFor(path), config.UseRsLora, (float)config.Dropout);
            }
        }

        if (layers.Count == 0)
        {
            throw new ArgumentException("The config targets no projection of the model (target_modules matched nothing).", nameof(config));
        }

        return new LoraAdapter(numLayers, layers, config);
    }

    /// <summary>
    /// This adapter with every layer's scale multiplied by <paramref name="multiplier"/> (PEFT <c>set_scale</c>); the
    /// matrices are shared, the config (and the exported file) is unchanged.
    /// </summary>
    /// <param name="multiplier">Finite multiplier (0 switches the adapter off).</param>
    /// <returns>The scaled adapter.</returns>
    public LoraAdapter WithScale(float multiplier)
    {
        var layers = new Dictionary<(int, Projection), LoraLayer>();
        foreach ((int l, Projection p, LoraLayer lora) in Entries())
        {
            layers[(l, p)] = lora.WithMultiplier(multiplier);
        }

        return new LoraAdapter(NumLayers, layers, Config);
    }

    /// <summary>
    /// The weighted linear combination <c>Σ wᵢ·ΔWᵢ</c> as one adapter, exactly: ranks are concatenated
    /// (A = [A₁; A₂; …], B = [w₁s₁B₁ | w₂s₂B₂ | …]) and the new scale is 1 (alpha = rank), like PEFT's "cat" combination.
    /// </summary>
    /// <param name="parts">Adapters (same layer count) and their weights.</param>
    /// <returns>The combined adapter.</returns>
    /// <exception cref="ArgumentException">No parts, differing layer counts or shapes, a non-finite weight, or a combined rank above 128.</exception>
    public static LoraAdapter Combine(IReadOnlyList<(LoraAdapter Adapter, float Weight)> parts)
    {
        ArgumentNullException.ThrowIfNull(parts);
        if (parts.Count == 0)
        {
            throw new ArgumentException("Combine needs at least one adapter.", nameof(parts));
        }

        int numLayers = parts[0].Adapter?.NumLayers ?? throw new ArgumentException("Adapter 0 is null.", nameof(parts));
        for (int i = 0; i < parts.Count; i++)
        {
            if (parts[i].Adapter is null || parts[i].Adapter.NumLayers != numLayers)
            {
                throw new ArgumentException($"Adapter {i} is null or has a different layer count than adapter 0 ({numLayers}).", nameof(parts));
            }

            if (!float.IsFinite(parts[i].Weight))
            {
                throw new ArgumentException($"Weight {i} ({parts[i].Weight}) is not finite.", nameof(parts));
            }
        }

        var layers = new Dictionary<(int, Projection), LoraLayer>();
        for (int l = 0; l < numLayers; l++)
        {
            foreach (Projection p in ProjectionNames.All)
            {
                var present = parts.Select(x => (x.Adapter.GetLayer(l, p), x.Weight)).Where(x => x.Item1 is not null).Select(x => (Lora: x.Item1!, x.Weight)).ToList();
                if (present.Count == 0)
                {
                    continue;
                }

                int inF = present[0].Lora.InFeatures;
                int outF = present[0].Lora.OutFeatures;
                if (present.Any(x => x.Lora.InFeatures != inF || x.Lora.OutFeatures != outF))
                {
                    throw new ArgumentException($"The layers on {ProjectionNames.ModulePath(l, p)} have different shapes.", nameof(parts));
                }

                int rank = present.Sum(x => x.Lora.Rank);
                if (rank > Numerics.LoraKernels.MaxRank)
                {
                    throw new ArgumentException($"The combined rank on {ProjectionNames.ModulePath(l, p)} would be {rank}; at most {Numerics.LoraKernels.MaxRank} is supported.", nameof(parts));
                }

                float[] a = new float[rank * inF];
                float[] b = new float[outF * rank];
                int r0 = 0;
                foreach ((LoraLayer lora, float weight) in present)
                {
                    lora.A.CopyTo(a.AsSpan(r0 * inF));
                    float s = weight * lora.Scale;
                    for (int o = 0; o < outF; o++)
                    {
                        for (int r = 0; r < lora.Rank; r++)
                        {
                            b[(o * rank) + r0 + r] = s * lora.B[(o * lora.Rank) + r];
                        }
                    }

                    r0 += lora.Rank;
                }

                layers[(l, p)] = new LoraLayer(a, b, inF, outF, rank, alpha: rank, useRsLora: false);
            }
        }

        return new LoraAdapter(numLayers, layers);
    }

    /// <summary>Fills <paramref name="a"/> with U(−1/√in, 1/√in) from a counter-based stream keyed by (seed, stream).</summary>
    internal static void KaimingUniform(Span<float> a, int inFeatures, ulong seed, ulong stream)
    {
        double bound = 1.0 / Math.Sqrt(inFeatures);
        ulong key = LoraLayer.Mix(seed ^ LoraLayer.Mix(stream + 0x5EED));
        for (int i = 0; i < a.Length; i++)
        {
            double u = (LoraLayer.Mix(key + (ulong)i) >> 11) * (1.0 / (1UL << 53));
            a[i] = (float)(((2 * u) - 1) * bound);
        }
    }

    private static LoraConfig DeriveConfig(IEnumerable<(int Layer, Projection Projection, LoraLayer Lora)> entries, int numLayers)
    {
        var list = entries.ToList();
        if (list.Count == 0)
        {
            return new LoraConfig();
        }

        int rank = list.GroupBy(e => e.Lora.Rank).OrderByDescending(g => g.Count()).ThenBy(g => g.Key).First().Key;
        double alpha = list.GroupBy(e => e.Lora.Alpha).OrderByDescending(g => g.Count()).ThenBy(g => g.Key).First().Key;
        bool rs = list[0].Lora.UseRsLora;
        if (list.Any(e => e.Lora.UseRsLora != rs))
        {
            throw new ArgumentException("Layers mix rsLoRA and plain scaling; one adapter file cannot represent that.", "layers");
        }

        var rankPattern = new SortedDictionary<string, int>(StringComparer.Ordinal);
        var alphaPattern = new SortedDictionary<string, double>(StringComparer.Ordinal);
        foreach ((int l, Projection p, LoraLayer lora) in list)
        {
            string path = ProjectionNames.ModulePath(l, p);
            if (lora.Rank != rank)
            {
                rankPattern[path] = lora.Rank;
            }

            if (lora.Alpha != alpha)
            {
                alphaPattern[path] = lora.Alpha;
            }
        }

        // Name the modules present; the full list targets exactly the projection kinds that carry a layer somewhere.
        string[] names = list.Select(e => ProjectionNames.ModuleName(e.Projection)).Distinct().OrderBy(n => n, StringComparer.Ordinal).ToArray();
        bool everyLayerOfEachKind = names.All(n =>
        {
            ProjectionNames.TryParse(n, out Projection p);
            return list.Count(e => e.Projection == p) == numLayers;
        });
        LoraConfig config = new()
        {
            Rank = rank,
            Alpha = alpha,
            UseRsLora = rs,
            TargetModules = names,
            RankPattern = rankPattern,
            AlphaPattern = alphaPattern,
        };
        if (!everyLayerOfEachKind)
        {
            // Only some layers carry a given projection: target the exact module paths.
            string regex = string.Join("|", list.Select(e => System.Text.RegularExpressions.Regex.Escape(ProjectionNames.ModulePath(e.Layer, e.Projection))));
            config = config with { TargetModulesRegex = regex };
        }

        return config;
    }
}
