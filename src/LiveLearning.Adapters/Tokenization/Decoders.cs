using System.Globalization;
using System.Text;

namespace LiveLearning.Tokenization;

/// <summary>A decoder step: rewrites the list of token strings (Hugging Face <c>decode_chain</c>).</summary>
internal abstract class TokenDecoder
{
    public abstract List<string> DecodeChain(List<string> tokens);
}

/// <summary><c>ByteLevel</c>: maps characters back to bytes and decodes the bytes as UTF-8 (invalid → U+FFFD).</summary>
internal sealed class ByteLevelDecoder : TokenDecoder
{
    public override List<string> DecodeChain(List<string> tokens)
    {
        var bytes = new List<byte>();
        foreach (string token in tokens)
        {
            bool allMapped = true;
            foreach (char c in token)
            {
                if (ByteLevelMap.TryGetByte(c) < 0) { allMapped = false; break; }
            }
            if (allMapped)
            {
                foreach (char c in token)
                {
                    bytes.Add((byte)ByteLevelMap.TryGetByte(c));
                }
            }
            else
            {
                // A token outside the byte alphabet (e.g. an added token with a space) contributes its UTF-8 bytes.
                bytes.AddRange(Encoding.UTF8.GetBytes(token));
            }
        }
        return [Encoding.UTF8.GetString(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(bytes))];
    }
}

/// <summary><c>Replace</c>: replaces a literal in every token.</summary>
internal sealed class ReplaceDecoder(string pattern, string content) : TokenDecoder
{
    public override List<string> DecodeChain(List<string> tokens)
    {
        if (pattern.Length == 0)
        {
            return tokens;
        }

        for (int i = 0; i < tokens.Count; i++)
        {
            tokens[i] = tokens[i].Replace(pattern, content, StringComparison.Ordinal);
        }

        return tokens;
    }
}

/// <summary>
/// <c>ByteFallback</c>: runs of <c>&lt;0xNN&gt;</c> tokens become the UTF-8 text of their bytes; a run that is not
/// valid UTF-8 becomes one U+FFFD per byte token.
/// </summary>
internal sealed class ByteFallbackDecoder : TokenDecoder
{
    public override List<string> DecodeChain(List<string> tokens)
    {
        var result = new List<string>(tokens.Count);
        var pending = new List<byte>();
        foreach (string token in tokens)
        {
            if (TryParseByteToken(token, out byte b))
            {
                pending.Add(b);
                continue;
            }
            Flush(pending, result);
            result.Add(token);
        }
        Flush(pending, result);
        return result;
    }

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private static void Flush(List<byte> pending, List<string> result)
    {
        if (pending.Count == 0)
        {
            return;
        }

        try
        {
            result.Add(StrictUtf8.GetString(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(pending)));
        }
        catch (DecoderFallbackException)
        {
            for (int i = 0; i < pending.Count; i++)
            {
                result.Add("\uFFFD");
            }
        }
        pending.Clear();
    }

    /// <summary>Parses <c>&lt;0xNN&gt;</c> (hex digits of either case).</summary>
    public static bool TryParseByteToken(string token, out byte value)
    {
        value = 0;
        return token.Length == 6 && token.StartsWith("<0x", StringComparison.Ordinal) && token[5] == '>'
            && byte.TryParse(token.AsSpan(3, 2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out value);
    }
}

/// <summary><c>Fuse</c>: concatenates all tokens into one.</summary>
internal sealed class FuseDecoder : TokenDecoder
{
    public override List<string> DecodeChain(List<string> tokens) => [string.Concat(tokens)];
}

/// <summary><c>Strip</c>: removes up to <c>start</c> leading and <c>stop</c> trailing occurrences of a character from every token.</summary>
internal sealed class StripDecoder(char content, int start, int stop) : TokenDecoder
{
    public override List<string> DecodeChain(List<string> tokens)
    {
        for (int i = 0; i < tokens.Count; i++)
        {
            string t = tokens[i];
            int from = 0;
            while (from < t.Length && from < start && t[from] == content)
            {
                from++;
            }

            int to = t.Length;
            while (to > from && t.Length - to < stop && t[to - 1] == content)
            {
                to--;
            }

            tokens[i] = t[from..to];
        }
        return tokens;
    }
}

/// <summary>
/// <c>Metaspace</c>: the replacement character becomes a space, except in the first token, where it is dropped
/// (unless the prepend scheme is <c>never</c>).
/// </summary>
internal sealed class MetaspaceDecoder(char replacement, bool dropInFirstToken) : TokenDecoder
{
    public override List<string> DecodeChain(List<string> tokens)
    {
        for (int i = 0; i < tokens.Count; i++)
        {
            tokens[i] = i == 0 && dropInFirstToken
                ? tokens[i].Replace(replacement.ToString(), string.Empty, StringComparison.Ordinal)
                : tokens[i].Replace(replacement, ' ');
        }
        return tokens;
    }
}

/// <summary><c>Sequence</c>: applies decoders in order.</summary>
internal sealed class SequenceDecoder(IReadOnlyList<TokenDecoder> steps) : TokenDecoder
{
    public IReadOnlyList<TokenDecoder> Steps => steps;

    public override List<string> DecodeChain(List<string> tokens)
    {
        foreach (var step in steps)
        {
            tokens = step.DecodeChain(tokens);
        }

        return tokens;
    }
}
