namespace LiveLearning.Tokenization;

/// <summary>
/// Decodes generated token ids one at a time, emitting text only once it is complete: a character split over several
/// byte-level or byte-fallback tokens (emoji, CJK) is held back until its last byte arrives. The concatenation of
/// every <see cref="Append"/> result followed by <see cref="Flush"/> equals <see cref="Tokenizer.Decode(IReadOnlyList{int}, bool)"/>
/// of all ids.
/// </summary>
/// <remarks>
/// <para>
/// With a byte-fallback decoder a run of &lt;0xNN&gt; tokens is held until a non-byte token ends it, because the
/// reference decoder turns a whole run into U+FFFD per byte when any part of it is not valid UTF-8.
/// </para>
/// <para>
/// Not thread-safe: one instance per generated stream. Each call decodes only a short window (the previous emitted
/// tokens as context plus the pending ones), so the cost per token does not grow with the stream length.
/// </para>
/// </remarks>
public sealed class TokenStreamDecoder
{
    /// <summary>After this many pending tokens a trailing U+FFFD is taken as real (UTF-8 needs at most 4 bytes).</summary>
    private const int MaxPendingTokens = 8;

    private readonly Tokenizer _tokenizer;
    private readonly bool _skipSpecialTokens;
    private readonly List<int> _ids = [];
    private int _prefixStart;   // start of the context window in _ids
    private int _readStart;     // first id not yet emitted
    private string _prefixText = string.Empty; // decode of _ids[_prefixStart.._readStart]

    internal TokenStreamDecoder(Tokenizer tokenizer, bool skipSpecialTokens)
    {
        _tokenizer = tokenizer;
        _skipSpecialTokens = skipSpecialTokens;
    }

    /// <summary>Adds one id and returns the text that became complete (often empty).</summary>
    /// <exception cref="ArgumentOutOfRangeException">The id is not a token of the tokenizer.</exception>
    public string Append(int id)
    {
        if (_tokenizer.IdToToken(id) is null)
        {
            throw new ArgumentOutOfRangeException(nameof(id), id, $"{id} is not a token id of {_tokenizer.SourceName} (vocabulary size {_tokenizer.VocabSize}).");
        }
        _ids.Add(id);
        if (_tokenizer.HasByteFallbackDecoder && ByteFallbackDecoder.TryParseByteToken(_tokenizer.IdToToken(id)!, out _))
        {
            return string.Empty;
        }

        string text = DecodeWindow();
        bool incomplete = text.EndsWith('\uFFFD') && _ids.Count - _readStart < MaxPendingTokens;
        if (text.Length <= _prefixText.Length || incomplete || !text.StartsWith(_prefixText, StringComparison.Ordinal))
        {
            return string.Empty;
        }

        return Emit(text);
    }

    /// <summary>Returns whatever is still held back (e.g. an incomplete character, as U+FFFD) and resets the decoder.</summary>
    public string Flush()
    {
        string text = DecodeWindow();
        string piece = text.Length > _prefixText.Length && text.StartsWith(_prefixText, StringComparison.Ordinal) ? text[_prefixText.Length..] : string.Empty;
        _ids.Clear();
        _prefixStart = _readStart = 0;
        _prefixText = string.Empty;
        return piece;
    }

    private string Emit(string text)
    {
        string piece = text[_prefixText.Length..];
        // The tokens just emitted become the context of the next window.
        _ids.RemoveRange(0, _readStart);
        _prefixStart = 0;
        _readStart = _ids.Count;
        _prefixText = DecodeWindow();
        return piece;
    }

    private string DecodeWindow() =>
        _tokenizer.Decode(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(_ids)[_prefixStart..], _skipSpecialTokens);
}
