using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace LiveLearning.World;

/// <summary>A trained byte-level BPE: the vocabulary (special tokens first, then the 256 byte symbols, then merges) and the merges in rank order.</summary>
/// <param name="Vocabulary">Token string (byte-level alphabet) to id.</param>
/// <param name="Merges">Merges in rank order, each "left right".</param>
/// <param name="SpecialTokens">The special tokens, ids 0…n−1.</param>
public sealed record TrainedBpe(IReadOnlyDictionary<string, int> Vocabulary, IReadOnlyList<string> Merges, IReadOnlyList<string> SpecialTokens);

/// <summary>
/// Trains a byte-level BPE tokenizer in the layout SmolLM2 uses (digits split one by one, then the GPT-2 byte-level
/// pre-tokenizer; no normaliser) and writes it as <c>tokenizer.json</c> and <c>tokenizer_config.json</c> that Hugging
/// Face's tokenizers library and LiveLearning's own tokenizer read. Training is the classic algorithm: count adjacent
/// symbol pairs over the pre-tokenized words, merge the most frequent pair (ties: the smaller pair in ordinal order),
/// repeat until the vocabulary is full or no pair occurs twice. Deterministic.
/// </summary>
public static partial class BpeTrainer
{
    /// <summary>ChatML, without a default system prompt.</summary>
    public const string ChatTemplate =
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

    /// <summary>Trains on <paramref name="texts"/>.</summary>
    /// <param name="texts">Training text (special tokens in it are cut out, never merged).</param>
    /// <param name="vocabularySize">Largest vocabulary, special tokens and the 256 byte symbols included.</param>
    /// <param name="specialTokens">Special tokens, given ids 0…n−1.</param>
    /// <returns>The tokenizer.</returns>
    public static TrainedBpe Train(IEnumerable<string> texts, int vocabularySize, IReadOnlyList<string> specialTokens)
    {
        ArgumentNullException.ThrowIfNull(texts);
        ArgumentNullException.ThrowIfNull(specialTokens);
        ArgumentOutOfRangeException.ThrowIfLessThan(vocabularySize, specialTokens.Count + 256);
        string[] alphabet = ByteAlphabet();
        var vocabulary = new Dictionary<string, int>(StringComparer.Ordinal);
        var symbols = new List<string>();
        foreach (string special in specialTokens)
        {
            vocabulary[special] = symbols.Count;
            symbols.Add(special);
        }

        foreach (string symbol in alphabet.Order(StringComparer.Ordinal))
        {
            vocabulary[symbol] = symbols.Count;
            symbols.Add(symbol);
        }

        // Words: each distinct pre-token as a sequence of symbol ids, with its count.
        var counts = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (string text in texts)
        {
            foreach (string piece in PreTokenize(text, specialTokens, alphabet))
            {
                counts[piece] = counts.GetValueOrDefault(piece) + 1;
            }
        }

        var words = counts.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => (Symbols: p.Key.EnumerateRunes().Select(r => vocabulary[r.ToString()]).ToList(), Count: p.Value)).ToList();
        var merges = new List<string>();
        while (symbols.Count < vocabularySize)
        {
            var pairs = new Dictionary<(int, int), long>();
            foreach ((List<int> s, long count) in words)
            {
                for (int i = 0; i + 1 < s.Count; i++)
                {
                    pairs[(s[i], s[i + 1])] = pairs.GetValueOrDefault((s[i], s[i + 1])) + count;
                }
            }

            (int Left, int Right) best = default;
            long bestCount = 1;
            foreach (((int l, int r), long count) in pairs)
            {
                if (count > bestCount || (count == bestCount && bestCount > 1 && Compare((l, r), best, symbols) < 0))
                {
                    best = (l, r);
                    bestCount = count;
                }
            }

            if (bestCount < 2)
            {
                break;
            }

            string merged = symbols[best.Left] + symbols[best.Right];
            int id = symbols.Count;
            vocabulary[merged] = id;
            symbols.Add(merged);
            merges.Add(symbols[best.Left] + " " + symbols[best.Right]);
            foreach ((List<int> s, _) in words)
            {
                for (int i = 0; i + 1 < s.Count; i++)
                {
                    if (s[i] == best.Left && s[i + 1] == best.Right)
                    {
                        s[i] = id;
                        s.RemoveAt(i + 1);
                    }
                }
            }
        }

        return new TrainedBpe(vocabulary, merges, [.. specialTokens]);
    }

    /// <summary>Writes <c>tokenizer.json</c> (SmolLM2's pipeline: Digits + ByteLevel; a beginning-of-sequence token added
    /// to every encoded text) and <c>tokenizer_config.json</c> (ChatML template, which renders no such token).</summary>
    /// <param name="directory">The model directory.</param>
    /// <param name="bpe">The trained tokenizer.</param>
    /// <param name="bosToken">The beginning-of-sequence token the post-processor puts before every encoded text.</param>
    /// <param name="eosToken">The end-of-sequence token named in tokenizer_config.json.</param>
    public static void Write(string directory, TrainedBpe bpe, string bosToken, string eosToken)
    {
        ArgumentNullException.ThrowIfNull(bpe);
        Directory.CreateDirectory(directory);
        var options = new JsonWriterOptions { Indented = true };
        using (var stream = File.Create(Path.Combine(directory, "tokenizer.json")))
        using (var json = new Utf8JsonWriter(stream, options))
        {
            json.WriteStartObject();
            json.WriteString("version", "1.0");
            json.WriteNull("truncation");
            json.WriteNull("padding");
            json.WriteStartArray("added_tokens");
            foreach (string special in bpe.SpecialTokens)
            {
                json.WriteStartObject();
                json.WriteNumber("id", bpe.Vocabulary[special]);
                json.WriteString("content", special);
                json.WriteBoolean("single_word", false);
                json.WriteBoolean("lstrip", false);
                json.WriteBoolean("rstrip", false);
                json.WriteBoolean("normalized", false);
                json.WriteBoolean("special", true);
                json.WriteEndObject();
            }

            json.WriteEndArray();
            json.WriteNull("normalizer");
            json.WriteStartObject("pre_tokenizer");
            json.WriteString("type", "Sequence");
            json.WriteStartArray("pretokenizers");
            json.WriteStartObject();
            json.WriteString("type", "Digits");
            json.WriteBoolean("individual_digits", true);
            json.WriteEndObject();
            WriteByteLevel(json, null, addPrefixSpace: false, trimOffsets: true);
            json.WriteEndArray();
            json.WriteEndObject();
            // Post-processing: byte-level offsets, then the beginning-of-sequence token before every encoded text
            // (TemplateProcessing, as Llama 3's tokenizer does).
            json.WriteStartObject("post_processor");
            json.WriteString("type", "Sequence");
            json.WriteStartArray("processors");
            WriteByteLevel(json, null, addPrefixSpace: true, trimOffsets: false);
            json.WriteStartObject();
            json.WriteString("type", "TemplateProcessing");
            json.WriteStartArray("single");
            WriteTemplateItem(json, "SpecialToken", bosToken);
            WriteTemplateItem(json, "Sequence", "A");
            json.WriteEndArray();
            json.WriteStartArray("pair");
            WriteTemplateItem(json, "SpecialToken", bosToken);
            WriteTemplateItem(json, "Sequence", "A");
            WriteTemplateItem(json, "SpecialToken", bosToken);
            WriteTemplateItem(json, "Sequence", "B");
            json.WriteEndArray();
            json.WriteStartObject("special_tokens");
            json.WriteStartObject(bosToken);
            json.WriteString("id", bosToken);
            json.WriteStartArray("ids");
            json.WriteNumberValue(bpe.Vocabulary[bosToken]);
            json.WriteEndArray();
            json.WriteStartArray("tokens");
            json.WriteStringValue(bosToken);
            json.WriteEndArray();
            json.WriteEndObject();
            json.WriteEndObject();
            json.WriteEndObject();
            json.WriteEndArray();
            json.WriteEndObject();
            WriteByteLevel(json, "decoder", addPrefixSpace: true, trimOffsets: true);
            json.WriteStartObject("model");
            json.WriteString("type", "BPE");
            json.WriteNull("dropout");
            json.WriteNull("unk_token");
            json.WriteNull("continuing_subword_prefix");
            json.WriteNull("end_of_word_suffix");
            json.WriteBoolean("fuse_unk", false);
            json.WriteBoolean("byte_fallback", false);
            json.WriteBoolean("ignore_merges", false);
            json.WriteStartObject("vocab");
            foreach ((string token, int id) in bpe.Vocabulary.OrderBy(p => p.Value))
            {
                if (!bpe.SpecialTokens.Contains(token))
                {
                    json.WriteNumber(token, id);
                }
            }

            json.WriteEndObject();
            json.WriteStartArray("merges");
            foreach (string merge in bpe.Merges)
            {
                json.WriteStringValue(merge);
            }

            json.WriteEndArray();
            json.WriteEndObject();
            json.WriteEndObject();
        }

        using (var stream = File.Create(Path.Combine(directory, "tokenizer_config.json")))
        using (var json = new Utf8JsonWriter(stream, options))
        {
            json.WriteStartObject();
            json.WriteBoolean("add_prefix_space", false);
            json.WriteStartObject("added_tokens_decoder");
            foreach (string special in bpe.SpecialTokens)
            {
                json.WriteStartObject(bpe.Vocabulary[special].ToString(System.Globalization.CultureInfo.InvariantCulture));
                json.WriteString("content", special);
                json.WriteBoolean("lstrip", false);
                json.WriteBoolean("normalized", false);
                json.WriteBoolean("rstrip", false);
                json.WriteBoolean("single_word", false);
                json.WriteBoolean("special", true);
                json.WriteEndObject();
            }

            json.WriteEndObject();
            json.WriteString("bos_token", bosToken);
            json.WriteBoolean("add_bos_token", true);
            json.WriteString("eos_token", eosToken);
            json.WriteString("chat_template", ChatTemplate);
            json.WriteBoolean("clean_up_tokenization_spaces", false);
            json.WriteNumber("model_max_length", 2048);
            json.WriteString("tokenizer_class", "GPT2Tokenizer");
            json.WriteEndObject();
        }
    }

    /// <summary>The pre-tokens of a text in the byte-level alphabet, special tokens cut out.</summary>
    /// <param name="text">The text.</param>
    /// <param name="specialTokens">Special tokens to cut out.</param>
    /// <param name="alphabet">The byte-level alphabet (from <see cref="ByteAlphabet"/>).</param>
    /// <returns>The pre-tokens.</returns>
    internal static IEnumerable<string> PreTokenize(string text, IReadOnlyList<string> specialTokens, string[] alphabet)
    {
        foreach (string segment in SplitSpecial(text, specialTokens))
        {
            foreach (string piece in SplitDigits(segment))
            {
                foreach (Match m in Gpt2Split().Matches(piece))
                {
                    var sb = new StringBuilder();
                    foreach (byte b in Encoding.UTF8.GetBytes(m.Value))
                    {
                        sb.Append(alphabet[b]);
                    }

                    yield return sb.ToString();
                }
            }
        }
    }

    /// <summary>The GPT-2 byte-to-character map: printable bytes stand for themselves, the others for code points from 256 up.</summary>
    /// <returns>The symbol of each byte.</returns>
    internal static string[] ByteAlphabet()
    {
        var map = new string[256];
        int next = 256;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b is (>= 33 and <= 126) or (>= 161 and <= 172) or (>= 174 and <= 255);
            map[b] = char.ConvertFromUtf32(printable ? b : next++);
        }

        return map;
    }

    private static int Compare((int Left, int Right) a, (int Left, int Right) b, List<string> symbols)
    {
        int c = string.CompareOrdinal(symbols[a.Left], symbols[b.Left]);
        return c != 0 ? c : string.CompareOrdinal(symbols[a.Right], symbols[b.Right]);
    }

    private static IEnumerable<string> SplitSpecial(string text, IReadOnlyList<string> specialTokens)
    {
        var parts = new List<string> { text };
        foreach (string special in specialTokens)
        {
            parts = [.. parts.SelectMany(p => p.Split(special))];
        }

        return parts.Where(p => p.Length > 0);
    }

    private static IEnumerable<string> SplitDigits(string text)
    {
        int start = 0;
        for (int i = 0; i < text.Length; i++)
        {
            if (char.IsAsciiDigit(text[i]))
            {
                if (i > start)
                {
                    yield return text[start..i];
                }

                yield return text[i].ToString();
                start = i + 1;
            }
        }

        if (start < text.Length)
        {
            yield return text[start..];
        }
    }

    private static void WriteTemplateItem(Utf8JsonWriter json, string kind, string id)
    {
        json.WriteStartObject();
        json.WriteStartObject(kind);
        json.WriteString("id", id);
        json.WriteNumber("type_id", 0);
        json.WriteEndObject();
        json.WriteEndObject();
    }

    private static void WriteByteLevel(Utf8JsonWriter json, string? name, bool addPrefixSpace, bool trimOffsets)
    {
        if (name is null)
        {
            json.WriteStartObject();
        }
        else
        {
            json.WriteStartObject(name);
        }

        json.WriteString("type", "ByteLevel");
        json.WriteBoolean("add_prefix_space", addPrefixSpace);
        json.WriteBoolean("trim_offsets", trimOffsets);
        json.WriteBoolean("use_regex", true);
        json.WriteEndObject();
    }

    [GeneratedRegex(@"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+")]
    private static partial Regex Gpt2Split();
}
