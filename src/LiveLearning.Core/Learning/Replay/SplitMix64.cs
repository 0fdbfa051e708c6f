namespace LiveLearning;

/// <summary>
/// A small deterministic random generator (SplitMix64) whose whole state is one number, so it can be snapshotted: the
/// replay buffer's draws after a restore are the draws it would have made without stopping.
/// </summary>
internal struct SplitMix64
{
    private ulong _state;

    public SplitMix64(ulong seed) => _state = seed;

    public readonly ulong State => _state;

    public ulong NextUInt64()
    {
        ulong z = _state += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>Uniform in [0, n) without modulo bias (rejection of the short last interval).</summary>
    public long NextInt64(long n)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(n, 1);
        ulong limit = ulong.MaxValue - (ulong.MaxValue % (ulong)n);
        ulong x;
        do
        {
            x = NextUInt64();
        }
        while (x >= limit);
        return (long)(x % (ulong)n);
    }

    /// <summary>Mixes a text into a seed (FNV-1a then one SplitMix step), stable across processes and runtimes.</summary>
    public static ulong Seed(ulong seed, string text)
    {
        ulong h = 14695981039346656037UL;
        foreach (char c in text)
        {
            h = (h ^ c) * 1099511628211UL;
        }

        var mix = new SplitMix64(seed ^ h);
        return mix.NextUInt64();
    }
}
