using System.Runtime.CompilerServices;
using System.Text;
using LiveLearning.Tokenization;
using Microsoft.Extensions.AI;

namespace LiveLearning.Models;

// Generation: prefill the prompt into a KV cache, then decode one token at a time.
public sealed partial class LlamaModel
{
    /// <summary>
    /// Generates token ids after <paramref name="promptIds"/>, streaming each as it is produced. Stops at a stop token
    /// (not emitted), after <see cref="GenerationOptions.MaxTokens"/>, at the context length, or on cancellation. With a
    /// tokenizer, ids beyond its vocabulary (padding rows of the embedding) are never chosen.
    /// </summary>
    /// <param name="promptIds">Prompt tokens (at least one).</param>
    /// <param name="options">Sampling and stopping options; <see langword="null"/> means greedy with defaults.</param>
    /// <param name="adapter">Adapter to apply, or <see langword="null"/> for the base model.</param>
    /// <param name="cancellationToken">Stops generation between tokens.</param>
    /// <returns>The generated ids.</returns>
    public IAsyncEnumerable<int> GenerateTokensAsync(IReadOnlyList<int> promptIds, GenerationOptions? options = null, IModelAdapter? adapter = null, CancellationToken cancellationToken = default) =>
        GenerateCoreAsync(promptIds, options, adapter, Tokenizer is null ? _vocab : Math.Min(_vocab, Tokenizer.VocabSize), cancellationToken);

    /// <summary>The decode loop. Ids at or above <paramref name="allowedIds"/> are never chosen (a model's embedding may
    /// have padding rows beyond its tokenizer's vocabulary).</summary>
    private async IAsyncEnumerable<int> GenerateCoreAsync(IReadOnlyList<int> promptIds, GenerationOptions? options, IModelAdapter? adapter, int allowedIds, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(promptIds);
        options ??= new GenerationOptions();
        var sampler = new TokenSampler(options);
        if (promptIds.Count == 0)
        {
            throw new ArgumentException("The prompt must contain at least one token.", nameof(promptIds));
        }

        sampler.Observe(promptIds);
        IReadOnlyCollection<int> stops = options.StopTokenIds ?? StopTokenIds;
        KvCache cache = CreateCache(Math.Min(ContextLength, promptIds.Count + options.MaxTokens));
        IReadOnlyList<int> next = promptIds;
        int[] one = new int[1];

        // One logits buffer for the whole generation: a new vocabulary-sized array per token would be large-object garbage.
        float[] logits = new float[_vocab];
        for (int produced = 0; produced < options.MaxTokens && cache.Length + next.Count <= ContextLength; produced++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            IReadOnlyList<int> input = next;
            await Task.Run(() => ForwardInto(input, logits, cache, allPositions: false, adapter), cancellationToken).ConfigureAwait(false);
            if (allowedIds < logits.Length)
            {
                logits.AsSpan(allowedIds).Fill(float.NegativeInfinity);
            }

            int token = sampler.Sample(logits);
            if (stops.Contains(token))
            {
                yield break;
            }

            yield return token;
            one[0] = token;
            next = one;
        }
    }

    /// <summary>
    /// Generates text after <paramref name="prompt"/> (encoded with the model's tokenizer), streaming text pieces as soon
    /// as they form complete characters. Stop strings end generation; the text before the first match is returned.
    /// </summary>
    /// <param name="prompt">Prompt text (special tokens inside it are recognised).</param>
    /// <param name="options">Sampling and stopping options.</param>
    /// <param name="adapter">Adapter to apply, or <see langword="null"/>.</param>
    /// <param name="cancellationToken">Stops generation between tokens.</param>
    /// <returns>Text pieces.</returns>
    public IAsyncEnumerable<string> GenerateTextAsync(string prompt, GenerationOptions? options = null, IModelAdapter? adapter = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        Tokenizer tokenizer = Tokenizer ?? throw new InvalidOperationException("The model has no tokenizer (tokenizer.json was absent or not loaded).");
        return StreamTextAsync(tokenizer, tokenizer.Encode(prompt, addSpecialTokens: true), options ?? new GenerationOptions(), adapter, cancellationToken);
    }

    /// <summary>
    /// Formats <paramref name="messages"/> with the model's chat template (user content can never inject template
    /// tokens), then streams the assistant's reply. The template's end-of-turn token ends generation.
    /// </summary>
    /// <param name="messages">The conversation so far.</param>
    /// <param name="options">Sampling and stopping options.</param>
    /// <param name="adapter">Adapter to apply, or <see langword="null"/>.</param>
    /// <param name="cancellationToken">Stops generation between tokens.</param>
    /// <returns>Text pieces of the reply.</returns>
    public IAsyncEnumerable<string> GenerateChatAsync(IReadOnlyList<ChatMessage> messages, GenerationOptions? options = null, IModelAdapter? adapter = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(messages);
        Tokenizer tokenizer = Tokenizer ?? throw new InvalidOperationException("The model has no tokenizer (tokenizer.json was absent or not loaded).");
        ChatTemplate template = ChatTemplate ?? throw new InvalidOperationException("The model has no chat template this library understands (tokenizer_config.json chat_template).");
        options ??= new GenerationOptions();
        IReadOnlyList<int> ids = template.EncodePrompt(tokenizer, messages, addGenerationPrompt: true);
        if (options.StopTokenIds is null && template.EndOfTurnToken is string end && tokenizer.TokenToId(end) is int endId)
        {
            var stops = new HashSet<int>(StopTokenIds) { endId };
            options = CopyWithStops(options, stops);
        }

        return StreamTextAsync(tokenizer, ids, options, adapter, cancellationToken);
    }

    private static GenerationOptions CopyWithStops(GenerationOptions o, IReadOnlyCollection<int> stops) => new()
    {
        MaxTokens = o.MaxTokens,
        Temperature = o.Temperature,
        TopK = o.TopK,
        TopP = o.TopP,
        RepetitionPenalty = o.RepetitionPenalty,
        Seed = o.Seed,
        StopStrings = o.StopStrings,
        StopTokenIds = stops,
    };

    private async IAsyncEnumerable<string> StreamTextAsync(Tokenizer tokenizer, IReadOnlyList<int> ids, GenerationOptions options, IModelAdapter? adapter, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        options.Validate();
        TokenStreamDecoder decoder = tokenizer.CreateStreamDecoder(skipSpecialTokens: true);
        var filter = new StopStringFilter(options.StopStrings);
        await foreach (int token in GenerateCoreAsync(ids, options, adapter, Math.Min(_vocab, tokenizer.VocabSize), cancellationToken).ConfigureAwait(false))
        {
            string piece = filter.Append(decoder.Append(token));
            if (piece.Length > 0)
            {
                yield return piece;
            }

            if (filter.Stopped)
            {
                yield break;
            }
        }

        string rest = filter.Append(decoder.Flush()) + filter.Flush();
        if (rest.Length > 0)
        {
            yield return rest;
        }
    }
}
