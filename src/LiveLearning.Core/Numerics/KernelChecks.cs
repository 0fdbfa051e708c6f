using System.Globalization;
using System.Runtime.InteropServices;

namespace LiveLearning.Numerics;

/// <summary>The argument checks shared by every numerics kernel (same exception types, parameter names and messages everywhere).</summary>
internal static class KernelChecks
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

    /// <summary>Throws unless a <c>[rows, cols]</c> buffer fits a span and <paramref name="span"/> has exactly that many elements.</summary>
    public static void Shape(ReadOnlySpan<float> span, int rows, int cols, string paramName, string shapeDescription)
    {
        long expected = (long)rows * cols;
        if (expected > int.MaxValue)
        {
            throw new ArgumentOutOfRangeException(paramName, $"{shapeDescription} = {expected} is larger than a span can hold.");
        }

        if (span.Length != expected)
        {
            throw new ArgumentException($"{paramName} has {span.Length} elements but {shapeDescription} = {expected}.", paramName);
        }
    }

    /// <summary>Throws when <paramref name="actual"/> is less than <paramref name="minimum"/>.</summary>
    public static void AtLeast(int actual, long minimum, string paramName, string minimumDescription)
    {
        if (actual < minimum)
        {
            throw new ArgumentException($"{paramName} has {actual} elements but needs at least {minimumDescription} = {minimum}.", paramName);
        }
    }

    /// <summary>Throws unless <paramref name="value"/> is finite and not negative.</summary>
    public static void FiniteNonNegative(float value, string paramName)
    {
        if (!(value >= 0) || !float.IsFinite(value))
        {
            throw new ArgumentOutOfRangeException(paramName, value, $"{paramName} must be a finite number ≥ 0.");
        }
    }

    /// <summary>Throws unless <paramref name="value"/> is in [0, 1).</summary>
    public static void UnitInterval(float value, string paramName)
    {
        if (!(value >= 0 && value < 1))
        {
            throw new ArgumentOutOfRangeException(paramName, value, $"{paramName} must be in [0, 1).");
        }
    }

    /// <summary>Throws when the memory of an output overlaps the memory of an input (compared as bytes, so the element types may differ).</summary>
    public static void SeparateOutput<TOut, TIn>(ReadOnlySpan<TOut> output, ReadOnlySpan<TIn> input, string paramName, string inputName)
        where TOut : unmanaged
        where TIn : unmanaged
    {
        if (MemoryMarshal.AsBytes(output).Overlaps(MemoryMarshal.AsBytes(input)))
        {
            throw new ArgumentException($"{paramName} overlaps {inputName}; the output must be a separate buffer.", paramName);
        }
    }

    /// <summary>Throws when <paramref name="target"/> overlaps any of the other spans (empty spans never overlap).</summary>
    public static void NoOverlapAny(
        ReadOnlySpan<float> target,
        string paramName,
        ReadOnlySpan<float> a,
        ReadOnlySpan<float> b,
        ReadOnlySpan<float> c,
        ReadOnlySpan<float> d = default,
        ReadOnlySpan<float> e = default,
        ReadOnlySpan<float> f = default,
        ReadOnlySpan<float> g = default,
        ReadOnlySpan<float> h = default,
        ReadOnlySpan<float> i = default)
    {
        if (target.Overlaps(a) || target.Overlaps(b) || target.Overlaps(c) || target.Overlaps(d) || target.Overlaps(e)
            || target.Overlaps(f) || target.Overlaps(g) || target.Overlaps(h) || target.Overlaps(i))
        {
            throw new ArgumentException($"{paramName} overlaps another argument; outputs and gradients must not share memory with any other span.", paramName);
        }
    }
}
