using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace LiveLearning.Tokenization;

/// <summary>
/// A Hugging Face <c>tokenizer.json</c> tokenizer: added (special) tokens, normalizer, pre-tokenizer, BPE model,
/// post-processor and decoder, as used by GPT-2, SmolLM2, Qwen2/2.5, Llama-3.x (byte-level BPE) and
/// Llama-2/TinyLlama (SentencePiece-style BPE with ▁ and byte fallback).
/// </summary>
/// <remarks>
/// Instances are immutable and thread-safe (the word cache is concurrent and bounded). Loading validates the whole
/// file: anything malformed, inconsistent or unsupported throws <see cref="TokenizerFormatException"/> naming the
/// file and field. Unsupported parts: BPE dropout is ignored (encoding is deterministic); only the single-sequence
/// template of a post-processor is used; <c>Split</c> patterns other than the GPT-2, Llama-3 and Qwen2 regexes run on
/// .NET's UTF-16 regex engine.
/// </remarks>
public sealed class Tokenizer
{
    /// <summary>Largest tokenizer.json accepted, in bytes.</summary>
    public const long MaxFileBytes = 256L * 1024 * 1024;

    /// <summary>Largest token id accepted (exclusive bound on the vocabulary size).</summary>
    public const int MaxVocabularySize = 16 * 1024 * 1024;

    /// <summary>Time limit for one match of a custom (not built-in) regex from the file.</summary>
    private static readonly TimeSpan RegexTimeout = TimeSpan.FromSeconds(5);

    private readonly BpeModel _model;
    private readonly Normalizer? _normalizer;
    private readonly PreTokenizer? _preTokenizer;
    private readonly List<(int[] Prefix, int[] Suffix)> _postProcessing;
    private readonly TokenDecoder? _decoder;
    private readonly string?[] _idToToken;
    private readonly bool[] _isSpecial;
    private readonly Dictionary<string, int> _added;
    private readonly AddedTokenMatcher _rawMatcher;
    private readonly AddedTokenMatcher _normalizedMatcher;

    private Tokenizer(
        string sourceName,
        BpeModel model,
        Normalizer? normalizer,
        PreTokenizer? preTokenizer,
        List<(int[] Prefix, int[] Suffix)> postProcessing,
        TokenDecoder? decoder,
        string?[] idToToken,
        bool[] isSpecial,
        List<AddedToken> addedTokens,
        int? templateBos)
    {
        SourceName = sourceName;
        _model = model;
        _normalizer = normalizer;
        _preTokenizer = preTokenizer;
        _postProcessing = postProcessing;
        _decoder = decoder;
        _idToToken = idToToken;
        _isSpecial = isSpecial;
        _added = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var t in addedTokens)
        {
            _added[t.Content] = t.Id;
        }

        _rawMatcher = new AddedTokenMatcher(addedTokens.Where(t => !t.Normalized).Select(t => (t.Content, t)));
        _normalizedMatcher = new AddedTokenMatcher(addedTokens.Where(t => t.Normalized).Select(t => (normalizer?.Normalize(t.Content) ?? t.Content, t)));
        BosTokenId = templateBos;
        HasByteFallbackDecoder = ContainsByteFallback(decoder);
        EosTokenId = FirstSpecial("</s>", "<|end_of_text|>", "<|endoftext|>");
    }

    /// <summary>The file name (or caller-given name) the tokenizer was loaded from; used in error messages.</summary>
    public string SourceName { get; }

    /// <summary>One more than the largest token id (model vocabulary and added tokens): the rows an embedding needs.</summary>
    public int VocabSize => _idToToken.Length;

    /// <summary>
    /// The beginning-of-sequence token id: <c>bos_token</c> of tokenizer_config.json when given, else the special token
    /// the post-processor puts in front of the text (Llama-2 <c>&lt;s&gt;</c>, Llama-3 <c>&lt;|begin_of_text|&gt;</c>), else null.
    /// </summary>
    public int? BosTokenId { get; private set; }

    /// <summary>
    /// The end-of-sequence token id: <c>eos_token</c> of tokenizer_config.json when given, else the first special added
    /// token among <c>&lt;/s&gt;</c>, <c>&lt;|end_of_text|&gt;</c>, <c>&lt;|endoftext|&gt;</c>, else null.
    /// </summary>
    public int? EosTokenId { get; private set; }

    /// <summary>Loads a tokenizer.json file, and optionally the tokenizer_config.json next to it (for BOS/EOS).</summary>
    /// <param name="tokenizerJsonPath">Path of tokenizer.json.</param>
    /// <param name="tokenizerConfigPath">Optional path of tokenizer_config.json; its <c>bos_token</c>/<c>eos_token</c> win.</param>
    /// <exception cref="TokenizerFormatException">The file is malformed or uses an unsupported component.</exception>
    /// <exception cref="PlatformNotSupportedException">The file needs Unicode normalization (NFC…) and the process runs in globalization-invariant mode.</exception>
    public static Tokenizer Load(string tokenizerJsonPath, string? tokenizerConfigPath = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(tokenizerJsonPath);
        string json = ReadCapped(tokenizerJsonPath);
        string? config = tokenizerConfigPath is null ? null : ReadCapped(tokenizerConfigPath);
        return FromJson(json, Path.GetFileName(tokenizerJsonPath), config, tokenizerConfigPath is null ? null : Path.GetFileName(tokenizerConfigPath));
    }

    /// <summary>Builds a tokenizer from the text of a tokenizer.json (and optionally of a tokenizer_config.json).</summary>
    /// <param name="json">The tokenizer.json text.</param>
    /// <param name="sourceName">A name for error messages (e.g. the file name).</param>
    /// <param name="tokenizerConfigJson">Optional tokenizer_config.json text; its <c>bos_token</c>/<c>eos_token</c> win.</param>
    /// <param name="tokenizerConfigSourceName">A name for errors in the config (default "tokenizer_config.json").</param>
    /// <exception cref="TokenizerFormatException">The JSON is malformed or uses an unsupported component.</exception>
    /// <exception cref="PlatformNotSupportedException">The file needs Unicode normalization (NFC…) and the process runs in globalization-invariant mode.</exception>
    public static Tokenizer FromJson(string json, string sourceName, string? tokenizerConfigJson = null, string? tokenizerConfigSourceName = null)
    {
        ArgumentNullException.ThrowIfNull(json);
        ArgumentException.ThrowIfNullOrEmpty(sourceName);
        var tokenizer = TokenizerJsonReader.Read(json, sourceName);
        if (tokenizerConfigJson is not null)
        {
            var config = TokenizerConfig.Parse(tokenizerConfigJson, tokenizerConfigSourceName ?? "tokenizer_config.json");
            var f = new JsonFields(tokenizerConfigSourceName ?? "tokenizer_config.json");
            if (config.BosToken is not null)
            {
                tokenizer.BosTokenId = tokenizer.TokenToId(config.BosToken) ?? throw f.Error("bos_token", $"'{config.BosToken}' is not a token of {sourceName}");
            }
            if (config.EosToken is not null)
            {
                tokenizer.EosTokenId = tokenizer.TokenToId(config.EosToken) ?? throw f.Error("eos_token", $"'{config.EosToken}' is not a token of {sourceName}");
            }
        }
        return tokenizer;
    }

    internal static Tokenizer Create(
        string sourceName, BpeModel model, Normalizer? normalizer, PreTokenizer? preTokenizer,
        List<(int[] Prefix, int[] Suffix)> postProcessing, TokenDecoder? decoder, string?[] idToToken, bool[] isSpecial,
        List<AddedToken> addedTokens, int? templateBos) =>
        new(sourceName, model, normalizer, preTokenizer, postProcessing, decoder, idToToken, isSpecial, addedTokens, templateBos);

    internal static string ReadCapped(string path)
    {
        var info = new FileInfo(path);
        if (!info.Exists)
        {
            throw new FileNotFoundException($"Tokenizer file not found: {path}", path);
        }

        if (info.Length > MaxFileBytes)
        {
            throw new TokenizerFormatException(info.Name, "(file)", $"is {info.Length} bytes; the limit is {MaxFileBytes}");
        }
        return File.ReadAllText(path, Encoding.UTF8);
    }

    /// <summary>
    /// Encodes text to token ids: added tokens found in the text become their ids, the rest is normalized,
    /// pre-tokenized and BPE-encoded; the post-processor's special tokens (e.g. BOS) are added if requested.
    /// </summary>
    /// <param name="text">The text. Lone UTF-16 surrogates are encoded as U+FFFD.</param>
    /// <param name="addSpecialTokens">Apply the post-processor (e.g. prepend BOS). Use false for rendered chat prompts.</param>
    /// <param name="allowSpecialTokens">
    /// Match special added tokens written in the text (Hugging Face default, needed for chat prompts). False treats
    /// them as plain text, which is what untrusted user text should get.
    /// </param>
    /// <exception cref="System.Text.RegularExpressions.RegexMatchTimeoutException">
    /// A custom split/replace regex from the file (not one of the built-in GPT-2/Llama-3/Qwen2 patterns) took longer than 5 s.
    /// </exception>
    public IReadOnlyList<int> Encode(string text, bool addSpecialTokens = true, bool allowSpecialTokens = true)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>(text.Length / 3 + 4);
        var segments = new List<Segment>();
        _rawMatcher.Split(text, atStart: true, allowSpecialTokens, segments);
        var normalizedSegments = new List<Segment>();
        foreach (var segment in segments)
        {
            if (segment.TokenId is int tokenId)
            {
                ids.Add(tokenId);
                continue;
            }
            string normalized = _normalizer?.Normalize(segment.Text) ?? segment.Text;
            normalizedSegments.Clear();
            _normalizedMatcher.Split(normalized, segment.AtStart, allowSpecialTokens, normalizedSegments);
            foreach (var piece in normalizedSegments)
            {
                if (piece.TokenId is int id)
                {
                    ids.Add(id);
                }
                else
                {
                    EncodeText(piece.Text, piece.AtStart, ids);
                }
            }
        }

        if (!addSpecialTokens || _postProcessing.Count == 0)
        {
            return ids.ToArray();
        }

        int[] result = ids.ToArray();
        foreach (var (prefix, suffix) in _postProcessing)
        {
            result = [.. prefix, .. result, .. suffix];
        }
        return result;
    }

    private void EncodeText(string text, bool atStart, List<int> ids)
    {
        if (text.Length == 0)
        {
            return;
        }

        if (_preTokenizer is null)
        {
            _model.EncodeWord(text, ids);
            return;
        }
        var words = _preTokenizer.Apply([new PreToken(text, atStart)]);
        foreach (var word in words)
        {
            _model.EncodeWord(word.Text, ids);
        }
    }

    /// <summary>Internal: the pre-tokenized words of already-normalized text (for tests).</summary>
    internal List<string> PreTokenize(string normalizedText)
    {
        if (normalizedText.Length == 0)
        {
            return [];
        }

        if (_preTokenizer is null)
        {
            return [normalizedText];
        }

        return _preTokenizer.Apply([new PreToken(normalizedText, true)]).Select(w => w.Text).ToList();
    }

    /// <summary>Internal: BPE of one word exactly as given (for tests).</summary>
    internal void EncodeWordForTests(string word, List<int> ids) => _model.EncodeWord(word, ids);

    /// <summary>Internal: the normalizer's output (for tests).</summary>
    internal string Normalize(string text) => _normalizer?.Normalize(text) ?? text;

    /// <summary>Decodes token ids to text with the tokenizer's decoder.</summary>
    /// <param name="ids">Token ids; each must be below <see cref="VocabSize"/> and name a token.</param>
    /// <param name="skipSpecialTokens">Leave out special added tokens (BOS, EOS, chat markers).</param>
    /// <returns>The text.</returns>
    /// <exception cref="ArgumentOutOfRangeException">An id is negative, too large, or a hole in the vocabulary.</exception>
    public string Decode(IReadOnlyList<int> ids, bool skipSpecialTokens = false)
    {
        ArgumentNullException.ThrowIfNull(ids);
        return ids switch
        {
            int[] array => Decode(array.AsSpan(), skipSpecialTokens),
            List<int> list => Decode(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(list), skipSpecialTokens),
            _ => Decode(ids.ToArray().AsSpan(), skipSpecialTokens),
        };
    }

    /// <summary>Decodes a span of token ids (the stream decoder's window).</summary>
    internal string Decode(ReadOnlySpan<int> ids, bool skipSpecialTokens)
    {
        var tokens = new List<string>(ids.Length);
        for (int i = 0; i < ids.Length; i++)
        {
            int id = ids[i];
            string? token = (uint)id < (uint)_idToToken.Length ? _idToToken[id] : null;
            if (token is null)
            {
                throw new ArgumentOutOfRangeException(nameof(ids), id, $"ids[{i}] = {id} is not a token id of {SourceName} (vocabulary size {VocabSize}).");
            }
            if (skipSpecialTokens && _isSpecial[id])
            {
                continue;
            }

            tokens.Add(token);
        }
        if (_decoder is null)
        {
            return string.Join(' ', tokens);
        }

        return string.Concat(_decoder.DecodeChain(tokens));
    }

    /// <summary>Whether <paramref name="text"/> contains the text of a special added token (e.g. <c>&lt;|im_end|&gt;</c>).</summary>
    public bool ContainsSpecialToken(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var segments = new List<Segment>();
        _rawMatcher.Split(text, atStart: true, allowSpecial: true, segments);
        if (segments.Any(s => s.TokenId is int id && _isSpecial[id]))
        {
            return true;
        }

        segments.Clear();
        _normalizedMatcher.Split(Normalize(text), atStart: true, allowSpecial: true, segments);
        return segments.Any(s => s.TokenId is int id && _isSpecial[id]);
    }

    /// <summary>The id of a token string (added tokens and model vocabulary), or null.</summary>
    public int? TokenToId(string token)
    {
        ArgumentNullException.ThrowIfNull(token);
        if (_added.TryGetValue(token, out int id))
        {
            return id;
        }

        return _model.Vocab.TryGetValue(token, out id) ? id : null;
    }

    /// <summary>The token string of an id (as stored in the vocabulary, e.g. <c>Ġthe</c> or <c>▁the</c>), or null.</summary>
    public string? IdToToken(int id) => (uint)id < (uint)_idToToken.Length ? _idToToken[id] : null;

    /// <summary>Whether the id is a special added token (skipped by <c>skipSpecialTokens</c>).</summary>
    public bool IsSpecialToken(int id) => (uint)id < (uint)_isSpecial.Length && _isSpecial[id];

    /// <summary>Creates a decoder for a stream of generated ids that emits text only once it is complete UTF-8.</summary>
    /// <param name="skipSpecialTokens">Leave out special added tokens.</param>
    public TokenStreamDecoder CreateStreamDecoder(bool skipSpecialTokens = false) => new(this, skipSpecialTokens);

    /// <summary>Whether the decoder turns runs of &lt;0xNN&gt; tokens into text (the run is final only when it ends).</summary>
    internal bool HasByteFallbackDecoder { get; }

    private static bool ContainsByteFallback(TokenDecoder? decoder) => decoder switch
    {
        ByteFallbackDecoder => true,
        SequenceDecoder sequence => sequence.Steps.Any(ContainsByteFallback),
        _ => false,
    };

    private int? FirstSpecial(params string[] names)
    {
        foreach (string name in names)
        {
            if (_added.TryGetValue(name, out int id) && _isSpecial[id])
            {
                return id;
            }
        }
        return null;
    }

    internal static TimeSpan CustomRegexTimeout => RegexTimeout;

    internal static Regex CompileRegex(JsonFields f, string pattern, string field)
    {
        try
        {
            return new Regex(pattern, RegexOptions.CultureInvariant, RegexTimeout);
        }
        catch (ArgumentException ex)
        {
            throw f.Error(field, $"is not a valid regular expression: {ex.Message}", ex);
        }
    }

    internal static JsonDocument ParseJson(string json, string sourceName)
    {
        try
        {
            return JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = 64 });
        }
        catch (JsonException ex)
        {
            throw new TokenizerFormatException(sourceName, "(json)", $"is not valid JSON: {ex.Message}", ex);
        }
    }
}
