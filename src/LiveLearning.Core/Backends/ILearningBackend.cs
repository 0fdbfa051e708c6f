using Microsoft.Extensions.AI;

namespace LiveLearning.Backends;

/// <summary>
/// The engine a live model runs on: a frozen base model with trainable adapters over it. The live loop
/// (<see cref="LiveModel"/>) talks to the model only through this interface, in token ids, scores and named float
/// buffers, so another engine can implement it without touching the loop.
/// </summary>
/// <remarks>
/// <para>Thread-safety: every member may be called concurrently (serving from many threads while a learner trains);
/// trainers created by <see cref="CreateTrainer"/> are used by one learner at a time.</para>
/// <para>Adapter stacks are passed bottom-up: element 0 applies first (an organisation adapter), the last on top (a
/// user adapter). An empty stack is the base model alone.</para>
/// </remarks>
public interface ILearningBackend : IDisposable
{
    /// <summary>A name for the base model, for logs and diagnostics (the chat model id reported is the live model's name).</summary>
    string ModelId { get; }

    /// <summary>Longest sequence (prompt plus completion) the engine runs.</summary>
    int ContextLength { get; }

    /// <summary>Whether the model has a chat format (<see cref="EncodeChatPrompt"/> works).</summary>
    bool SupportsChat { get; }

    /// <summary>Token ids of a plain-text prompt (with the tokenizer's beginning-of-sequence handling). Text that
    /// spells a special token is encoded as plain text.</summary>
    /// <param name="text">The prompt.</param>
    /// <returns>The ids.</returns>
    IReadOnlyList<int> EncodePrompt(string text);

    /// <summary>Token ids of a conversation rendered with the model's chat template, ending with the header of an
    /// assistant turn (ready for the reply).</summary>
    /// <param name="messages">The conversation.</param>
    /// <returns>The ids.</returns>
    /// <exception cref="NotSupportedException">The model has no chat format.</exception>
    /// <exception cref="ArgumentException">A message cannot be rendered (a role or content type the template has no slot for).</exception>
    IReadOnlyList<int> EncodeChatPrompt(IReadOnlyList<ChatMessage> messages);

    /// <summary>Token ids of a completion that continues a prompt of kind <paramref name="kind"/>; with
    /// <paramref name="appendEnd"/>, followed by the token that ends such a completion (end of turn for chat, end of
    /// sequence for text), so a model trained on it learns where to stop.</summary>
    /// <param name="completion">The completion text.</param>
    /// <param name="kind">What the completion continues.</param>
    /// <param name="appendEnd">Whether to append the end token.</param>
    /// <returns>The ids.</returns>
    IReadOnlyList<int> EncodeCompletion(string completion, PromptKind kind, bool appendEnd);

    /// <summary>Creates the trainer of one adapter scope, starting from a fresh adapter (it changes no output).</summary>
    /// <param name="options">The scope's seed and name.</param>
    /// <returns>The trainer.</returns>
    IAdapterTrainer CreateTrainer(TrainerOptions options);

    /// <summary>Rebuilds adapter weights from what <see cref="IAdapterWeights.Export"/> produced (a snapshot).</summary>
    /// <param name="data">The exported tensors and metadata.</param>
    /// <returns>The weights.</returns>
    /// <exception cref="FormatException">The data does not describe adapter weights that fit this model (the message names the tensor or key).</exception>
    IAdapterWeights ImportWeights(AdapterWeightsData data);

    /// <summary>Log-likelihood of <paramref name="completion"/> after <paramref name="prompt"/> under <paramref name="adapters"/>.</summary>
    /// <param name="prompt">Prompt ids (at least one).</param>
    /// <param name="completion">Completion ids.</param>
    /// <param name="adapters">The adapter stack (empty: the base model).</param>
    /// <returns>The score.</returns>
    CompletionScore Score(IReadOnlyList<int> prompt, IReadOnlyList<int> completion, IReadOnlyList<IAdapterWeights> adapters);

    /// <summary>
    /// Generates after <paramref name="prompt"/>, streaming each token with the text it completes. Stops at a stop token
    /// (not emitted: <see cref="GenerationOptions.StopTokenIds"/>, else the model's end-of-sequence ids plus, for chat,
    /// the end-of-turn token), after <see cref="GenerationOptions.MaxTokens"/>, at the context length, or on cancellation.
    /// Stop strings are the caller's (the loop applies them to the text).
    /// </summary>
    /// <param name="prompt">Prompt ids (at least one).</param>
    /// <param name="kind">What the prompt is (chat prompts also stop at the end-of-turn token).</param>
    /// <param name="options">Sampling options (validated).</param>
    /// <param name="adapters">The adapter stack (empty: the base model).</param>
    /// <param name="cancellationToken">Stops between tokens.</param>
    /// <returns>The generated tokens.</returns>
    IAsyncEnumerable<GeneratedToken> GenerateAsync(IReadOnlyList<int> prompt, PromptKind kind, GenerationOptions options, IReadOnlyList<IAdapterWeights> adapters, CancellationToken cancellationToken);

    /// <summary>
    /// Makes the current flow's compute run at learning priority until the scope is disposed: it yields to serving, but
    /// gets at least <paramref name="share"/> of the compute while serving keeps it busy. Learners wrap every training
    /// step and reference score in it.
    /// </summary>
    /// <param name="share">The learning share in [0, 1] (0: only when serving is idle; 1: never yield).</param>
    /// <returns>The scope.</returns>
    IDisposable EnterLearningPriority(double share);
}

/// <summary>What a prompt is: plain text to continue, or a conversation rendered with the chat template.</summary>
public enum PromptKind
{
    /// <summary>Plain text; a completion continues it.</summary>
    Text,

    /// <summary>A conversation; a completion is the assistant's reply.</summary>
    Chat,
}

/// <summary>One generated token and the text that became complete with it (often empty mid-character).</summary>
/// <param name="TokenId">The token id; −1 for a last piece of held-back text that belongs to no new token.</param>
/// <param name="Text">Newly complete text.</param>
public readonly record struct GeneratedToken(int TokenId, string Text);

/// <summary>How a backend sets up the trainer of one scope.</summary>
/// <param name="Scope">The scope's name (for messages).</param>
/// <param name="Seed">The scope's seed (adapter initialisation, dropout masks): same seed, same feedback, same weights.</param>
public sealed record TrainerOptions(string Scope, ulong Seed);
