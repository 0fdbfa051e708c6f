using System.Runtime.CompilerServices;
using System.Text;
using LiveLearning.Backends;
using Microsoft.Extensions.AI;

namespace LiveLearning;

// Serving: every request reads its scope's current version once and uses that version's stack for the whole response.
public sealed partial class LiveModel
{
    /// <inheritdoc />
    public Task<LiveCompletion> CompleteAsync(string prompt, GenerationOptions? options = null, string? scope = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        LiveScope s = GetScope(scope);
        return CompleteCoreAsync(s, PromptKind.Text, EncodeServedPrompt(PromptKind.Text, prompt, null), options, cancellationToken);
    }

    /// <inheritdoc />
    public Task<LiveCompletion> CompleteAsync(IReadOnlyList<ChatMessage> messages, GenerationOptions? options = null, string? scope = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(messages);
        LiveScope s = GetScope(scope);
        return CompleteCoreAsync(s, PromptKind.Chat, EncodeServedPrompt(PromptKind.Chat, null, messages), options, cancellationToken);
    }

    /// <inheritdoc />
    public IAsyncEnumerable<LiveCompletionUpdate> StreamAsync(string prompt, GenerationOptions? options = null, string? scope = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        LiveScope s = GetScope(scope);
        return StreamCoreAsync(s, PromptKind.Text, EncodeServedPrompt(PromptKind.Text, prompt, null), options, cancellationToken);
    }

    /// <inheritdoc />
    public IAsyncEnumerable<LiveCompletionUpdate> StreamAsync(IReadOnlyList<ChatMessage> messages, GenerationOptions? options = null, string? scope = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(messages);
        LiveScope s = GetScope(scope);
        return StreamCoreAsync(s, PromptKind.Chat, EncodeServedPrompt(PromptKind.Chat, null, messages), options, cancellationToken);
    }

    /// <inheritdoc />
    public Task<LiveScore> ScoreAsync(string prompt, string completion, string? scope = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        ArgumentNullException.ThrowIfNull(completion);
        LiveScope s = GetScope(scope);
        return ScoreCoreAsync(s, PromptKind.Text, EncodeServedPrompt(PromptKind.Text, prompt, null), completion, cancellationToken);
    }

    /// <inheritdoc />
    public Task<LiveScore> ScoreAsync(IReadOnlyList<ChatMessage> messages, string completion, string? scope = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(messages);
        ArgumentNullException.ThrowIfNull(completion);
        LiveScope s = GetScope(scope);
        return ScoreCoreAsync(s, PromptKind.Chat, EncodeServedPrompt(PromptKind.Chat, null, messages), completion, cancellationToken);
    }

    /// <summary>Encodes a prompt to serve; an empty or overlong one is refused with the lengths named.</summary>
    private IReadOnlyList<int> EncodeServedPrompt(PromptKind kind, string? text, IReadOnlyList<ChatMessage>? messages)
    {
        IReadOnlyList<int> ids = kind == PromptKind.Text ? _backend.EncodePrompt(text!) : _backend.EncodeChatPrompt(messages!);
        if (ids.Count == 0)
        {
            throw new ArgumentException("The prompt is empty: it must encode to at least one token.", kind == PromptKind.Text ? "prompt" : "messages");
        }

        int limit = _options.MaxPromptTokens > 0 ? Math.Min(_options.MaxPromptTokens, _backend.ContextLength - 1) : _backend.ContextLength - 1;
        if (ids.Count > limit)
        {
            throw new ArgumentException($"The prompt has {ids.Count} tokens; at most {limit} are accepted (context length {_backend.ContextLength}{(_options.MaxPromptTokens > 0 ? $", MaxPromptTokens {_options.MaxPromptTokens}" : string.Empty)}).", kind == PromptKind.Text ? "prompt" : "messages");
        }

        return ids;
    }

    private async Task<LiveCompletion> CompleteCoreAsync(LiveScope scope, PromptKind kind, IReadOnlyList<int> prompt, GenerationOptions? options, CancellationToken cancellationToken)
    {
        var text = new StringBuilder();
        LiveCompletionUpdate? last = null;
        await foreach (LiveCompletionUpdate update in StreamCoreAsync(scope, kind, prompt, options, cancellationToken).ConfigureAwait(false))
        {
            text.Append(update.Text);
            last = update;
        }

        return new LiveCompletion(text.ToString(), last!.ResponseId, last.Version, prompt.Count, last.CompletionTokens, last.FinishReason ?? LiveFinishReason.Stop);
    }

    private async IAsyncEnumerable<LiveCompletionUpdate> StreamCoreAsync(LiveScope scope, PromptKind kind, IReadOnlyList<int> prompt, GenerationOptions? options, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        options ??= new GenerationOptions();
        options.Validate();
        if (!EnterServing())
        {
            throw new ObjectDisposedException(nameof(LiveModel));
        }

        PublishedVersion version = scope.Current;
        string id = "resp_" + Guid.CreateVersion7(_time.GetUtcNow()).ToString("N");
        var filter = new StopStringFilter(options.StopStrings);
        var served = new StringBuilder();
        var ids = new List<int>();
        bool finished = false;
        try
        {
            await foreach (GeneratedToken token in _backend.GenerateAsync(prompt, kind, options, version.Stack, cancellationToken).ConfigureAwait(false))
            {
                // A model being disposed ends its responses at the next token, so the backend is never released under one.
                ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
                if (token.TokenId >= 0)
                {
                    ids.Add(token.TokenId);
                }

                string piece = filter.Append(token.Text);
                if (piece.Length > 0)
                {
                    served.Append(piece);
                    yield return new LiveCompletionUpdate(piece, id, version.Info, ids.Count, null);
                }

                if (filter.Stopped)
                {
                    break;
                }
            }

            string rest = filter.Flush();
            served.Append(rest);
            bool byLength = !filter.Stopped && (ids.Count >= options.MaxTokens || prompt.Count + ids.Count >= _backend.ContextLength);
            ServedEnd end = filter.Stopped ? ServedEnd.StopString : byLength ? ServedEnd.Length : ServedEnd.StopToken;
            _responses.Add(new ServedResponse(id, scope.Name, kind, prompt, served.ToString(), version.Info.Id, ids, end));
            finished = true;
            _metrics.Served(scope.Name);
            yield return new LiveCompletionUpdate(rest, id, version.Info, ids.Count, byLength ? LiveFinishReason.Length : LiveFinishReason.Stop);
        }
        finally
        {
            if (!finished && served.Length > 0)
            {
                // The consumer stopped reading (or generation was cancelled): what it was shown can still take feedback.
                _responses.Add(new ServedResponse(id, scope.Name, kind, prompt, served.ToString(), version.Info.Id, ids, ServedEnd.Cut));
            }

            LeaveServing();
        }
    }

    private async Task<LiveScore> ScoreCoreAsync(LiveScope scope, PromptKind kind, IReadOnlyList<int> prompt, string completion, CancellationToken cancellationToken)
    {
        IReadOnlyList<int> ids = _backend.EncodeCompletion(completion, kind, appendEnd: false);
        if (prompt.Count + ids.Count > _backend.ContextLength)
        {
            throw new ArgumentException($"The prompt and completion have {prompt.Count + ids.Count} tokens; the context length is {_backend.ContextLength}.", nameof(completion));
        }

        cancellationToken.ThrowIfCancellationRequested();
        if (!EnterServing())
        {
            throw new ObjectDisposedException(nameof(LiveModel));
        }

        try
        {
            PublishedVersion version = scope.Current;
            CompletionScore score = await Task.Run(() => _backend.Score(prompt, ids, version.Stack), cancellationToken).ConfigureAwait(false);
            return new LiveScore(score, version.Info);
        }
        finally
        {
            LeaveServing();
        }
    }
}
