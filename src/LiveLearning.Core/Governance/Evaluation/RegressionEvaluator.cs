using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using LiveLearning.Backends;

namespace LiveLearning.Governance;

/// <summary>
/// The evaluator that refuses regressions: a candidate is promoted only if its guard-set accuracy does not fall below
/// the current version's by more than <see cref="RegressionEvaluatorOptions.GuardTolerance"/> and its probe-set
/// perplexity stays within <see cref="RegressionEvaluatorOptions.PerplexityTolerance"/> of the base model's. Every
/// decision carries its figures (<see cref="PromotionDecision.Figures"/>), which the ledger records.
/// </summary>
/// <remarks>
/// Runs on the learner's lane between steps. Figures of the versions it has seen are kept per scope (the current
/// version is scored once, not at every candidate) and the base model's probe perplexity once per backend; one
/// instance may serve many models. Exact answers decode greedily, so decisions are deterministic.
/// </remarks>
public sealed class RegressionEvaluator : IVersionEvaluator
{
    private const int VersionsKept = 4;
    private readonly RegressionEvaluatorOptions _options;
    private readonly ConditionalWeakTable<ILearningBackend, BackendFigures> _figures = new();

    /// <summary>Creates the evaluator.</summary>
    /// <param name="options">The guard and probe sets and their tolerances.</param>
    /// <exception cref="ArgumentException">A setting or an example is invalid (the message names it).</exception>
    public RegressionEvaluator(RegressionEvaluatorOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
    }

    /// <inheritdoc />
    public async ValueTask<PromotionDecision> EvaluateAsync(PromotionCandidate candidate, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(candidate);
        GuardExample[] guards = [.. _options.Guards.Where(g => g.Scope is null || g.Scope == candidate.Scope)];
        ProbeText[] probes = [.. _options.Probes.Where(p => p.Scope is null || p.Scope == candidate.Scope)];
        if (guards.Length == 0 && probes.Length == 0)
        {
            return PromotionDecision.Accept;
        }

        BackendFigures cache = _figures.GetValue(candidate.Backend, _ => new BackendFigures());
        VersionFigures current = cache.Find(candidate.Scope, candidate.Current) ?? await MeasureAsync(candidate.Backend, candidate.CurrentStack, guards, probes, cancellationToken).ConfigureAwait(false);
        cache.Keep(candidate.Scope, candidate.Current, current);
        VersionFigures next = await MeasureAsync(candidate.Backend, candidate.CandidateStack, guards, probes, cancellationToken).ConfigureAwait(false);
        cache.Keep(candidate.Scope, candidate.Candidate, next);

        var figures = new Dictionary<string, double>(StringComparer.Ordinal);
        var problems = new List<string>();
        if (guards.Length > 0)
        {
            double tolerance = _options.GuardTolerance;
            string[] newlyFailing = [.. guards.Where((g, i) => current.Passed[i] && !next.Passed[i]).Select(g => g.DisplayName)];
            figures["guard_accuracy_current"] = current.Accuracy;
            figures["guard_accuracy_candidate"] = next.Accuracy;
            figures["guards_newly_failing"] = newlyFailing.Length;
            if (next.Accuracy < current.Accuracy - tolerance - 1e-12)
            {
                problems.Add(Invariant($"guard accuracy would fall from {100 * current.Accuracy:0.0}% to {100 * next.Accuracy:0.0}% (tolerance {100 * tolerance:0.0} points); newly failing: {string.Join(", ", newlyFailing.Select(n => $"'{n}'"))}"));
            }
        }

        if (probes.Length > 0)
        {
            double baseline = cache.BasePerplexity(candidate.Scope) ?? cache.SetBasePerplexity(candidate.Scope, Perplexity(candidate.Backend, [], probes));
            double limit = baseline * (1 + _options.PerplexityTolerance);
            figures["probe_perplexity_base"] = baseline;
            figures["probe_perplexity_current"] = current.Perplexity;
            figures["probe_perplexity_candidate"] = next.Perplexity;
            if (!(next.Perplexity <= limit))
            {
                problems.Add(Invariant($"probe perplexity would be {next.Perplexity:0.###}, above {limit:0.###} (the base model's {baseline:0.###} + {100 * _options.PerplexityTolerance:0.#}%)"));
            }
        }

        string summary = string.Join(", ", figures.Select(f => Invariant($"{f.Key} {f.Value:0.####}")));
        return problems.Count == 0
            ? new PromotionDecision(true, $"no regression ({summary})") { Figures = figures }
            : new PromotionDecision(false, string.Join("; ", problems)) { Figures = figures };
    }

    private async ValueTask<VersionFigures> MeasureAsync(ILearningBackend backend, IReadOnlyList<IAdapterWeights> stack, GuardExample[] guards, ProbeText[] probes, CancellationToken cancellationToken)
    {
        var passed = new bool[guards.Length];
        for (int i = 0; i < guards.Length; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            passed[i] = await PassesAsync(backend, stack, guards[i], cancellationToken).ConfigureAwait(false);
        }

        double accuracy = guards.Length == 0 ? 1 : (double)passed.Count(p => p) / guards.Length;
        return new VersionFigures(passed, accuracy, probes.Length == 0 ? double.NaN : Perplexity(backend, stack, probes));
    }

    private async ValueTask<bool> PassesAsync(ILearningBackend backend, IReadOnlyList<IAdapterWeights> stack, GuardExample guard, CancellationToken cancellationToken)
    {
        PromptKind kind = guard.Messages is null ? PromptKind.Text : PromptKind.Chat;
        IReadOnlyList<int> prompt = guard.Messages is { } messages ? backend.EncodeChatPrompt(messages) : backend.EncodePrompt(guard.Prompt!);
        IReadOnlyList<int> expected = backend.EncodeCompletion(guard.Expected, kind, appendEnd: false);
        if (guard.Check == GuardCheck.LogLikelihoodFloor)
        {
            return backend.Score(prompt, expected, stack).MeanLogProbability >= guard.MinMeanLogProbability!.Value;
        }

        // Greedy decoding must begin with the expected answer (white space at its ends aside).
        string want = guard.Expected.Trim();
        var text = new StringBuilder();
        var greedy = new GenerationOptions { MaxTokens = expected.Count + _options.ExtraAnswerTokens, Temperature = 0 };
        await foreach (GeneratedToken token in backend.GenerateAsync(prompt, kind, greedy, stack, cancellationToken).ConfigureAwait(false))
        {
            text.Append(token.Text);
            if (text.ToString().TrimStart().Length >= want.Length)
            {
                break;
            }
        }

        return text.ToString().TrimStart().StartsWith(want, StringComparison.Ordinal);
    }

    /// <summary>exp(−Σ log p / Σ tokens) over the probe texts.</summary>
    private static double Perplexity(ILearningBackend backend, IReadOnlyList<IAdapterWeights> stack, ProbeText[] probes)
    {
        double logLikelihood = 0;
        long tokens = 0;
        foreach (ProbeText probe in probes)
        {
            IReadOnlyList<int> prompt = probe.Prompt is null ? backend.EncodePrompt(string.Empty) : backend.EncodePrompt(probe.Prompt);
            IReadOnlyList<int> text = backend.EncodeCompletion(probe.Text, PromptKind.Text, appendEnd: false);
            if (prompt.Count == 0)
            {
                // No beginning-of-sequence token: the first token is the context of the rest.
                (prompt, text) = (text.Take(1).ToArray(), text.Skip(1).ToArray());
            }

            if (text.Count == 0)
            {
                continue;
            }

            CompletionScore score = backend.Score(prompt, text, stack);
            logLikelihood += score.LogLikelihood;
            tokens += score.TokenCount;
        }

        return tokens == 0 ? 1 : Math.Exp(-logLikelihood / tokens);
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);

    private sealed record VersionFigures(bool[] Passed, double Accuracy, double Perplexity);

    /// <summary>What one backend's versions scored, per scope (the last few versions), and its base perplexity per scope.</summary>
    private sealed class BackendFigures
    {
        private readonly Dictionary<string, List<(string Id, string Hash, VersionFigures Figures)>> _versions = new(StringComparer.Ordinal);
        private readonly Dictionary<string, double> _base = new(StringComparer.Ordinal);

        public VersionFigures? Find(string scope, AdapterVersion version)
        {
            lock (_versions)
            {
                return _versions.TryGetValue(scope, out var kept) ? kept.FirstOrDefault(v => v.Id == version.Id && v.Hash == version.ContentHash).Figures : null;
            }
        }

        public void Keep(string scope, AdapterVersion version, VersionFigures figures)
        {
            lock (_versions)
            {
                if (!_versions.TryGetValue(scope, out var kept))
                {
                    _versions[scope] = kept = [];
                }

                kept.RemoveAll(v => v.Id == version.Id);
                kept.Add((version.Id, version.ContentHash, figures));
                if (kept.Count > VersionsKept)
                {
                    kept.RemoveAt(0);
                }
            }
        }

        public double? BasePerplexity(string scope)
        {
            lock (_base)
            {
                return _base.TryGetValue(scope, out double p) ? p : null;
            }
        }

        public double SetBasePerplexity(string scope, double perplexity)
        {
            lock (_base)
            {
                _base[scope] = perplexity;
                return perplexity;
            }
        }
    }
}
