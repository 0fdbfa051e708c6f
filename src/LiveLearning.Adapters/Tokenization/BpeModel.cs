using System.Collections.Concurrent;
using System.Text;

namespace LiveLearning.Tokenization;

/// <summary>
/// The Hugging Face <c>BPE</c> model: a vocabulary, ranked merges and the rules for characters missing from the
/// vocabulary (byte fallback, unknown token). Thread-safe; owns a bounded word → ids cache.
/// </summary>
internal sealed class BpeModel
{
    /// <summary>Words longer than this (in UTF-16 units) are not cached.</summary>
    private const int MaxCachedWordLength = 128;

    /// <summary>At most this many words are cached; later words are computed each time.</summary>
    private const int CacheCapacity = 20_000;

    private readonly Dictionary<string, int> _vocab;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _vocabBySpan;
    private readonly Dictionary<long, (int Rank, int NewId)> _merges;
    private readonly int? _unkId;
    private readonly bool _byteFallback;
    private readonly bool _fuseUnk;
    private readonly bool _ignoreMerges;
    private readonly string? _continuingSubwordPrefix;
    private readonly string? _endOfWordSuffix;
    private readonly int[]? _byteFallbackIds; // id of "<0xNN>" per byte, or -1
    private readonly ConcurrentDictionary<string, int[]> _cache = new(StringComparer.Ordinal);
    private int _cacheCount;

    public BpeModel(
        Dictionary<string, int> vocab,
        Dictionary<long, (int Rank, int NewId)> merges,
        int? unkId,
        bool byteFallback,
        bool fuseUnk,
        bool ignoreMerges,
        string? continuingSubwordPrefix,
        string? endOfWordSuffix)
    {
        _vocab = vocab.Comparer == StringComparer.Ordinal ? vocab : new Dictionary<string, int>(vocab, StringComparer.Ordinal);
        _vocabBySpan = _vocab.GetAlternateLookup<ReadOnlySpan<char>>();
        _merges = merges;
        _unkId = unkId;
        _byteFallback = byteFallback;
        _fuseUnk = fuseUnk;
        _ignoreMerges = ignoreMerges;
        _continuingSubwordPrefix = string.IsNullOrEmpty(continuingSubwordPrefix) ? null : continuingSubwordPrefix;
        _endOfWordSuffix = string.IsNullOrEmpty(endOfWordSuffix) ? null : endOfWordSuffix;
        if (byteFallback)
        {
            _byteFallbackIds = new int[256];
            for (int b = 0; b < 256; b++)
            {
                _byteFallbackIds[b] = vocab.TryGetValue(ByteTokenName(b), out int id) ? id : -1;
            }
        }
    }

    /// <summary>The vocabulary (token string → id).</summary>
    public IReadOnlyDictionary<string, int> Vocab => _vocab;

    /// <summary>The name of the byte-fallback token for <paramref name="b"/>, e.g. <c>&lt;0x0A&gt;</c>.</summary>
    public static string ByteTokenName(int b) => "<0x" + b.ToString("X2", System.Globalization.CultureInfo.InvariantCulture) + ">";

    /// <summary>Appends the ids of one pre-tokenized word to <paramref name="output"/>.</summary>
    public void EncodeWord(string word, List<int> output)
    {
        if (word.Length == 0)
        {
            return;
        }

        if (_cache.TryGetValue(word, out int[]? cached))
        {
            output.AddRange(cached);
            return;
        }

        int start = output.Count;
        EncodeWordUncached(word, output);

        if (word.Length <= MaxCachedWordLength && Volatile.Read(ref _cacheCount) < CacheCapacity)
        {
            int[] ids = output.GetRange(start, output.Count - start).ToArray();
            if (_cache.TryAdd(word, ids))
            {
                Interlocked.Increment(ref _cacheCount);
            }
        }
    }

    private void EncodeWordUncached(string word, List<int> output)
    {
        if (_ignoreMerges && _vocab.TryGetValue(word, out int whole))
        {
            output.Add(whole);
            return;
        }

        // Initial symbols: one per Unicode scalar value (with optional prefix/suffix), or byte fallback / unk.
        var symbols = new List<int>(word.Length);
        int pendingUnk = -1; // an unknown run waiting to be emitted (fused)
        int index = 0;
        while (index < word.Length)
        {
            int charLength = char.IsHighSurrogate(word[index]) && index + 1 < word.Length && char.IsLowSurrogate(word[index + 1]) ? 2 : 1;
            bool isFirst = index == 0;
            bool isLast = index + charLength == word.Length;
            ReadOnlySpan<char> piece = word.AsSpan(index, charLength);
            if ((_continuingSubwordPrefix is not null && !isFirst) || (_endOfWordSuffix is not null && isLast))
            {
                string decorated = piece.ToString();
                if (_continuingSubwordPrefix is not null && !isFirst)
                {
                    decorated = _continuingSubwordPrefix + decorated;
                }

                if (_endOfWordSuffix is not null && isLast)
                {
                    decorated += _endOfWordSuffix;
                }

                piece = decorated;
            }
            index += charLength;

            if (_vocabBySpan.TryGetValue(piece, out int id))
            {
                if (pendingUnk >= 0) { symbols.Add(pendingUnk); pendingUnk = -1; }
                symbols.Add(id);
                continue;
            }

            if (_byteFallbackIds is not null && TryAddByteFallback(piece, symbols, ref pendingUnk))
            {
                continue;
            }

            if (_unkId is int unk)
            {
                if (pendingUnk >= 0 && !_fuseUnk)
                {
                    symbols.Add(pendingUnk);
                }

                pendingUnk = unk;
            }
            // No unk token: the character is dropped, as the reference implementation does.
        }
        if (pendingUnk >= 0)
        {
            symbols.Add(pendingUnk);
        }

        MergeAll(symbols);
        output.AddRange(symbols);
    }

    private bool TryAddByteFallback(ReadOnlySpan<char> piece, List<int> symbols, ref int pendingUnk)
    {
        Span<byte> bytes = stackalloc byte[Encoding.UTF8.GetMaxByteCount(piece.Length)];
        int n = Encoding.UTF8.GetBytes(piece, bytes);
        for (int i = 0; i < n; i++)
        {
            if (_byteFallbackIds![bytes[i]] < 0)
            {
                return false;
            }
        }
        if (pendingUnk >= 0) { symbols.Add(pendingUnk); pendingUnk = -1; }
        for (int i = 0; i < n; i++)
        {
            symbols.Add(_byteFallbackIds![bytes[i]]);
        }

        return true;
    }

    /// <summary>
    /// Applies merges in rank order (lowest rank first, ties to the leftmost pair) until no adjacent pair has a
    /// merge. A min-heap of candidate pairs over a doubly linked list of symbols: O(n log n) in the word length.
    /// </summary>
    private void MergeAll(List<int> symbols)
    {
        int n = symbols.Count;
        if (n < 2)
        {
            return;
        }

        int[] ids = symbols.ToArray();
        int[] prev = new int[n];
        int[] next = new int[n];
        bool[] alive = new bool[n];
        for (int i = 0; i < n; i++)
        {
            prev[i] = i - 1;
            next[i] = i + 1 < n ? i + 1 : -1;
            alive[i] = true;
        }

        // Priority: rank in the high 32 bits, position in the low 32 bits (both non-negative).
        var initial = new List<((int Pos, int NewId) Element, long Priority)>(n);
        for (int i = 0; i + 1 < n; i++)
        {
            if (_merges.TryGetValue(PairKey(ids[i], ids[i + 1]), out var m))
            {
                initial.Add(((i, m.NewId), Priority(m.Rank, i)));
            }
        }
        var queue = new PriorityQueue<(int Pos, int NewId), long>(initial.Count);
        queue.EnqueueRange(initial); // O(n) heapify

        while (queue.TryDequeue(out var top, out _))
        {
            int pos = top.Pos;
            if (!alive[pos])
            {
                continue;
            }

            int right = next[pos];
            if (right < 0)
            {
                continue;
            }
            // Skip stale entries: the pair at pos must still merge into the same token.
            if (!_merges.TryGetValue(PairKey(ids[pos], ids[right]), out var current) || current.NewId != top.NewId)
            {
                continue;
            }

            ids[pos] = top.NewId;
            alive[right] = false;
            int afterRight = next[right];
            next[pos] = afterRight;
            if (afterRight >= 0)
            {
                prev[afterRight] = pos;
            }

            int left = prev[pos];
            if (left >= 0 && _merges.TryGetValue(PairKey(ids[left], ids[pos]), out var lm))
            {
                queue.Enqueue((left, lm.NewId), Priority(lm.Rank, left));
            }
            if (afterRight >= 0 && _merges.TryGetValue(PairKey(ids[pos], ids[afterRight]), out var rm))
            {
                queue.Enqueue((pos, rm.NewId), Priority(rm.Rank, pos));
            }
        }

        symbols.Clear();
        for (int i = 0; i >= 0; i = next[i])
        {
            symbols.Add(ids[i]);
        }
    }

    /// <summary>The dictionary key of an ordered pair of ids.</summary>
    public static long PairKey(int left, int right) => ((long)left << 32) | (uint)right;

    private static long Priority(int rank, int pos) => ((long)rank << 32) | (uint)pos;
}
