using Microsoft.Extensions.AI;

namespace LiveLearning;

/// <summary>
/// What an application tells a live model to learn. Every item names its source, may carry a weight and tags, and
/// states its prompt in exactly one way: as text (<see cref="Prompt"/>), as a conversation (<see cref="Messages"/>), or
/// as the id of a response the model served (<see cref="ResponseId"/>), in which case that response's prompt (and,
/// where the kind says so, its text) is used and nothing has to be sent again.
/// </summary>
/// <remarks>The kinds: <see cref="Demonstration"/> (also a correction), <see cref="Preference"/>, <see cref="Rating"/>.</remarks>
public abstract record Feedback
{
    private protected Feedback()
    {
    }

    /// <summary>Who gave the feedback (a user, a tenant, a pipeline): the unit of rate limits and of "undo what X taught". Default "anonymous".</summary>
    public string Source { get; init; } = "anonymous";

    /// <summary>When it was given; <see langword="null"/> takes the model's clock (<see cref="TimeProvider"/>) on receipt.</summary>
    public DateTimeOffset? Timestamp { get; init; }

    /// <summary>The item's weight in its batch (a positive, finite number). Default 1.</summary>
    public double Weight { get; init; } = 1;

    /// <summary>Free-form labels, kept in the ledger.</summary>
    public IReadOnlyList<string> Tags { get; init; } = [];

    /// <summary>Private items are learned but never kept in the replay buffer.</summary>
    public bool Private { get; init; }

    /// <summary>The scope (adapter) to teach; <see langword="null"/> uses the response's scope, else the default scope.</summary>
    public string? Scope { get; init; }

    /// <summary>The prompt as plain text.</summary>
    public string? Prompt { get; init; }

    /// <summary>The prompt as a conversation (rendered with the model's chat template).</summary>
    public IReadOnlyList<ChatMessage>? Messages { get; init; }

    /// <summary>The id of a response the model served (<see cref="LiveCompletion.ResponseId"/>); the model keeps a bounded map of recent ones.</summary>
    public string? ResponseId { get; init; }

    /// <summary>A correction: the response with id <paramref name="responseId"/> should have been <paramref name="completion"/>.</summary>
    /// <param name="responseId">The served response.</param>
    /// <param name="completion">What it should have said.</param>
    /// <returns>The feedback.</returns>
    public static Demonstration Correction(string responseId, string completion) => new() { ResponseId = responseId, Completion = completion };

    /// <summary>A thumbs up on a served response.</summary>
    /// <param name="responseId">The served response.</param>
    /// <returns>The feedback.</returns>
    public static Rating ThumbsUp(string responseId) => new() { ResponseId = responseId, Positive = true };

    /// <summary>A thumbs down on a served response.</summary>
    /// <param name="responseId">The served response.</param>
    /// <returns>The feedback.</returns>
    public static Rating ThumbsDown(string responseId) => new() { ResponseId = responseId, Positive = false };
}

/// <summary>
/// "For this prompt, say this": the model learns the completion (loss on the completion tokens only). With a
/// <see cref="Feedback.ResponseId"/> it is a correction of that response.
/// </summary>
public sealed record Demonstration : Feedback
{
    /// <summary>The desired completion.</summary>
    public required string Completion { get; init; }
}

/// <summary>
/// "For this prompt, this answer is better than that one": DPO against the frozen reference. With a
/// <see cref="Feedback.ResponseId"/> and no <see cref="Rejected"/>, the served response is the rejected one.
/// </summary>
public sealed record Preference : Feedback
{
    /// <summary>The preferred completion.</summary>
    public required string Chosen { get; init; }

    /// <summary>The worse completion; <see langword="null"/> only with a <see cref="Feedback.ResponseId"/> (the served text).</summary>
    public string? Rejected { get; init; }
}

/// <summary>
/// Thumbs up or down on one completion: an unpaired preference (KTO against the frozen reference). With a
/// <see cref="Feedback.ResponseId"/> and no <see cref="Completion"/>, the served response is the rated one.
/// </summary>
public sealed record Rating : Feedback
{
    /// <summary>True for thumbs up (desirable), false for thumbs down.</summary>
    public required bool Positive { get; init; }

    /// <summary>The rated completion; <see langword="null"/> only with a <see cref="Feedback.ResponseId"/> (the served text).</summary>
    public string? Completion { get; init; }
}
