namespace LiveLearning.Tests;

/// <summary>Seeded inputs and guarded buffers shared by the test projects.</summary>
internal static class TestData
{
    /// <summary>Sentinel written around guarded buffers; any kernel writing out of bounds changes it.</summary>
    public const float Sentinel = -12345.678f;

    /// <summary>Guard elements on each side of a guarded buffer.</summary>
    public const int Guard = 64;

    /// <summary>Every length 0..256 (covers every remainder of every vector width) and some large odd sizes.</summary>
    public static IEnumerable<int> KernelLengths => Enumerable.Range(0, 257).Concat([577, 1537, 4099]);

    /// <summary>Uniform values in [-scale, scale) from a fixed seed.</summary>
    public static float[] Uniform(int length, int seed, float scale = 1f)
    {
        var rng = new Random(seed);
        var data = new float[length];
        for (int i = 0; i < data.Length; i++)
        {
            data[i] = (float)((rng.NextDouble() * 2) - 1) * scale;
        }

        return data;
    }

    /// <summary>A buffer of <paramref name="length"/> elements with <see cref="Guard"/> sentinels on both sides.</summary>
    public static GuardedBuffer Guarded(int length, float fill = 0f) => new(length, fill);
}

/// <summary>A float buffer surrounded by sentinel guards; <see cref="AssertGuardsIntact"/> proves no out-of-bounds write.</summary>
internal sealed class GuardedBuffer
{
    private readonly float[] _storage;

    public GuardedBuffer(int length, float fill)
    {
        Length = length;
        _storage = new float[length + (2 * TestData.Guard)];
        _storage.AsSpan().Fill(TestData.Sentinel);
        Span.Fill(fill);
    }

    public int Length { get; }

    public Span<float> Span => _storage.AsSpan(TestData.Guard, Length);

    public float[] ToArray() => Span.ToArray();

    public void AssertGuardsIntact()
    {
        for (int i = 0; i < TestData.Guard; i++)
        {
            NUnit.Framework.Assert.That(_storage[i], NUnit.Framework.Is.EqualTo(TestData.Sentinel), $"guard before the buffer was written at offset {i - TestData.Guard}");
            NUnit.Framework.Assert.That(_storage[TestData.Guard + Length + i], NUnit.Framework.Is.EqualTo(TestData.Sentinel), $"guard after the buffer was written at offset {Length + i}");
        }
    }
}
