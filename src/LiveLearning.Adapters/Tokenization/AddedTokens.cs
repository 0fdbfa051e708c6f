namespace LiveLearning.Tokenization;

/// <summary>One entry of <c>added_tokens</c>.</summary>
internal sealed record AddedToken(int Id, string Content, bool SingleWord, bool LStrip, bool RStrip, bool Normalized, bool Special);

/// <summary>A piece of input: either an added token (Id set) or text for the normal pipeline.</summary>
internal readonly record struct Segment(string Text, int? TokenId, bool AtStart);

/// <summary>
/// Finds added tokens in text: leftmost match first, longest match at that position, non-overlapping; applies
/// <c>single_word</c>, <c>lstrip</c> and <c>rstrip</c> as Hugging Face does.
/// </summary>
internal sealed class AddedTokenMatcher
{
    private readonly Dictionary<char, (string Pattern, AddedToken Token)[]> _byFirstChar;

    /// <param name="tokens">The tokens with the pattern to match for each (content, or normalized content).</param>
    public AddedTokenMatcher(IEnumerable<(string Pattern, AddedToken Token)> tokens)
    {
        _byFirstChar = tokens
            .Where(t => t.Pattern.Length > 0)
            .GroupBy(t => t.Pattern[0])
            .ToDictionary(g => g.Key, g => g.OrderByDescending(t => t.Pattern.Length).ThenBy(t => t.Token.Id).ToArray());
    }

    /// <summary>Whether there is nothing to match.</summary>
    public bool IsEmpty => _byFirstChar.Count == 0;

    /// <summary>Splits <paramref name="text"/> into token and text segments, appending them to <paramref name="output"/>.</summary>
    public void Split(string text, bool atStart, bool allowSpecial, List<Segment> output)
    {
        if (IsEmpty || text.Length == 0)
        {
            if (text.Length > 0)
            {
                output.Add(new Segment(text, null, atStart));
            }

            return;
        }

        int segmentStart = 0; // start of the pending text segment
        int pos = 0;
        while (pos < text.Length)
        {
            var found = FindAt(text, pos, allowSpecial);
            if (found is not var (pattern, token))
            {
                pos++;
                continue;
            }
            int start = pos, stop = pos + pattern.Length;
            if (token.SingleWord)
            {
                bool startOk = start == 0 || !IsWordChar(text, start - 1, before: true);
                bool stopOk = stop == text.Length || !IsWordChar(text, stop, before: false);
                if (!startOk || !stopOk)
                {
                    pos = stop; // the reference matcher skips this match without trying shorter ones here
                    continue;
                }
            }
            if (token.LStrip)
            {
                int s = start;
                while (s > segmentStart && char.IsWhiteSpace(text[s - 1]))
                {
                    s--;
                }

                start = s;
            }
            if (token.RStrip)
            {
                while (stop < text.Length && char.IsWhiteSpace(text[stop]))
                {
                    stop++;
                }
            }
            if (start > segmentStart)
            {
                output.Add(new Segment(text[segmentStart..start], null, atStart && segmentStart == 0));
            }

            output.Add(new Segment(text[start..stop], token.Id, atStart && start == 0));
            segmentStart = stop;
            pos = stop;
        }
        if (segmentStart < text.Length)
        {
            output.Add(new Segment(text[segmentStart..], null, atStart && segmentStart == 0));
        }
    }

    private (string Pattern, AddedToken Token)? FindAt(string text, int pos, bool allowSpecial)
    {
        if (!_byFirstChar.TryGetValue(text[pos], out var candidates))
        {
            return null;
        }

        foreach (var candidate in candidates)
        {
            if (!allowSpecial && candidate.Token.Special)
            {
                continue;
            }

            if (string.CompareOrdinal(text, pos, candidate.Pattern, 0, candidate.Pattern.Length) == 0
                && pos + candidate.Pattern.Length <= text.Length)
            {
                return candidate;
            }
        }
        return null;
    }

    private static bool IsWordChar(string text, int index, bool before)
    {
        char c = text[index];
        if (before && char.IsLowSurrogate(c) && index > 0)
        {
            return char.IsLetterOrDigit(text, index - 1);
        }

        if (!before && char.IsHighSurrogate(c) && index + 1 < text.Length)
        {
            return char.IsLetterOrDigit(text, index);
        }

        return char.IsLetterOrDigit(c) || c == '_';
    }
}
