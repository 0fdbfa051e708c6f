namespace LiveLearning;

/// <summary>A live model's figures at one moment: one entry per scope.</summary>
/// <param name="Model">The model's name.</param>
/// <param name="Scopes">Per scope.</param>
public sealed record LiveModelStatistics(string Model, IReadOnlyList<ScopeStatistics> Scopes)
{
    /// <summary>The figures of one scope.</summary>
    /// <param name="scope">The scope's name.</param>
    /// <returns>Its statistics.</returns>
    /// <exception cref="ScopeNotFoundException">No such scope.</exception>
    public ScopeStatistics this[string scope] => Scopes.FirstOrDefault(s => s.Scope == scope) ?? throw new ScopeNotFoundException(scope);

    /// <summary>Ledger appends that failed since the model started (each logged; the decisions stood).</summary>
    public long LedgerFailures { get; init; }
}

/// <summary>The figures of one scope: its traffic, its learner and progressive validation.</summary>
public sealed record ScopeStatistics
{
    /// <summary>The scope.</summary>
    public required string Scope { get; init; }

    /// <summary>Its current version.</summary>
    public required AdapterVersion Version { get; init; }

    /// <summary>Whether its learning is paused.</summary>
    public bool Paused { get; init; }

    /// <summary>Items waiting to be learned.</summary>
    public int QueueDepth { get; init; }

    /// <summary>Feedback items received.</summary>
    public long Received { get; init; }

    /// <summary>Items accepted (journaled and queued).</summary>
    public long Accepted { get; init; }

    /// <summary>Items not accepted (each with a reason in its receipt).</summary>
    public long Rejected { get; init; }

    /// <summary>Items learned (at least one step taken on them).</summary>
    public long Learned { get; init; }

    /// <summary>Optimizer steps taken.</summary>
    public long Steps { get; init; }

    /// <summary>Steps skipped because the loss or a gradient was not finite (weights untouched).</summary>
    public long SkippedSteps { get; init; }

    /// <summary>The last step's loss (the objective's value), NaN before the first.</summary>
    public double LastLoss { get; init; } = double.NaN;

    /// <summary>Mean wall time of a step (forward, backward, update), in milliseconds.</summary>
    public double MeanStepMilliseconds { get; init; }

    /// <summary>Items in the replay buffer, and their bytes.</summary>
    public int ReplayItems { get; init; }

    /// <summary>Bytes of the replay buffer.</summary>
    public long ReplayBytes { get; init; }

    /// <summary>Bytes the scope's trainer holds now: its optimizer moments, plus its working parameters and gradients while it is stepping.</summary>
    public long TrainerBytes { get; init; }

    /// <summary>Progressive validation: every item scored before it is learned.</summary>
    public required ProgressiveValidation Progressive { get; init; }
}

/// <summary>
/// Progressive (predict-then-learn) validation: every item is scored by the adapter about to learn it, before the
/// update, so every figure here is out of sample.
/// </summary>
public sealed record ProgressiveValidation
{
    /// <summary>Demonstrations and corrections scored.</summary>
    public long CompletionItems { get; init; }

    /// <summary>Their mean loss per completion token (cross-entropy, nats), over all of them.</summary>
    public double MeanCompletionLoss { get; init; } = double.NaN;

    /// <summary>The same, as an exponential average over recent items (decay 0.9): the current trend.</summary>
    public double RecentCompletionLoss { get; init; } = double.NaN;

    /// <summary>Preferences scored.</summary>
    public long PreferenceItems { get; init; }

    /// <summary>Fraction of preferences where the adapter already gave the chosen completion the higher log-likelihood.</summary>
    public double PreferenceAccuracy { get; init; } = double.NaN;

    /// <summary>Mean of log p(chosen) − log p(rejected) before learning (nats).</summary>
    public double MeanPreferenceMargin { get; init; } = double.NaN;

    /// <summary>Ratings scored.</summary>
    public long RatingItems { get; init; }

    /// <summary>Mean log-ratio log π(y|x) − log π_ref(y|x) of thumbs-up completions before learning.</summary>
    public double MeanPositiveLogRatio { get; init; } = double.NaN;

    /// <summary>Mean log-ratio of thumbs-down completions before learning.</summary>
    public double MeanNegativeLogRatio { get; init; } = double.NaN;

    /// <summary>The KTO reference point the learner uses now.</summary>
    public double KtoReferencePoint { get; init; }
}

/// <summary>A scope name that the model does not have.</summary>
public sealed class ScopeNotFoundException : KeyNotFoundException
{
    /// <summary>Creates the exception for <paramref name="scope"/>.</summary>
    /// <param name="scope">The unknown scope.</param>
    public ScopeNotFoundException(string scope)
        : base($"The live model has no scope '{scope}'; create it with CreateScope or list it in the options.") => Scope = scope;

    /// <summary>Creates the exception with a message.</summary>
    public ScopeNotFoundException()
        : base("The live model has no such scope.") => Scope = string.Empty;

    /// <summary>Creates the exception with a message and an inner exception.</summary>
    /// <param name="message">The message.</param>
    /// <param name="innerException">The cause.</param>
    public ScopeNotFoundException(string message, Exception innerException)
        : base(message, innerException) => Scope = string.Empty;

    /// <summary>The scope that was asked for.</summary>
    public string Scope { get; }
}
