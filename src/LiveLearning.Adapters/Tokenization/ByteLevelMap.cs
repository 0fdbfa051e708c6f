namespace LiveLearning.Tokenization;

/// <summary>
/// The GPT-2 byte-to-unicode table used by byte-level BPE: every byte is shown as one printable character so that
/// vocabulary keys are strings. Bytes 0x21–0x7E, 0xA1–0xAC and 0xAE–0xFF map to the same code point; the other 68
/// bytes map, in increasing order, to U+0100…U+0143.
/// </summary>
internal static class ByteLevelMap
{
    /// <summary>Byte → character.</summary>
    public static readonly char[] ByteToChar = BuildByteToChar();

    /// <summary>Character (U+0000…U+0143) → byte, or -1 when the character is not in the table.</summary>
    public static readonly short[] CharToByte = BuildCharToByte();

    private static char[] BuildByteToChar()
    {
        var map = new char[256];
        int next = 0;
        for (int b = 0; b < 256; b++)
        {
            bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            map[b] = printable ? (char)b : (char)(0x100 + next++);
        }
        return map;
    }

    private static short[] BuildCharToByte()
    {
        var map = new short[0x144];
        Array.Fill(map, (short)-1);
        for (int b = 0; b < 256; b++)
        {
            map[ByteToChar[b]] = (short)b;
        }

        return map;
    }

    /// <summary>UTF-8 encodes <paramref name="text"/> and maps every byte to its character.</summary>
    public static string Encode(string text)
    {
        if (text.Length == 0)
        {
            return string.Empty;
        }

        if (System.Text.Ascii.IsValid(text))
        {
            return string.Create(text.Length, text, static (dest, src) =>
            {
                for (int i = 0; i < src.Length; i++)
                {
                    dest[i] = ByteToChar[src[i]];
                }
            });
        }
        byte[] bytes = System.Text.Encoding.UTF8.GetBytes(text);
        return string.Create(bytes.Length, bytes, static (dest, src) =>
        {
            for (int i = 0; i < src.Length; i++)
            {
                dest[i] = ByteToChar[src[i]];
            }
        });
    }

    /// <summary>Maps a character back to its byte, or returns -1 when it is not in the table.</summary>
    public static int TryGetByte(char c) => c < CharToByte.Length ? CharToByte[c] : -1;
}
