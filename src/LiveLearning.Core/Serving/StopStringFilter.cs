using System.Text;

namespace LiveLearning;

/// <summary>
/// Cuts streamed text at the first stop string: pieces go in as they are generated, text comes out as soon as it can
/// no longer become the start of a stop string (a tail as long as the longest stop string minus one is held back).
/// </summary>
/// <remarks>Not thread-safe: one per stream.</remarks>
public sealed class StopStringFilter
{
    private readonly IReadOnlyList<string> _stops;
    private readonly int _holdBack;
    private readonly StringBuilder _pending = new();

    /// <summary>Creates a filter for <paramref name="stopStrings"/> (none: text passes straight through).</summary>
    /// <param name="stopStrings">The stop strings (non-empty).</param>
    public StopStringFilter(IReadOnlyList<string> stopStrings)
    {
        ArgumentNullException.ThrowIfNull(stopStrings);
        if (stopStrings.Any(string.IsNullOrEmpty))
        {
            throw new ArgumentException("Stop strings must not be null or empty.", nameof(stopStrings));
        }

        _stops = stopStrings;
        _holdBack = stopStrings.Count == 0 ? 0 : stopStrings.Max(s => s.Length) - 1;
    }

    /// <summary>Whether a stop string was found (no more text will come out).</summary>
    public bool Stopped { get; private set; }

    /// <summary>Adds generated text; returns what is now safe to emit (possibly empty).</summary>
    /// <param name="text">The new text.</param>
    /// <returns>Text to emit.</returns>
    public string Append(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (Stopped)
        {
            return string.Empty;
        }

        _pending.Append(text);
        if (_stops.Count == 0)
        {
            string all = _pending.ToString();
            _pending.Clear();
            return all;
        }

        string current = _pending.ToString();
        int stopAt = FirstStop(current);
        if (stopAt >= 0)
        {
            // A longer stop string that starts before this one may still complete with the next text: until it is
            // decided, emit only what comes before it.
            int unfinished = FirstUnfinished(current, stopAt);
            if (unfinished >= 0)
            {
                _pending.Remove(0, unfinished);
                return current[..unfinished];
            }

            Stopped = true;
            _pending.Clear();
            return current[..stopAt];
        }

        int safe = current.Length - _holdBack;
        if (safe <= 0)
        {
            return string.Empty;
        }

        _pending.Remove(0, safe);
        return current[..safe];
    }

    /// <summary>Returns whatever is held back (the stream ended without a stop string in it).</summary>
    /// <returns>The rest of the text.</returns>
    public string Flush()
    {
        if (Stopped)
        {
            return string.Empty;
        }

        string rest = _pending.ToString();
        _pending.Clear();
        int stopAt = FirstStop(rest);
        if (stopAt >= 0)
        {
            Stopped = true;
            return rest[..stopAt];
        }

        return rest;
    }

    /// <summary>The first position before <paramref name="end"/> where the rest of <paramref name="text"/> is a proper prefix of a stop string, or −1.</summary>
    private int FirstUnfinished(string text, int end)
    {
        for (int p = Math.Max(0, text.Length - _holdBack); p < end; p++)
        {
            ReadOnlySpan<char> rest = text.AsSpan(p);
            foreach (string s in _stops)
            {
                if (s.Length > rest.Length && s.AsSpan().StartsWith(rest, StringComparison.Ordinal))
                {
                    return p;
                }
            }
        }

        return -1;
    }

    private int FirstStop(string text)
    {
        int best = -1;
        foreach (string s in _stops)
        {
            int i = text.IndexOf(s, StringComparison.Ordinal);
            if (i >= 0 && (best < 0 || i < best))
            {
                best = i;
            }
        }

        return best;
    }
}
