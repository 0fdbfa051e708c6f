using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace LiveLearning.Numerics;

/// <summary>Micro-kernels: register tiles of accumulators, one per SIMD width, specialised per row count.</summary>
public static unsafe partial class Gemm
{
    /// <summary>A compile-time row count: the JIT specialises a kernel per struct and drops unused rows.</summary>
    private interface IRows
    {
        static abstract int Value { get; }
    }

    /// <summary>
    /// <c>c[r, 0..NR) = (load ? c : 0) + Σ_k a[r, k]·panel[k, 0..NR)</c> for <c>r &lt; rows</c>, with <c>a[r, k]</c> the
    /// <typeparamref name="TSource"/> element at byte offset <c>r*aRowStride + k*aColStride</c> and <c>c</c> row stride
    /// <paramref name="ldc"/>. Every element is one FMA chain in k order, whatever the source type.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel<TSource>(int rows, byte* a, nint aRowStride, nint aColStride, float* panel, int kc, float* c, nint ldc, bool load)
        where TSource : struct, IBroadcastSource
    {
        if (Vector512.IsHardwareAccelerated)
        {
            switch (rows)
            {
                case 8: Kernel512<R8, TSource>(a, aRowStride, aColStride, panel, kc, c, ldc, load); break;
                case 7: Kernel512<R7, TSource>(a, aRowStride, aColStride, panel, kc, c, ldc, load); break;
                case 6: Kernel512<R6, TSource>(a, aRowStride, aColStride, panel, kc, c, ldc, load); break;
                case 5: Kernel512<R5, TSource>(a, aRowStride, aColStride, panel, kc, c, ldc, load); break;
                case 4: Kernel512<R4, TSource>(a, aRowStride, aColStride, panel, kc, c, ldc, load); break;
                case 3: Kernel512<R3, TSource>(a, aRowStride, aColStride, panel, kc, c, ldc, load); break;
                case 2: Kernel512<R2, TSource>(a, aRowStride, aColStride, panel, kc, c, ldc, load); break;
                default: Kernel512<R1, TSource>(a, aRowStride, aColStride, panel, kc, c, ldc, load); break;
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            switch (rows)
            {
                case 6: Kernel256<R6, TSource>(a, aRowStride, aColStride, panel, kc, c, ldc, load); break;
                case 5: Kernel256<R5, TSource>(a, aRowStride, aColStride, panel, kc, c, ldc, load); break;
                case 4: Kernel256<R4, TSource>(a, aRowStride, aColStride, panel, kc, c, ldc, load); break;
                case 3: Kernel256<R3, TSource>(a, aRowStride, aColStride, panel, kc, c, ldc, load); break;
                case 2: Kernel256<R2, TSource>(a, aRowStride, aColStride, panel, kc, c, ldc, load); break;
                default: Kernel256<R1, TSource>(a, aRowStride, aColStride, panel, kc, c, ldc, load); break;
            }
        }
        else if (Vector128.IsHardwareAccelerated)
        {
            switch (rows)
            {
                case 4: Kernel128<R4, TSource>(a, aRowStride, aColStride, panel, kc, c, ldc, load); break;
                case 3: Kernel128<R3, TSource>(a, aRowStride, aColStride, panel, kc, c, ldc, load); break;
                case 2: Kernel128<R2, TSource>(a, aRowStride, aColStride, panel, kc, c, ldc, load); break;
                default: Kernel128<R1, TSource>(a, aRowStride, aColStride, panel, kc, c, ldc, load); break;
            }
        }
        else
        {
            KernelScalar<TSource>(rows, a, aRowStride, aColStride, panel, kc, c, ldc, load);
        }
    }

    /// <summary>MR = 8 rows x NR = 32 columns (two Vector512 per row): 16 accumulators of the 32 registers.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel512<TRows, TSource>(byte* a, nint sm, nint sk, float* b, int kc, float* c, nint ldc, bool load)
        where TRows : struct, IRows
        where TSource : struct, IBroadcastSource
    {
        Vector512<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default, c30 = default, c31 = default;
        Vector512<float> c40 = default, c41 = default, c50 = default, c51 = default, c60 = default, c61 = default, c70 = default, c71 = default;
        if (load)
        {
            c00 = Vector512.Load(c); c01 = Vector512.Load(c + 16);
            if (TRows.Value > 1) { c10 = Vector512.Load(c + ldc); c11 = Vector512.Load(c + ldc + 16); }
            if (TRows.Value > 2) { c20 = Vector512.Load(c + (2 * ldc)); c21 = Vector512.Load(c + (2 * ldc) + 16); }
            if (TRows.Value > 3) { c30 = Vector512.Load(c + (3 * ldc)); c31 = Vector512.Load(c + (3 * ldc) + 16); }
            if (TRows.Value > 4) { c40 = Vector512.Load(c + (4 * ldc)); c41 = Vector512.Load(c + (4 * ldc) + 16); }
            if (TRows.Value > 5) { c50 = Vector512.Load(c + (5 * ldc)); c51 = Vector512.Load(c + (5 * ldc) + 16); }
            if (TRows.Value > 6) { c60 = Vector512.Load(c + (6 * ldc)); c61 = Vector512.Load(c + (6 * ldc) + 16); }
            if (TRows.Value > 7) { c70 = Vector512.Load(c + (7 * ldc)); c71 = Vector512.Load(c + (7 * ldc) + 16); }
        }

        nint s2 = 2 * sm, s3 = 3 * sm;
        byte* a4 = a + (4 * sm);
        for (int k = 0; k < kc; k++)
        {
            Vector512<float> b0 = Vector512.Load(b);
            Vector512<float> b1 = Vector512.Load(b + 16);
            b += 32;
            Vector512<float> av = TSource.Broadcast512(a);
            c00 = Vector512.FusedMultiplyAdd(av, b0, c00); c01 = Vector512.FusedMultiplyAdd(av, b1, c01);
            if (TRows.Value > 1) { av = TSource.Broadcast512(a + sm); c10 = Vector512.FusedMultiplyAdd(av, b0, c10); c11 = Vector512.FusedMultiplyAdd(av, b1, c11); }
            if (TRows.Value > 2) { av = TSource.Broadcast512(a + s2); c20 = Vector512.FusedMultiplyAdd(av, b0, c20); c21 = Vector512.FusedMultiplyAdd(av, b1, c21); }
            if (TRows.Value > 3) { av = TSource.Broadcast512(a + s3); c30 = Vector512.FusedMultiplyAdd(av, b0, c30); c31 = Vector512.FusedMultiplyAdd(av, b1, c31); }
            if (TRows.Value > 4) { av = TSource.Broadcast512(a4); c40 = Vector512.FusedMultiplyAdd(av, b0, c40); c41 = Vector512.FusedMultiplyAdd(av, b1, c41); }
            if (TRows.Value > 5) { av = TSource.Broadcast512(a4 + sm); c50 = Vector512.FusedMultiplyAdd(av, b0, c50); c51 = Vector512.FusedMultiplyAdd(av, b1, c51); }
            if (TRows.Value > 6) { av = TSource.Broadcast512(a4 + s2); c60 = Vector512.FusedMultiplyAdd(av, b0, c60); c61 = Vector512.FusedMultiplyAdd(av, b1, c61); }
            if (TRows.Value > 7) { av = TSource.Broadcast512(a4 + s3); c70 = Vector512.FusedMultiplyAdd(av, b0, c70); c71 = Vector512.FusedMultiplyAdd(av, b1, c71); }
            TSource.Touch(a, sm, k);
            a += sk;
            a4 += sk;
        }

        c00.Store(c); c01.Store(c + 16);
        if (TRows.Value > 1) { c10.Store(c + ldc); c11.Store(c + ldc + 16); }
        if (TRows.Value > 2) { c20.Store(c + (2 * ldc)); c21.Store(c + (2 * ldc) + 16); }
        if (TRows.Value > 3) { c30.Store(c + (3 * ldc)); c31.Store(c + (3 * ldc) + 16); }
        if (TRows.Value > 4) { c40.Store(c + (4 * ldc)); c41.Store(c + (4 * ldc) + 16); }
        if (TRows.Value > 5) { c50.Store(c + (5 * ldc)); c51.Store(c + (5 * ldc) + 16); }
        if (TRows.Value > 6) { c60.Store(c + (6 * ldc)); c61.Store(c + (6 * ldc) + 16); }
        if (TRows.Value > 7) { c70.Store(c + (7 * ldc)); c71.Store(c + (7 * ldc) + 16); }
    }

    /// <summary>MR = 6 rows x NR = 16 columns (two Vector256 per row): 12 accumulators of the 16 registers.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel256<TRows, TSource>(byte* a, nint sm, nint sk, float* b, int kc, float* c, nint ldc, bool load)
        where TRows : struct, IRows
        where TSource : struct, IBroadcastSource
    {
        Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default;
        Vector256<float> c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        if (load)
        {
            c00 = Vector256.Load(c); c01 = Vector256.Load(c + 8);
            if (TRows.Value > 1) { c10 = Vector256.Load(c + ldc); c11 = Vector256.Load(c + ldc + 8); }
            if (TRows.Value > 2) { c20 = Vector256.Load(c + (2 * ldc)); c21 = Vector256.Load(c + (2 * ldc) + 8); }
            if (TRows.Value > 3) { c30 = Vector256.Load(c + (3 * ldc)); c31 = Vector256.Load(c + (3 * ldc) + 8); }
            if (TRows.Value > 4) { c40 = Vector256.Load(c + (4 * ldc)); c41 = Vector256.Load(c + (4 * ldc) + 8); }
            if (TRows.Value > 5) { c50 = Vector256.Load(c + (5 * ldc)); c51 = Vector256.Load(c + (5 * ldc) + 8); }
        }

        nint s2 = 2 * sm;
        byte* a3 = a + (3 * sm);
        for (int k = 0; k < kc; k++)
        {
            Vector256<float> b0 = Vector256.Load(b);
            Vector256<float> b1 = Vector256.Load(b + 8);
            b += 16;
            Vector256<float> av = TSource.Broadcast256(a);
            c00 = Vector256.FusedMultiplyAdd(av, b0, c00); c01 = Vector256.FusedMultiplyAdd(av, b1, c01);
            if (TRows.Value > 1) { av = TSource.Broadcast256(a + sm); c10 = Vector256.FusedMultiplyAdd(av, b0, c10); c11 = Vector256.FusedMultiplyAdd(av, b1, c11); }
            if (TRows.Value > 2) { av = TSource.Broadcast256(a + s2); c20 = Vector256.FusedMultiplyAdd(av, b0, c20); c21 = Vector256.FusedMultiplyAdd(av, b1, c21); }
            if (TRows.Value > 3) { av = TSource.Broadcast256(a3); c30 = Vector256.FusedMultiplyAdd(av, b0, c30); c31 = Vector256.FusedMultiplyAdd(av, b1, c31); }
            if (TRows.Value > 4) { av = TSource.Broadcast256(a3 + sm); c40 = Vector256.FusedMultiplyAdd(av, b0, c40); c41 = Vector256.FusedMultiplyAdd(av, b1, c41); }
            if (TRows.Value > 5) { av = TSource.Broadcast256(a3 + s2); c50 = Vector256.FusedMultiplyAdd(av, b0, c50); c51 = Vector256.FusedMultiplyAdd(av, b1, c51); }
            TSource.Touch(a, sm, k);
            a += sk;
            a3 += sk;
        }

        c00.Store(c); c01.Store(c + 8);
        if (TRows.Value > 1) { c10.Store(c + ldc); c11.Store(c + ldc + 8); }
        if (TRows.Value > 2) { c20.Store(c + (2 * ldc)); c21.Store(c + (2 * ldc) + 8); }
        if (TRows.Value > 3) { c30.Store(c + (3 * ldc)); c31.Store(c + (3 * ldc) + 8); }
        if (TRows.Value > 4) { c40.Store(c + (4 * ldc)); c41.Store(c + (4 * ldc) + 8); }
        if (TRows.Value > 5) { c50.Store(c + (5 * ldc)); c51.Store(c + (5 * ldc) + 8); }
    }

    /// <summary>MR = 4 rows x NR = 8 columns (two Vector128 per row).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Kernel128<TRows, TSource>(byte* a, nint sm, nint sk, float* b, int kc, float* c, nint ldc, bool load)
        where TRows : struct, IRows
        where TSource : struct, IBroadcastSource
    {
        Vector128<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default, c30 = default, c31 = default;
        if (load)
        {
            c00 = Vector128.Load(c); c01 = Vector128.Load(c + 4);
            if (TRows.Value > 1) { c10 = Vector128.Load(c + ldc); c11 = Vector128.Load(c + ldc + 4); }
            if (TRows.Value > 2) { c20 = Vector128.Load(c + (2 * ldc)); c21 = Vector128.Load(c + (2 * ldc) + 4); }
            if (TRows.Value > 3) { c30 = Vector128.Load(c + (3 * ldc)); c31 = Vector128.Load(c + (3 * ldc) + 4); }
        }

        nint s2 = 2 * sm, s3 = 3 * sm;
        for (int k = 0; k < kc; k++)
        {
            Vector128<float> b0 = Vector128.Load(b);
            Vector128<float> b1 = Vector128.Load(b + 4);
            b += 8;
            Vector128<float> av = TSource.Broadcast128(a);
            c00 = Fma128(av, b0, c00); c01 = Fma128(av, b1, c01);
            if (TRows.Value > 1) { av = TSource.Broadcast128(a + sm); c10 = Fma128(av, b0, c10); c11 = Fma128(av, b1, c11); }
            if (TRows.Value > 2) { av = TSource.Broadcast128(a + s2); c20 = Fma128(av, b0, c20); c21 = Fma128(av, b1, c21); }
            if (TRows.Value > 3) { av = TSource.Broadcast128(a + s3); c30 = Fma128(av, b0, c30); c31 = Fma128(av, b1, c31); }
            TSource.Touch(a, sm, k);
            a += sk;
        }

        c00.Store(c); c01.Store(c + 4);
        if (TRows.Value > 1) { c10.Store(c + ldc); c11.Store(c + ldc + 4); }
        if (TRows.Value > 2) { c20.Store(c + (2 * ldc)); c21.Store(c + (2 * ldc) + 4); }
        if (TRows.Value > 3) { c30.Store(c + (3 * ldc)); c31.Store(c + (3 * ldc) + 4); }
    }

    /// <summary>Scalar fallback: MR = 4 rows x NR = 8 columns.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void KernelScalar<TSource>(int rows, byte* a, nint sm, nint sk, float* b, int kc, float* c, nint ldc, bool load)
        where TSource : struct, IBroadcastSource
    {
        for (int r = 0; r < rows; r++)
        {
            byte* ar = a + (r * sm);
            for (int j = 0; j < 8; j++)
            {
                float s = load ? c[(r * ldc) + j] : 0f;
                for (int k = 0; k < kc; k++)
                {
                    s += TSource.Read(ar + (k * sk)) * b[(k * 8) + j];
                }

                c[(r * ldc) + j] = s;
            }
        }
    }

    /// <summary>How the kernels read one element of the broadcast operand and splat it across a vector.</summary>
    private interface IBroadcastSource
    {
        static abstract Vector512<float> Broadcast512(byte* p);

        static abstract Vector256<float> Broadcast256(byte* p);

        static abstract Vector128<float> Broadcast128(byte* p);

        static abstract float Read(byte* p);

        /// <summary>Bytes per stored element.</summary>
        static abstract int Size { get; }

        /// <summary>
        /// Called by the SIMD kernels once per k step with row 0's element, the row stride in bytes and the step (a hook
        /// for a software prefetch; usually nothing; the scalar kernel does not call it).
        /// </summary>
        static abstract void Touch(byte* p, nint rowStride, int k);
    }

    /// <summary>float32 elements: a broadcast load.</summary>
    private struct F32Source : IBroadcastSource
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Broadcast512(byte* p) => Vector512.Create(*(float*)p);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Broadcast256(byte* p) => Vector256.Create(*(float*)p);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector128<float> Broadcast128(byte* p) => Vector128.Create(*(float*)p);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float Read(byte* p) => *(float*)p;

        public static int Size => sizeof(float);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Touch(byte* p, nint rowStride, int k)
        {
        }
    }

    /// <summary>
    /// float32 elements of a weight read down its columns (the input-gradient form), touching the cache line after
    /// each row's element as it goes: the next block of columns then finds its lines in cache. A column walk steps a
    /// whole row per k, which the hardware prefetcher does not follow across pages, so a cold weight would otherwise
    /// cost a memory round trip per k on the first pass over each line.
    /// </summary>
    private struct F32NextLineSource : IBroadcastSource
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Broadcast512(byte* p) => F32Source.Broadcast512(p);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Broadcast256(byte* p) => F32Source.Broadcast256(p);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector128<float> Broadcast128(byte* p) => F32Source.Broadcast128(p);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float Read(byte* p) => F32Source.Read(p);

        public static int Size => sizeof(float);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Touch(byte* p, nint rowStride, int k)
        {
            if (System.Runtime.Intrinsics.X86.Sse.IsSupported)
            {
                System.Runtime.Intrinsics.X86.Sse.Prefetch0(p + 64);
            }
        }
    }

    /// <summary>
    /// bfloat16 elements widened in the kernel. A bfloat16 is the upper half of a float32, so the 32-bit word that
    /// <em>ends</em> at the element (the element and the two bytes before it), broadcast and masked to its upper 16
    /// bits, is the widened value: one broadcast load and one AND, no shift and no separate widening pass. It reads
    /// the two bytes before each element, so callers must not hand it the first element of a buffer.
    /// </summary>
    private struct BF16Source : IBroadcastSource
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Broadcast512(byte* p) => (Vector512.Create(*(uint*)(p - 2)) & Vector512.Create(0xFFFF_0000u)).AsSingle();

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Broadcast256(byte* p) => (Vector256.Create(*(uint*)(p - 2)) & Vector256.Create(0xFFFF_0000u)).AsSingle();

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector128<float> Broadcast128(byte* p) => (Vector128.Create(*(uint*)(p - 2)) & Vector128.Create(0xFFFF_0000u)).AsSingle();

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float Read(byte* p) => Precision.BF16ToSingle(*(ushort*)p);

        public static int Size => sizeof(ushort);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Touch(byte* p, nint rowStride, int k)
        {
        }
    }

    /// <summary>
    /// Weight rows read in place as <typeparamref name="TElement"/> (the forward form), prefetching the next row block
    /// into L2 as it goes: every few k steps (2 for float32, 4 for bfloat16: an eighth of a 64-byte line's elements) one
    /// of the eight rows after this block's is touched at the current column, so the sweep covers each of those rows'
    /// cache lines once. A forward product over a cold weight otherwise waits on memory at the start of every row block,
    /// since the kernel's eight interleaved row streams are more than the hardware prefetcher runs ahead on. Used on a
    /// block's last token panel: with several panels the block's own rows are in cache by then; with one (up to 32
    /// tokens at 512 bits) the block streams its own rows meanwhile, which still gained (32 tokens over 48 cold weights,
    /// interleaved A/B: 0.93 of the time without it). Eight rows cover the 512-bit kernel's next block; with the 256-bit
    /// kernel's six they reach two rows further, with the 128-bit kernel's four the next two blocks (those widths' gain
    /// is not measured on this machine).
    /// </summary>
    private struct NextBlockSource<TElement> : IBroadcastSource
        where TElement : struct, IBroadcastSource
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Broadcast512(byte* p) => TElement.Broadcast512(p);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Broadcast256(byte* p) => TElement.Broadcast256(p);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector128<float> Broadcast128(byte* p) => TElement.Broadcast128(p);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static float Read(byte* p) => TElement.Read(p);

        public static int Size => TElement.Size;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Touch(byte* p, nint rowStride, int k)
        {
            uint every = (uint)(64 / (8 * TElement.Size));
            if ((uint)k % every == 0 && System.Runtime.Intrinsics.X86.Sse.IsSupported)
            {
                System.Runtime.Intrinsics.X86.Sse.Prefetch1(p + ((Mr + (int)(((uint)k / every) & 7)) * rowStride));
            }
        }
    }

    /// <summary>
    /// <c>a*b + c</c>, fused where the hardware has FMA; without it (e.g. SSE-only x86) a separate multiply and add,
    /// because the runtime would otherwise emulate the fused form one element at a time.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> Fma128(Vector128<float> a, Vector128<float> b, Vector128<float> c)
        => System.Runtime.Intrinsics.X86.Fma.IsSupported || System.Runtime.Intrinsics.Arm.AdvSimd.IsSupported
            ? Vector128.FusedMultiplyAdd(a, b, c)
            : (a * b) + c;

    // ---------------------------------------------------------------- F16 widening

    /// <summary>
    /// IEEE binary16 bits (zero-extended to 32 bits) to float32, exactly: the exponent and mantissa are moved
    /// into place and rescaled by 2^112 (which also normalises subnormals); infinities and NaNs get the float32
    /// all-ones exponent.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> HalfBitsToSingle(Vector512<uint> h)
    {
        Vector512<uint> sign = (h & Vector512.Create(0x8000u)) << 16;
        Vector512<uint> magnitude = (h & Vector512.Create(0x7FFFu)) << 13;
        Vector512<uint> scaled = (magnitude.AsSingle() * Vector512.Create(5.192296858534828e33f)).AsUInt32();
        Vector512<uint> special = Vector512.GreaterThanOrEqual(magnitude, Vector512.Create(0x0F80_0000u));
        return (Vector512.ConditionalSelect(special, magnitude | Vector512.Create(0x7F80_0000u), scaled) | sign).AsSingle();
    }

    /// <inheritdoc cref="HalfBitsToSingle(Vector512{uint})"/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> HalfBitsToSingle(Vector256<uint> h)
    {
        Vector256<uint> sign = (h & Vector256.Create(0x8000u)) << 16;
        Vector256<uint> magnitude = (h & Vector256.Create(0x7FFFu)) << 13;
        Vector256<uint> scaled = (magnitude.AsSingle() * Vector256.Create(5.192296858534828e33f)).AsUInt32();
        Vector256<uint> special = Vector256.GreaterThanOrEqual(magnitude, Vector256.Create(0x0F80_0000u));
        return (Vector256.ConditionalSelect(special, magnitude | Vector256.Create(0x7F80_0000u), scaled) | sign).AsSingle();
    }

    /// <inheritdoc cref="HalfBitsToSingle(Vector512{uint})"/>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> HalfBitsToSingle(Vector128<uint> h)
    {
        Vector128<uint> sign = (h & Vector128.Create(0x8000u)) << 16;
        Vector128<uint> magnitude = (h & Vector128.Create(0x7FFFu)) << 13;
        Vector128<uint> scaled = (magnitude.AsSingle() * Vector128.Create(5.192296858534828e33f)).AsUInt32();
        Vector128<uint> special = Vector128.GreaterThanOrEqual(magnitude, Vector128.Create(0x0F80_0000u));
        return (Vector128.ConditionalSelect(special, magnitude | Vector128.Create(0x7F80_0000u), scaled) | sign).AsSingle();
    }

    /// <summary>Widens binary16 bit patterns into float32 (exact).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void WidenF16(ushort* source, float* destination, int count)
    {
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            for (; i <= count - 32; i += 32)
            {
                (Vector512<uint> lo, Vector512<uint> hi) = Vector512.Widen(Vector512.Load(source + i));
                HalfBitsToSingle(lo).Store(destination + i);
                HalfBitsToSingle(hi).Store(destination + i + 16);
            }
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            for (; i <= count - 16; i += 16)
            {
                (Vector256<uint> lo, Vector256<uint> hi) = Vector256.Widen(Vector256.Load(source + i));
                HalfBitsToSingle(lo).Store(destination + i);
                HalfBitsToSingle(hi).Store(destination + i + 8);
            }
        }
        else if (Vector128.IsHardwareAccelerated)
        {
            for (; i <= count - 8; i += 8)
            {
                (Vector128<uint> lo, Vector128<uint> hi) = Vector128.Widen(Vector128.Load(source + i));
                HalfBitsToSingle(lo).Store(destination + i);
                HalfBitsToSingle(hi).Store(destination + i + 4);
            }
        }

        for (; i < count; i++)
        {
            destination[i] = Precision.F16ToSingle(source[i]);
        }
    }

    private struct R1 : IRows
    {
        public static int Value => 1;
    }

    private struct R2 : IRows
    {
        public static int Value => 2;
    }

    private struct R3 : IRows
    {
        public static int Value => 3;
    }

    private struct R4 : IRows
    {
        public static int Value => 4;
    }

    private struct R5 : IRows
    {
        public static int Value => 5;
    }

    private struct R6 : IRows
    {
        public static int Value => 6;
    }

    private struct R7 : IRows
    {
        public static int Value => 7;
    }

    private struct R8 : IRows
    {
        public static int Value => 8;
    }
}
