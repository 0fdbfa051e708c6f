using LiveLearning.Backends;

namespace LiveLearning;

/// <summary>Who held an item back.</summary>
public enum QuarantineOrigin
{
    /// <summary>A validation gate rule, before the item was accepted (it was never journaled).</summary>
    Gate,

    /// <summary>The learner's outlier screening, after the item was accepted (its journal record was erased, so a restart never learns it).</summary>
    Learner,
}

/// <summary>An item held back for review: approve it (it is then learned) or discard it.</summary>
public sealed record QuarantinedItem
{
    /// <summary>Its id in the quarantine (unique per model, increasing).</summary>
    public required long Id { get; init; }

    /// <summary>The scope it was for.</summary>
    public required string Scope { get; init; }

    /// <summary>Its source.</summary>
    public required string Source { get; init; }

    /// <summary>Who held it back.</summary>
    public required QuarantineOrigin Origin { get; init; }

    /// <summary>The rule that held it back (a gate rule's name, or <c>learner.loss-outlier</c> / <c>learner.gradient-norm-outlier</c>).</summary>
    public required string Rule { get; init; }

    /// <summary>Why, with the figures.</summary>
    public required string Reason { get; init; }

    /// <summary>When the model received it.</summary>
    public required DateTimeOffset ReceivedAt { get; init; }

    /// <summary>When it was quarantined.</summary>
    public required DateTimeOffset QuarantinedAt { get; init; }

    /// <summary>Its objective.</summary>
    public required TrainingObjective Objective { get; init; }

    /// <summary>Tokens of its prompt.</summary>
    public int PromptTokens { get; init; }

    /// <summary>Tokens of its completion (the chosen one for a preference).</summary>
    public int CompletionTokens { get; init; }

    /// <summary>The item as given (gate quarantine); <see langword="null"/> when the learner held it back (only its encoded form was journaled).</summary>
    public Feedback? Feedback { get; init; }

    /// <summary>The journal sequence number it was accepted under (learner quarantine), now erased.</summary>
    public long? JournalSequence { get; init; }
}
