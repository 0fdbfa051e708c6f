namespace LiveLearning.Governance;

/// <summary>
/// MinHash signatures of character shingles, for near-duplicate detection: the share of positions where two signatures
/// agree estimates the Jaccard similarity of the two shingle sets (standard error √(J(1−J)/k) with k hashes). Hashing is
/// FNV-1a 64 with a SplitMix64 finaliser per position, so signatures are the same in every process and on every machine.
/// </summary>
internal static class MinHash
{
    /// <summary>Hashes per signature.</summary>
    public const int Hashes = 64;

    /// <summary>LSH bands (each of <see cref="Hashes"/> / <see cref="Bands"/> rows): two items sharing any band are compared.</summary>
    public const int Bands = 16;

    /// <summary>Rows per band.</summary>
    public const int Rows = Hashes / Bands;

    private const ulong FnvOffset = 14695981039346656037UL;
    private const ulong FnvPrime = 1099511628211UL;

    /// <summary>FNV-1a 64 over the UTF-16 code units of <paramref name="text"/>.</summary>
    public static ulong Fnv1a(ReadOnlySpan<char> text)
    {
        ulong h = FnvOffset;
        foreach (char c in text)
        {
            h = (h ^ (byte)c) * FnvPrime;
            h = (h ^ (byte)(c >> 8)) * FnvPrime;
        }

        return h;
    }

    /// <summary>The signature of <paramref name="text"/>'s shingles of <paramref name="shingle"/> characters (a shorter text is one shingle).</summary>
    public static ulong[] Signature(string text, int shingle)
    {
        var signature = new ulong[Hashes];
        signature.AsSpan().Fill(ulong.MaxValue);
        int count = Math.Max(1, text.Length - shingle + 1);
        for (int s = 0; s < count; s++)
        {
            ulong h = Fnv1a(text.AsSpan(s, Math.Min(shingle, text.Length - s)));
            for (int i = 0; i < Hashes; i++)
            {
                ulong v = Mix(h + ((ulong)(i + 1) * 0x9E3779B97F4A7C15UL));
                if (v < signature[i])
                {
                    signature[i] = v;
                }
            }
        }

        return signature;
    }

    /// <summary>The estimated Jaccard similarity: the share of positions where the signatures agree.</summary>
    public static double Similarity(ReadOnlySpan<ulong> a, ReadOnlySpan<ulong> b)
    {
        int same = 0;
        for (int i = 0; i < a.Length; i++)
        {
            same += a[i] == b[i] ? 1 : 0;
        }

        return (double)same / a.Length;
    }

    /// <summary>The key of band <paramref name="band"/> of a signature (the band index is mixed in, so bands never collide with each other).</summary>
    public static ulong BandKey(ReadOnlySpan<ulong> signature, int band)
    {
        ulong h = FnvOffset ^ (ulong)band;
        foreach (ulong v in signature.Slice(band * Rows, Rows))
        {
            h = Mix(h ^ v);
        }

        return h;
    }

    /// <summary>SplitMix64's finaliser: a bijective 64-bit mix.</summary>
    private static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
