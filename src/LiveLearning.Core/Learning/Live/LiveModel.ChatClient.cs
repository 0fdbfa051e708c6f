using System.Runtime.CompilerServices;
using LiveLearning.Backends;
using Microsoft.Extensions.AI;

namespace LiveLearning;

// The live model as a Microsoft.Extensions.AI chat client: options mapped to generation options, the response id set
// (so feedback can refer to it), usage reported, and the producing version named in the additional properties.
public sealed partial class LiveModel
{
    /// <inheritdoc />
    public async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        (IReadOnlyList<ChatMessage> conversation, GenerationOptions generation, LiveScope scope) = MapChat(messages, options);
        LiveCompletion completion = await CompleteCoreAsync(scope, PromptKind.Chat, EncodeServedPrompt(PromptKind.Chat, null, conversation), generation, cancellationToken).ConfigureAwait(false);
        return new ChatResponse(new ChatMessage(ChatRole.Assistant, completion.Text) { MessageId = completion.ResponseId })
        {
            ResponseId = completion.ResponseId,
            ModelId = Name,
            CreatedAt = _time.GetUtcNow(),
            FinishReason = completion.FinishReason == LiveFinishReason.Length ? ChatFinishReason.Length : ChatFinishReason.Stop,
            Usage = new UsageDetails { InputTokenCount = completion.PromptTokens, OutputTokenCount = completion.CompletionTokens, TotalTokenCount = completion.PromptTokens + completion.CompletionTokens },
            AdditionalProperties = new AdditionalPropertiesDictionary { [VersionProperty] = completion.Version.Id, [ScopeProperty] = scope.Name },
        };
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        (IReadOnlyList<ChatMessage> conversation, GenerationOptions generation, LiveScope scope) = MapChat(messages, options);
        IReadOnlyList<int> prompt = EncodeServedPrompt(PromptKind.Chat, null, conversation);
        await foreach (LiveCompletionUpdate update in StreamCoreAsync(scope, PromptKind.Chat, prompt, generation, cancellationToken).ConfigureAwait(false))
        {
            var chat = new ChatResponseUpdate(ChatRole.Assistant, update.Text)
            {
                ResponseId = update.ResponseId,
                MessageId = update.ResponseId,
                ModelId = Name,
                CreatedAt = _time.GetUtcNow(),
                AdditionalProperties = new AdditionalPropertiesDictionary { [VersionProperty] = update.Version.Id, [ScopeProperty] = scope.Name },
            };
            if (update.FinishReason is LiveFinishReason reason)
            {
                chat.FinishReason = reason == LiveFinishReason.Length ? ChatFinishReason.Length : ChatFinishReason.Stop;
                chat.Contents.Add(new UsageContent(new UsageDetails { InputTokenCount = prompt.Count, OutputTokenCount = update.CompletionTokens, TotalTokenCount = prompt.Count + update.CompletionTokens }));
            }

            yield return chat;
        }
    }

    /// <inheritdoc />
    public object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        if (serviceKey is not null)
        {
            return null;
        }

        if (serviceType == typeof(ChatClientMetadata))
        {
            return new ChatClientMetadata("LiveLearning", null, Name);
        }

        if (serviceType.IsInstanceOfType(this))
        {
            return this;
        }

        return serviceType.IsInstanceOfType(_backend) ? _backend : null;
    }

    /// <summary>Maps a chat request: instructions become a leading system message, options become generation options.</summary>
    private (IReadOnlyList<ChatMessage> Messages, GenerationOptions Options, LiveScope Scope) MapChat(IEnumerable<ChatMessage> messages, ChatOptions? options)
    {
        ArgumentNullException.ThrowIfNull(messages);
        ThrowIfDisposed();
        List<ChatMessage> conversation = [.. messages];
        if (options?.Tools is { Count: > 0 })
        {
            throw new NotSupportedException("The live model does not call tools; remove ChatOptions.Tools (or put a function-invoking client in front of a model that does).");
        }

        if (options?.ResponseFormat is ChatResponseFormatJson)
        {
            throw new NotSupportedException("The live model cannot constrain its output to JSON; ChatOptions.ResponseFormat must be text.");
        }

        if (options?.Instructions is { Length: > 0 } instructions)
        {
            conversation.Insert(0, new ChatMessage(ChatRole.System, instructions));
        }

        string? scope = options?.AdditionalProperties is { } extra && extra.TryGetValue(ScopeProperty, out object? value) ? value?.ToString() : null;
        var generation = new GenerationOptions();
        if (options is not null)
        {
            generation.MaxTokens = options.MaxOutputTokens ?? generation.MaxTokens;
            generation.Temperature = options.Temperature ?? generation.Temperature;
            generation.TopP = options.TopP ?? generation.TopP;
            generation.TopK = options.TopK ?? generation.TopK;
            generation.StopStrings = options.StopSequences is { Count: > 0 } stops ? [.. stops] : [];
            generation.Seed = options.Seed is long seed ? unchecked((int)(seed ^ (seed >> 32))) : null;
            if (options.FrequencyPenalty is float penalty && penalty > 0)
            {
                // The closest sampling control the engine has: a repetition penalty of 1 + frequency penalty.
                generation.RepetitionPenalty = 1 + penalty;
            }
        }

        return (conversation, generation, GetScope(scope));
    }
}
