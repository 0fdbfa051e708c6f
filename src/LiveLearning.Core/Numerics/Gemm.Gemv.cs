using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace LiveLearning.Numerics;

/// <summary>GEMV: streams the weight once, four rows at a time, widening 16-bit storage in registers.</summary>
public static unsafe partial class Gemm
{
    /// <summary>Rows handled together by the GEMV kernel (more independent memory streams).</summary>
    private const int GemvRows = 4;

    /// <summary>Loads stored weights as float32 vectors.</summary>
    private interface IWeightLoad
    {
        /// <summary>32 elements starting at <paramref name="i"/>.</summary>
        static abstract void Load32(byte* row, nint i, out Vector512<float> lo, out Vector512<float> hi);

        /// <summary>16 elements.</summary>
        static abstract Vector512<float> Load16(byte* row, nint i);

        /// <summary>16 elements as two Vector256.</summary>
        static abstract void Load16(byte* row, nint i, out Vector256<float> lo, out Vector256<float> hi);

        /// <summary>8 elements.</summary>
        static abstract Vector256<float> Load8(byte* row, nint i);

        /// <summary>8 elements as two Vector128.</summary>
        static abstract void Load8(byte* row, nint i, out Vector128<float> lo, out Vector128<float> hi);

        /// <summary>4 elements.</summary>
        static abstract Vector128<float> Load4(byte* row, nint i);

        /// <summary>One element.</summary>
        static abstract float Load1(byte* row, nint i);
    }

    private static void GemvCore(float* y, float* x, byte* w, WeightType type, int rows, int cols, bool accumulate, ComputePool? pool)
    {
        if (rows == 0)
        {
            return;
        }

        if (cols == 0)
        {
            if (!accumulate)
            {
                ClearOutput(y, rows);
            }

            return;
        }

        switch (type)
        {
            case WeightType.F32:
                GemvRun<LoadF32>(y, x, w, rows, cols, 4, accumulate, pool);
                break;
            case WeightType.BF16:
                GemvRun<LoadBF16>(y, x, w, rows, cols, 2, accumulate, pool);
                break;
            default:
                GemvRun<LoadF16>(y, x, w, rows, cols, 2, accumulate, pool);
                break;
        }
    }

    private static void GemvRun<TLoad>(float* y, float* x, byte* w, int rows, int cols, int elementSize, bool accumulate, ComputePool? pool)
        where TLoad : struct, IWeightLoad
    {
        int groups = (rows + GemvRows - 1) / GemvRows;
        var job = new GemvJob<TLoad>
        {
            Y = y,
            X = x,
            W = w,
            Rows = rows,
            Cols = cols,
            RowBytes = (nint)cols * elementSize,
            Accumulate = accumulate,
            Groups = groups,
        };

        // GEMV is memory-bound: one contiguous share per thread keeps each thread's stream sequential.
        job.Items = pool is null || (long)rows * cols < ParallelMinWork * 4 ? 1 : Math.Min(groups, pool.ThreadCount);
        ComputePool.Run(pool, job.Items, ref job);
    }

    /// <summary>
    /// <c>y[r] (+)= Σ_i w[r, i]·x[i]</c> for <c>r &lt; TRows</c>. Each row uses exactly the same operations whatever
    /// <typeparamref name="TRows"/> is, so grouping (and so the thread split) never changes a result.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void GemvKernel<TLoad, TRows>(byte* w, nint rowBytes, float* x, int n, float* y, bool accumulate)
        where TLoad : struct, IWeightLoad
        where TRows : struct, IRows
    {
        byte* w0 = w, w1 = w + rowBytes, w2 = w + (2 * rowBytes), w3 = w + (3 * rowBytes);
        float s0, s1 = 0f, s2 = 0f, s3 = 0f;
        nint i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            Vector512<float> a0 = default, b0 = default, a1 = default, b1 = default, a2 = default, b2 = default, a3 = default, b3 = default;
            Vector512<float> lo, hi;
            for (; i <= n - 32; i += 32)
            {
                Vector512<float> xa = Vector512.Load(x + i);
                Vector512<float> xb = Vector512.Load(x + i + 16);
                TLoad.Load32(w0, i, out lo, out hi); a0 = Vector512.FusedMultiplyAdd(lo, xa, a0); b0 = Vector512.FusedMultiplyAdd(hi, xb, b0);
                if (TRows.Value > 1) { TLoad.Load32(w1, i, out lo, out hi); a1 = Vector512.FusedMultiplyAdd(lo, xa, a1); b1 = Vector512.FusedMultiplyAdd(hi, xb, b1); }
                if (TRows.Value > 2) { TLoad.Load32(w2, i, out lo, out hi); a2 = Vector512.FusedMultiplyAdd(lo, xa, a2); b2 = Vector512.FusedMultiplyAdd(hi, xb, b2); }
                if (TRows.Value > 3) { TLoad.Load32(w3, i, out lo, out hi); a3 = Vector512.FusedMultiplyAdd(lo, xa, a3); b3 = Vector512.FusedMultiplyAdd(hi, xb, b3); }
            }

            if (i <= n - 16)
            {
                Vector512<float> xa = Vector512.Load(x + i);
                a0 = Vector512.FusedMultiplyAdd(TLoad.Load16(w0, i), xa, a0);
                if (TRows.Value > 1) { a1 = Vector512.FusedMultiplyAdd(TLoad.Load16(w1, i), xa, a1); }
                if (TRows.Value > 2) { a2 = Vector512.FusedMultiplyAdd(TLoad.Load16(w2, i), xa, a2); }
                if (TRows.Value > 3) { a3 = Vector512.FusedMultiplyAdd(TLoad.Load16(w3, i), xa, a3); }
                i += 16;
            }

            s0 = Vector512.Sum(a0 + b0);
            if (TRows.Value > 1) { s1 = Vector512.Sum(a1 + b1); }
            if (TRows.Value > 2) { s2 = Vector512.Sum(a2 + b2); }
            if (TRows.Value > 3) { s3 = Vector512.Sum(a3 + b3); }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            Vector256<float> a0 = default, b0 = default, a1 = default, b1 = default, a2 = default, b2 = default, a3 = default, b3 = default;
            Vector256<float> lo, hi;
            for (; i <= n - 16; i += 16)
            {
                Vector256<float> xa = Vector256.Load(x + i);
                Vector256<float> xb = Vector256.Load(x + i + 8);
                TLoad.Load16(w0, i, out lo, out hi); a0 = Vector256.FusedMultiplyAdd(lo, xa, a0); b0 = Vector256.FusedMultiplyAdd(hi, xb, b0);
                if (TRows.Value > 1) { TLoad.Load16(w1, i, out lo, out hi); a1 = Vector256.FusedMultiplyAdd(lo, xa, a1); b1 = Vector256.FusedMultiplyAdd(hi, xb, b1); }
                if (TRows.Value > 2) { TLoad.Load16(w2, i, out lo, out hi); a2 = Vector256.FusedMultiplyAdd(lo, xa, a2); b2 = Vector256.FusedMultiplyAdd(hi, xb, b2); }
                if (TRows.Value > 3) { TLoad.Load16(w3, i, out lo, out hi); a3 = Vector256.FusedMultiplyAdd(lo, xa, a3); b3 = Vector256.FusedMultiplyAdd(hi, xb, b3); }
            }

            if (i <= n - 8)
            {
                Vector256<float> xa = Vector256.Load(x + i);
                a0 = Vector256.FusedMultiplyAdd(TLoad.Load8(w0, i), xa, a0);
                if (TRows.Value > 1) { a1 = Vector256.FusedMultiplyAdd(TLoad.Load8(w1, i), xa, a1); }
                if (TRows.Value > 2) { a2 = Vector256.FusedMultiplyAdd(TLoad.Load8(w2, i), xa, a2); }
                if (TRows.Value > 3) { a3 = Vector256.FusedMultiplyAdd(TLoad.Load8(w3, i), xa, a3); }
                i += 8;
            }

            s0 = Vector256.Sum(a0 + b0);
            if (TRows.Value > 1) { s1 = Vector256.Sum(a1 + b1); }
            if (TRows.Value > 2) { s2 = Vector256.Sum(a2 + b2); }
            if (TRows.Value > 3) { s3 = Vector256.Sum(a3 + b3); }
        }
        else if (Vector128.IsHardwareAccelerated)
        {
            Vector128<float> a0 = default, b0 = default, a1 = default, b1 = default, a2 = default, b2 = default, a3 = default, b3 = default;
            Vector128<float> lo, hi;
            for (; i <= n - 8; i += 8)
            {
                Vector128<float> xa = Vector128.Load(x + i);
                Vector128<float> xb = Vector128.Load(x + i + 4);
                TLoad.Load8(w0, i, out lo, out hi); a0 = Fma128(lo, xa, a0); b0 = Fma128(hi, xb, b0);
                if (TRows.Value > 1) { TLoad.Load8(w1, i, out lo, out hi); a1 = Fma128(lo, xa, a1); b1 = Fma128(hi, xb, b1); }
                if (TRows.Value > 2) { TLoad.Load8(w2, i, out lo, out hi); a2 = Fma128(lo, xa, a2); b2 = Fma128(hi, xb, b2); }
                if (TRows.Value > 3) { TLoad.Load8(w3, i, out lo, out hi); a3 = Fma128(lo, xa, a3); b3 = Fma128(hi, xb, b3); }
            }

            if (i <= n - 4)
            {
                Vector128<float> xa = Vector128.Load(x + i);
                a0 = Fma128(TLoad.Load4(w0, i), xa, a0);
                if (TRows.Value > 1) { a1 = Fma128(TLoad.Load4(w1, i), xa, a1); }
                if (TRows.Value > 2) { a2 = Fma128(TLoad.Load4(w2, i), xa, a2); }
                if (TRows.Value > 3) { a3 = Fma128(TLoad.Load4(w3, i), xa, a3); }
                i += 4;
            }

            s0 = Vector128.Sum(a0 + b0);
            if (TRows.Value > 1) { s1 = Vector128.Sum(a1 + b1); }
            if (TRows.Value > 2) { s2 = Vector128.Sum(a2 + b2); }
            if (TRows.Value > 3) { s3 = Vector128.Sum(a3 + b3); }
        }
        else
        {
            s0 = 0f;
        }

        for (; i < n; i++)
        {
            float xi = x[i];
            s0 += TLoad.Load1(w0, i) * xi;
            if (TRows.Value > 1) { s1 += TLoad.Load1(w1, i) * xi; }
            if (TRows.Value > 2) { s2 += TLoad.Load1(w2, i) * xi; }
            if (TRows.Value > 3) { s3 += TLoad.Load1(w3, i) * xi; }
        }

        y[0] = accumulate ? y[0] + s0 : s0;
        if (TRows.Value > 1) { y[1] = accumulate ? y[1] + s1 : s1; }
        if (TRows.Value > 2) { y[2] = accumulate ? y[2] + s2 : s2; }
        if (TRows.Value > 3) { y[3] = accumulate ? y[3] + s3 : s3; }
    }

    private struct GemvJob<TLoad> : IParallelJob
        where TLoad : struct, IWeightLoad
    {
        public float* Y;
        public float* X;
        public byte* W;
        public int Rows;
        public int Cols;
        public nint RowBytes;
        public bool Accumulate;
        public int Groups;
        public int Items;

        public readonly void Execute(int index)
        {
            int first = (int)((long)Groups * index / Items);
            int last = (int)((long)Groups * (index + 1) / Items);
            for (int g = first; g < last; g++)
            {
                int r0 = g * GemvRows;
                byte* w = W + (r0 * RowBytes);
                switch (Math.Min(GemvRows, Rows - r0))
                {
                    case 4: GemvKernel<TLoad, R4>(w, RowBytes, X, Cols, Y + r0, Accumulate); break;
                    case 3: GemvKernel<TLoad, R3>(w, RowBytes, X, Cols, Y + r0, Accumulate); break;
                    case 2: GemvKernel<TLoad, R2>(w, RowBytes, X, Cols, Y + r0, Accumulate); break;
                    default: GemvKernel<TLoad, R1>(w, RowBytes, X, Cols, Y + r0, Accumulate); break;
                }
            }
        }
    }

    private struct LoadF32 : IWeightLoad
    {
        public static void Load32(byte* row, nint i, out Vector512<float> lo, out Vector512<float> hi)
        {
            lo = Vector512.Load((float*)row + i);
            hi = Vector512.Load((float*)row + i + 16);
        }

        public static Vector512<float> Load16(byte* row, nint i) => Vector512.Load((float*)row + i);

        public static void Load16(byte* row, nint i, out Vector256<float> lo, out Vector256<float> hi)
        {
            lo = Vector256.Load((float*)row + i);
            hi = Vector256.Load((float*)row + i + 8);
        }

        public static Vector256<float> Load8(byte* row, nint i) => Vector256.Load((float*)row + i);

        public static void Load8(byte* row, nint i, out Vector128<float> lo, out Vector128<float> hi)
        {
            lo = Vector128.Load((float*)row + i);
            hi = Vector128.Load((float*)row + i + 4);
        }

        public static Vector128<float> Load4(byte* row, nint i) => Vector128.Load((float*)row + i);

        public static float Load1(byte* row, nint i) => ((float*)row)[i];
    }

    private struct LoadBF16 : IWeightLoad
    {
        public static void Load32(byte* row, nint i, out Vector512<float> lo, out Vector512<float> hi)
        {
            (Vector512<uint> l, Vector512<uint> h) = Vector512.Widen(Vector512.Load((ushort*)row + i));
            lo = (l << 16).AsSingle();
            hi = (h << 16).AsSingle();
        }

        public static Vector512<float> Load16(byte* row, nint i)
            => (Vector512.WidenLower(Vector256.Load((ushort*)row + i).ToVector512Unsafe()) << 16).AsSingle();

        public static void Load16(byte* row, nint i, out Vector256<float> lo, out Vector256<float> hi)
        {
            (Vector256<uint> l, Vector256<uint> h) = Vector256.Widen(Vector256.Load((ushort*)row + i));
            lo = (l << 16).AsSingle();
            hi = (h << 16).AsSingle();
        }

        public static Vector256<float> Load8(byte* row, nint i)
            => (Vector256.WidenLower(Vector128.Load((ushort*)row + i).ToVector256Unsafe()) << 16).AsSingle();

        public static void Load8(byte* row, nint i, out Vector128<float> lo, out Vector128<float> hi)
        {
            (Vector128<uint> l, Vector128<uint> h) = Vector128.Widen(Vector128.Load((ushort*)row + i));
            lo = (l << 16).AsSingle();
            hi = (h << 16).AsSingle();
        }

        public static Vector128<float> Load4(byte* row, nint i)
            => (Vector128.WidenLower(Vector64.Load((ushort*)row + i).ToVector128Unsafe()) << 16).AsSingle();

        public static float Load1(byte* row, nint i) => Precision.BF16ToSingle(((ushort*)row)[i]);
    }

    private struct LoadF16 : IWeightLoad
    {
        public static void Load32(byte* row, nint i, out Vector512<float> lo, out Vector512<float> hi)
        {
            (Vector512<uint> l, Vector512<uint> h) = Vector512.Widen(Vector512.Load((ushort*)row + i));
            lo = HalfBitsToSingle(l);
            hi = HalfBitsToSingle(h);
        }

        public static Vector512<float> Load16(byte* row, nint i)
            => HalfBitsToSingle(Vector512.WidenLower(Vector256.Load((ushort*)row + i).ToVector512Unsafe()));

        public static void Load16(byte* row, nint i, out Vector256<float> lo, out Vector256<float> hi)
        {
            (Vector256<uint> l, Vector256<uint> h) = Vector256.Widen(Vector256.Load((ushort*)row + i));
            lo = HalfBitsToSingle(l);
            hi = HalfBitsToSingle(h);
        }

        public static Vector256<float> Load8(byte* row, nint i)
            => HalfBitsToSingle(Vector256.WidenLower(Vector128.Load((ushort*)row + i).ToVector256Unsafe()));

        public static void Load8(byte* row, nint i, out Vector128<float> lo, out Vector128<float> hi)
        {
            (Vector128<uint> l, Vector128<uint> h) = Vector128.Widen(Vector128.Load((ushort*)row + i));
            lo = HalfBitsToSingle(l);
            hi = HalfBitsToSingle(h);
        }

        public static Vector128<float> Load4(byte* row, nint i)
            => HalfBitsToSingle(Vector128.WidenLower(Vector64.Load((ushort*)row + i).ToVector128Unsafe()));

        public static float Load1(byte* row, nint i) => Precision.F16ToSingle(((ushort*)row)[i]);
    }
}
