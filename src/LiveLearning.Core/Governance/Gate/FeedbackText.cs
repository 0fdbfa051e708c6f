using System.Text;

namespace LiveLearning.Governance;

/// <summary>The texts of a feedback item as the rules read them.</summary>
internal static class FeedbackText
{
    /// <summary>The prompt as text: the plain prompt, the conversation as "role: text" lines, or the response id it rates.</summary>
    public static string Prompt(Feedback f) =>
        f.Prompt ?? (f.Messages is { } m ? string.Join('\n', m.Select(x => $"{x.Role.Value}: {x.Text}")) : $"response:{f.ResponseId}");

    /// <summary>The completions the item carries (chosen then rejected for a preference; none for a rating of a served response).</summary>
    public static IEnumerable<string> Completions(Feedback f)
    {
        switch (f)
        {
            case Demonstration d:
                yield return d.Completion;
                break;
            case Preference p:
                yield return p.Chosen;
                if (p.Rejected is not null)
                {
                    yield return p.Rejected;
                }

                break;
            case Rating r when r.Completion is not null:
                yield return r.Completion;
                break;
        }
    }

    /// <summary>
    /// The item as one normalised string for duplicate detection: kind (and a rating's polarity), prompt and
    /// completions, lower-cased (invariant) with runs of white space collapsed to one space.
    /// </summary>
    public static string Normalised(Feedback f)
    {
        string kind = f switch
        {
            Rating r => r.Positive ? "rating+" : "rating-",
            Preference => "preference",
            _ => "demonstration",
        };

        var text = new StringBuilder(kind).Append('\u241E');
        Append(text, Prompt(f));
        foreach (string c in Completions(f))
        {
            text.Append('\u241E');
            Append(text, c);
        }

        return text.ToString();
    }

    private static void Append(StringBuilder text, string value)
    {
        bool space = false;
        foreach (char c in value.Trim())
        {
            if (char.IsWhiteSpace(c))
            {
                space = true;
                continue;
            }

            if (space)
            {
                text.Append(' ');
                space = false;
            }

            text.Append(char.ToLowerInvariant(c));
        }
    }
}

/// <summary>Per-key state with a bound: beyond the capacity the least recently used key is forgotten.</summary>
internal sealed class BoundedMap<TValue>(int capacity)
    where TValue : class
{
    private readonly Dictionary<string, LinkedListNode<(string Key, TValue Value)>> _map = new(StringComparer.Ordinal);
    private readonly LinkedList<(string Key, TValue Value)> _order = new();

    public int Count => _map.Count;

    /// <summary>The key's value (created if missing), now the most recently used. Not thread-safe: callers lock.</summary>
    public TValue GetOrAdd(string key, Func<TValue> create)
    {
        if (_map.TryGetValue(key, out var node))
        {
            _order.Remove(node);
            _order.AddFirst(node);
            return node.Value.Value;
        }

        node = _order.AddFirst((key, create()));
        _map[key] = node;
        while (_map.Count > capacity)
        {
            _map.Remove(_order.Last!.Value.Key);
            _order.RemoveLast();
        }

        return node.Value.Value;
    }

    public bool TryGet(string key, out TValue? value)
    {
        bool found = _map.TryGetValue(key, out var node);
        value = found ? node!.Value.Value : null;
        return found;
    }

    public bool Remove(string key)
    {
        if (!_map.Remove(key, out var node))
        {
            return false;
        }

        _order.Remove(node);
        return true;
    }
}
