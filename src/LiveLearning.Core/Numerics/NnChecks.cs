using System.Globalization;

namespace LiveLearning.Numerics;

/// <summary>Argument checks shared by the element-wise and row-wise neural-net kernels.</summary>
internal static class NnChecks
{
    /// <summary>Throws unless <paramref name="actual"/> equals <paramref name="expected"/>.</summary>
    public static void Length(int actual, long expected, string paramName, string expectedDescription)
    {
        if (actual != expected)
        {
            throw new ArgumentException(
                string.Create(CultureInfo.InvariantCulture, $"{paramName} has {actual} elements but {expectedDescription} = {expected}."),
                paramName);
        }
    }

    /// <summary>Throws when <paramref name="value"/> is negative.</summary>
    public static void NonNegative(int value, string paramName)
    {
        if (value < 0)
        {
            throw new ArgumentOutOfRangeException(paramName, value, $"{paramName} must not be negative.");
        }
    }

    /// <summary>Throws when <paramref name="value"/> is less than one.</summary>
    public static void Positive(int value, string paramName)
    {
        if (value < 1)
        {
            throw new ArgumentOutOfRangeException(paramName, value, $"{paramName} must be at least 1.");
        }
    }

    /// <summary>Throws when an output overlaps an input, unless both are exactly the same span and that is allowed.</summary>
    public static void NoOverlap(ReadOnlySpan<float> output, ReadOnlySpan<float> other, string paramName, string otherName, bool allowIdentical = false)
    {
        if (output.Overlaps(other, out int offset))
        {
            if (allowIdentical && offset == 0 && output.Length == other.Length)
            {
                return;
            }

            throw new ArgumentException($"{paramName} overlaps {otherName}; they must be separate buffers{(allowIdentical ? " or exactly the same buffer" : string.Empty)}.", paramName);
        }
    }
}
