using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace LiveLearning.Numerics;

/// <content>Packing of operands into the panels the register kernels read, and weight widening.</content>
public static unsafe partial class Gemm
{
    /// <summary>
    /// Packs <c>x [tokens, k]</c> into panels of <paramref name="nr"/> tokens, <c>xt[p][kOffset + i][j] = x[p*nr + j, i]</c>
    /// (zero-padded), in panels of <paramref name="panelK"/> rows: several inputs can fill one panel set side by side in k.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PackTransposed(float* x, int tokens, int k, float* xt, int nr, ComputePool? pool, int panelK, int kOffset)
    {
        int panels = (tokens + nr - 1) / nr;
        var job = new PackJob { X = x, Tokens = tokens, K = k, XT = xt + ((nint)kOffset * nr), PanelStride = (nint)panelK * nr, Nr = nr };
        ComputePool.Run((long)tokens * k < ParallelMinWork ? null : pool, panels, ref job);
    }

    /// <summary>Packs panel <paramref name="p"/> of <c>x [tokens, k]</c> into <paramref name="panel"/> (<c>panel[i][j] = x[p*nr + j, i]</c>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void PackPanel(float* x, int tokens, int k, float* panel, int nr, int p)
    {
        int j = 0;
        if (Avx.IsSupported)
        {
            // Whole 8x8 blocks by register transposes, the k remainder of those 8 tokens one by one.
            for (; j <= Math.Min(nr, tokens - (p * nr)) - 8; j += 8)
            {
                float* src = x + ((nint)((p * nr) + j) * k);
                int i = 0;
                for (; i <= k - 8; i += 8)
                {
                    Transpose8x8(src + i, k, panel + ((nint)i * nr) + j, nr, false);
                }

                for (; i < k; i++)
                {
                    for (int q = 0; q < 8; q++)
                    {
                        panel[((nint)i * nr) + j + q] = src[((nint)q * k) + i];
                    }
                }
            }
        }

        for (; j < nr; j++)
        {
            int t = (p * nr) + j;
            float* dst = panel + j;
            if (t < tokens)
            {
                float* src = x + ((nint)t * k);
                for (int i = 0; i < k; i++)
                {
                    dst[(nint)i * nr] = src[i];
                }
            }
            else
            {
                for (int i = 0; i < k; i++)
                {
                    dst[(nint)i * nr] = 0f;
                }
            }
        }
    }

    /// <summary>Copies (widening) one full NR-wide panel row with vector loads; false if no vector path applies.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool PackFullRow(WeightType type, byte* src, float* dst)
    {
        if (Vector512.IsHardwareAccelerated)
        {
            Vector512<float> lo, hi;
            switch (type)
            {
                case WeightType.F32: LoadF32.Load32(src, 0, out lo, out hi); break;
                case WeightType.BF16: LoadBF16.Load32(src, 0, out lo, out hi); break;
                default: LoadF16.Load32(src, 0, out lo, out hi); break;
            }

            lo.Store(dst);
            hi.Store(dst + 16);
            return true;
        }

        if (Vector256.IsHardwareAccelerated)
        {
            Vector256<float> lo, hi;
            switch (type)
            {
                case WeightType.F32: LoadF32.Load16(src, 0, out lo, out hi); break;
                case WeightType.BF16: LoadBF16.Load16(src, 0, out lo, out hi); break;
                default: LoadF16.Load16(src, 0, out lo, out hi); break;
            }

            lo.Store(dst);
            hi.Store(dst + 8);
            return true;
        }

        return false;
    }

    /// <summary>Widens <paramref name="count"/> stored weights into float32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void WidenRow(WeightType type, byte* source, float* destination, int count)
    {
        switch (type)
        {
            case WeightType.F32:
                Buffer.MemoryCopy(source, destination, (long)count * 4, (long)count * 4);
                break;
            case WeightType.BF16:
                Precision.WidenBF16((ushort*)source, destination, count);
                break;
            default:
                WidenF16((ushort*)source, destination, count);
                break;
        }
    }

    /// <summary>Widens <paramref name="count"/> (at most 8) adjacent stored weights into float32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void WidenColumns(WeightType type, byte* source, float* destination, int count)
    {
        if (count == 8 && type == WeightType.BF16 && Vector256.IsHardwareAccelerated)
        {
            (Vector256.WidenLower(Vector128.Load((ushort*)source).ToVector256Unsafe()) << 16).AsSingle().Store(destination);
            return;
        }

        WidenRow(type, source, destination, count);
    }

    /// <summary>Prefetches <paramref name="bytes"/> bytes of each of <paramref name="rows"/> rows (x86; a no-op elsewhere).</summary>
    private static void PrefetchRows(byte* first, nint rowBytes, int rows, int bytes)
    {
        if (!System.Runtime.Intrinsics.X86.Sse.IsSupported)
        {
            return;
        }

        for (int r = 0; r < rows; r++)
        {
            byte* row = first + (r * rowBytes);
            for (int b = 0; b < bytes; b += 64)
            {
                System.Runtime.Intrinsics.X86.Sse.Prefetch0(row + b);
            }
        }
    }
}
