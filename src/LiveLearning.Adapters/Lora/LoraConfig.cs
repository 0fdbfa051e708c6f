using System.Text.RegularExpressions;
using LiveLearning.Models;
using LiveLearning.Numerics;

namespace LiveLearning.Lora;

/// <summary>
/// LoRA hyper-parameters with PEFT semantics: rank, alpha, dropout, target modules, rsLoRA, per-module rank and
/// alpha patterns, plus the training-only settings PEFT keeps outside its config (init seed, LoRA+ ratio).
/// </summary>
/// <remarks>
/// <para>Target modules follow PEFT: a list entry matches a module whose path equals it or ends with <c>.</c> + it
/// (so <c>q_proj</c> and <c>self_attn.q_proj</c> both match <c>model.layers.0.self_attn.q_proj</c>);
/// <see cref="TargetModulesRegex"/> must match the whole path; <see cref="AllLinear"/> targets every projection of
/// the decoder (never the output head).</para>
/// <para>A <see cref="RankPattern"/>/<see cref="AlphaPattern"/> key equal to the module path wins; otherwise the first key
/// (ordinal order, the order PEFT reads from its sorted JSON) whose regular expression matches the whole path or a
/// suffix after a <c>.</c> applies.</para>
/// <para>Call <see cref="Validate"/> (every factory does) to get an <see cref="ArgumentException"/> naming the bad field.</para>
/// <para>Record equality compares the collections by reference; compare <see cref="LoraAdapter.ConfigJson"/> texts for value equality.</para>
/// </remarks>
public sealed record LoraConfig
{
    /// <summary>The <c>target_modules</c> value that selects every linear projection of the decoder.</summary>
    public const string AllLinear = "all-linear";

    /// <summary>Rank r (1 to 128). PEFT default 8.</summary>
    public int Rank { get; init; } = 8;

    /// <summary><c>lora_alpha</c> (finite, &gt; 0). PEFT default 8.</summary>
    public double Alpha { get; init; } = 8;

    /// <summary>Dropout probability on the adapter input while training, in [0, 1). Inference never drops.</summary>
    public double Dropout { get; init; }

    /// <summary>
    /// Module names or suffixes (<c>q_proj</c>, <c>self_attn.v_proj</c>), or the single entry <see cref="AllLinear"/>.
    /// Ignored when <see cref="TargetModulesRegex"/> is set. Default: <c>q_proj</c>, <c>v_proj</c> (PEFT's Llama default).
    /// </summary>
    public IReadOnlyList<string> TargetModules { get; init; } = ["q_proj", "v_proj"];

    /// <summary>A regular expression that must match a whole module path (PEFT's string form of <c>target_modules</c>), or null.</summary>
    public string? TargetModulesRegex { get; init; }

    /// <summary><c>use_rslora</c>: scale by α/√r instead of α/r.</summary>
    public bool UseRsLora { get; init; }

    /// <summary>Per-module rank overrides (pattern → rank).</summary>
    public IReadOnlyDictionary<string, int> RankPattern { get; init; } = new Dictionary<string, int>();

    /// <summary>Per-module alpha overrides (pattern → alpha).</summary>
    public IReadOnlyDictionary<string, double> AlphaPattern { get; init; } = new Dictionary<string, double>();

    /// <summary>Seed of the fresh initialisation (A Kaiming-uniform) and of the dropout masks.</summary>
    public ulong Seed { get; init; }

    /// <summary>LoRA+ ratio: B's learning rate is this times A's (1 = plain LoRA; the LoRA+ paper suggests about 16).</summary>
    public double LoraPlusRatio { get; init; } = 1;

    /// <summary><c>base_model_name_or_path</c> written to <c>adapter_config.json</c>, or null.</summary>
    public string? BaseModelName { get; init; }

    /// <summary>Throws an <see cref="ArgumentException"/> naming the first invalid field.</summary>
    /// <exception cref="ArgumentException">A field is out of range or malformed.</exception>
    public void Validate()
    {
        CheckRank(Rank, nameof(Rank));
        CheckAlpha(Alpha, nameof(Alpha));
        if (!(Dropout >= 0 && Dropout < 1))
        {
            throw new ArgumentOutOfRangeException(nameof(Dropout), Dropout, "Dropout must be in [0, 1).");
        }

        if (!(double.IsFinite(LoraPlusRatio) && LoraPlusRatio > 0))
        {
            throw new ArgumentOutOfRangeException(nameof(LoraPlusRatio), LoraPlusRatio, "LoraPlusRatio must be finite and greater than 0.");
        }

        if (TargetModulesRegex is not null)
        {
            CheckRegex(TargetModulesRegex, nameof(TargetModulesRegex));
        }
        else
        {
            if (TargetModules is null || TargetModules.Count == 0)
            {
                throw new ArgumentException("TargetModules is empty; name at least one module (e.g. q_proj) or use \"all-linear\".", nameof(TargetModules));
            }

            foreach (string t in TargetModules)
            {
                if (string.IsNullOrWhiteSpace(t))
                {
                    throw new ArgumentException("TargetModules contains an empty name.", nameof(TargetModules));
                }

                if (t == AllLinear && TargetModules.Count != 1)
                {
                    throw new ArgumentException("\"all-linear\" must be the only entry of TargetModules.", nameof(TargetModules));
                }
            }
        }

        foreach ((string key, int r) in RankPattern ?? throw new ArgumentNullException(nameof(RankPattern)))
        {
            CheckRegex(key, nameof(RankPattern));
            CheckRank(r, nameof(RankPattern), key);
        }

        foreach ((string key, double a) in AlphaPattern ?? throw new ArgumentNullException(nameof(AlphaPattern)))
        {
            CheckRegex(key, nameof(AlphaPattern));
            CheckAlpha(a, nameof(AlphaPattern), key);
        }
    }

    /// <summary>Whether the module at <paramref name="modulePath"/> (e.g. <c>model.layers.0.self_attn.q_proj</c>) is targeted.</summary>
    /// <param name="modulePath">The module path.</param>
    /// <returns>True when an adapter layer goes there.</returns>
    public bool Targets(string modulePath)
    {
        ArgumentNullException.ThrowIfNull(modulePath);
        if (TargetModulesRegex is not null)
        {
            return Regex.IsMatch(modulePath, $"^(?:{TargetModulesRegex})$", RegexOptions.CultureInvariant);
        }

        foreach (string t in TargetModules)
        {
            if (t == AllLinear)
            {
                return IsDecoderProjection(modulePath);
            }

            if (modulePath == t || modulePath.EndsWith("." + t, StringComparison.Ordinal))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Whether (<paramref name="layer"/>, <paramref name="projection"/>) is targeted.</summary>
    /// <param name="layer">Layer index.</param>
    /// <param name="projection">Projection.</param>
    /// <returns>True when an adapter layer goes there.</returns>
    public bool Targets(int layer, Projection projection) => Targets(ProjectionNames.ModulePath(layer, projection));

    /// <summary>The rank of the module at <paramref name="modulePath"/> (<see cref="RankPattern"/> or <see cref="Rank"/>).</summary>
    /// <param name="modulePath">The module path.</param>
    /// <returns>The rank.</returns>
    public int RankFor(string modulePath) =>
        MatchPattern(RankPattern.Keys, modulePath) is { } key ? RankPattern[key] : Rank;

    /// <summary>The alpha of the module at <paramref name="modulePath"/> (<see cref="AlphaPattern"/> or <see cref="Alpha"/>).</summary>
    /// <param name="modulePath">The module path.</param>
    /// <returns>The alpha.</returns>
    public double AlphaFor(string modulePath) =>
        MatchPattern(AlphaPattern.Keys, modulePath) is { } key ? AlphaPattern[key] : Alpha;

    /// <summary>PEFT's scaling of the module: α/r, or α/√r with <see cref="UseRsLora"/>, with the module's own r and α.</summary>
    /// <param name="modulePath">The module path.</param>
    /// <returns>The scaling.</returns>
    public double ScaleFor(string modulePath) => Scale(AlphaFor(modulePath), RankFor(modulePath), UseRsLora);

    /// <summary>α/r, or α/√r for rsLoRA, computed in double as PEFT does.</summary>
    /// <param name="alpha">Alpha.</param>
    /// <param name="rank">Rank.</param>
    /// <param name="useRsLora">rsLoRA.</param>
    /// <returns>The scaling.</returns>
    public static double Scale(double alpha, int rank, bool useRsLora) => useRsLora ? alpha / Math.Sqrt(rank) : alpha / rank;

    /// <summary>The first key (ordinal order) whose pattern matches <paramref name="modulePath"/>, or null.</summary>
    internal static string? MatchPattern(IEnumerable<string> keys, string modulePath)
    {
        string[] sorted = keys.OrderBy(k => k, StringComparer.Ordinal).ToArray();
        if (Array.IndexOf(sorted, modulePath) >= 0)
        {
            return modulePath;
        }

        foreach (string key in sorted)
        {
            if (Regex.IsMatch(modulePath, $"^(?:.*\\.)?(?:{key})$", RegexOptions.CultureInvariant))
            {
                return key;
            }
        }

        return null;
    }

    internal static bool IsDecoderProjection(string modulePath)
    {
        string[] parts = modulePath.Split('.');
        return parts.Length == 5 && ProjectionNames.TryParse(parts[4], out Projection p)
            && int.TryParse(parts[2], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int layer)
            && modulePath == ProjectionNames.ModulePath(layer, p);
    }

    private static void CheckRank(int r, string param, string? key = null)
    {
        if (r < 1 || r > LoraKernels.MaxRank)
        {
            throw new ArgumentOutOfRangeException(param, r, $"{(key is null ? "Rank" : $"The rank for '{key}'")} must be in 1..{LoraKernels.MaxRank}.");
        }
    }

    private static void CheckAlpha(double a, string param, string? key = null)
    {
        if (!(double.IsFinite(a) && a > 0))
        {
            throw new ArgumentOutOfRangeException(param, a, $"{(key is null ? "Alpha" : $"The alpha for '{key}'")} must be finite and greater than 0.");
        }
    }

    private static void CheckRegex(string pattern, string param)
    {
        if (string.IsNullOrEmpty(pattern))
        {
            throw new ArgumentException("A module pattern is empty.", param);
        }

        try
        {
            _ = new Regex(pattern, RegexOptions.CultureInvariant);
        }
        catch (ArgumentException ex)
        {
            throw new ArgumentException($"'{pattern}' is not a valid regular expression: {ex.Message}", param, ex);
        }
    }
}
