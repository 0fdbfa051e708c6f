using System.Text;
using System.Text.Json;

namespace LiveLearning.Tokenization;

/// <summary>Reads and validates tokenizer.json into a <see cref="Tokenizer"/>.</summary>
internal static class TokenizerJsonReader
{
    public static Tokenizer Read(string json, string sourceName)
    {
        var f = new JsonFields(sourceName);
        using var doc = Tokenizer.ParseJson(json, sourceName);
        var root = doc.RootElement;
        if (root.ValueKind != JsonValueKind.Object)
        {
            throw f.Error("(root)", "must be a JSON object");
        }

        var modelElement = f.Object(root, "model", "");
        var model = ReadModel(f, modelElement, out var vocab);

        // Added tokens.
        var addedTokens = new List<AddedToken>();
        if (JsonFields.Optional(root, "added_tokens") is JsonElement added)
        {
            if (added.ValueKind != JsonValueKind.Array)
            {
                throw f.Error("added_tokens", "must be an array");
            }

            int index = 0;
            foreach (var entry in added.EnumerateArray())
            {
                string path = $"added_tokens[{index++}]";
                if (entry.ValueKind != JsonValueKind.Object)
                {
                    throw f.Error(path, "must be an object");
                }

                int id = f.Int(JsonFields.Optional(entry, "id") ?? throw f.Error(path + ".id", "is required"), path + ".id", 0, Tokenizer.MaxVocabularySize - 1);
                string content = f.String(entry, "content", path);
                if (content.Length == 0)
                {
                    throw f.Error(path + ".content", "must not be empty");
                }

                bool special = f.Bool(entry, "special", path, false);
                addedTokens.Add(new AddedToken(
                    id, content,
                    f.Bool(entry, "single_word", path, false),
                    f.Bool(entry, "lstrip", path, false),
                    f.Bool(entry, "rstrip", path, false),
                    f.Bool(entry, "normalized", path, !special),
                    special));
            }
        }

        int size = 0;
        foreach (int id in vocab.Values)
        {
            size = Math.Max(size, id + 1);
        }

        foreach (var t in addedTokens)
        {
            size = Math.Max(size, t.Id + 1);
        }

        var idToToken = new string?[size];
        foreach (var (token, id) in vocab)
        {
            idToToken[id] = token;
        }

        var isSpecial = new bool[size];
        foreach (var t in addedTokens)
        {
            idToToken[t.Id] = t.Content;
            isSpecial[t.Id] = t.Special;
        }

        var normalizer = JsonFields.Optional(root, "normalizer") is JsonElement n ? ReadNormalizer(f, n, "normalizer") : null;
        var preTokenizer = JsonFields.Optional(root, "pre_tokenizer") is JsonElement p ? ReadPreTokenizer(f, p, "pre_tokenizer") : null;
        var post = new List<(int[] Prefix, int[] Suffix)>();
        int? bos = null;
        if (JsonFields.Optional(root, "post_processor") is JsonElement pp)
        {
            ReadPostProcessor(f, pp, "post_processor", idToToken, post, ref bos);
        }

        var decoder = JsonFields.Optional(root, "decoder") is JsonElement d ? ReadDecoder(f, d, "decoder") : null;

        return Tokenizer.Create(sourceName, model, normalizer, preTokenizer, post, decoder, idToToken, isSpecial, addedTokens, bos);
    }

    private static BpeModel ReadModel(JsonFields f, JsonElement m, out Dictionary<string, int> vocab)
    {
        string type = JsonFields.Optional(m, "type") is null && JsonFields.Optional(m, "merges") is not null ? "BPE" : f.Type(m, "model");
        if (type != "BPE")
        {
            throw f.Error("model.type", $"model type '{type}' is not supported (only BPE)");
        }

        var vocabElement = f.Object(m, "vocab", "model");
        vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        var seenIds = new Dictionary<int, string>();
        foreach (var property in vocabElement.EnumerateObject())
        {
            string field = "model.vocab." + property.Name;
            int id = f.Int(property.Value, field, 0, Tokenizer.MaxVocabularySize - 1);
            if (!vocab.TryAdd(property.Name, id))
            {
                throw f.Error(field, "appears twice");
            }

            if (!seenIds.TryAdd(id, property.Name))
            {
                throw f.Error(field, $"id {id} is also used by '{seenIds[id]}'");
            }
        }

        var merges = new Dictionary<long, (int Rank, int NewId)>();
        if (JsonFields.Optional(m, "merges") is JsonElement mergesElement)
        {
            if (mergesElement.ValueKind != JsonValueKind.Array)
            {
                throw f.Error("model.merges", "must be an array");
            }

            int rank = 0;
            foreach (var entry in mergesElement.EnumerateArray())
            {
                string field = $"model.merges[{rank}]";
                string left, right;
                if (entry.ValueKind == JsonValueKind.String)
                {
                    string s = entry.GetString()!;
                    int space = s.IndexOf(' ', StringComparison.Ordinal);
                    if (space <= 0 || space == s.Length - 1 || s.IndexOf(' ', space + 1) >= 0)
                    {
                        throw f.Error(field, $"'{s}' must be two tokens separated by one space");
                    }
                    left = s[..space];
                    right = s[(space + 1)..];
                }
                else if (entry.ValueKind == JsonValueKind.Array && entry.GetArrayLength() == 2
                    && entry[0].ValueKind == JsonValueKind.String && entry[1].ValueKind == JsonValueKind.String)
                {
                    left = entry[0].GetString()!;
                    right = entry[1].GetString()!;
                }
                else
                {
                    throw f.Error(field, "must be a string \"a b\" or an array [\"a\", \"b\"]");
                }
                if (!vocab.TryGetValue(left, out int leftId))
                {
                    throw f.Error(field, $"token '{left}' is not in the vocabulary");
                }

                if (!vocab.TryGetValue(right, out int rightId))
                {
                    throw f.Error(field, $"token '{right}' is not in the vocabulary");
                }

                if (!vocab.TryGetValue(left + right, out int newId))
                {
                    throw f.Error(field, $"merged token '{left + right}' is not in the vocabulary");
                }

                merges[BpeModel.PairKey(leftId, rightId)] = (rank, newId);
                rank++;
            }
        }

        int? unkId = null;
        string? unk = f.OptionalString(m, "unk_token", "model");
        if (unk is not null)
        {
            if (!vocab.TryGetValue(unk, out int u))
            {
                throw f.Error("model.unk_token", $"'{unk}' is not in the vocabulary");
            }

            unkId = u;
        }
        if (JsonFields.Optional(m, "dropout") is JsonElement dropout && dropout.ValueKind != JsonValueKind.Number)
        {
            throw f.Error("model.dropout", "must be a number or null");
        }

        return new BpeModel(
            vocab, merges, unkId,
            byteFallback: f.Bool(m, "byte_fallback", "model", false),
            fuseUnk: f.Bool(m, "fuse_unk", "model", false),
            ignoreMerges: f.Bool(m, "ignore_merges", "model", false),
            continuingSubwordPrefix: f.OptionalString(m, "continuing_subword_prefix", "model"),
            endOfWordSuffix: f.OptionalString(m, "end_of_word_suffix", "model"));
    }

    private static Normalizer ReadNormalizer(JsonFields f, JsonElement e, string path)
    {
        string type = f.Type(e, path);
        switch (type)
        {
            case "NFC": return UnicodeNormalizer.Create(NormalizationForm.FormC, f.SourceName, path);
            case "NFD": return UnicodeNormalizer.Create(NormalizationForm.FormD, f.SourceName, path);
            case "NFKC": return UnicodeNormalizer.Create(NormalizationForm.FormKC, f.SourceName, path);
            case "NFKD": return UnicodeNormalizer.Create(NormalizationForm.FormKD, f.SourceName, path);
            case "Lowercase": return new LowercaseNormalizer();
            case "Prepend": return new PrependNormalizer(f.String(e, "prepend", path));
            case "Strip": return new StripNormalizer(f.Bool(e, "strip_left", path, true), f.Bool(e, "strip_right", path, true));
            case "Replace":
            {
                var (literal, regex) = ReadPattern(f, e, path);
                return new ReplaceNormalizer(literal, regex is null ? null : Tokenizer.CompileRegex(f, regex, path + ".pattern.Regex"), f.String(e, "content", path));
            }
            case "Sequence":
            {
                var steps = new List<Normalizer>();
                int i = 0;
                foreach (var s in f.Array(e, "normalizers", path).EnumerateArray())
                    {
                        steps.Add(ReadNormalizer(f, s, $"{path}.normalizers[{i++}]"));
                    }

                    return new SequenceNormalizer(steps);
            }
            default:
                throw f.Error(path + ".type", $"normalizer type '{type}' is not supported");
        }
    }

    private static (string? Literal, string? Regex) ReadPattern(JsonFields f, JsonElement e, string path)
    {
        var pattern = f.Object(e, "pattern", path);
        string? literal = f.OptionalString(pattern, "String", path + ".pattern");
        string? regex = f.OptionalString(pattern, "Regex", path + ".pattern");
        if ((literal is null) == (regex is null))
        {
            throw f.Error(path + ".pattern", "must have exactly one of String or Regex");
        }

        return (literal, regex);
    }

    private static PreTokenizer ReadPreTokenizer(JsonFields f, JsonElement e, string path)
    {
        string type = f.Type(e, path);
        switch (type)
        {
            case "ByteLevel":
                return new ByteLevelPreTokenizer(f.Bool(e, "add_prefix_space", path, true), f.Bool(e, "use_regex", path, true));
            case "Digits":
                return new DigitsPreTokenizer(f.Bool(e, "individual_digits", path, false));
            case "Split":
            {
                var (literal, regex) = ReadPattern(f, e, path);
                SplitPattern pattern;
                if (regex is not null)
                {
                    try
                    {
                        pattern = SplitPattern.ForRegex(regex, Tokenizer.CustomRegexTimeout);
                    }
                    catch (ArgumentException ex)
                    {
                        throw f.Error(path + ".pattern.Regex", $"is not a valid regular expression: {ex.Message}", ex);
                    }
                }
                else
                {
                    if (literal!.Length == 0)
                        {
                            throw f.Error(path + ".pattern.String", "must not be empty");
                        }

                        pattern = SplitPattern.ForString(literal);
                }
                string behavior = f.String(e, "behavior", path);
                if (!Enum.TryParse<SplitBehavior>(behavior, ignoreCase: false, out var b) || !Enum.IsDefined(b) || behavior.Any(char.IsDigit))
                {
                    throw f.Error(path + ".behavior", $"'{behavior}' is not one of Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous");
                }
                return new SplitPreTokenizer(pattern, b, f.Bool(e, "invert", path, false));
            }
            case "Metaspace":
            {
                char replacement = ReadChar(f, e, "replacement", path, '\u2581');
                PrependScheme scheme;
                string? schemeText = f.OptionalString(e, "prepend_scheme", path);
                if (schemeText is not null)
                    {
                        scheme = ParseScheme(f, schemeText, path + ".prepend_scheme");
                    }
                    else
                    {
                        scheme = f.Bool(e, "add_prefix_space", path, true) ? PrependScheme.Always : PrependScheme.Never;
                    }

                    return new MetaspacePreTokenizer(replacement, scheme, f.Bool(e, "split", path, true));
            }
            case "Sequence":
            {
                var steps = new List<PreTokenizer>();
                int i = 0;
                foreach (var s in f.Array(e, "pretokenizers", path).EnumerateArray())
                    {
                        steps.Add(ReadPreTokenizer(f, s, $"{path}.pretokenizers[{i++}]"));
                    }

                    return new SequencePreTokenizer(steps);
            }
            default:
                throw f.Error(path + ".type", $"pre-tokenizer type '{type}' is not supported");
        }
    }

    private static PrependScheme ParseScheme(JsonFields f, string text, string field) => text switch
    {
        "always" => PrependScheme.Always,
        "first" => PrependScheme.First,
        "never" => PrependScheme.Never,
        _ => throw f.Error(field, $"'{text}' is not one of always, first, never"),
    };

    private static char ReadChar(JsonFields f, JsonElement e, string name, string path, char defaultValue)
    {
        string? s = f.OptionalString(e, name, path);
        if (s is null)
        {
            return defaultValue;
        }

        if (s.Length != 1)
        {
            throw f.Error(JsonFields.Join(path, name), $"must be a single character, not '{s}'");
        }

        return s[0];
    }

    private static void ReadPostProcessor(JsonFields f, JsonElement e, string path, string?[] idToToken, List<(int[] Prefix, int[] Suffix)> steps, ref int? bos)
    {
        string type = f.Type(e, path);
        switch (type)
        {
            case "ByteLevel":
                return;
            case "Sequence":
            {
                int i = 0;
                foreach (var s in f.Array(e, "processors", path).EnumerateArray())
                    {
                        ReadPostProcessor(f, s, $"{path}.processors[{i++}]", idToToken, steps, ref bos);
                    }

                    return;
            }
            case "RobertaProcessing":
            case "BertProcessing":
            {
                int cls = ReadTokenPair(f, e, "cls", path, idToToken);
                int sep = ReadTokenPair(f, e, "sep", path, idToToken);
                steps.Add(([cls], [sep]));
                bos ??= cls;
                return;
            }
            case "TemplateProcessing":
            {
                var specials = new Dictionary<string, int[]>(StringComparer.Ordinal);
                if (JsonFields.Optional(e, "special_tokens") is JsonElement st)
                {
                    if (st.ValueKind != JsonValueKind.Object)
                        {
                            throw f.Error(path + ".special_tokens", "must be an object");
                        }

                        foreach (var prop in st.EnumerateObject())
                    {
                        string field = $"{path}.special_tokens.{prop.Name}";
                        var ids = f.Array(prop.Value, "ids", field);
                        specials[prop.Name] = ids.EnumerateArray().Select((v, k) => TokenId(f, v, $"{field}.ids[{k}]", idToToken)).ToArray();
                    }
                }
                var prefix = new List<int>();
                var suffix = new List<int>();
                int sequences = 0;
                int index = 0;
                foreach (var item in f.Array(e, "single", path).EnumerateArray())
                {
                    string field = $"{path}.single[{index++}]";
                    if (JsonFields.Optional(item, "SpecialToken") is JsonElement special)
                    {
                        string name = f.String(special, "id", field + ".SpecialToken");
                        if (!specials.TryGetValue(name, out int[]? ids))
                            {
                                throw f.Error(field, $"special token '{name}' is not in special_tokens");
                            }

                            (sequences == 0 ? prefix : suffix).AddRange(ids);
                    }
                    else if (JsonFields.Optional(item, "Sequence") is JsonElement seq)
                    {
                        string id = f.String(seq, "id", field + ".Sequence");
                        if (id != "A")
                            {
                                throw f.Error(field + ".Sequence.id", $"'{id}' cannot appear in a single-sequence template");
                            }

                            sequences++;
                    }
                    else
                    {
                        throw f.Error(field, "must be a SpecialToken or a Sequence");
                    }
                }
                if (sequences != 1)
                    {
                        throw f.Error(path + ".single", $"must contain the sequence $A exactly once, not {sequences} times");
                    }

                    steps.Add((prefix.ToArray(), suffix.ToArray()));
                if (prefix.Count > 0)
                    {
                        bos ??= prefix[0];
                    }

                    return;
            }
            default:
                throw f.Error(path + ".type", $"post-processor type '{type}' is not supported");
        }
    }

    private static int ReadTokenPair(JsonFields f, JsonElement e, string name, string path, string?[] idToToken)
    {
        var pair = f.Array(e, name, path);
        if (pair.GetArrayLength() != 2)
        {
            throw f.Error(JsonFields.Join(path, name), "must be [token, id]");
        }

        return TokenId(f, pair[1], JsonFields.Join(path, name) + "[1]", idToToken);
    }

    /// <summary>An id that names a token of the vocabulary or the added tokens.</summary>
    private static int TokenId(JsonFields f, JsonElement value, string field, string?[] idToToken)
    {
        int id = f.Int(value, field, 0, Math.Max(0, idToToken.Length - 1));
        if (idToToken.Length == 0 || idToToken[id] is null)
        {
            throw f.Error(field, $"id {id} is not a token");
        }

        return id;
    }

    private static TokenDecoder ReadDecoder(JsonFields f, JsonElement e, string path)
    {
        string type = f.Type(e, path);
        switch (type)
        {
            case "ByteLevel": return new ByteLevelDecoder();
            case "ByteFallback": return new ByteFallbackDecoder();
            case "Fuse": return new FuseDecoder();
            case "Replace":
            {
                var (literal, regex) = ReadPattern(f, e, path);
                if (regex is not null)
                    {
                        throw f.Error(path + ".pattern.Regex", "a Replace decoder with a Regex pattern is not supported");
                    }

                    return new ReplaceDecoder(literal!, f.String(e, "content", path));
            }
            case "Strip":
            {
                char content = ReadChar(f, e, "content", path, ' ');
                return new StripDecoder(content, f.Int(e, "start", path, 0, int.MaxValue, 0), f.Int(e, "stop", path, 0, int.MaxValue, 0));
            }
            case "Metaspace":
            {
                char replacement = ReadChar(f, e, "replacement", path, '\u2581');
                string? schemeText = f.OptionalString(e, "prepend_scheme", path);
                bool drop = schemeText is not null
                    ? ParseScheme(f, schemeText, path + ".prepend_scheme") != PrependScheme.Never
                    : f.Bool(e, "add_prefix_space", path, true);
                return new MetaspaceDecoder(replacement, drop);
            }
            case "Sequence":
            {
                var steps = new List<TokenDecoder>();
                int i = 0;
                foreach (var s in f.Array(e, "decoders", path).EnumerateArray())
                    {
                        steps.Add(ReadDecoder(f, s, $"{path}.decoders[{i++}]"));
                    }

                    return new SequenceDecoder(steps);
            }
            default:
                throw f.Error(path + ".type", $"decoder type '{type}' is not supported");
        }
    }
}
