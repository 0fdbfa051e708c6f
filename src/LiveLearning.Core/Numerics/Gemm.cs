using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace LiveLearning.Numerics;

/// <summary>
/// Matrix products for linear layers in the three forms training needs, plus GEMV for decoding. Layout follows
/// Hugging Face: a linear weight is <c>[out, in]</c> row-major, activations are <c>[tokens, features]</c>.
/// </summary>
/// <remarks>
/// <para>The kernels are register-blocked (an <c>MR x NR</c> tile of accumulators, one operand broadcast, the other
/// read from a packed panel) and widen F16/BF16 weights inside the kernel. Work is split over output tiles only,
/// and every output element is summed in an order that depends on the shapes and the SIMD width but never on the
/// thread count, so results are bitwise identical with and without a <see cref="ComputePool"/>.</para>
/// <para>Outputs must not overlap inputs. Scratch memory is rented from <see cref="ArrayPool{T}.Shared"/>, so the
/// hot path allocates nothing after warm-up.</para>
/// </remarks>
[SkipLocalsInit]
public static unsafe partial class Gemm
{
    /// <summary>K-block of the kernels that pack a <c>[K, N]</c> operand (backward passes).</summary>
    private const int KBlock = 384;

    /// <summary>Up to this many tokens the forward product runs as one GEMV per token.</summary>
    private const int GemvMaxTokens = 2;

    /// <summary>Tokens from which <c>dX = dY·W</c> runs through the forward kernel (below, the packed-panel product).</summary>
    private const int BackwardViaForwardMinTokens = 16;

    /// <summary>Largest K-chunk of the forward product (see <see cref="LinearKChunk"/>).</summary>
    private const int LinearKBlock = 1024;

    /// <summary>Below this many multiply-adds a product runs on the calling thread (dispatch would cost more).</summary>
    private const long ParallelMinWork = 1L << 16;

    /// <summary>Work items per pool thread: a little slack so a thread slowed by a neighbour does not hold everyone up.</summary>
    private const int ItemsPerThread = 4;

    /// <summary>
    /// <c>Y = X·Wᵀ</c>: <c>y[t,o] = (accumulate ? y[t,o] : 0) + Σ_i x[t,i]·w[o,i]</c>. One or two tokens run the GEMV path.
    /// </summary>
    /// <param name="y">Output <c>[tokens, w.Rows]</c>; must not overlap <paramref name="x"/> or the weights.</param>
    /// <param name="x">Input <c>[tokens, w.Cols]</c>.</param>
    /// <param name="w">Weight <c>[out, in]</c> stored as F32, F16 or BF16.</param>
    /// <param name="tokens">Number of rows of <paramref name="x"/>.</param>
    /// <param name="accumulate">Add to <paramref name="y"/> instead of overwriting it.</param>
    /// <param name="pool">Threads to use, or <see langword="null"/> for the calling thread only.</param>
    /// <exception cref="ArgumentException">If a length does not match the shape or the output overlaps an input.</exception>
    public static void Linear(Span<float> y, ReadOnlySpan<float> x, in WeightMatrix w, int tokens, bool accumulate = false, ComputePool? pool = null)
    {
        KernelChecks.NonNegative(tokens, nameof(tokens));
        KernelChecks.Length(x.Length, (long)tokens * w.Cols, nameof(x), "tokens*w.Cols");
        KernelChecks.Length(y.Length, (long)tokens * w.Rows, nameof(y), "tokens*w.Rows");
        KernelChecks.SeparateOutput(y, x, nameof(y), nameof(x));
        KernelChecks.SeparateOutput(y, w.Bytes.Span, nameof(y), nameof(w));
        fixed (float* py = y)
        fixed (float* px = x)
        fixed (byte* pw = w.Bytes.Span)
        {
            LinearCore(py, px, pw, w.Type, tokens, w.Rows, w.Cols, accumulate, pool);
        }
    }

    /// <summary><c>Y = X·Wᵀ</c> with a float32 weight given as a span <c>[outFeatures, inFeatures]</c>.</summary>
    /// <param name="y">Output <c>[tokens, outFeatures]</c>; must not overlap the inputs.</param>
    /// <param name="x">Input <c>[tokens, inFeatures]</c>.</param>
    /// <param name="w">Weight <c>[outFeatures, inFeatures]</c>.</param>
    /// <param name="tokens">Rows of <paramref name="x"/>.</param>
    /// <param name="outFeatures">Rows of <paramref name="w"/>.</param>
    /// <param name="inFeatures">Columns of <paramref name="w"/>.</param>
    /// <param name="accumulate">Add to <paramref name="y"/> instead of overwriting it.</param>
    /// <param name="pool">Threads to use, or <see langword="null"/>.</param>
    /// <exception cref="ArgumentException">If a length does not match the shape or the output overlaps an input.</exception>
    public static void Linear(Span<float> y, ReadOnlySpan<float> x, ReadOnlySpan<float> w, int tokens, int outFeatures, int inFeatures, bool accumulate = false, ComputePool? pool = null)
    {
        CheckShape(tokens, outFeatures, inFeatures);
        KernelChecks.Length(w.Length, (long)outFeatures * inFeatures, nameof(w), "outFeatures*inFeatures");
        KernelChecks.Length(x.Length, (long)tokens * inFeatures, nameof(x), "tokens*inFeatures");
        KernelChecks.Length(y.Length, (long)tokens * outFeatures, nameof(y), "tokens*outFeatures");
        KernelChecks.SeparateOutput(y, x, nameof(y), nameof(x));
        KernelChecks.SeparateOutput(y, w, nameof(y), nameof(w));
        fixed (float* py = y)
        fixed (float* px = x)
        fixed (float* pw = w)
        {
            LinearCore(py, px, (byte*)pw, WeightType.F32, tokens, outFeatures, inFeatures, accumulate, pool);
        }
    }

    /// <summary>
    /// Two or three projections of one input, <c>y_i = x·W_iᵀ</c> (q, k and v of an attention block; gate and up of an
    /// MLP): <paramref name="x"/> is packed once and one pass over the pool covers the rows of every weight. Each output
    /// equals what <see cref="Linear(Span{float}, ReadOnlySpan{float}, in WeightMatrix, int, bool, ComputePool?)"/>
    /// gives for its weight, bit for bit.
    /// </summary>
    /// <param name="x">Input <c>[tokens, in]</c>.</param>
    /// <param name="tokens">Rows of <paramref name="x"/>.</param>
    /// <param name="y0">Output <c>[tokens, w0.Rows]</c>.</param>
    /// <param name="w0">First weight <c>[out0, in]</c>.</param>
    /// <param name="y1">Output <c>[tokens, w1.Rows]</c>.</param>
    /// <param name="w1">Second weight <c>[out1, in]</c>, same element type as <paramref name="w0"/>.</param>
    /// <param name="y2">Output <c>[tokens, w2.Rows]</c>, or empty when there is no third weight.</param>
    /// <param name="w2">Third weight, or <see langword="default"/> when there is none.</param>
    /// <param name="pool">Threads to use, or <see langword="null"/>.</param>
    /// <exception cref="ArgumentException">
    /// If a length does not match the shape, the weights differ in input width or element type, or an output overlaps
    /// an input or another output.
    /// </exception>
    public static void LinearShared(ReadOnlySpan<float> x, int tokens, Span<float> y0, in WeightMatrix w0, Span<float> y1, in WeightMatrix w1, Span<float> y2 = default, in WeightMatrix w2 = default, ComputePool? pool = null)
    {
        KernelChecks.NonNegative(tokens, nameof(tokens));
        KernelChecks.Length(x.Length, (long)tokens * w0.Cols, nameof(x), "tokens*w0.Cols");
        CheckShared(w0, w1, nameof(w1));
        KernelChecks.Length(y0.Length, (long)tokens * w0.Rows, nameof(y0), "tokens*w0.Rows");
        KernelChecks.Length(y1.Length, (long)tokens * w1.Rows, nameof(y1), "tokens*w1.Rows");
        bool third = CheckThird(w0, w2, tokens, y2.Length, nameof(y2));
        KernelChecks.SeparateOutput(y0, x, nameof(y0), nameof(x));
        KernelChecks.SeparateOutput(y1, x, nameof(y1), nameof(x));
        KernelChecks.SeparateOutput(y1, y0, nameof(y1), nameof(y0));
        KernelChecks.SeparateOutput(y2, x, nameof(y2), nameof(x));
        KernelChecks.SeparateOutput(y2, y0, nameof(y2), nameof(y0));
        KernelChecks.SeparateOutput(y2, y1, nameof(y2), nameof(y1));

        foreach (ReadOnlyMemory<byte> w in (ReadOnlySpan<ReadOnlyMemory<byte>>)[w0.Bytes, w1.Bytes, w2.Bytes])
        {
            KernelChecks.SeparateOutput(y0, w.Span, nameof(y0), "a weight");
            KernelChecks.SeparateOutput(y1, w.Span, nameof(y1), "a weight");
            KernelChecks.SeparateOutput(y2, w.Span, nameof(y2), "a weight");
        }

        fixed (float* px = x)
        fixed (float* py0 = y0)
        fixed (float* py1 = y1)
        fixed (float* py2 = y2)
        fixed (byte* pw0 = w0.Bytes.Span)
        fixed (byte* pw1 = w1.Bytes.Span)
        fixed (byte* pw2 = w2.Bytes.Span)
        {
            var targets = new LinearTargets();
            targets.Add(py0, pw0, w0.Rows);
            targets.Add(py1, pw1, w1.Rows);
            if (third)
            {
                targets.Add(py2, pw2, w2.Rows);
            }

            var segments = new KSegments();
            segments.Add(px, null, w0.Cols);
            LinearCore(segments, w0.Type, tokens, targets, accumulate: false, transposed: false, pool);
        }
    }

    /// <summary><c>dX = dY·W</c>: <c>dx[t,i] = (accumulate ? dx[t,i] : 0) + Σ_o dy[t,o]·w[o,i]</c>.</summary>
    /// <param name="dx">Output <c>[tokens, w.Cols]</c>; must not overlap the inputs.</param>
    /// <param name="dy">Upstream gradient <c>[tokens, w.Rows]</c>.</param>
    /// <param name="w">Weight <c>[out, in]</c> stored as F32, F16 or BF16.</param>
    /// <param name="tokens">Rows of <paramref name="dy"/>.</param>
    /// <param name="accumulate">Add to <paramref name="dx"/> instead of overwriting it.</param>
    /// <param name="pool">Threads to use, or <see langword="null"/>.</param>
    /// <exception cref="ArgumentException">If a length does not match the shape or the output overlaps an input.</exception>
    public static void LinearBackwardInput(Span<float> dx, ReadOnlySpan<float> dy, in WeightMatrix w, int tokens, bool accumulate = false, ComputePool? pool = null)
    {
        KernelChecks.NonNegative(tokens, nameof(tokens));
        KernelChecks.Length(dy.Length, (long)tokens * w.Rows, nameof(dy), "tokens*w.Rows");
        KernelChecks.Length(dx.Length, (long)tokens * w.Cols, nameof(dx), "tokens*w.Cols");
        KernelChecks.SeparateOutput(dx, dy, nameof(dx), nameof(dy));
        KernelChecks.SeparateOutput(dx, w.Bytes.Span, nameof(dx), nameof(w));
        fixed (float* pdx = dx)
        fixed (float* pdy = dy)
        fixed (byte* pw = w.Bytes.Span)
        {
            BackwardInputCore(pdx, pdy, pw, w.Type, tokens, w.Rows, w.Cols, accumulate, pool);
        }
    }

    /// <summary>
    /// <c>dX = dY₀·W₀ + dY₁·W₁ (+ dY₂·W₂)</c>, the input gradient of projections that share one input (q, k and v; gate
    /// and up), as one product: the upstream gradients sit side by side in k, so the output is written once instead of
    /// once per weight. The result equals successive <see cref="LinearBackwardInput(Span{float}, ReadOnlySpan{float}, in WeightMatrix, int, bool, ComputePool?)"/>
    /// calls (the first with <paramref name="accumulate"/>, the rest accumulating), bit for bit.
    /// </summary>
    /// <param name="dx">Output <c>[tokens, in]</c>; must not overlap the inputs.</param>
    /// <param name="tokens">Rows of the upstream gradients.</param>
    /// <param name="dy0">Upstream gradient of <paramref name="w0"/>, <c>[tokens, w0.Rows]</c>.</param>
    /// <param name="w0">First weight <c>[out0, in]</c>.</param>
    /// <param name="dy1">Upstream gradient of <paramref name="w1"/>.</param>
    /// <param name="w1">Second weight <c>[out1, in]</c>, same element type as <paramref name="w0"/>.</param>
    /// <param name="dy2">Upstream gradient of <paramref name="w2"/>, or empty.</param>
    /// <param name="w2">Third weight, or <see langword="default"/> when there is none.</param>
    /// <param name="accumulate">Add to <paramref name="dx"/> instead of overwriting it.</param>
    /// <param name="pool">Threads to use, or <see langword="null"/>.</param>
    /// <exception cref="ArgumentException">
    /// If a length does not match the shape, the weights differ in input width or element type, or the output overlaps
    /// an input.
    /// </exception>
    public static void LinearBackwardInputShared(Span<float> dx, int tokens, ReadOnlySpan<float> dy0, in WeightMatrix w0, ReadOnlySpan<float> dy1, in WeightMatrix w1, ReadOnlySpan<float> dy2 = default, in WeightMatrix w2 = default, bool accumulate = false, ComputePool? pool = null)
    {
        KernelChecks.NonNegative(tokens, nameof(tokens));
        KernelChecks.Length(dx.Length, (long)tokens * w0.Cols, nameof(dx), "tokens*w0.Cols");
        CheckShared(w0, w1, nameof(w1));
        KernelChecks.Length(dy0.Length, (long)tokens * w0.Rows, nameof(dy0), "tokens*w0.Rows");
        KernelChecks.Length(dy1.Length, (long)tokens * w1.Rows, nameof(dy1), "tokens*w1.Rows");
        bool third = CheckThird(w0, w2, tokens, dy2.Length, nameof(dy2));

        KernelChecks.SeparateOutput(dx, dy0, nameof(dx), nameof(dy0));
        KernelChecks.SeparateOutput(dx, dy1, nameof(dx), nameof(dy1));
        KernelChecks.SeparateOutput(dx, dy2, nameof(dx), nameof(dy2));
        KernelChecks.SeparateOutput(dx, w0.Bytes.Span, nameof(dx), nameof(w0));
        KernelChecks.SeparateOutput(dx, w1.Bytes.Span, nameof(dx), nameof(w1));
        KernelChecks.SeparateOutput(dx, w2.Bytes.Span, nameof(dx), nameof(w2));
        fixed (float* pdx = dx)
        fixed (float* pdy0 = dy0)
        fixed (float* pdy1 = dy1)
        fixed (float* pdy2 = dy2)
        fixed (byte* pw0 = w0.Bytes.Span)
        fixed (byte* pw1 = w1.Bytes.Span)
        fixed (byte* pw2 = w2.Bytes.Span)
        {
            if (tokens < BackwardViaForwardMinTokens)
            {
                BackwardInputCore(pdx, pdy0, pw0, w0.Type, tokens, w0.Rows, w0.Cols, accumulate, pool);
                BackwardInputCore(pdx, pdy1, pw1, w1.Type, tokens, w1.Rows, w1.Cols, true, pool);
                if (third)
                {
                    BackwardInputCore(pdx, pdy2, pw2, w2.Type, tokens, w2.Rows, w2.Cols, true, pool);
                }

                return;
            }

            var targets = new LinearTargets();
            targets.Add(pdx, null, w0.Cols);
            var segments = new KSegments();
            segments.Add(pdy0, pw0, w0.Rows);
            segments.Add(pdy1, pw1, w1.Rows);
            if (third)
            {
                segments.Add(pdy2, pw2, w2.Rows);
            }

            LinearCore(segments, w0.Type, tokens, targets, accumulate, transposed: true, pool);
        }
    }

    /// <summary><c>dX = dY·W</c> with a float32 weight given as a span <c>[outFeatures, inFeatures]</c>.</summary>
    /// <param name="dx">Output <c>[tokens, inFeatures]</c>; must not overlap the inputs.</param>
    /// <param name="dy">Upstream gradient <c>[tokens, outFeatures]</c>.</param>
    /// <param name="w">Weight <c>[outFeatures, inFeatures]</c>.</param>
    /// <param name="tokens">Rows of <paramref name="dy"/>.</param>
    /// <param name="outFeatures">Rows of <paramref name="w"/>.</param>
    /// <param name="inFeatures">Columns of <paramref name="w"/>.</param>
    /// <param name="accumulate">Add to <paramref name="dx"/> instead of overwriting it.</param>
    /// <param name="pool">Threads to use, or <see langword="null"/>.</param>
    /// <exception cref="ArgumentException">If a length does not match the shape or the output overlaps an input.</exception>
    public static void LinearBackwardInput(Span<float> dx, ReadOnlySpan<float> dy, ReadOnlySpan<float> w, int tokens, int outFeatures, int inFeatures, bool accumulate = false, ComputePool? pool = null)
    {
        CheckShape(tokens, outFeatures, inFeatures);
        KernelChecks.Length(w.Length, (long)outFeatures * inFeatures, nameof(w), "outFeatures*inFeatures");
        KernelChecks.Length(dy.Length, (long)tokens * outFeatures, nameof(dy), "tokens*outFeatures");
        KernelChecks.Length(dx.Length, (long)tokens * inFeatures, nameof(dx), "tokens*inFeatures");
        KernelChecks.SeparateOutput(dx, dy, nameof(dx), nameof(dy));
        KernelChecks.SeparateOutput(dx, w, nameof(dx), nameof(w));
        fixed (float* pdx = dx)
        fixed (float* pdy = dy)
        fixed (float* pw = w)
        {
            BackwardInputCore(pdx, pdy, (byte*)pw, WeightType.F32, tokens, outFeatures, inFeatures, accumulate, pool);
        }
    }

    /// <summary><c>dW = dYᵀ·X</c>: <c>dw[o,i] = (accumulate ? dw[o,i] : 0) + Σ_t dy[t,o]·x[t,i]</c>.</summary>
    /// <param name="dw">Output <c>[outFeatures, inFeatures]</c>; must not overlap the inputs.</param>
    /// <param name="dy">Upstream gradient <c>[tokens, outFeatures]</c>.</param>
    /// <param name="x">Layer input <c>[tokens, inFeatures]</c>.</param>
    /// <param name="tokens">Rows of <paramref name="dy"/> and <paramref name="x"/>.</param>
    /// <param name="outFeatures">Columns of <paramref name="dy"/>.</param>
    /// <param name="inFeatures">Columns of <paramref name="x"/>.</param>
    /// <param name="accumulate">Add to <paramref name="dw"/> instead of overwriting it (the usual case for gradients).</param>
    /// <param name="pool">Threads to use, or <see langword="null"/>.</param>
    /// <exception cref="ArgumentException">If a length does not match the shape or the output overlaps an input.</exception>
    public static void LinearBackwardWeight(Span<float> dw, ReadOnlySpan<float> dy, ReadOnlySpan<float> x, int tokens, int outFeatures, int inFeatures, bool accumulate = false, ComputePool? pool = null)
    {
        CheckShape(tokens, outFeatures, inFeatures);
        KernelChecks.Length(dy.Length, (long)tokens * outFeatures, nameof(dy), "tokens*outFeatures");
        KernelChecks.Length(x.Length, (long)tokens * inFeatures, nameof(x), "tokens*inFeatures");
        KernelChecks.Length(dw.Length, (long)outFeatures * inFeatures, nameof(dw), "outFeatures*inFeatures");
        KernelChecks.SeparateOutput(dw, dy, nameof(dw), nameof(dy));
        KernelChecks.SeparateOutput(dw, x, nameof(dw), nameof(x));
        fixed (float* pdw = dw)
        fixed (float* pdy = dy)
        fixed (float* px = x)
        {
            // A[m = o, k = t] = dy[t, o]: consecutive o are adjacent, consecutive t are a row apart.
            PackedProduct(pdw, outFeatures, inFeatures, tokens, pdy, 1, outFeatures, (byte*)px, WeightType.F32, inFeatures, accumulate, pool);
        }
    }

    /// <summary>GEMV for one token (decoding): <c>y[o] = (accumulate ? y[o] : 0) + Σ_i w[o,i]·x[i]</c>.</summary>
    /// <param name="y">Output of <c>w.Rows</c> elements; must not overlap the inputs.</param>
    /// <param name="x">Input of <c>w.Cols</c> elements.</param>
    /// <param name="w">Weight <c>[out, in]</c> stored as F32, F16 or BF16.</param>
    /// <param name="accumulate">Add to <paramref name="y"/> instead of overwriting it.</param>
    /// <param name="pool">Threads to use, or <see langword="null"/>.</param>
    /// <exception cref="ArgumentException">If a length does not match the shape or the output overlaps an input.</exception>
    public static void Gemv(Span<float> y, ReadOnlySpan<float> x, in WeightMatrix w, bool accumulate = false, ComputePool? pool = null)
    {
        KernelChecks.Length(x.Length, w.Cols, nameof(x), "w.Cols");
        KernelChecks.Length(y.Length, w.Rows, nameof(y), "w.Rows");
        KernelChecks.SeparateOutput(y, x, nameof(y), nameof(x));
        KernelChecks.SeparateOutput(y, w.Bytes.Span, nameof(y), nameof(w));
        fixed (float* py = y)
        fixed (float* px = x)
        fixed (byte* pw = w.Bytes.Span)
        {
            GemvCore(py, px, pw, w.Type, w.Rows, w.Cols, accumulate, pool);
        }
    }

    // ---------------------------------------------------------------- validation

    private static void CheckShape(int tokens, int outFeatures, int inFeatures)
    {
        KernelChecks.NonNegative(tokens, nameof(tokens));
        KernelChecks.NonNegative(outFeatures, nameof(outFeatures));
        KernelChecks.NonNegative(inFeatures, nameof(inFeatures));
    }

    /// <summary>Whether the optional third weight is given (then checked like the second, its span against its rows).</summary>
    private static bool CheckThird(in WeightMatrix first, in WeightMatrix third, int tokens, int spanLength, string spanName)
    {
        if (third.Bytes.IsEmpty && third.Rows == 0)
        {
            if (spanLength != 0)
            {
                throw new ArgumentException($"{spanName} is given without a third weight.", spanName);
            }

            return false;
        }

        CheckShared(first, third, "w2");
        KernelChecks.Length(spanLength, (long)tokens * third.Rows, spanName, "tokens*w2.Rows");
        return true;
    }

    private static void CheckShared(in WeightMatrix first, in WeightMatrix other, string name)
    {
        if (other.Cols != first.Cols || other.Type != first.Type)
        {
            throw new ArgumentException($"{name} is [{other.Rows}, {other.Cols}] {other.Type} but the first weight is [{first.Rows}, {first.Cols}] {first.Type}; shared-input projections need the same input width and element type.", name);
        }
    }

    // ---------------------------------------------------------------- drivers

    /// <summary>Panel width: columns of the packed operand processed by one micro-kernel call.</summary>
    private static int Nr => Vector512.IsHardwareAccelerated ? 32 : Vector256.IsHardwareAccelerated ? 16 : 8;

    /// <summary>Rows of the broadcast operand processed by one micro-kernel call.</summary>
    private static int Mr => Vector512.IsHardwareAccelerated ? 8 : Vector256.IsHardwareAccelerated ? 6 : 4;

    private static float* Align64(float* p) => (float*)(((nint)p + 63) & ~(nint)63);

    private static int ItemCount(int units, long work, ComputePool? pool)
    {
        if (pool is null || pool.ThreadCount == 1 || work < ParallelMinWork)
        {
            return Math.Min(units, 1);
        }

        return Math.Min(units, pool.ThreadCount * ItemsPerThread);
    }

    private static void ClearOutput(float* c, long count)
    {
        for (long i = 0; i < count; i += int.MaxValue)
        {
            new Span<float>(c + i, (int)Math.Min(int.MaxValue, count - i)).Clear();
        }
    }

    /// <summary>
    /// <c>y = x·wᵀ</c> computed as <c>yᵀ = w·xᵀ</c>: the weight rows are the broadcast operand (read in place, or
    /// widened per row block) and <c>xᵀ</c>, packed once into token panels, is the vector operand.
    /// </summary>
    private static void LinearCore(float* y, float* x, byte* w, WeightType type, int tokens, int outF, int inF, bool accumulate, ComputePool? pool)
        => LinearCore(y, x, w, type, tokens, outF, inF, accumulate, transposed: false, pool);

    /// <summary>
    /// The forward driver; with <paramref name="transposed"/> the weight is stored <c>[inF, outF]</c>, which is how
    /// <c>dX = dY·W</c> reuses it (<c>y</c> = dX, <c>x</c> = dY, <c>outF</c> = W's columns, <c>inF</c> = W's rows).
    /// </summary>
    private static void LinearCore(float* y, float* x, byte* w, WeightType type, int tokens, int outF, int inF, bool accumulate, bool transposed, ComputePool? pool)
    {
        var targets = new LinearTargets();
        targets.Add(y, w, outF);
        var segments = new KSegments();
        segments.Add(x, null, inF);
        LinearCore(segments, type, tokens, targets, accumulate, transposed, pool);
    }

    /// <summary>
    /// The forward driver over one or more weights sharing one packed input (<paramref name="targets"/>), or, transposed,
    /// one output summed over several inputs and weights side by side in k (<paramref name="segments"/>).
    /// </summary>
    private static void LinearCore(KSegments segments, WeightType type, int tokens, LinearTargets targets, bool accumulate, bool transposed, ComputePool? pool)
    {
        int inF = segments.Total;
        float* x = segments[0].X;
        if (tokens == 0 || targets.TotalBlocks == 0)
        {
            return;
        }

        if (!transposed && tokens == 1)
        {
            // Decoding: one GEMV pass over the rows of every weight.
            GemvCore(targets, x, type, inF, accumulate, pool);
            return;
        }

        if (inF == 0 || (!transposed && (tokens <= GemvMaxTokens || UseFewTokens(tokens))))
        {
            // Paths without a packed input: one product per weight.
            for (int i = 0; i < targets.Count; i++)
            {
                LinearTarget t = targets[i];
                LinearSmall(t.Y, x, t.W, type, tokens, t.OutF, inF, accumulate, pool);
            }

            return;
        }

        int nr = Nr;
        int panels = (tokens + nr - 1) / nr;
        int packLength = checked(panels * nr * inF);
        float[] rented = ArrayPool<float>.Shared.Rent(packLength + 16);
        try
        {
            fixed (float* raw = rented)
            {
                float* xt = Align64(raw);
                for (int i = 0; i < segments.Count; i++)
                {
                    KSegment seg = segments[i];
                    PackTransposed(seg.X, tokens, seg.K, xt, nr, pool, inF, seg.Offset);
                }

                var job = new LinearJob
                {
                    Targets = targets,
                    Segments = segments,
                    XT = xt,
                    Type = type,
                    Tokens = tokens,
                    InF = inF,
                    Accumulate = accumulate,
                    Transposed = transposed,
                };
                job.Items = ItemCount(targets.TotalBlocks, (long)tokens * targets.TotalRows * inF, pool);
                ComputePool.Run(pool, job.Items, ref job);
            }
        }
        finally
        {
            ArrayPool<float>.Shared.Return(rented);
        }
    }

    /// <summary>The forward product without packing: no input columns, one or two tokens (GEMV) or a few (see <see cref="UseFewTokens"/>).</summary>
    private static void LinearSmall(float* y, float* x, byte* w, WeightType type, int tokens, int outF, int inF, bool accumulate, ComputePool? pool)
    {
        if (inF == 0)
        {
            if (!accumulate)
            {
                ClearOutput(y, (long)tokens * outF);
            }
        }
        else if (UseFewTokens(tokens))
        {
            FewTokensCore(y, x, w, type, tokens, outF, inF, accumulate, pool);
        }
        else
        {
            // The register tile is NR tokens wide, so a couple of tokens would waste most of it; a GEMV per
            // token streams the weight once per token instead, which is cheaper up to two tokens.
            for (int t = 0; t < tokens; t++)
            {
                GemvCore(y + ((nint)t * outF), x + ((nint)t * inF), w, type, outF, inF, accumulate, pool);
            }
        }
    }

    /// <summary>One weight of a forward product and its output.</summary>
    private struct LinearTarget
    {
        public float* Y;
        public byte* W;
        public int OutF;
        public int Blocks;
    }

    /// <summary>
    /// One input of a product, <c>[tokens, K]</c>, at k offset <see cref="Offset"/> of the packed panels; transposed, with
    /// its own weight <c>[K, out]</c> (<see langword="null"/>: the target's).
    /// </summary>
    private struct KSegment
    {
        public float* X;
        public byte* W;
        public int K;
        public int Offset;
    }

    /// <summary>Room for the (at most three) weights or inputs of one product, inline so a job struct stays a value.</summary>
    [InlineArray(3)]
    private struct Three<T>
    {
        private T _first;
    }

    /// <summary>Up to three inputs laid side by side in k: <c>dX = Σ dY_i·W_i</c> as one product.</summary>
    private struct KSegments
    {
        private Three<KSegment> _items;

        public int Count { get; private set; }

        public int Total { get; private set; }

        public readonly KSegment this[int i] => _items[i];

        public void Add(float* x, byte* w, int k)
        {
            _items[Count++] = new KSegment { X = x, W = w, K = k, Offset = Total };
            Total += k;
        }
    }

    /// <summary>Up to three weights sharing one packed input; their row blocks are numbered one after another.</summary>
    private struct LinearTargets
    {
        private Three<LinearTarget> _items;

        public int Count { get; private set; }

        public int TotalBlocks { get; private set; }

        public long TotalRows { get; private set; }

        public readonly LinearTarget this[int i] => _items[i];

        public void Add(float* y, byte* w, int outF)
        {
            var t = new LinearTarget { Y = y, W = w, OutF = outF, Blocks = (outF + Mr - 1) / Mr };
            _items[Count++] = t;
            TotalBlocks += t.Blocks;
            TotalRows += outF;
        }

        /// <summary>The target holding global row block <paramref name="block"/>, which becomes the block's index within it.</summary>
        public readonly LinearTarget Find(ref int block)
        {
            int i = 0;
            while (i < Count - 1 && block >= _items[i].Blocks)
            {
                block -= _items[i].Blocks;
                i++;
            }

            return _items[i];
        }
    }

    /// <summary>
    /// K-chunk of the forward product: K is cut into equal chunks of at most <see cref="LinearKBlock"/> so the
    /// token panels' slice stays in L2 while the weight streams past. Depends on K only (determinism).
    /// </summary>
    private static int LinearKChunk(int k)
    {
        int chunks = Math.Max(1, (k + LinearKBlock - 1) / LinearKBlock);
        return (k + chunks - 1) / chunks;
    }

    /// <summary>
    /// <c>dX = dY·W</c>. From <see cref="BackwardViaForwardMinTokens"/> tokens on it runs as <c>dXᵀ = Wᵀ·dYᵀ</c> through the
    /// forward kernel (the weight read in place as the broadcast operand, dYᵀ packed into token panels), which is faster
    /// than packing weight panels; fewer tokens use the packed-panel product.
    /// </summary>
    private static void BackwardInputCore(float* dx, float* dy, byte* w, WeightType type, int tokens, int outF, int inF, bool accumulate, ComputePool? pool)
    {
        if (tokens >= BackwardViaForwardMinTokens)
        {
            LinearCore(dx, dy, w, type, tokens, inF, outF, accumulate, transposed: true, pool);
        }
        else
        {
            PackedProduct(dx, tokens, inF, outF, dy, outF, 1, w, type, inF, accumulate, pool);
        }
    }

    /// <summary>
    /// <c>C[m, n] = (accumulate ? C : 0) + Σ_k A[m, k]·B[k, n]</c> with <c>C</c> row-major <c>[m, n]</c>, <c>A</c>
    /// read in place at <c>a[m*aRowStride + k*aColStride]</c> and <c>B</c> row-major <c>[k, n]</c> (row stride
    /// <paramref name="ldb"/>, any weight type), packed per <see cref="KBlock"/> x NR panel.
    /// </summary>
    private static void PackedProduct(float* c, int m, int n, int k, float* a, nint aRowStride, nint aColStride, byte* b, WeightType bType, nint ldb, bool accumulate, ComputePool? pool)
    {
        if (m == 0 || n == 0)
        {
            return;
        }

        if (k == 0)
        {
            if (!accumulate)
            {
                ClearOutput(c, (long)m * n);
            }

            return;
        }

        int panels = (n + Nr - 1) / Nr;
        var job = new PackedJob
        {
            C = c,
            A = a,
            B = b,
            BType = bType,
            M = m,
            N = n,
            K = k,
            ARowStride = aRowStride,
            AColStride = aColStride,
            Ldb = ldb,
            Accumulate = accumulate,
            Panels = panels,
        };
        job.Items = ItemCount(panels, (long)m * n * k, pool);
        ComputePool.Run(pool, job.Items, ref job);
    }

    /// <summary>
    /// One micro-tile: <c>C[rows, cols] (+)= A[rows, kc]·panel[kc, cols]</c>, <c>A</c> read as <typeparamref name="TSource"/>
    /// with byte strides. Full tiles with unit column stride are written directly; edge tiles and transposed outputs go
    /// through <paramref name="tile"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void MicroTile<TSource>(byte* a, nint aRowStride, nint aColStride, float* panel, int kc, int rows, int cols, float* c, nint cRowStride, nint cColStride, bool add, float* tile)
        where TSource : struct, IBroadcastSource
    {
        int nr = Nr;
        if (cols == nr && cColStride == 1)
        {
            Kernel<TSource>(rows, a, aRowStride, aColStride, panel, kc, c, cRowStride, add);
            return;
        }

        Kernel<TSource>(rows, a, aRowStride, aColStride, panel, kc, tile, nr, false);
        if (cRowStride == 1)
        {
            int j = 0;
            if (rows == 8 && Avx.IsSupported)
            {
                for (; j <= cols - 8; j += 8)
                {
                    Transpose8x8(tile + j, nr, c + ((nint)j * cColStride), cColStride, add);
                }
            }

            for (; j < cols; j++)
            {
                float* dst = c + ((nint)j * cColStride);
                for (int r = 0; r < rows; r++)
                {
                    float v = tile[(r * nr) + j];
                    dst[r] = add ? dst[r] + v : v;
                }
            }
        }
        else
        {
            for (int r = 0; r < rows; r++)
            {
                float* dst = c + (r * cRowStride);
                for (int j = 0; j < cols; j++)
                {
                    float v = tile[(r * nr) + j];
                    float* d = dst + ((nint)j * cColStride);
                    *d = add ? *d + v : v;
                }
            }
        }
    }

    /// <summary>
    /// <c>dst[q, r] (+)= src[r, q]</c> for an 8x8 block: the classic unpack / shuffle / lane-permute transpose.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Transpose8x8(float* src, nint srcStride, float* dst, nint dstStride, bool add)
    {
        Vector256<float> r0 = Vector256.Load(src), r1 = Vector256.Load(src + srcStride);
        Vector256<float> r2 = Vector256.Load(src + (2 * srcStride)), r3 = Vector256.Load(src + (3 * srcStride));
        Vector256<float> r4 = Vector256.Load(src + (4 * srcStride)), r5 = Vector256.Load(src + (5 * srcStride));
        Vector256<float> r6 = Vector256.Load(src + (6 * srcStride)), r7 = Vector256.Load(src + (7 * srcStride));
        Vector256<float> t0 = Avx.UnpackLow(r0, r1), t1 = Avx.UnpackHigh(r0, r1), t2 = Avx.UnpackLow(r2, r3), t3 = Avx.UnpackHigh(r2, r3);
        Vector256<float> t4 = Avx.UnpackLow(r4, r5), t5 = Avx.UnpackHigh(r4, r5), t6 = Avx.UnpackLow(r6, r7), t7 = Avx.UnpackHigh(r6, r7);
        Vector256<float> u0 = Avx.Shuffle(t0, t2, 0x44), u1 = Avx.Shuffle(t0, t2, 0xEE), u2 = Avx.Shuffle(t1, t3, 0x44), u3 = Avx.Shuffle(t1, t3, 0xEE);
        Vector256<float> u4 = Avx.Shuffle(t4, t6, 0x44), u5 = Avx.Shuffle(t4, t6, 0xEE), u6 = Avx.Shuffle(t5, t7, 0x44), u7 = Avx.Shuffle(t5, t7, 0xEE);
        Store8(dst, Avx.Permute2x128(u0, u4, 0x20), add);
        Store8(dst + dstStride, Avx.Permute2x128(u1, u5, 0x20), add);
        Store8(dst + (2 * dstStride), Avx.Permute2x128(u2, u6, 0x20), add);
        Store8(dst + (3 * dstStride), Avx.Permute2x128(u3, u7, 0x20), add);
        Store8(dst + (4 * dstStride), Avx.Permute2x128(u0, u4, 0x31), add);
        Store8(dst + (5 * dstStride), Avx.Permute2x128(u1, u5, 0x31), add);
        Store8(dst + (6 * dstStride), Avx.Permute2x128(u2, u6, 0x31), add);
        Store8(dst + (7 * dstStride), Avx.Permute2x128(u3, u7, 0x31), add);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store8(float* dst, Vector256<float> value, bool add)
        => (add ? Vector256.Load(dst) + value : value).Store(dst);

}
