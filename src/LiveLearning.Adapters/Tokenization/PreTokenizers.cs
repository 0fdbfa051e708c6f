using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace LiveLearning.Tokenization;

/// <summary>One piece of text on its way to the model: the text and whether it starts at offset 0 of the input.</summary>
internal readonly record struct PreToken(string Text, bool AtStart);

/// <summary>A pre-tokenizer: splits (and possibly rewrites) words into smaller words.</summary>
internal abstract class PreTokenizer
{
    /// <summary>Appends the words <paramref name="word"/> splits into to <paramref name="output"/>.</summary>
    public abstract void Split(PreToken word, List<PreToken> output);

    /// <summary>Applies this pre-tokenizer to every word of <paramref name="words"/>.</summary>
    public List<PreToken> Apply(List<PreToken> words)
    {
        var output = new List<PreToken>(words.Count * 2);
        foreach (var w in words)
        {
            Split(w, output);
        }

        return output;
    }
}

/// <summary>How the pieces of a split are kept (Hugging Face <c>SplitDelimiterBehavior</c>).</summary>
internal enum SplitBehavior
{
    Removed,
    Isolated,
    MergedWithPrevious,
    MergedWithNext,
    Contiguous,
}

/// <summary>Turns pattern matches into pieces according to a <see cref="SplitBehavior"/>.</summary>
internal static class SplitPieces
{
    /// <summary>
    /// Appends the pieces of <paramref name="word"/> to <paramref name="output"/>. <paramref name="matches"/> are
    /// non-overlapping (start, length) ranges in increasing order.
    /// </summary>
    public static void Emit(PreToken word, List<(int Start, int Length)> matches, SplitBehavior behavior, bool invert, List<PreToken> output)
    {
        string text = word.Text;
        // Every range of the text, flagged as match or gap.
        var all = new List<(int Start, int End, bool IsMatch)>(matches.Count * 2 + 1);
        int previous = 0;
        foreach (var (start, length) in matches)
        {
            if (start > previous)
            {
                all.Add((previous, start, false));
            }

            all.Add((start, start + length, true));
            previous = start + length;
        }
        if (previous < text.Length)
        {
            all.Add((previous, text.Length, false));
        }

        if (invert)
        {
            for (int i = 0; i < all.Count; i++)
            {
                all[i] = (all[i].Start, all[i].End, !all[i].IsMatch);
            }
        }

        var pieces = new List<(int Start, int End)>(all.Count);
        switch (behavior)
        {
            case SplitBehavior.Removed:
                foreach (var p in all)
                {
                    if (!p.IsMatch)
                    {
                        pieces.Add((p.Start, p.End));
                    }
                }

                break;
            case SplitBehavior.Isolated:
                foreach (var p in all)
                {
                    pieces.Add((p.Start, p.End));
                }

                break;
            case SplitBehavior.MergedWithPrevious:
            {
                bool previousMatch = false;
                foreach (var p in all)
                {
                    if (p.IsMatch && !previousMatch && pieces.Count > 0)
                        {
                            pieces[^1] = (pieces[^1].Start, p.End);
                        }
                        else
                        {
                            pieces.Add((p.Start, p.End));
                        }

                        previousMatch = p.IsMatch;
                }
                break;
            }
            case SplitBehavior.MergedWithNext:
            {
                bool previousMatch = false;
                for (int i = all.Count - 1; i >= 0; i--)
                {
                    var p = all[i];
                    if (p.IsMatch && !previousMatch && pieces.Count > 0)
                        {
                            pieces[^1] = (p.Start, pieces[^1].End);
                        }
                        else
                        {
                            pieces.Add((p.Start, p.End));
                        }

                        previousMatch = p.IsMatch;
                }
                pieces.Reverse();
                break;
            }
            case SplitBehavior.Contiguous:
            {
                bool previousMatch = false;
                foreach (var p in all)
                {
                    if (p.IsMatch == previousMatch && pieces.Count > 0)
                        {
                            pieces[^1] = (pieces[^1].Start, p.End);
                        }
                        else
                        {
                            pieces.Add((p.Start, p.End));
                        }

                        previousMatch = p.IsMatch;
                }
                break;
            }
        }

        foreach (var (start, end) in pieces)
        {
            if (end > start)
            {
                output.Add(new PreToken(text[start..end], word.AtStart && start == 0));
            }
        }
    }
}

/// <summary>
/// Code-point scanners equivalent to the split regexes of GPT-2, Llama-3 and Qwen2 as Oniguruma evaluates them
/// (on Unicode code points, so letters and digits outside the BMP are classified correctly, which .NET's UTF-16
/// regex engine does not do).
/// </summary>
internal static class RegexScanners
{
    /// <summary>GPT-2 / ByteLevel split regex (exact string as found in tokenizer.json).</summary>
    public const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    /// <summary>Llama-3 (tiktoken cl100k-style) split regex.</summary>
    public const string Llama3Pattern = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    /// <summary>Qwen2 / Qwen2.5 split regex (single digits).</summary>
    public const string Qwen2Pattern = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    private const byte Letter = 0, Number = 1, Space = 2, Newline = 3, Other = 4;

    /// <summary>Code-point classes and UTF-16 starts of a string.</summary>
    private readonly struct CodePoints
    {
        public readonly byte[] Class;
        public readonly int[] Value;
        public readonly int[] Start; // Start[count] == text.Length

        public CodePoints(string text)
        {
            var cls = new byte[text.Length];
            var val = new int[text.Length];
            var start = new int[text.Length + 1];
            int count = 0, i = 0;
            while (i < text.Length)
            {
                int cp, len;
                if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
                {
                    cp = char.ConvertToUtf32(text[i], text[i + 1]);
                    len = 2;
                }
                else
                {
                    cp = char.IsSurrogate(text[i]) ? 0xFFFD : text[i];
                    len = 1;
                }
                start[count] = i;
                val[count] = cp;
                cls[count] = Classify(cp);
                count++;
                i += len;
            }
            start[count] = text.Length;
            Class = cls[..count];
            Value = val[..count];
            Start = start[..(count + 1)];
        }

        public int Count => Class.Length;
    }

    /// <summary>Classifies a code point for the split regexes.</summary>
    public static byte Classify(int cp)
    {
        if (cp < AsciiClass.Length)
        {
            return AsciiClass[cp];
        }

        return ClassifySlow(cp);
    }

    private static readonly byte[] AsciiClass = BuildAsciiClass();

    private static byte[] BuildAsciiClass()
    {
        var table = new byte[128];
        for (int c = 0; c < table.Length; c++)
        {
            table[c] = ClassifySlow(c);
        }

        return table;
    }

    private static byte ClassifySlow(int cp)
    {
        if (cp == '\r' || cp == '\n')
        {
            return Newline;
        }

        if (IsWhiteSpace(cp))
        {
            return Space;
        }

        switch (CharUnicodeInfo.GetUnicodeCategory(cp))
        {
            case UnicodeCategory.UppercaseLetter:
            case UnicodeCategory.LowercaseLetter:
            case UnicodeCategory.TitlecaseLetter:
            case UnicodeCategory.ModifierLetter:
            case UnicodeCategory.OtherLetter:
                return Letter;
            case UnicodeCategory.DecimalDigitNumber:
            case UnicodeCategory.LetterNumber:
            case UnicodeCategory.OtherNumber:
                return Number;
            default:
                return Other;
        }
    }

    /// <summary>The Unicode White_Space property (what <c>\s</c> matches in Oniguruma and .NET).</summary>
    public static bool IsWhiteSpace(int cp) =>
        (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680
        || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;

    /// <summary>Whether a code point is numeric (general category Nd, Nl or No).</summary>
    public static bool IsNumeric(int cp) => Classify(cp) == Number;

    /// <summary>Splits with the GPT-2 regex; returns (start, length) in UTF-16 units.</summary>
    public static List<(int Start, int Length)> ScanGpt2(string text) => Scan(text, gpt2: true, maxDigits: int.MaxValue);

    /// <summary>Splits with the Llama-3 (<paramref name="maxDigits"/> = 3) or Qwen2 (1) regex.</summary>
    public static List<(int Start, int Length)> ScanCl100k(string text, int maxDigits) => Scan(text, gpt2: false, maxDigits);

    private static List<(int Start, int Length)> Scan(string text, bool gpt2, int maxDigits)
    {
        var cps = new CodePoints(text);
        var result = new List<(int, int)>();
        int n = cps.Count;
        int i = 0;
        while (i < n)
        {
            int len = gpt2 ? MatchGpt2(cps, i) : MatchCl100k(cps, i, maxDigits);
            if (len <= 0)
            {
                len = 1; // unreachable with these patterns: every code point is covered
            }

            result.Add((cps.Start[i], cps.Start[i + len] - cps.Start[i]));
            i += len;
        }
        return result;
    }

    private static int Run(in CodePoints c, int i, byte cls)
    {
        int j = i;
        while (j < c.Count && c.Class[j] == cls)
        {
            j++;
        }

        return j - i;
    }

    private static int WhiteRun(in CodePoints c, int i)
    {
        int j = i;
        while (j < c.Count && (c.Class[j] == Space || c.Class[j] == Newline))
        {
            j++;
        }

        return j - i;
    }

    private static int Contraction(in CodePoints c, int i, bool ignoreCase)
    {
        if (c.Value[i] != '\'' || i + 1 >= c.Count)
        {
            return 0;
        }

        int a = Fold(c.Value[i + 1], ignoreCase);
        if (a == 's' || a == 't' || a == 'm' || a == 'd')
        {
            return 2;
        }

        if (i + 2 >= c.Count)
        {
            return 0;
        }

        int b = Fold(c.Value[i + 2], ignoreCase);
        if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))
        {
            return 3;
        }

        return 0;
    }

    private static int Fold(int cp, bool ignoreCase) => ignoreCase && cp >= 'A' && cp <= 'Z' ? cp + 32 : cp;

    // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
    private static int MatchGpt2(in CodePoints c, int i)
    {
        int len = Contraction(c, i, ignoreCase: false);
        if (len > 0)
        {
            return len;
        }

        bool space = c.Value[i] == ' ';
        foreach (byte cls in (ReadOnlySpan<byte>)[Letter, Number, Other])
        {
            if (space && i + 1 < c.Count && c.Class[i + 1] == cls)
            {
                return 1 + Run(c, i + 1, cls);
            }

            if (c.Class[i] == cls)
            {
                return Run(c, i, cls);
            }
        }
        return WhiteSpaceTail(c, i);
    }

    // \s+(?!\S)|\s+ at a whitespace position.
    private static int WhiteSpaceTail(in CodePoints c, int i)
    {
        int k = WhiteRun(c, i);
        if (k == 0)
        {
            return 0;
        }

        if (i + k == c.Count)
        {
            return k;
        }

        return k >= 2 ? k - 1 : k;
    }

    // (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,maxDigits}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
    private static int MatchCl100k(in CodePoints c, int i, int maxDigits)
    {
        int len = Contraction(c, i, ignoreCase: true);
        if (len > 0)
        {
            return len;
        }

        byte cls = c.Class[i];
        if (cls != Letter && cls != Number && cls != Newline && i + 1 < c.Count && c.Class[i + 1] == Letter)
        {
            return 1 + Run(c, i + 1, Letter);
        }

        if (cls == Letter)
        {
            return Run(c, i, Letter);
        }

        if (cls == Number)
        {
            return Math.Min(Run(c, i, Number), maxDigits);
        }

        if (c.Value[i] == ' ' && i + 1 < c.Count && c.Class[i + 1] == Other)
        {
            int others = Run(c, i + 1, Other);
            return 1 + others + Run(c, i + 1 + others, Newline);
        }
        if (cls == Other)
        {
            int others = Run(c, i, Other);
            return others + Run(c, i + others, Newline);
        }
        // Whitespace: \s*[\r\n]+ ends after the last newline of the whitespace run.
        int k = WhiteRun(c, i);
        for (int j = i + k - 1; j >= i; j--)
        {
            if (c.Class[j] == Newline)
            {
                return j - i + 1;
            }
        }
        return WhiteSpaceTail(c, i);
    }
}

/// <summary>A split pattern: one of the known regexes (code-point scanners), another regex, or a literal string.</summary>
internal sealed class SplitPattern
{
    private readonly Func<string, List<(int Start, int Length)>> _find;

    private SplitPattern(Func<string, List<(int Start, int Length)>> find) => _find = find;

    /// <summary>Non-overlapping matches (start, length) in increasing order.</summary>
    public List<(int Start, int Length)> FindAll(string text) => _find(text);

    /// <summary>A literal string pattern.</summary>
    public static SplitPattern ForString(string literal) => new(text =>
    {
        var result = new List<(int, int)>();
        if (literal.Length == 0)
        {
            return result;
        }

        int from = 0;
        while (from <= text.Length - literal.Length)
        {
            int at = text.IndexOf(literal, from, StringComparison.Ordinal);
            if (at < 0)
            {
                break;
            }

            result.Add((at, literal.Length));
            from = at + literal.Length;
        }
        return result;
    });

    /// <summary>
    /// A regex pattern. The GPT-2, Llama-3 and Qwen2 patterns use exact code-point scanners; any other pattern
    /// runs on .NET's regex engine (UTF-16 based: letters/digits outside the BMP are not <c>\p{L}</c>/<c>\p{N}</c>).
    /// </summary>
    public static SplitPattern ForRegex(string pattern, TimeSpan timeout)
    {
        switch (pattern)
        {
            case RegexScanners.Gpt2Pattern: return new(RegexScanners.ScanGpt2);
            case RegexScanners.Llama3Pattern: return new(t => RegexScanners.ScanCl100k(t, 3));
            case RegexScanners.Qwen2Pattern: return new(t => RegexScanners.ScanCl100k(t, 1));
        }
        var regex = new Regex(pattern, RegexOptions.CultureInvariant, timeout);
        bool patternHasAstral = pattern.Any(char.IsSurrogate);
        return new(text =>
        {
            var result = new List<(int, int)>();
            if (patternHasAstral || !text.Any(char.IsSurrogate))
            {
                foreach (Match m in regex.Matches(text))
                {
                    if (m.Length > 0)
                    {
                        result.Add((m.Index, m.Length));
                    }
                }
                return result;
            }
            // .NET matches UTF-16 units; run on a copy where each character outside the BMP is one BMP stand-in of
            // the same general category, so \p{L}, \d, \w… classify it as a code-point engine does.
            var (mapped, toOriginal) = AstralStandIns.Map(text);
            foreach (Match m in regex.Matches(mapped))
            {
                if (m.Length == 0)
                {
                    continue;
                }

                int start = toOriginal[m.Index];
                result.Add((start, toOriginal[m.Index + m.Length] - start));
            }
            return result;
        });
    }
}

/// <summary>Replaces characters outside the BMP by BMP characters of the same Unicode general category.</summary>
internal static class AstralStandIns
{
    /// <summary>The mapped text and, per mapped index (plus the end), the index in the original text.</summary>
    public static (string Mapped, int[] ToOriginal) Map(string text)
    {
        var sb = new System.Text.StringBuilder(text.Length);
        var toOriginal = new List<int>(text.Length + 1);
        for (int i = 0; i < text.Length; i++)
        {
            toOriginal.Add(i);
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                sb.Append(StandIn(CharUnicodeInfo.GetUnicodeCategory(char.ConvertToUtf32(text[i], text[i + 1]))));
                i++;
            }
            else
            {
                sb.Append(text[i]);
            }
        }
        toOriginal.Add(text.Length);
        return (sb.ToString(), toOriginal.ToArray());
    }

    /// <summary>Rarely used BMP characters, one per general category.</summary>
    internal static char StandIn(UnicodeCategory category) => category switch
    {
        UnicodeCategory.UppercaseLetter => '\uA640',      // CYRILLIC CAPITAL LETTER ZEMLYA
        UnicodeCategory.LowercaseLetter => '\uA641',      // CYRILLIC SMALL LETTER ZEMLYA
        UnicodeCategory.TitlecaseLetter => '\u01C5',      // LATIN CAPITAL LETTER D WITH SMALL LETTER Z WITH CARON
        UnicodeCategory.ModifierLetter => '\uA717',       // MODIFIER LETTER DOT VERTICAL BAR
        UnicodeCategory.OtherLetter => '\uA000',          // YI SYLLABLE IT
        UnicodeCategory.DecimalDigitNumber => '\uA620',   // VAI DIGIT ZERO
        UnicodeCategory.LetterNumber => '\u2185',         // ROMAN NUMERAL SIX LATE FORM
        UnicodeCategory.OtherNumber => '\u2469',          // CIRCLED NUMBER TEN
        UnicodeCategory.NonSpacingMark => '\u1DC0',       // COMBINING DOTTED GRAVE ACCENT
        UnicodeCategory.SpacingCombiningMark => '\u0903', // DEVANAGARI SIGN VISARGA
        UnicodeCategory.EnclosingMark => '\u20DD',        // COMBINING ENCLOSING CIRCLE
        UnicodeCategory.MathSymbol => '\u2A00',           // N-ARY CIRCLED DOT OPERATOR
        UnicodeCategory.CurrencySymbol => '\u20B0',       // GERMAN PENNY SIGN
        UnicodeCategory.ModifierSymbol => '\uA720',       // MODIFIER LETTER STRESS AND HIGH TONE
        UnicodeCategory.OtherSymbol => '\u4DC0',          // HEXAGRAM FOR THE CREATIVE HEAVEN
        UnicodeCategory.Format => '\u2064',               // INVISIBLE PLUS
        UnicodeCategory.PrivateUse => '\uE000',
        UnicodeCategory.OtherNotAssigned => '\uFDD0',
        _ => '\uA60D',                                    // VAI COMMA (punctuation)
    };
}

/// <summary><c>Split</c>: splits on a pattern with a delimiter behaviour.</summary>
internal sealed class SplitPreTokenizer(SplitPattern pattern, SplitBehavior behavior, bool invert) : PreTokenizer
{
    public override void Split(PreToken word, List<PreToken> output) =>
        SplitPieces.Emit(word, pattern.FindAll(word.Text), behavior, invert, output);
}

/// <summary><c>Digits</c>: isolates every numeric character, or runs of them.</summary>
internal sealed class DigitsPreTokenizer(bool individualDigits) : PreTokenizer
{
    public override void Split(PreToken word, List<PreToken> output)
    {
        string text = word.Text;
        var matches = new List<(int, int)>();
        int i = 0;
        while (i < text.Length)
        {
            int len = char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]) ? 2 : 1;
            int cp = len == 2 ? char.ConvertToUtf32(text[i], text[i + 1]) : text[i];
            if (RegexScanners.IsNumeric(cp))
            {
                matches.Add((i, len));
            }

            i += len;
        }
        SplitPieces.Emit(word, matches, individualDigits ? SplitBehavior.Isolated : SplitBehavior.Contiguous, invert: false, output);
    }
}

/// <summary>
/// <c>ByteLevel</c>: optionally prepends a space, optionally splits with the GPT-2 regex, then maps every UTF-8
/// byte to its printable character.
/// </summary>
internal sealed class ByteLevelPreTokenizer(bool addPrefixSpace, bool useRegex) : PreTokenizer
{
    public override void Split(PreToken word, List<PreToken> output)
    {
        string text = word.Text;
        if (addPrefixSpace && !text.StartsWith(' '))
        {
            text = " " + text;
        }

        if (!useRegex)
        {
            output.Add(new PreToken(ByteLevelMap.Encode(text), word.AtStart));
            return;
        }
        foreach (var (start, length) in RegexScanners.ScanGpt2(text))
        {
            output.Add(new PreToken(ByteLevelMap.Encode(text.Substring(start, length)), word.AtStart && start == 0));
        }
    }
}

/// <summary>When a <c>Metaspace</c> pre-tokenizer prepends the replacement character.</summary>
internal enum PrependScheme
{
    Always,
    First,
    Never,
}

/// <summary><c>Metaspace</c>: spaces become the replacement character (▁), optionally prepended and split on.</summary>
internal sealed class MetaspacePreTokenizer(char replacement, PrependScheme scheme, bool split) : PreTokenizer
{
    public override void Split(PreToken word, List<PreToken> output)
    {
        string text = word.Text.Replace(' ', replacement);
        bool prepend = scheme == PrependScheme.Always || (scheme == PrependScheme.First && word.AtStart);
        if (prepend && !text.StartsWith(replacement))
        {
            text = replacement + text;
        }

        var w = new PreToken(text, word.AtStart);
        if (!split)
        {
            output.Add(w);
            return;
        }
        var matches = new List<(int, int)>();
        for (int i = 0; i < text.Length; i++)
        {
            if (text[i] == replacement)
            {
                matches.Add((i, 1));
            }
        }

        SplitPieces.Emit(w, matches, SplitBehavior.MergedWithNext, invert: false, output);
    }
}

/// <summary><c>Sequence</c>: applies pre-tokenizers in order.</summary>
internal sealed class SequencePreTokenizer(IReadOnlyList<PreTokenizer> steps) : PreTokenizer
{
    public override void Split(PreToken word, List<PreToken> output)
    {
        var words = new List<PreToken> { word };
        foreach (var step in steps)
        {
            words = step.Apply(words);
        }

        output.AddRange(words);
    }
}

/// <summary>A normalizer: rewrites text before pre-tokenization.</summary>
internal abstract class Normalizer
{
    public abstract string Normalize(string text);
}

/// <summary>Unicode normalization (NFC, NFD, NFKC, NFKD).</summary>
internal sealed class UnicodeNormalizer : Normalizer
{
    private readonly NormalizationForm _form;

    private UnicodeNormalizer(NormalizationForm form) => _form = form;

    /// <summary>
    /// Creates the normalizer after checking that this process can normalize: with globalization-invariant mode
    /// (<c>InvariantGlobalization</c>) .NET leaves non-ASCII text unchanged, which would silently give different ids.
    /// </summary>
    /// <exception cref="PlatformNotSupportedException">Unicode normalization is not available in this process.</exception>
    public static UnicodeNormalizer Create(NormalizationForm form, string sourceName, string field)
    {
        bool composes = form is NormalizationForm.FormC or NormalizationForm.FormKC;
        string probe = composes ? "e\u0301" : "\u00E9";
        string expected = composes ? "\u00E9" : "e\u0301";
        if (!string.Equals(probe.Normalize(form), expected, StringComparison.Ordinal))
        {
            throw new PlatformNotSupportedException(
                $"{sourceName}: {field}: the {form} normalizer needs Unicode normalization, which this process does not provide " +
                "(globalization-invariant mode leaves non-ASCII text unnormalized, so token ids would differ from the model's). " +
                "Disable InvariantGlobalization to load this tokenizer.");
        }
        return new UnicodeNormalizer(form);
    }

    public override string Normalize(string text) => text.Length == 0 ? text : text.Normalize(_form);
}

/// <summary><c>Prepend</c>: prepends a string to non-empty text.</summary>
internal sealed class PrependNormalizer(string prefix) : Normalizer
{
    public override string Normalize(string text) => text.Length == 0 ? text : prefix + text;
}

/// <summary><c>Replace</c>: replaces every occurrence of a literal or regex pattern.</summary>
internal sealed class ReplaceNormalizer(string? literal, Regex? regex, string content) : Normalizer
{
    public override string Normalize(string text) =>
        regex is not null ? regex.Replace(text, content.Replace("$", "$$", StringComparison.Ordinal))
        : literal!.Length == 0 ? text : text.Replace(literal, content, StringComparison.Ordinal);
}

/// <summary><c>Lowercase</c>.</summary>
internal sealed class LowercaseNormalizer : Normalizer
{
    public override string Normalize(string text) => text.ToLowerInvariant();
}

/// <summary><c>Strip</c>: removes leading and/or trailing whitespace.</summary>
internal sealed class StripNormalizer(bool left, bool right) : Normalizer
{
    public override string Normalize(string text) => left && right ? text.Trim() : left ? text.TrimStart() : right ? text.TrimEnd() : text;
}

/// <summary><c>Sequence</c>: applies normalizers in order.</summary>
internal sealed class SequenceNormalizer(IReadOnlyList<Normalizer> steps) : Normalizer
{
    public override string Normalize(string text)
    {
        foreach (var step in steps)
        {
            text = step.Normalize(text);
        }

        return text;
    }
}
