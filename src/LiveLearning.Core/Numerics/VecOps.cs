using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace LiveLearning.Numerics;

/// <summary>
/// The vector operations the width-generic kernels need (LoRA passes, attention tiles); one struct per width, so the
/// JIT specialises each kernel for <see cref="Vector512{T}"/>, <see cref="Vector256{T}"/>, <see cref="Vector128{T}"/>
/// and plain <see cref="float"/> (the scalar fallback).
/// </summary>
internal unsafe interface IVecOps<TV>
    where TV : struct
{
    static abstract int Count { get; }

    static abstract TV Zero { get; }

    static abstract TV Splat(float value);

    static abstract TV Load(float* source);

    static abstract void Store(TV value, float* destination);

    /// <summary>a · b + c, fused where the hardware has FMA.</summary>
    static abstract TV Fma(TV a, TV b, TV c);

    static abstract float Sum(TV value);

    /// <summary>a · b + c rounded once on every width (software-fused where the hardware has no FMA).</summary>
    static abstract TV FusedMultiplyAdd(TV a, TV b, TV c);

    /// <summary>a + b.</summary>
    static abstract TV Add(TV a, TV b);

    /// <summary>a − b.</summary>
    static abstract TV Subtract(TV a, TV b);

    /// <summary>a / b.</summary>
    static abstract TV Divide(TV a, TV b);

    /// <summary>√x per lane (correctly rounded, as <see cref="MathF.Sqrt"/>).</summary>
    static abstract TV Sqrt(TV x);

    /// <summary>a · b.</summary>
    static abstract TV Multiply(TV a, TV b);

    /// <summary>−x (the sign flipped, as the unary minus).</summary>
    static abstract TV Negate(TV x);

    /// <summary>e^x per lane (<see cref="FastExp"/>: below about −87.3 flushes to 0, NaN stays NaN).</summary>
    static abstract TV Exp(TV x);
}

/// <summary>16 float lanes.</summary>
internal readonly unsafe struct V512 : IVecOps<Vector512<float>>
{
    public static int Count => Vector512<float>.Count;

    public static Vector512<float> Zero => Vector512<float>.Zero;

    public static Vector512<float> Splat(float value) => Vector512.Create(value);

    public static Vector512<float> Load(float* source) => Vector512.Load(source);

    public static void Store(Vector512<float> value, float* destination) => value.Store(destination);

    public static Vector512<float> Fma(Vector512<float> a, Vector512<float> b, Vector512<float> c) => Vector512.MultiplyAddEstimate(a, b, c);

    public static float Sum(Vector512<float> value) => Vector512.Sum(value);

    public static Vector512<float> FusedMultiplyAdd(Vector512<float> a, Vector512<float> b, Vector512<float> c) => Vector512.FusedMultiplyAdd(a, b, c);

    public static Vector512<float> Add(Vector512<float> a, Vector512<float> b) => a + b;

    public static Vector512<float> Subtract(Vector512<float> a, Vector512<float> b) => a - b;

    public static Vector512<float> Divide(Vector512<float> a, Vector512<float> b) => a / b;

    public static Vector512<float> Sqrt(Vector512<float> x) => Vector512.Sqrt(x);

    public static Vector512<float> Multiply(Vector512<float> a, Vector512<float> b) => a * b;

    public static Vector512<float> Negate(Vector512<float> x) => -x;

    public static Vector512<float> Exp(Vector512<float> x) => FastExp.Exp(x);
}

/// <summary>8 float lanes.</summary>
internal readonly unsafe struct V256 : IVecOps<Vector256<float>>
{
    public static int Count => Vector256<float>.Count;

    public static Vector256<float> Zero => Vector256<float>.Zero;

    public static Vector256<float> Splat(float value) => Vector256.Create(value);

    public static Vector256<float> Load(float* source) => Vector256.Load(source);

    public static void Store(Vector256<float> value, float* destination) => value.Store(destination);

    public static Vector256<float> Fma(Vector256<float> a, Vector256<float> b, Vector256<float> c) => Vector256.MultiplyAddEstimate(a, b, c);

    public static float Sum(Vector256<float> value) => Vector256.Sum(value);

    public static Vector256<float> FusedMultiplyAdd(Vector256<float> a, Vector256<float> b, Vector256<float> c) => Vector256.FusedMultiplyAdd(a, b, c);

    public static Vector256<float> Add(Vector256<float> a, Vector256<float> b) => a + b;

    public static Vector256<float> Subtract(Vector256<float> a, Vector256<float> b) => a - b;

    public static Vector256<float> Divide(Vector256<float> a, Vector256<float> b) => a / b;

    public static Vector256<float> Sqrt(Vector256<float> x) => Vector256.Sqrt(x);

    public static Vector256<float> Multiply(Vector256<float> a, Vector256<float> b) => a * b;

    public static Vector256<float> Negate(Vector256<float> x) => -x;

    public static Vector256<float> Exp(Vector256<float> x) => FastExp.Exp(x);
}

/// <summary>4 float lanes.</summary>
internal readonly unsafe struct V128 : IVecOps<Vector128<float>>
{
    public static int Count => Vector128<float>.Count;

    public static Vector128<float> Zero => Vector128<float>.Zero;

    public static Vector128<float> Splat(float value) => Vector128.Create(value);

    public static Vector128<float> Load(float* source) => Vector128.Load(source);

    public static void Store(Vector128<float> value, float* destination) => value.Store(destination);

    public static Vector128<float> Fma(Vector128<float> a, Vector128<float> b, Vector128<float> c) => Vector128.MultiplyAddEstimate(a, b, c);

    public static float Sum(Vector128<float> value) => Vector128.Sum(value);

    public static Vector128<float> FusedMultiplyAdd(Vector128<float> a, Vector128<float> b, Vector128<float> c) => Vector128.FusedMultiplyAdd(a, b, c);

    public static Vector128<float> Add(Vector128<float> a, Vector128<float> b) => a + b;

    public static Vector128<float> Subtract(Vector128<float> a, Vector128<float> b) => a - b;

    public static Vector128<float> Divide(Vector128<float> a, Vector128<float> b) => a / b;

    public static Vector128<float> Sqrt(Vector128<float> x) => Vector128.Sqrt(x);

    public static Vector128<float> Multiply(Vector128<float> a, Vector128<float> b) => a * b;

    public static Vector128<float> Negate(Vector128<float> x) => -x;

    public static Vector128<float> Exp(Vector128<float> x) => FastExp.Exp(x);
}

/// <summary>One lane: the fallback when no vector width is accelerated (multiply and add are not fused).</summary>
internal readonly unsafe struct Scalar : IVecOps<float>
{
    public static int Count => 1;

    public static float Zero => 0f;

    public static float Splat(float value) => value;

    public static float Load(float* source) => *source;

    public static void Store(float value, float* destination) => *destination = value;

    public static float Fma(float a, float b, float c) => (a * b) + c;

    public static float Sum(float value) => value;

    public static float FusedMultiplyAdd(float a, float b, float c) => MathF.FusedMultiplyAdd(a, b, c);

    public static float Add(float a, float b) => a + b;

    public static float Subtract(float a, float b) => a - b;

    public static float Divide(float a, float b) => a / b;

    public static float Sqrt(float x) => MathF.Sqrt(x);

    public static float Multiply(float a, float b) => a * b;

    public static float Negate(float x) => -x;

    public static float Exp(float x) => FastExp.Exp(x);
}

/// <summary>Helpers over <see cref="IVecOps{TV}"/> shared by the width-generic kernels.</summary>
internal static class VecMath
{
    /// <summary>
    /// e^x: <see cref="FastExp"/> on the vector widths, <see cref="MathF.Exp"/> on the scalar tail (the kernels that used
    /// the library's exp for their tails keep its exact results).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV ExpExactTail<TV, TOps>(TV x)
        where TV : struct
        where TOps : struct, IVecOps<TV>
        => TOps.Count == 1 ? TOps.Splat(MathF.Exp(Unsafe.As<TV, float>(ref x))) : TOps.Exp(x);
}

/// <summary>One element-wise step at one position, written once for every width.</summary>
internal interface IMapOp
{
    /// <summary>Processes the <c>TOps.Count</c> elements starting at <paramref name="i"/>.</summary>
    void Invoke<TV, TOps>(nint i)
        where TV : struct
        where TOps : struct, IVecOps<TV>;
}

/// <summary>One accumulation step of a reduction at one position, written once for every width.</summary>
internal interface ISumOp
{
    /// <summary>Folds the <c>TOps.Count</c> elements starting at <paramref name="i"/> into <paramref name="acc"/>.</summary>
    TV Accumulate<TV, TOps>(TV acc, nint i)
        where TV : struct
        where TOps : struct, IVecOps<TV>;
}

/// <summary>The loop drivers shared by the width-generic element-wise kernels.</summary>
internal static class VecLoops
{
    /// <summary>
    /// Runs <paramref name="op"/> over <c>[0, n)</c>: 16-lane steps while they fit, then 8, then 4 (each only when
    /// accelerated), then single elements, the same split the hand-written loops used.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Map<TOp>(TOp op, int n)
        where TOp : struct, IMapOp
    {
        nint i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            for (; i <= n - Vector512<float>.Count; i += Vector512<float>.Count)
            {
                op.Invoke<Vector512<float>, V512>(i);
            }
        }

        if (Vector256.IsHardwareAccelerated)
        {
            for (; i <= n - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                op.Invoke<Vector256<float>, V256>(i);
            }
        }

        if (Vector128.IsHardwareAccelerated)
        {
            for (; i <= n - Vector128<float>.Count; i += Vector128<float>.Count)
            {
                op.Invoke<Vector128<float>, V128>(i);
            }
        }

        for (; i < n; i++)
        {
            op.Invoke<float, Scalar>(i);
        }
    }

    /// <summary>
    /// Reduces <c>[0, n)</c> with <paramref name="op"/>: one accumulator per width, each width entered only when a
    /// whole vector of it remains, its lanes summed into the float total when it is done; the last elements are folded
    /// into the total one by one.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Sum<TOp>(TOp op, int n)
        where TOp : struct, ISumOp
    {
        nint i = 0;
        float sum = 0f;
        if (Vector512.IsHardwareAccelerated && n >= Vector512<float>.Count)
        {
            var acc = Vector512<float>.Zero;
            for (; i <= n - Vector512<float>.Count; i += Vector512<float>.Count)
            {
                acc = op.Accumulate<Vector512<float>, V512>(acc, i);
            }

            sum += V512.Sum(acc);
        }

        if (Vector256.IsHardwareAccelerated && n - i >= Vector256<float>.Count)
        {
            var acc = Vector256<float>.Zero;
            for (; i <= n - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                acc = op.Accumulate<Vector256<float>, V256>(acc, i);
            }

            sum += V256.Sum(acc);
        }

        if (Vector128.IsHardwareAccelerated && n - i >= Vector128<float>.Count)
        {
            var acc = Vector128<float>.Zero;
            for (; i <= n - Vector128<float>.Count; i += Vector128<float>.Count)
            {
                acc = op.Accumulate<Vector128<float>, V128>(acc, i);
            }

            sum += V128.Sum(acc);
        }

        for (; i < n; i++)
        {
            sum = op.Accumulate<float, Scalar>(sum, i);
        }

        return sum;
    }
}
