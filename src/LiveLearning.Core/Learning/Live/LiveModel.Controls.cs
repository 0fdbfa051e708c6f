using System.Collections.Concurrent;
using LiveLearning.Governance;

namespace LiveLearning;

// Owner controls besides pause and resume: exclusion from replay and shadow mode. Each is recorded in the ledger.
public sealed partial class LiveModel
{
    private readonly ConcurrentDictionary<string, byte> _excludedFromReplay = new(StringComparer.Ordinal);

    /// <inheritdoc />
    public async Task<int> ExcludeFromReplayAsync(string source, bool excluded = true, string? actor = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(source);
        ThrowIfDisposed();
        if (!excluded)
        {
            if (_excludedFromReplay.TryRemove(source, out _))
            {
                Record(_options.DefaultScope, LedgerEvent.ControlChanged, $"Source '{source}' may be replayed again (its later items).", source: source, actor: actor);
            }

            return 0;
        }

        // From now on its items are not kept; what is kept goes, scope by scope, between steps.
        bool added = _excludedFromReplay.TryAdd(source, 0);
        int removed = 0;
        foreach (LiveScope s in Selected(null))
        {
            var done = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
            Post(s, new PurgeReplayWork(source, done));
            removed += await done.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        }

        if (added || removed > 0)
        {
            Record(_options.DefaultScope, LedgerEvent.ControlChanged, $"Source '{source}' excluded from replay; {removed} kept items removed from the replay buffers.", source: source, actor: actor);
        }

        return removed;
    }

    /// <inheritdoc />
    public void SetSourceRate(string source, RateLimit? rate, string? actor = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(source);
        rate?.Validate(nameof(rate));
        ThrowIfDisposed();
        RateLimitRule[] rules = [.. _gates.Select(g => (g as PolicyGate)?.Rule).OfType<RateLimitRule>()];
        if (rules.Length == 0)
        {
            throw new InvalidOperationException($"Live model '{Name}' has no rate-limit rule in its gate; add a RateLimitRule to set per-source rates.");
        }

        foreach (RateLimitRule rule in rules)
        {
            if (rate is { } r)
            {
                rule.SetRate(source, r);
            }
            else
            {
                rule.ClearRate(source);
            }
        }

        Record(_options.DefaultScope, LedgerEvent.ControlChanged, rate is { } set ? $"Source '{source}' limited to {set}." : $"Source '{source}' returned to the default rate.", source: source, rule: "rate-limit", actor: actor);
    }

    /// <inheritdoc />
    public IReadOnlyCollection<string> ExcludedFromReplay => [.. _excludedFromReplay.Keys.Order(StringComparer.Ordinal)];

    /// <inheritdoc />
    public async Task SetShadowModeAsync(bool enabled, string? scope = null, string? actor = null, CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        foreach (LiveScope s in Selected(scope))
        {
            if (enabled)
            {
                if (!s.Shadow)
                {
                    s.Shadow = true;
                    Record(s.Name, LedgerEvent.ControlChanged, $"Shadow mode on: candidates are learned and evaluated, {s.Current.Info.Id} keeps serving.", actor: actor);
                }

                continue;
            }

            // Leaving shadow mode serves what was learned in it (the pending candidate, already evaluated).
            var done = new TaskCompletionSource<AdapterVersion?>(TaskCreationOptions.RunContinuationsAsynchronously);
            Post(s, new PromoteCandidateWork(actor, Required: false, done));
            await done.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    /// <inheritdoc />
    public bool IsShadowMode(string? scope = null) => GetScope(scope).Shadow;

    /// <inheritdoc />
    public AdapterVersion? GetCandidate(string? scope = null) => GetScope(scope).Candidate?.Info;

    /// <inheritdoc />
    public async Task<AdapterVersion> PromoteCandidateAsync(string? scope = null, string? actor = null, CancellationToken cancellationToken = default)
    {
        ThrowIfDisposed();
        LiveScope s = GetScope(scope);
        var done = new TaskCompletionSource<AdapterVersion?>(TaskCreationOptions.RunContinuationsAsynchronously);
        Post(s, new PromoteCandidateWork(actor, Required: true, done));
        return (await done.Task.WaitAsync(cancellationToken).ConfigureAwait(false))!;
    }

    /// <summary>On the learner: the pending candidate becomes current (an owner's order: no evaluation again); shadow mode stays as it is unless leaving it.</summary>
    private async Task<AdapterVersion?> PromoteCandidateAsync(LiveScope scope, PromoteCandidateWork request, CancellationToken cancellationToken)
    {
        bool leaving = !request.Required;
        if (leaving && !scope.Shadow)
        {
            return null;
        }

        // Steps not yet published become a candidate first (evaluated as usual).
        await SettleAsync(scope, cancellationToken).ConfigureAwait(false);
        PublishedVersion? candidate = scope.Candidate;
        if (leaving)
        {
            scope.Shadow = false;
            Record(scope.Name, LedgerEvent.ControlChanged, candidate is null ? "Shadow mode off." : $"Shadow mode off; candidate {candidate.Info.Id} is served.", versionId: candidate?.Info.Id, actor: request.Actor);
        }
        else if (candidate is null)
        {
            throw new InvalidOperationException($"Scope '{scope.Name}' has no candidate to promote (none passed evaluation since the last promotion, or it is not in shadow mode).");
        }

        if (candidate is null)
        {
            return null;
        }

        scope.Candidate = null;
        PublishedVersion promoted = ReparentIfNeeded(scope, candidate);
        Promote(scope, promoted);
        Record(scope.Name, LedgerEvent.Promoted, $"Candidate {candidate.Info.Id} promoted by the owner{(scope.Shadow ? " (shadow mode stays on)" : string.Empty)}.", versionId: promoted.Info.Id, actor: request.Actor);
        return promoted.Info;
    }

    /// <summary>A candidate learned over an older parent version: paired with the parent's current one (same weights).</summary>
    private PublishedVersion ReparentIfNeeded(LiveScope scope, PublishedVersion candidate) =>
        scope.Parent is { } parent && !ReferenceEquals(parent.Current, candidate.Base)
            ? NewVersion(scope, candidate.Weights, parent.Current, candidate.Info.Id, "rebased", candidate.Info.ContentHash)
            : candidate;
}
