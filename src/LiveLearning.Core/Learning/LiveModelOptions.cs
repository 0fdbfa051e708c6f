using System.Globalization;

namespace LiveLearning;

/// <summary>What <see cref="ILiveModel.LearnAsync"/> does when a scope's queue is full.</summary>
public enum BackPressure
{
    /// <summary>Wait for room (the call's cancellation token still applies). The default.</summary>
    Wait,

    /// <summary>Return a rejected receipt (<see cref="RejectionReason.QueueFull"/>) at once.</summary>
    FailFast,
}

/// <summary>What disposing a live model does with items still queued.</summary>
public enum ShutdownMode
{
    /// <summary>Learn every queued item (up to <see cref="LiveModelOptions.DrainTimeout"/>), then stop. The default.</summary>
    Drain,

    /// <summary>
    /// Stop between two steps; queued items are not learned. They stay in the journal: a durable journal keeps them for a
    /// restart; the default in-memory journal does not survive the process.
    /// </summary>
    Immediate,
}

/// <summary>How a learner's compute shares the cores with serving.</summary>
public enum LearningPriority
{
    /// <summary>
    /// Learning yields to serving: while a serving pass runs no learning kernel starts, except that learning gets
    /// <see cref="LearnerOptions.LearningShare"/> of the compute while serving keeps it busy (the default).
    /// </summary>
    Background,

    /// <summary>Learning and serving take turns kernel by kernel (the serving pass may wait for a learning kernel).</summary>
    Shared,
}

/// <summary>How a learner groups new items into batches.</summary>
public enum BatchPolicy
{
    /// <summary>Take what is queued, up to <see cref="LearnerOptions.MaxBatchItems"/>: a lone item is learned at once (lowest latency). The default.</summary>
    Opportunistic,

    /// <summary>
    /// Always batches of exactly <see cref="LearnerOptions.MaxBatchItems"/> consecutive items (a partial batch only before
    /// an owner request such as <see cref="ILiveModel.WaitForIdleAsync"/> or a snapshot, and at shutdown): the weights then
    /// depend only on the feedback sequence, never on when items arrived or how busy the machine was. Two limits: a
    /// child scope follows its parent's versions between batches, so its weights also depend on when the parent
    /// published; and with an evaluator that refuses candidates, when a refusal happens depends on when the queue ran
    /// empty (a version is also published then).
    /// </summary>
    Fixed,
}

/// <summary>Which items the replay buffer keeps.</summary>
public enum ReplayKind
{
    /// <summary>No replay.</summary>
    None,

    /// <summary>A uniform sample of everything learned (reservoir sampling, Vitter's algorithm R). The default.</summary>
    Reservoir,

    /// <summary>A uniform sample per source, with the capacity shared equally between sources, so one loud source cannot crowd out the others.</summary>
    SourceBalanced,
}

/// <summary>The learner of each scope: batching, steps, optimizer, publication, queue.</summary>
public sealed class LearnerOptions
{
    /// <summary>A copy (the optimizer options are immutable and shared).</summary>
    /// <returns>The copy.</returns>
    public LearnerOptions Clone() => (LearnerOptions)MemberwiseClone();

    /// <summary>The optimizer (AdamW by default) and its learning rate, warm-up and clipping.</summary>
    public OptimizerOptions Optimizer { get; set; } = new() { LearningRate = 1e-4f };

    /// <summary>Most new feedback items per step: the learner takes what is queued, up to this many (micro-batching). Default 4.</summary>
    public int MaxBatchItems { get; set; } = 4;

    /// <summary>How items are grouped into batches. Default <see cref="LiveLearning.BatchPolicy.Opportunistic"/>.</summary>
    public BatchPolicy Batching { get; set; } = BatchPolicy.Opportunistic;

    /// <summary>Optimizer steps per batch of new items (each step also draws its own replay). Default 1.</summary>
    public int StepsPerItem { get; set; } = 1;

    /// <summary>Publish a new version every this many steps, and whenever the queue runs empty. Default 1 (every step).</summary>
    public int PublishEvery { get; set; } = 1;

    /// <summary>Most items waiting per scope. Default 256.</summary>
    public int QueueCapacity { get; set; } = 256;

    /// <summary>What <see cref="ILiveModel.LearnAsync"/> does on a full queue. Default <see cref="LiveLearning.BackPressure.Wait"/>.</summary>
    public BackPressure BackPressure { get; set; } = BackPressure.Wait;

    /// <summary>How learning shares the cores with serving. Default <see cref="LearningPriority.Background"/>.</summary>
    public LearningPriority Priority { get; set; } = LearningPriority.Background;

    /// <summary>
    /// With <see cref="LearningPriority.Background"/>: the share of the compute learning gets while serving keeps it busy,
    /// in [0, 1]. Learning waits for serving, but never longer than (1 − share) / share times the length of its recent
    /// kernels before one runs. 0 learns only when serving is idle (continuous serving starves it); 1 never yields.
    /// Default 0.25.
    /// </summary>
    public double LearningShare { get; set; } = Numerics.ComputePool.DefaultBackgroundShare;

    /// <summary>Append the end token (end of turn / end of sequence) to learned completions, so the model learns where to stop. Default true.</summary>
    public bool AppendEndToken { get; set; } = true;
}

/// <summary>
/// The learner's last line of defence: an item whose loss, or a step whose gradient norm, is far outside what recent
/// items gave (a robust z-score against a window of them) is quarantined before the step instead of learned.
/// </summary>
public sealed class OutlierOptions
{
    /// <summary>A copy.</summary>
    /// <returns>The copy.</returns>
    public OutlierOptions Clone() => (OutlierOptions)MemberwiseClone();

    /// <summary>Whether the learner screens items. Default true.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>
    /// The robust z-score above which an item's loss (mean negative log-likelihood per completion token, before learning
    /// it) or a step's gradient norm is an outlier. Default 8: on normal data a z of 8 is essentially never reached by
    /// chance, so only items unlike anything recent are held back (one-sided: surprisingly easy items are fine).
    /// </summary>
    public double Threshold { get; set; } = 8;

    /// <summary>Recent accepted items (and steps) the scores are measured against. Default 64.</summary>
    public int Window { get; set; } = 64;

    /// <summary>Items seen before screening starts (fewer give no stable reference). Default 32.</summary>
    public int MinItems { get; set; } = 32;
}

/// <summary>The drift detector on a scope's progressive loss.</summary>
public enum DriftDetectorKind
{
    /// <summary>No drift alarm.</summary>
    None,

    /// <summary><see cref="Governance.PageHinkley"/> (constant memory; reacts to a sustained rise).</summary>
    PageHinkley,

    /// <summary><see cref="Governance.Adwin"/> (adaptive window; a statistical guarantee on false alarms).</summary>
    Adwin,
}

/// <summary>What a drift alarm does beyond its ledger entry.</summary>
public enum DriftAction
{
    /// <summary>Records it (ledger, log, metric) and nothing else.</summary>
    Record,

    /// <summary>Also pauses promotion: the scope goes into shadow mode (it learns and evaluates, serves what it served) until an owner promotes or leaves shadow mode.</summary>
    PausePromotion,
}

/// <summary>
/// The drift alarm on each scope's progressive loss (each new completion item's loss per token before it is learned): a
/// rise means the feedback no longer agrees with what the model learned — a new topic, a broken client, or poisoning.
/// The detector starts afresh when the model starts, and again after each alarm.
/// </summary>
public sealed class DriftOptions
{
    /// <summary>A copy.</summary>
    /// <returns>The copy.</returns>
    public DriftOptions Clone() => (DriftOptions)MemberwiseClone();

    /// <summary>The detector. Default <see cref="DriftDetectorKind.PageHinkley"/>.</summary>
    public DriftDetectorKind Detector { get; set; } = DriftDetectorKind.PageHinkley;

    /// <summary>Page-Hinkley's settings (δ 0.25, λ 25, 30 items, α 0.9999).</summary>
    public Governance.PageHinkleyOptions PageHinkley { get; set; } = new();

    /// <summary>ADWIN's settings (δ 0.002, 5 buckets per row, sub-windows of 10).</summary>
    public Governance.AdwinOptions Adwin { get; set; } = new();

    /// <summary>A custom detector per scope (overrides <see cref="Detector"/>); called once per scope.</summary>
    public Func<string, Governance.IDriftDetector>? Factory { get; set; }

    /// <summary>What an alarm does. Default <see cref="DriftAction.Record"/>.</summary>
    public DriftAction Action { get; set; } = DriftAction.Record;

    /// <summary>
    /// A snapshot alias (e.g. <c>last-good</c>) to roll the scope back to on an alarm, when it names a snapshot of that
    /// scope; null for none. Default null.
    /// </summary>
    public string? RollbackTo { get; set; }
}

/// <summary>What happens to journal segments once snapshots cover them.</summary>
public enum JournalRetention
{
    /// <summary>Nothing is removed (the journal grows; every state can be rebuilt).</summary>
    KeepAll,

    /// <summary>
    /// After each snapshot, segments wholly before the oldest kept snapshot of every scope of the model are removed:
    /// restart and forgetting still reach back to the oldest snapshot. For a journal only this model uses.
    /// </summary>
    BeforeOldestSnapshot,
}

/// <summary>The replay buffer of each scope, against forgetting what earlier feedback taught.</summary>
public sealed class ReplayOptions
{
    /// <summary>A copy.</summary>
    /// <returns>The copy.</returns>
    public ReplayOptions Clone()
    {
        var copy = (ReplayOptions)MemberwiseClone();
        copy.Rehearsal = Rehearsal.Clone();
        return copy;
    }

    /// <summary>Rehearsal of the base model's own samples, against forgetting what the base knew. Off by default.</summary>
    public RehearsalOptions Rehearsal { get; set; } = new();

    /// <summary>Which items are kept. Default <see cref="ReplayKind.Reservoir"/>.</summary>
    public ReplayKind Kind { get; set; } = ReplayKind.Reservoir;

    /// <summary>Most items kept. Default 1024.</summary>
    public int CapacityItems { get; set; } = 1024;

    /// <summary>Most bytes kept (token ids at 4 bytes each, plus a small overhead per item). Default 16 MiB.</summary>
    public long CapacityBytes { get; set; } = 16L << 20;

    /// <summary>
    /// Replayed items per new item: each step adds <c>Ratio</c> × (new items) to a running credit and replays one stored
    /// item per whole unit of it. Default 0.125 (one replayed item per eight new ones).
    /// </summary>
    public double Ratio { get; set; } = 0.125;
}

/// <summary>
/// Self-generated replay: sequences sampled from the frozen base model (no adapter) are mixed into every learning step
/// with the base's own tokens as targets, so an adapter that learns new facts is also pulled back toward what the base
/// said before. Replay of stored feedback protects earlier feedback; this protects the base's own knowledge, and
/// stores no user data. Studies of forgetting in language models found samples of the model's own distribution
/// nearly eliminate forgetting and allow higher learning rates.
/// </summary>
/// <remarks>
/// The pool is shared by the model's scopes and filled lazily (a step generates the samples it needs that do not exist
/// yet); sample <c>i</c> is drawn with seed <see cref="Seed"/> + <c>i</c>, and each step's choice depends only on the
/// trainer's step count, so restarts, forgetting and rebuilds see the same rehearsal.
/// </remarks>
public sealed class RehearsalOptions
{
    /// <summary>A copy.</summary>
    /// <returns>The copy.</returns>
    public RehearsalOptions Clone() => (RehearsalOptions)MemberwiseClone();

    /// <summary>Distinct base samples kept (0 turns rehearsal off). Default 0.</summary>
    public int Samples { get; set; }

    /// <summary>Rehearsed samples per new item in each step (rounded up). Default 1.</summary>
    public double PerItem { get; set; } = 1;

    /// <summary>Longest sample, in generated tokens. Default 96.</summary>
    public int MaxTokens { get; set; } = 96;

    /// <summary>Sampling temperature (1 samples the base's own distribution). Default 1.</summary>
    public float Temperature { get; set; } = 1f;

    /// <summary>
    /// The text samples continue. Empty (the default) starts from the tokenizer's beginning-of-sequence token alone; a
    /// model whose tokenizer adds none needs a prompt (rehearsal stays off, with a warning, when the prompt encodes to nothing).
    /// </summary>
    public string Prompt { get; set; } = string.Empty;

    /// <summary>Seed of the first sample. Default 1.</summary>
    public int Seed { get; set; } = 1;
}

/// <summary>A scope: one adapter over the frozen base, optionally stacked on a parent scope's (frozen) adapter.</summary>
public sealed class ScopeOptions
{
    /// <summary>A copy (the optimizer options are immutable and shared).</summary>
    /// <returns>The copy.</returns>
    public ScopeOptions Clone() => (ScopeOptions)MemberwiseClone();

    /// <summary>The scope's name, e.g. <c>acme</c> or <c>acme/alice</c> (letters, digits, <c>-_.:/</c>; at most 200 characters).</summary>
    public required string Name { get; set; }

    /// <summary>A parent scope whose current version is applied, frozen, under this scope's adapter; <see langword="null"/> for none.</summary>
    public string? Parent { get; set; }

    /// <summary>This scope's optimizer, or <see langword="null"/> for the model's.</summary>
    public OptimizerOptions? Optimizer { get; set; }

    /// <summary>
    /// Whether the scope starts in shadow mode: it learns and evaluates candidates but keeps serving its current version
    /// until an owner promotes one (<see cref="ILiveModel.PromoteCandidateAsync"/>). Default false.
    /// </summary>
    public bool Shadow { get; set; }

    /// <summary>Most items waiting in this scope's queue, or <see langword="null"/> for <see cref="LearnerOptions.QueueCapacity"/>.</summary>
    public int? QueueCapacity { get; set; }

    /// <summary>Longest completion this scope accepts for learning, in tokens, or <see langword="null"/> for <see cref="LiveModelOptions.MaxCompletionTokens"/>.</summary>
    public int? MaxCompletionTokens { get; set; }

    /// <summary>
    /// Versions this scope keeps in memory for rollback, or <see langword="null"/> for <see cref="LiveModelOptions.VersionHistoryCapacity"/>.
    /// Each kept version costs one adapter; a per-user scope that keeps only its current version costs its adapter and
    /// optimizer state.
    /// </summary>
    public int? VersionHistoryCapacity { get; set; }
}

/// <summary>Everything a live model is configured with (besides its backend). Validated when the model starts.</summary>
public sealed class LiveModelOptions
{
    /// <summary>The model's name (DI key, metrics tag, chat model id). Default "default".</summary>
    public string Name { get; set; } = "default";

    /// <summary>The scope used when a call names none. It always exists. Default "default".</summary>
    public string DefaultScope { get; set; } = "default";

    /// <summary>Scopes created at start, parents before children. An entry named like <see cref="DefaultScope"/> configures the default scope.</summary>
    public IList<ScopeOptions> Scopes { get; private set; } = [];

    /// <summary>The learner.</summary>
    public LearnerOptions Learner { get; set; } = new();

    /// <summary>The replay buffer.</summary>
    public ReplayOptions Replay { get; set; } = new();

    /// <summary>DPO and KTO settings.</summary>
    public ObjectiveOptions Objectives { get; set; } = new();

    /// <summary>Served responses remembered for feedback by id (least recently served forgotten first). Default 4096.</summary>
    public int ResponseCacheCapacity { get; set; } = 4096;

    /// <summary>Versions kept in memory per scope for rollback (each costs one adapter). Default 8.</summary>
    public int VersionHistoryCapacity { get; set; } = 8;

    /// <summary>Longest prompt accepted, in tokens (serving and feedback), or 0 for the context length. Default 0.</summary>
    public int MaxPromptTokens { get; set; }

    /// <summary>Longest completion accepted for learning, in tokens, or 0 for the context length. Default 0.</summary>
    public int MaxCompletionTokens { get; set; }

    /// <summary>The seed of every scope's adapter initialisation, dropout and replay draws (mixed with the scope's name). Default 0.</summary>
    public ulong Seed { get; set; }

    /// <summary>
    /// Whether each scope, when it starts, restores its newest snapshot of this model and learns the journal records
    /// after that snapshot's position (the items acknowledged but not in a snapshot). Default true; with the in-memory
    /// journal and store of a new model there is nothing to recover.
    /// </summary>
    public bool RecoverOnStart { get; set; } = true;

    /// <summary>Sources whose items are learned but never kept for replay (more can be excluded at run time). Default none.</summary>
    public IList<string> ExcludedFromReplay { get; private set; } = [];

    /// <summary>Loss and gradient-norm outlier screening in the learner.</summary>
    public OutlierOptions Outliers { get; set; } = new();

    /// <summary>The drift alarm on the progressive loss.</summary>
    public DriftOptions Drift { get; set; } = new();

    /// <summary>Quarantined items kept for review, over every scope (the oldest is discarded, and the ledger says so, beyond it). Default 1000.</summary>
    public int QuarantineCapacity { get; set; } = 1000;

    /// <summary>When journal segments are removed. Default <see cref="JournalRetention.KeepAll"/>.</summary>
    public JournalRetention JournalRetention { get; set; } = JournalRetention.KeepAll;

    /// <summary>What disposal does with queued items. Default <see cref="ShutdownMode.Drain"/>.</summary>
    public ShutdownMode Shutdown { get; set; } = ShutdownMode.Drain;

    /// <summary>Longest a draining disposal waits (<see cref="Timeout.InfiniteTimeSpan"/>: no limit). Default 5 minutes.</summary>
    public TimeSpan DrainTimeout { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// A deep copy: a model copies its options when it is built, so changing them afterwards changes nothing (the
    /// optimizer and objective options are immutable records and are shared).
    /// </summary>
    /// <returns>The copy.</returns>
    public LiveModelOptions Clone()
    {
        var copy = (LiveModelOptions)MemberwiseClone();
        copy.Learner = Learner?.Clone()!;
        copy.Replay = Replay?.Clone()!;
        copy.Outliers = Outliers?.Clone()!;
        copy.Drift = Drift?.Clone()!;
        copy.ExcludedFromReplay = [.. ExcludedFromReplay];
        copy.Scopes = [.. Scopes.Select(s => s?.Clone()!)];
        return copy;
    }

    /// <summary>Checks every option and returns the problems, each naming the option (empty when valid).</summary>
    /// <returns>The problems.</returns>
    public IReadOnlyList<string> Validate()
    {
        var errors = new List<string>();
        void Check(bool ok, string message)
        {
            if (!ok)
            {
                errors.Add(message);
            }
        }

        Check(!string.IsNullOrWhiteSpace(Name), "Name must not be empty.");
        Check(ScopeNames.IsValid(DefaultScope), $"DefaultScope '{DefaultScope}' is not a valid scope name ({ScopeNames.Rule}).");
        Check(Learner is not null, "Learner must not be null.");
        Check(Replay is not null, "Replay must not be null.");
        Check(Objectives is not null, "Objectives must not be null.");
        if (Learner is not null)
        {
            Check(Learner.Optimizer is not null, "Learner.Optimizer must not be null.");
            if (Learner.Optimizer is not null)
            {
                CheckNested(errors, "Learner.Optimizer", Learner.Optimizer.Problems());
            }

            Check(Learner.MaxBatchItems is >= 1 and <= 1024, $"Learner.MaxBatchItems must be in [1, 1024] (was {Learner.MaxBatchItems}).");
            Check(Learner.StepsPerItem is >= 1 and <= 1000, $"Learner.StepsPerItem must be in [1, 1000] (was {Learner.StepsPerItem}).");
            Check(Learner.PublishEvery >= 1, $"Learner.PublishEvery must be at least 1 (was {Learner.PublishEvery}).");
            Check(Learner.QueueCapacity is >= 1 and <= 1_000_000, $"Learner.QueueCapacity must be in [1, 1000000] (was {Learner.QueueCapacity}).");
            Check(Enum.IsDefined(Learner.BackPressure), $"Learner.BackPressure {Learner.BackPressure} is not defined.");
            Check(Enum.IsDefined(Learner.Priority), $"Learner.Priority {Learner.Priority} is not defined.");
            Check(Enum.IsDefined(Learner.Batching), $"Learner.Batching {Learner.Batching} is not defined.");
            Check(Learner.LearningShare >= 0 && Learner.LearningShare <= 1, string.Create(CultureInfo.InvariantCulture, $"Learner.LearningShare must be in [0, 1] (was {Learner.LearningShare})."));
        }

        if (Replay is not null)
        {
            Check(Enum.IsDefined(Replay.Kind), $"Replay.Kind {Replay.Kind} is not defined.");
            Check(Replay.CapacityItems >= 0, $"Replay.CapacityItems must not be negative (was {Replay.CapacityItems}).");
            Check(Replay.CapacityBytes >= 0, $"Replay.CapacityBytes must not be negative (was {Replay.CapacityBytes}).");
            Check(Replay.Ratio >= 0 && Replay.Ratio <= 16, string.Create(CultureInfo.InvariantCulture, $"Replay.Ratio must be in [0, 16] (was {Replay.Ratio})."));
            if (Replay.Rehearsal is not { } r)
            {
                errors.Add("Replay.Rehearsal must not be null.");
            }
            else
            {
                Check(r.Samples is >= 0 and <= 1_000_000, $"Replay.Rehearsal.Samples must be in [0, 1000000] (was {r.Samples}).");
                Check(r.PerItem >= 0 && r.PerItem <= 16, string.Create(CultureInfo.InvariantCulture, $"Replay.Rehearsal.PerItem must be in [0, 16] (was {r.PerItem})."));
                Check(r.MaxTokens is >= 1 and <= 65536, $"Replay.Rehearsal.MaxTokens must be in [1, 65536] (was {r.MaxTokens}).");
                Check(r.Temperature > 0 && float.IsFinite(r.Temperature), string.Create(CultureInfo.InvariantCulture, $"Replay.Rehearsal.Temperature must be positive and finite (was {r.Temperature})."));
                Check(r.Prompt is not null, "Replay.Rehearsal.Prompt must not be null.");
            }
        }

        if (Objectives is not null)
        {
            CheckNested(errors, "Objectives", Objectives.Problems());
        }

        Check(Outliers is not null, "Outliers must not be null.");
        if (Outliers is not null)
        {
            Check(Outliers.Threshold > 0 && double.IsFinite(Outliers.Threshold), string.Create(CultureInfo.InvariantCulture, $"Outliers.Threshold must be positive and finite (was {Outliers.Threshold})."));
            Check(Outliers.Window is >= 3 and <= 100_000, $"Outliers.Window must be in [3, 100000] (was {Outliers.Window}).");
            Check(Outliers.MinItems >= 3 && Outliers.MinItems <= Outliers.Window, $"Outliers.MinItems must be in [3, Outliers.Window] (was {Outliers.MinItems}).");
        }

        Check(Drift is not null, "Drift must not be null.");
        if (Drift is not null)
        {
            Check(Enum.IsDefined(Drift.Detector), $"Drift.Detector {Drift.Detector} is not defined.");
            Check(Enum.IsDefined(Drift.Action), $"Drift.Action {Drift.Action} is not defined.");
            Check(Drift.RollbackTo is null || Storage.SnapshotAliases.IsValid(Drift.RollbackTo), $"Drift.RollbackTo '{Drift.RollbackTo}' is not a valid snapshot alias.");
            CheckNested(errors, "Drift", DriftProblems(Drift));
        }

        Check(QuarantineCapacity >= 0, $"QuarantineCapacity must not be negative (was {QuarantineCapacity}).");
        Check(Enum.IsDefined(JournalRetention), $"JournalRetention {JournalRetention} is not defined.");
        Check(ResponseCacheCapacity >= 0, $"ResponseCacheCapacity must not be negative (was {ResponseCacheCapacity}).");
        Check(VersionHistoryCapacity >= 1, $"VersionHistoryCapacity must be at least 1 (was {VersionHistoryCapacity}).");
        Check(MaxPromptTokens >= 0, $"MaxPromptTokens must not be negative (was {MaxPromptTokens}).");
        Check(MaxCompletionTokens >= 0, $"MaxCompletionTokens must not be negative (was {MaxCompletionTokens}).");
        Check(Enum.IsDefined(Shutdown), $"Shutdown {Shutdown} is not defined.");
        Check(DrainTimeout == Timeout.InfiniteTimeSpan || DrainTimeout > TimeSpan.Zero, $"DrainTimeout must be positive or infinite (was {DrainTimeout}).");

        var seen = new HashSet<string>(StringComparer.Ordinal) { DefaultScope };
        for (int i = 0; i < Scopes.Count; i++)
        {
            ScopeOptions? s = Scopes[i];
            if (s is null)
            {
                errors.Add($"Scopes[{i}] is null.");
                continue;
            }

            Check(ScopeNames.IsValid(s.Name), $"Scopes[{i}].Name '{s.Name}' is not a valid scope name ({ScopeNames.Rule}).");
            Check(s.Name == DefaultScope || seen.Add(s.Name), $"Scopes[{i}].Name '{s.Name}' appears twice.");
            Check(s.Parent is null || (s.Parent != s.Name && seen.Contains(s.Parent)), $"Scopes[{i}].Parent '{s.Parent}' must name a scope listed before it (or the default scope).");
            if (s.Optimizer is not null)
            {
                CheckNested(errors, $"Scopes[{i}].Optimizer", s.Optimizer.Problems());
            }

            Check(s.VersionHistoryCapacity is null or >= 1, $"Scopes[{i}].VersionHistoryCapacity must be at least 1 (was {s.VersionHistoryCapacity}).");
            Check(s.QueueCapacity is null or (>= 1 and <= 1_000_000), $"Scopes[{i}].QueueCapacity must be in [1, 1000000] (was {s.QueueCapacity}).");
            Check(s.MaxCompletionTokens is null or >= 0, $"Scopes[{i}].MaxCompletionTokens must not be negative (was {s.MaxCompletionTokens}).");
            Check(s.Name != DefaultScope || s.Parent is null, $"Scopes[{i}] configures the default scope, which cannot have a parent.");
        }

        return errors;
    }

    /// <summary>The detectors' settings, checked by building them (each constructor names what is out of range).</summary>
    private static List<ArgumentException> DriftProblems(DriftOptions drift)
    {
        var problems = new List<ArgumentException>();
        void Try(string name, Action build)
        {
            try
            {
                build();
            }
            catch (ArgumentException ex)
            {
                problems.Add(new ArgumentException(ex.Message.Split(" (Parameter", 2)[0], name));
            }
        }

        Try("PageHinkley", () => _ = new Governance.PageHinkley(drift.PageHinkley ?? throw new ArgumentException("must not be null.")));
        Try("Adwin", () => _ = new Governance.Adwin(drift.Adwin ?? throw new ArgumentException("must not be null.")));
        return problems;
    }

    private static void CheckNested(List<string> errors, string prefix, IEnumerable<ArgumentException> problems)
    {
        foreach (ArgumentException ex in problems)
        {
            errors.Add($"{prefix}.{ex.ParamName}: {ex.Message.Split(" (Parameter", 2)[0]}");
        }
    }
}

/// <summary>The rule scope names follow (they appear in version ids, metrics and file names).</summary>
public static class ScopeNames
{
    /// <summary>The rule, for messages.</summary>
    public const string Rule = "1-200 characters of letters, digits and - _ . : /, not starting or ending with /, no '//' or '..'";

    /// <summary>Whether <paramref name="name"/> is a valid scope name.</summary>
    /// <param name="name">The name.</param>
    /// <returns>True when valid.</returns>
    public static bool IsValid(string? name)
    {
        if (string.IsNullOrEmpty(name) || name.Length > 200 || name[0] == '/' || name[^1] == '/' || name.Contains("//", StringComparison.Ordinal) || name.Contains("..", StringComparison.Ordinal))
        {
            return false;
        }

        foreach (char c in name)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' or ':' or '/'))
            {
                return false;
            }
        }

        return true;
    }
}
