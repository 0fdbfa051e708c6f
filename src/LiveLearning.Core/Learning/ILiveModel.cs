using LiveLearning.Backends;
using LiveLearning.Governance;
using Microsoft.Extensions.AI;

namespace LiveLearning;

/// <summary>
/// A model that keeps learning while it serves: completions and scores from the current adapter version of a scope,
/// feedback that is validated, journaled and learned in the background, versions that can be watched, snapshotted and
/// rolled back. It is also a <see cref="IChatClient"/>, so it drops into any Microsoft.Extensions.AI pipeline.
/// </summary>
/// <remarks>
/// <para>Thread-safety: every member may be called concurrently from any number of threads. Learning never blocks
/// serving: a response is produced by exactly one published, immutable version (named in the response), no lock is
/// held across a forward pass, and by default the learner's compute yields to serving passes.</para>
/// <para>Scopes: <c>scope</c> parameters name the adapter to use (<see langword="null"/>: the default scope). An unknown
/// scope is a <see cref="ScopeNotFoundException"/>.</para>
/// <para>Disposal drains the queues or stops at once (<see cref="LiveModelOptions.Shutdown"/>); any call after it throws
/// <see cref="ObjectDisposedException"/>.</para>
/// </remarks>
public interface ILiveModel : IChatClient, IAsyncDisposable
{
    /// <summary>The model's name.</summary>
    string Name { get; }

    /// <summary>The default scope's current version.</summary>
    AdapterVersion Version { get; }

    /// <summary>The scopes, in creation order.</summary>
    IReadOnlyList<string> Scopes { get; }

    /// <summary>Generates a completion of a plain-text prompt.</summary>
    /// <param name="prompt">The prompt.</param>
    /// <param name="options">Sampling and stopping options; <see langword="null"/> for greedy defaults.</param>
    /// <param name="scope">The scope; <see langword="null"/> for the default.</param>
    /// <param name="cancellationToken">Stops generation between tokens.</param>
    /// <returns>The completion, its response id and the version that produced it.</returns>
    Task<LiveCompletion> CompleteAsync(string prompt, GenerationOptions? options = null, string? scope = null, CancellationToken cancellationToken = default);

    /// <summary>Generates the assistant's reply to a conversation (the model's chat template).</summary>
    /// <param name="messages">The conversation.</param>
    /// <param name="options">Sampling and stopping options.</param>
    /// <param name="scope">The scope.</param>
    /// <param name="cancellationToken">Stops generation between tokens.</param>
    /// <returns>The reply.</returns>
    Task<LiveCompletion> CompleteAsync(IReadOnlyList<ChatMessage> messages, GenerationOptions? options = null, string? scope = null, CancellationToken cancellationToken = default);

    /// <summary>Streams a completion of a plain-text prompt.</summary>
    /// <param name="prompt">The prompt.</param>
    /// <param name="options">Sampling and stopping options.</param>
    /// <param name="scope">The scope.</param>
    /// <param name="cancellationToken">Stops generation between tokens.</param>
    /// <returns>Text pieces; the last carries the finish reason.</returns>
    IAsyncEnumerable<LiveCompletionUpdate> StreamAsync(string prompt, GenerationOptions? options = null, string? scope = null, CancellationToken cancellationToken = default);

    /// <summary>Streams the assistant's reply to a conversation.</summary>
    /// <param name="messages">The conversation.</param>
    /// <param name="options">Sampling and stopping options.</param>
    /// <param name="scope">The scope.</param>
    /// <param name="cancellationToken">Stops generation between tokens.</param>
    /// <returns>Text pieces; the last carries the finish reason.</returns>
    IAsyncEnumerable<LiveCompletionUpdate> StreamAsync(IReadOnlyList<ChatMessage> messages, GenerationOptions? options = null, string? scope = null, CancellationToken cancellationToken = default);

    /// <summary>The log-likelihood of <paramref name="completion"/> after a plain-text prompt, under the scope's current version.</summary>
    /// <param name="prompt">The prompt.</param>
    /// <param name="completion">The completion.</param>
    /// <param name="scope">The scope.</param>
    /// <param name="cancellationToken">Cancels before the pass starts.</param>
    /// <returns>The score and the version.</returns>
    Task<LiveScore> ScoreAsync(string prompt, string completion, string? scope = null, CancellationToken cancellationToken = default);

    /// <summary>The log-likelihood of an assistant reply to a conversation.</summary>
    /// <param name="messages">The conversation.</param>
    /// <param name="completion">The reply.</param>
    /// <param name="scope">The scope.</param>
    /// <param name="cancellationToken">Cancels before the pass starts.</param>
    /// <returns>The score and the version.</returns>
    Task<LiveScore> ScoreAsync(IReadOnlyList<ChatMessage> messages, string completion, string? scope = null, CancellationToken cancellationToken = default);

    /// <summary>
    /// Offers a feedback item. Returns once it is durably journaled and queued (accepted, with its sequence number), or
    /// with the reason it was not accepted; never drops an item silently.
    /// </summary>
    /// <param name="feedback">The item.</param>
    /// <param name="cancellationToken">Cancels the wait for queue room or for the journal.</param>
    /// <returns>The receipt.</returns>
    /// <exception cref="ScopeNotFoundException">The item names an unknown scope.</exception>
    /// <exception cref="ArgumentException">The item states no prompt, or more than one (text, messages, response id).</exception>
    /// <exception cref="ObjectDisposedException">The model is disposed (or stopped while the call waited for queue room).</exception>
    /// <exception cref="InvalidOperationException">The scope's learner stopped for good (a critical log event says why).</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired while waiting for queue room (nothing was accepted).</exception>
    /// <remarks>A journal that cannot make the item durable fails the call with its own exception; the item is then not learned.</remarks>
    ValueTask<LearnReceipt> LearnAsync(Feedback feedback, CancellationToken cancellationToken = default);

    /// <summary>A scope's current version.</summary>
    /// <param name="scope">The scope.</param>
    /// <returns>The version.</returns>
    AdapterVersion GetVersion(string? scope = null);

    /// <summary>The versions of a scope kept in memory, oldest first (the current one last).</summary>
    /// <param name="scope">The scope.</param>
    /// <returns>The versions.</returns>
    IReadOnlyList<AdapterVersion> GetVersionHistory(string? scope = null);

    /// <summary>Every version published from now on (all scopes, or one), as it is published.</summary>
    /// <param name="scope">The scope, or <see langword="null"/> for every scope.</param>
    /// <param name="cancellationToken">Ends the enumeration.</param>
    /// <returns>The versions.</returns>
    IAsyncEnumerable<AdapterVersion> WatchVersionsAsync(string? scope = null, CancellationToken cancellationToken = default);

    /// <summary>
    /// Waits until every item accepted before the call has been learned and its version published (for every scope:
    /// including child scopes' rebases onto what their parents published). While learning is paused it waits for the resume.
    /// </summary>
    /// <param name="scope">The scope, or <see langword="null"/> for every scope.</param>
    /// <param name="cancellationToken">Stops waiting.</param>
    /// <returns>A task that completes when they are.</returns>
    Task WaitForIdleAsync(string? scope = null, CancellationToken cancellationToken = default);

    /// <summary>Takes a snapshot of a scope's learning state (adapter, optimizer, replay, journal position) between steps.</summary>
    /// <param name="label">An optional label.</param>
    /// <param name="scope">The scope.</param>
    /// <param name="cancellationToken">Cancels the wait for the learner.</param>
    /// <returns>The snapshot's description.</returns>
    Task<SnapshotInfo> SnapshotAsync(string? label = null, string? scope = null, CancellationToken cancellationToken = default);

    /// <summary>
    /// Makes an earlier version current again: a new version with its weights is published and learning continues from
    /// it. From a version kept in memory the optimizer moments start fresh; from a snapshot's version the whole learning
    /// state is restored exactly (weights, moments, replay buffer, KTO reference). The version id names the scope.
    /// </summary>
    /// <param name="versionId">A version id from <see cref="GetVersionHistory"/> or a snapshot's version (<c>scope@number</c>), or a snapshot alias such as <c>last-good</c>.</param>
    /// <param name="reason">Why (recorded in the ledger).</param>
    /// <param name="actor">Who asks (recorded in the ledger).</param>
    /// <param name="cancellationToken">Cancels the wait for the learner.</param>
    /// <returns>The new current version.</returns>
    /// <exception cref="KeyNotFoundException">No kept version, snapshot or alias has that name.</exception>
    Task<AdapterVersion> RollbackAsync(string versionId, string? reason = null, string? actor = null, CancellationToken cancellationToken = default);

    /// <summary>
    /// Makes imported adapter weights (e.g. a PEFT adapter trained elsewhere) a scope's current version; learning
    /// continues from them with fresh optimizer moments. Recorded in the ledger with actor and reason; snapshot
    /// afterwards to keep it across a restart.
    /// </summary>
    /// <param name="weights">The adapter, in the backend's export form (for LoRA: PEFT tensor names and adapter_config.json).</param>
    /// <param name="scope">The scope (default: the default scope).</param>
    /// <param name="reason">Why (recorded).</param>
    /// <param name="actor">Who asks (recorded).</param>
    /// <param name="cancellationToken">Cancels the wait for the learner.</param>
    /// <returns>The new current version.</returns>
    /// <exception cref="FormatException">The weights are not an adapter the backend can read.</exception>
    /// <exception cref="ArgumentException">The adapter's layout (modules, rank, shapes) differs from the scope's trainer; nothing changes.</exception>
    Task<AdapterVersion> ImportAdapterAsync(AdapterWeightsData weights, string? scope = null, string? reason = null, string? actor = null, CancellationToken cancellationToken = default);

    /// <summary>
    /// Forgets everything one source taught: each scope that learned from it is rebuilt from its newest snapshot taken
    /// before the source's first item (or from its initial state) by learning the journal again without the source's
    /// items; the source's journal records are erased, the snapshots that held its influence deleted, its replay entries
    /// gone with them, and a new version published. With the same seed the weights equal those of a run that never saw
    /// the source. Items queued after the call are learned afterwards, as usual.
    /// </summary>
    /// <param name="source">The source, as its items named it.</param>
    /// <param name="reason">Why (recorded in the ledger).</param>
    /// <param name="actor">Who asks (recorded in the ledger).</param>
    /// <param name="scope">The scope, or <see langword="null"/> for every scope.</param>
    /// <param name="cancellationToken">Cancels the wait for the learner (a rebuild under way completes).</param>
    /// <returns>What was forgotten, rebuilt and deleted, per scope.</returns>
    /// <exception cref="InvalidOperationException">The journal no longer reaches back to a state before the source's
    /// first item (retention removed it): the scope is left as it was.</exception>
    Task<ForgetReport> ForgetSourceAsync(string source, string? reason = null, string? actor = null, string? scope = null, CancellationToken cancellationToken = default);

    /// <summary>The items held back for review (by a gate rule, or by the learner's outlier screening), oldest first.</summary>
    /// <param name="scope">The scope, or <see langword="null"/> for every scope.</param>
    /// <returns>The items.</returns>
    IReadOnlyList<QuarantinedItem> GetQuarantine(string? scope = null);

    /// <summary>
    /// Approves a quarantined item: it is journaled and queued like an accepted item (no gate rule or outlier screening
    /// applies again) and leaves the quarantine. Recorded in the ledger with the actor.
    /// </summary>
    /// <param name="id">The item's <see cref="QuarantinedItem.Id"/>.</param>
    /// <param name="actor">Who approves (recorded).</param>
    /// <param name="cancellationToken">Cancels the wait for queue room (the item then stays quarantined).</param>
    /// <returns>The receipt of its admission.</returns>
    /// <exception cref="KeyNotFoundException">No quarantined item has that id.</exception>
    ValueTask<LearnReceipt> ApproveQuarantinedAsync(long id, string? actor = null, CancellationToken cancellationToken = default);

    /// <summary>Discards a quarantined item (it is never learned). Recorded in the ledger with the reason and actor.</summary>
    /// <param name="id">The item's <see cref="QuarantinedItem.Id"/>.</param>
    /// <param name="reason">Why (recorded).</param>
    /// <param name="actor">Who discards (recorded).</param>
    /// <returns>Whether it was in the quarantine.</returns>
    bool DiscardQuarantined(long id, string? reason = null, string? actor = null);

    /// <summary>Creates a scope at run time (e.g. a new user's adapter over the organisation's).</summary>
    /// <param name="options">The scope.</param>
    /// <returns>Its initial version.</returns>
    /// <exception cref="ArgumentException">The name is invalid or taken, or the parent does not exist.</exception>
    AdapterVersion CreateScope(ScopeOptions options);

    /// <summary>Stops learning (items are still accepted and queued) for one scope or all. Recorded in the ledger.</summary>
    /// <param name="scope">The scope, or <see langword="null"/> for all.</param>
    /// <param name="actor">Who asks (recorded).</param>
    void PauseLearning(string? scope = null, string? actor = null);

    /// <summary>Resumes learning for one scope or all. Recorded in the ledger.</summary>
    /// <param name="scope">The scope, or <see langword="null"/> for all.</param>
    /// <param name="actor">Who asks (recorded).</param>
    void ResumeLearning(string? scope = null, string? actor = null);

    /// <summary>
    /// Excludes a source from replay (or lets it back): its later items are learned but never kept for replay, and its
    /// items kept in every scope's replay buffer are removed. Recorded in the ledger.
    /// </summary>
    /// <param name="source">The source.</param>
    /// <param name="excluded">True to exclude, false to allow again (items removed stay removed).</param>
    /// <param name="actor">Who asks (recorded).</param>
    /// <param name="cancellationToken">Cancels the wait for the learners.</param>
    /// <returns>The number of kept items removed.</returns>
    Task<int> ExcludeFromReplayAsync(string source, bool excluded = true, string? actor = null, CancellationToken cancellationToken = default);

    /// <summary>The sources excluded from replay, in ordinal order.</summary>
    IReadOnlyCollection<string> ExcludedFromReplay { get; }

    /// <summary>
    /// Gives a source its own rate in every <see cref="RateLimitRule"/> the model's gate runs, or (null) returns it to
    /// the rule's default. Recorded in the ledger.
    /// </summary>
    /// <param name="source">The source.</param>
    /// <param name="rate">Its rate, or null for the default.</param>
    /// <param name="actor">Who asks (recorded).</param>
    /// <exception cref="InvalidOperationException">The gate has no rate-limit rule.</exception>
    void SetSourceRate(string source, RateLimit? rate, string? actor = null);

    /// <summary>
    /// Turns shadow mode on or off: in shadow mode a scope learns and evaluates candidates but keeps serving its current
    /// version; the newest candidate that passed evaluation waits (<see cref="GetCandidate"/>) until an owner promotes it.
    /// Turning it off serves that candidate. Recorded in the ledger.
    /// </summary>
    /// <param name="enabled">On or off.</param>
    /// <param name="scope">The scope, or <see langword="null"/> for all.</param>
    /// <param name="actor">Who asks (recorded).</param>
    /// <param name="cancellationToken">Cancels the wait for the learner (turning off).</param>
    /// <returns>A task that completes once the change is made.</returns>
    Task SetShadowModeAsync(bool enabled, string? scope = null, string? actor = null, CancellationToken cancellationToken = default);

    /// <summary>Whether a scope is in shadow mode.</summary>
    /// <param name="scope">The scope.</param>
    /// <returns>True in shadow mode.</returns>
    bool IsShadowMode(string? scope = null);

    /// <summary>The candidate a scope in shadow mode holds back (evaluated, not served), if any.</summary>
    /// <param name="scope">The scope.</param>
    /// <returns>The candidate, or <see langword="null"/>.</returns>
    AdapterVersion? GetCandidate(string? scope = null);

    /// <summary>Serves the pending candidate of a scope in shadow mode (shadow mode stays on). Recorded in the ledger.</summary>
    /// <param name="scope">The scope.</param>
    /// <param name="actor">Who asks (recorded).</param>
    /// <param name="cancellationToken">Cancels the wait for the learner.</param>
    /// <returns>The version now current.</returns>
    /// <exception cref="InvalidOperationException">There is no pending candidate.</exception>
    Task<AdapterVersion> PromoteCandidateAsync(string? scope = null, string? actor = null, CancellationToken cancellationToken = default);

    /// <summary>The model's figures: traffic, learner and progressive validation per scope.</summary>
    /// <returns>The statistics.</returns>
    LiveModelStatistics GetStatistics();
}
