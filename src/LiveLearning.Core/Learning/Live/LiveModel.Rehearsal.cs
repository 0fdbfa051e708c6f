using LiveLearning.Backends;

namespace LiveLearning;

// Rehearsal: samples of the frozen base model's own distribution, mixed into learning steps (see RehearsalOptions).
public sealed partial class LiveModel
{
    private readonly SemaphoreSlim _rehearsalLock = new(1, 1);
    private readonly Dictionary<int, TrainingExample> _rehearsal = [];
    private IReadOnlyList<int>? _rehearsalPrompt;
    private bool _rehearsalWarned;

    /// <summary>
    /// The rehearsal examples of one step: <c>ceil(PerItem × newItems)</c> base samples, chosen by the trainer's step
    /// count alone (so a restart or rebuild chooses the same), generated the first time they are needed.
    /// </summary>
    private async Task<TrainingExample[]> RehearsalAsync(long trainerStep, int newItems, CancellationToken cancellationToken)
    {
        RehearsalOptions options = _options.Replay.Rehearsal;
        int count = options.Samples == 0 || options.PerItem == 0 ? 0 : (int)Math.Ceiling(options.PerItem * newItems);
        if (count == 0)
        {
            return [];
        }

        await _rehearsalLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            _rehearsalPrompt ??= _backend.EncodePrompt(options.Prompt);
            if (_rehearsalPrompt.Count == 0)
            {
                if (!_rehearsalWarned)
                {
                    _rehearsalWarned = true;
                    Log.RehearsalUnavailable(_logger, options.Prompt);
                }

                return [];
            }

            var chosen = new TrainingExample[count];
            for (int j = 0; j < count; j++)
            {
                int index = (int)(((trainerStep * count) + j) % options.Samples);
                if (!_rehearsal.TryGetValue(index, out TrainingExample? example))
                {
                    example = await SampleBaseAsync(options, index, cancellationToken).ConfigureAwait(false);
                    _rehearsal[index] = example;
                }

                chosen[j] = example;
            }

            return chosen;
        }
        finally
        {
            _rehearsalLock.Release();
        }
    }

    /// <summary>One sample of the base alone (no adapter), at learning priority, with the base's tokens as the target.</summary>
    private async Task<TrainingExample> SampleBaseAsync(RehearsalOptions options, int index, CancellationToken cancellationToken)
    {
        var generation = new GenerationOptions { MaxTokens = options.MaxTokens, Temperature = options.Temperature, Seed = unchecked(options.Seed + index) };
        var tokens = new List<int>(options.MaxTokens);
        using (EnterLearning())
        {
            await foreach (GeneratedToken token in _backend.GenerateAsync(_rehearsalPrompt!, PromptKind.Text, generation, [], cancellationToken).ConfigureAwait(false))
            {
                // A negative id carries only text still pending in the decoder at the end.
                if (token.TokenId >= 0)
                {
                    tokens.Add(token.TokenId);
                }
            }
        }

        return new TrainingExample(TrainingObjective.Completion, _rehearsalPrompt!, tokens);
    }
}
