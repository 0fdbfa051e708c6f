using System.Runtime.CompilerServices;
using System.Numerics.Tensors;

namespace LiveLearning.Numerics;

/// <summary>
/// Root-mean-square layer normalisation as in Llama-family models, computed in float32:
/// <c>y[t, j] = weight[j] · (x[t, j] · rstd[t])</c> with <c>rstd[t] = 1 / sqrt(mean_j x[t, j]² + eps)</c>
/// (no <c>1 + weight</c> offset). Rows are <c>[tokens, dim]</c>, row-major.
/// </summary>
public static class RmsNorm
{
    /// <summary>Normalises every row of <paramref name="x"/> into <paramref name="y"/>.</summary>
    /// <param name="y">Output <c>[tokens, dim]</c>; may be exactly <paramref name="x"/> (in place), must not otherwise overlap it.</param>
    /// <param name="rstd">Receives <c>1 / rms</c> per row (<c>[tokens]</c>), kept for <see cref="Backward"/>; may be empty when not needed.</param>
    /// <param name="x">Input <c>[tokens, dim]</c>.</param>
    /// <param name="weight">Per-feature scale <c>[dim]</c>.</param>
    /// <param name="tokens">Number of rows.</param>
    /// <param name="dim">Row length (at least 1).</param>
    /// <param name="eps">Added to the mean square before the square root (non-negative).</param>
    /// <param name="pool">Optional pool: rows are split over its threads (each row is computed the same way either way).</param>
    /// <exception cref="ArgumentException">A length does not match the shape, or outputs overlap inputs.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A shape is out of range or <paramref name="eps"/> is negative or NaN.</exception>
    public static unsafe void Forward(Span<float> y, Span<float> rstd, ReadOnlySpan<float> x, ReadOnlySpan<float> weight, int tokens, int dim, float eps, ComputePool? pool = null)
    {
        KernelChecks.NonNegative(tokens, nameof(tokens));
        KernelChecks.Positive(dim, nameof(dim));
        if (!(eps >= 0))
        {
            throw new ArgumentOutOfRangeException(nameof(eps), eps, "eps must be a non-negative number.");
        }

        long size = (long)tokens * dim;
        KernelChecks.Length(y.Length, size, nameof(y), "tokens*dim");
        KernelChecks.Length(x.Length, size, nameof(x), "tokens*dim");
        KernelChecks.Length(weight.Length, dim, nameof(weight), "dim");
        if (!rstd.IsEmpty)
        {
            KernelChecks.Length(rstd.Length, tokens, nameof(rstd), "tokens (or 0)");
        }

        KernelChecks.NoOverlap(y, x, nameof(y), nameof(x), allowIdentical: true);
        KernelChecks.NoOverlap(y, weight, nameof(y), nameof(weight));
        KernelChecks.NoOverlap(rstd, x, nameof(rstd), nameof(x));
        KernelChecks.NoOverlap(rstd, y, nameof(rstd), nameof(y));
        KernelChecks.NoOverlap(rstd, weight, nameof(rstd), nameof(weight));

        if (tokens == 0)
        {
            return;
        }

        fixed (float* py = y, pr = rstd, px = x, pw = weight)
        {
            var job = new RowsJob { Y = py, Rstd = rstd.IsEmpty ? null : pr, X = px, Weight = pw, Tokens = tokens, Dim = dim, Eps = eps, Items = ComputePool.RowItems(pool, tokens, (long)tokens * dim) };
            ComputePool.Run(job.Items == 1 ? null : pool, job.Items, ref job);
        }
    }

    /// <summary>Rows of <see cref="Forward"/> for <paramref name="t0"/> ≤ t &lt; <paramref name="t1"/>.</summary>
    private static void ForwardRows(Span<float> y, Span<float> rstd, ReadOnlySpan<float> x, ReadOnlySpan<float> weight, int dim, float eps, int t0, int t1)
    {
        for (int t = t0; t < t1; t++)
        {
            ReadOnlySpan<float> row = x.Slice(t * dim, dim);
            float r = 1f / MathF.Sqrt((TensorPrimitives.SumOfSquares(row) / dim) + eps);
            if (!rstd.IsEmpty)
            {
                rstd[t] = r;
            }

            ScaleRow(y.Slice(t * dim, dim), row, r, weight);
        }
    }

    /// <summary>Contiguous row ranges of a forward or backward pass (rows are independent, so the split changes nothing).</summary>
    private unsafe struct RowsJob : IParallelJob
    {
        public float* Y;
        public float* Rstd;
        public float* X;
        public float* Weight;
        public float* Dx;
        public float* Dy;
        public int Tokens;
        public int Dim;
        public float Eps;
        public int Items;
        public bool Backward;

        public readonly void Execute(int index)
        {
            (int t0, int t1) = ComputePool.ItemRange(Tokens, index, Items);
            long size = (long)Tokens * Dim;
            var x = new ReadOnlySpan<float>(X, (int)size);
            var weight = new ReadOnlySpan<float>(Weight, Dim);
            if (Backward)
            {
                BackwardRows(new Span<float>(Dx, (int)size), Span<float>.Empty, new ReadOnlySpan<float>(Dy, (int)size), x, weight, new ReadOnlySpan<float>(Rstd, Tokens), Dim, t0, t1);
            }
            else
            {
                ForwardRows(new Span<float>(Y, (int)size), Rstd == null ? Span<float>.Empty : new Span<float>(Rstd, Tokens), x, weight, Dim, Eps, t0, t1);
            }
        }
    }

    /// <summary>
    /// Accumulates the gradients of <see cref="Forward"/>: with <c>u = dy ⊙ weight</c> and <c>r = rstd[t]</c>,
    /// <c>dx += r·u − (r³/dim)·x·Σ_j u_j x_j</c> and <c>dWeight += Σ_t dy ⊙ x · r</c>.
    /// </summary>
    /// <param name="dx">Input gradient <c>[tokens, dim]</c>, accumulated into; must not overlap any input.</param>
    /// <param name="dWeight">Weight gradient <c>[dim]</c>, accumulated into; empty to skip it.</param>
    /// <param name="dy">Output gradient <c>[tokens, dim]</c>.</param>
    /// <param name="x">The forward input <c>[tokens, dim]</c>.</param>
    /// <param name="weight">The forward weight <c>[dim]</c>.</param>
    /// <param name="rstd">The <c>rstd</c> written by <see cref="Forward"/> (<c>[tokens]</c>).</param>
    /// <param name="tokens">Number of rows.</param>
    /// <param name="dim">Row length (at least 1).</param>
    /// <param name="pool">Optional pool: without <paramref name="dWeight"/> rows are split over its threads (each row is
    /// computed the same way either way); the weight gradient, a sum over rows, is always accumulated in row order on
    /// the calling thread.</param>
    /// <exception cref="ArgumentException">A length does not match the shape, or outputs overlap inputs.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A shape is out of range.</exception>
    public static unsafe void Backward(Span<float> dx, Span<float> dWeight, ReadOnlySpan<float> dy, ReadOnlySpan<float> x, ReadOnlySpan<float> weight, ReadOnlySpan<float> rstd, int tokens, int dim, ComputePool? pool = null)
    {
        KernelChecks.NonNegative(tokens, nameof(tokens));
        KernelChecks.Positive(dim, nameof(dim));
        long size = (long)tokens * dim;
        KernelChecks.Length(dx.Length, size, nameof(dx), "tokens*dim");
        if (!dWeight.IsEmpty)
        {
            KernelChecks.Length(dWeight.Length, dim, nameof(dWeight), "dim (or 0)");
        }

        KernelChecks.Length(dy.Length, size, nameof(dy), "tokens*dim");
        KernelChecks.Length(x.Length, size, nameof(x), "tokens*dim");
        KernelChecks.Length(weight.Length, dim, nameof(weight), "dim");
        KernelChecks.Length(rstd.Length, tokens, nameof(rstd), "tokens");
        KernelChecks.NoOverlap(dx, dy, nameof(dx), nameof(dy));
        KernelChecks.NoOverlap(dx, x, nameof(dx), nameof(x));
        KernelChecks.NoOverlap(dx, weight, nameof(dx), nameof(weight));
        KernelChecks.NoOverlap(dx, rstd, nameof(dx), nameof(rstd));
        KernelChecks.NoOverlap(dx, dWeight, nameof(dx), nameof(dWeight));
        KernelChecks.NoOverlap(dWeight, dy, nameof(dWeight), nameof(dy));
        KernelChecks.NoOverlap(dWeight, x, nameof(dWeight), nameof(x));
        KernelChecks.NoOverlap(dWeight, weight, nameof(dWeight), nameof(weight));
        KernelChecks.NoOverlap(dWeight, rstd, nameof(dWeight), nameof(rstd));

        int items = ComputePool.RowItems(pool, tokens, (long)tokens * dim);
        if (!dWeight.IsEmpty || items == 1)
        {
            BackwardRows(dx, dWeight, dy, x, weight, rstd, dim, 0, tokens);
            return;
        }

        fixed (float* pdx = dx, pdy = dy, px = x, pw = weight, pr = rstd)
        {
            var job = new RowsJob { Dx = pdx, Dy = pdy, X = px, Weight = pw, Rstd = pr, Tokens = tokens, Dim = dim, Items = items, Backward = true };
            ComputePool.Run(pool, job.Items, ref job);
        }
    }

    /// <summary>Rows of <see cref="Backward"/> for <paramref name="t0"/> ≤ t &lt; <paramref name="t1"/>.</summary>
    private static void BackwardRows(Span<float> dx, Span<float> dWeight, ReadOnlySpan<float> dy, ReadOnlySpan<float> x, ReadOnlySpan<float> weight, ReadOnlySpan<float> rstd, int dim, int t0, int t1)
    {
        for (int t = t0; t < t1; t++)
        {
            ReadOnlySpan<float> xRow = x.Slice(t * dim, dim);
            ReadOnlySpan<float> dyRow = dy.Slice(t * dim, dim);
            float r = rstd[t];
            float dot = Dot3(dyRow, weight, xRow);
            float c = r * r * r * dot / dim;
            BackwardRow(dx.Slice(t * dim, dim), dWeight, dyRow, xRow, weight, r, c);
        }
    }

    /// <summary>y = (x · r) · w, element-wise.</summary>
    private static unsafe void ScaleRow(Span<float> y, ReadOnlySpan<float> x, float r, ReadOnlySpan<float> w)
    {
        fixed (float* py = y, px = x, pw = w)
        {
            VecLoops.Map(new ScaleOp { Y = py, X = px, W = pw, R = r }, y.Length);
        }
    }

    /// <summary>Σ a·b·c with vector accumulators.</summary>
    private static unsafe float Dot3(ReadOnlySpan<float> a, ReadOnlySpan<float> b, ReadOnlySpan<float> c)
    {
        fixed (float* pa = a, pb = b, pc = c)
        {
            return VecLoops.Sum(new Dot3Op { A = pa, B = pb, C = pc }, a.Length);
        }
    }

    /// <summary>dx += r·dy·w − c·x ; dw += dy·x·r (when dw is not empty).</summary>
    private static unsafe void BackwardRow(Span<float> dx, Span<float> dw, ReadOnlySpan<float> dy, ReadOnlySpan<float> x, ReadOnlySpan<float> w, float r, float c)
    {
        fixed (float* pdx = dx, pdw = dw, pdy = dy, px = x, pw = w)
        {
            VecLoops.Map(new BackwardOp { Dx = pdx, Dw = dw.IsEmpty ? null : pdw, Dy = pdy, X = px, W = pw, R = r, C = c }, dx.Length);
        }
    }

    /// <summary>y = (x · r) · w.</summary>
    private unsafe struct ScaleOp : IMapOp
    {
        public float* Y;
        public float* X;
        public float* W;
        public float R;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public readonly void Invoke<TV, TOps>(nint i)
            where TV : struct
            where TOps : struct, IVecOps<TV>
            => TOps.Store(TOps.Multiply(TOps.Multiply(TOps.Load(X + i), TOps.Splat(R)), TOps.Load(W + i)), Y + i);
    }

    /// <summary>acc + (a · b) · c: one rounding for the vector accumulate (fused), two for the scalar tail.</summary>
    private unsafe struct Dot3Op : ISumOp
    {
        public float* A;
        public float* B;
        public float* C;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public readonly TV Accumulate<TV, TOps>(TV acc, nint i)
            where TV : struct
            where TOps : struct, IVecOps<TV>
        {
            TV ab = TOps.Multiply(TOps.Load(A + i), TOps.Load(B + i));
            return TOps.Count == 1
                ? TOps.Add(acc, TOps.Multiply(ab, TOps.Load(C + i)))
                : TOps.FusedMultiplyAdd(ab, TOps.Load(C + i), acc);
        }
    }

    /// <summary>
    /// dx += r·dy·w − c·x and dw += (dy·x)·r. The vector steps add the two terms to dx one after the other, the scalar
    /// tail adds their difference; both roundings are kept as they are.
    /// </summary>
    private unsafe struct BackwardOp : IMapOp
    {
        public float* Dx;
        public float* Dw;
        public float* Dy;
        public float* X;
        public float* W;
        public float R;
        public float C;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public readonly void Invoke<TV, TOps>(nint i)
            where TV : struct
            where TOps : struct, IVecOps<TV>
        {
            TV g = TOps.Load(Dy + i);
            TV xv = TOps.Load(X + i);
            TV gain = TOps.Multiply(TOps.Multiply(TOps.Splat(R), g), TOps.Load(W + i));
            TV pull = TOps.Multiply(TOps.Splat(C), xv);
            TV dx = TOps.Load(Dx + i);
            TOps.Store(TOps.Count == 1 ? TOps.Add(dx, TOps.Subtract(gain, pull)) : TOps.Subtract(TOps.Add(dx, gain), pull), Dx + i);
            if (Dw != null)
            {
                TOps.Store(TOps.Add(TOps.Load(Dw + i), TOps.Multiply(TOps.Multiply(g, xv), TOps.Splat(R))), Dw + i);
            }
        }
    }
}
