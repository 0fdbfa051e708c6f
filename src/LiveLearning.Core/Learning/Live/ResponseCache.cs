using LiveLearning.Backends;

namespace LiveLearning;

/// <summary>How a served response ended, which decides what feedback on it learns.</summary>
internal enum ServedEnd
{
    /// <summary>The model produced a stop token: the tokens as generated, then the end token.</summary>
    StopToken,

    /// <summary>A stop string cut the text: the text as shown, re-encoded, then the end token.</summary>
    StopString,

    /// <summary>The token limit or the context length cut it: the tokens as generated, no end token.</summary>
    Length,

    /// <summary>The consumer stopped reading or generation was cancelled: the text as shown, no end token.</summary>
    Cut,
}

/// <summary>A response the model served, remembered so feedback can refer to it by id.</summary>
internal sealed record ServedResponse(string Id, string Scope, PromptKind Kind, IReadOnlyList<int> PromptTokens, string Text, string VersionId, IReadOnlyList<int> CompletionTokens, ServedEnd End);

/// <summary>The bounded map of recent responses: least recently served (or referred to) forgotten first. Thread-safe.</summary>
internal sealed class ResponseCache(int capacity)
{
    private readonly Dictionary<string, LinkedListNode<ServedResponse>> _byId = new(StringComparer.Ordinal);
    private readonly LinkedList<ServedResponse> _order = new();

    public int Count
    {
        get
        {
            lock (_byId)
            {
                return _byId.Count;
            }
        }
    }

    public void Add(ServedResponse response)
    {
        if (capacity == 0)
        {
            return;
        }

        lock (_byId)
        {
            if (_byId.Remove(response.Id, out var existing))
            {
                _order.Remove(existing);
            }

            _byId[response.Id] = _order.AddFirst(response);
            while (_byId.Count > capacity)
            {
                LinkedListNode<ServedResponse> last = _order.Last!;
                _order.RemoveLast();
                _byId.Remove(last.Value.Id);
            }
        }
    }

    public ServedResponse? TryGet(string id)
    {
        lock (_byId)
        {
            if (!_byId.TryGetValue(id, out var node))
            {
                return null;
            }

            _order.Remove(node);
            _order.AddFirst(node);
            return node.Value;
        }
    }
}
