namespace LiveLearning;

/// <summary>Chooses tokens from logits: repetition penalty, temperature, top-k, top-p, then a seeded draw (or argmax).</summary>
public sealed class TokenSampler
{
    private readonly GenerationOptions _options;
    private readonly Random _random;
    private readonly HashSet<int> _seen = [];
    private int[] _order = [];
    private float[] _probabilities = [];
    private float[] _sortKeys = [];

    /// <summary>Creates a sampler.</summary>
    /// <param name="options">Sampling options (validated).</param>
    public TokenSampler(GenerationOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
        _random = options.Seed is int seed ? new Random(seed) : new Random();
    }

    /// <summary>Records tokens that count as already generated for the repetition penalty (the prompt, typically).</summary>
    /// <param name="tokens">Token ids.</param>
    public void Observe(IReadOnlyList<int> tokens)
    {
        ArgumentNullException.ThrowIfNull(tokens);
        foreach (int t in tokens)
        {
            _seen.Add(t);
        }
    }

    /// <summary>Chooses the next token. <paramref name="logits"/> is modified in place.</summary>
    /// <param name="logits">Logits over the vocabulary.</param>
    /// <returns>The token id.</returns>
    public int Sample(Span<float> logits)
    {
        if (logits.IsEmpty)
        {
            throw new ArgumentException("Logits are empty.", nameof(logits));
        }

        float penalty = _options.RepetitionPenalty;
        if (penalty != 1f)
        {
            foreach (int t in _seen)
            {
                if ((uint)t < (uint)logits.Length)
                {
                    logits[t] = logits[t] > 0 ? logits[t] / penalty : logits[t] * penalty;
                }
            }
        }

        int chosen = _options.Temperature == 0 ? ArgMax(logits) : Draw(logits);
        _seen.Add(chosen);
        return chosen;
    }

    private static int ArgMax(ReadOnlySpan<float> logits)
    {
        int best = 0;
        for (int i = 1; i < logits.Length; i++)
        {
            if (logits[i] > logits[best])
            {
                best = i;
            }
        }

        return best;
    }

    private int Draw(ReadOnlySpan<float> logits)
    {
        int n = logits.Length;
        float invT = 1f / _options.Temperature;
        float max = logits[0];
        for (int i = 1; i < n; i++)
        {
            max = MathF.Max(max, logits[i]);
        }

        if (_probabilities.Length != n)
        {
            _probabilities = new float[n];
            _order = new int[n];
            _sortKeys = new float[n];
        }

        // Unnormalised probabilities exp((l - max) / T); the draw below normalises by their sum.
        float[] p = _probabilities;
        for (int i = 0; i < n; i++)
        {
            p[i] = MathF.Exp((logits[i] - max) * invT);
        }

        if (_options.TopK == 0 && _options.TopP >= 1f)
        {
            return DrawFrom(p, null, n);
        }

        // Order candidates by probability, descending: sort negated keys with the ids as items.
        int[] order = _order;
        float[] keys = _sortKeys;
        for (int i = 0; i < n; i++)
        {
            order[i] = i;
            keys[i] = -p[i];
        }

        Array.Sort(keys, order);
        int keep = _options.TopK > 0 ? Math.Min(_options.TopK, n) : n;
        if (_options.TopP < 1f)
        {
            double total = 0;
            for (int i = 0; i < keep; i++)
            {
                total += p[order[i]];
            }

            double mass = 0;
            for (int i = 0; i < keep; i++)
            {
                mass += p[order[i]] / total;
                if (mass >= _options.TopP)
                {
                    keep = i + 1;
                    break;
                }
            }
        }

        return DrawFrom(p, order, keep);
    }

    private int DrawFrom(float[] p, int[]? order, int count)
    {
        double sum = 0;
        for (int i = 0; i < count; i++)
        {
            sum += p[order is null ? i : order[i]];
        }

        double r = _random.NextDouble() * sum;
        for (int i = 0; i < count; i++)
        {
            int id = order is null ? i : order[i];
            r -= p[id];
            if (r < 0)
            {
                return id;
            }
        }

        return order is null ? count - 1 : order[count - 1];
    }
}
