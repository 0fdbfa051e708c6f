using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace LiveLearning.Numerics;

/// <content>The parallel jobs: each item owns a disjoint set of output tiles.</content>
public static unsafe partial class Gemm
{
    /// <summary>Packs token panels in parallel (each panel is written by one item, so the split changes nothing).</summary>
    private struct PackJob : IParallelJob
    {
        public float* X;
        public int Tokens;
        public int K;
        public float* XT;
        public nint PanelStride;
        public int Nr;

        public readonly void Execute(int index) => PackPanel(X, Tokens, K, XT + (index * PanelStride), Nr, index);
    }

    /// <summary>Row blocks of the weight (MR output features) against every token panel.</summary>
    private struct LinearJob : IParallelJob
    {
        public LinearTargets Targets;
        public KSegments Segments;
        public float* XT;
        public WeightType Type;
        public int Tokens;
        public int InF;
        public bool Accumulate;
        public int Items;

        /// <summary>
        /// The weight is stored transposed, <c>[InF, OutF]</c> (so <c>dX = dY·W</c> runs as <c>dXᵀ = Wᵀ·dYᵀ</c> through
        /// this same kernel): a block's broadcast operand is 8 adjacent columns read down the rows.
        /// </summary>
        public bool Transposed;

        public readonly void Execute(int index)
        {
            int blocks = Targets.TotalBlocks;
            (int first, int last) = ComputePool.ItemRange(blocks, index, Items);
            if (Type == WeightType.F32)
            {
                Run(first, last, null);
                return;
            }

            float[] rented = ArrayPool<float>.Shared.Rent((Mr * LinearKBlock) + 16);
            try
            {
                fixed (float* raw = rented)
                {
                    Run(first, last, Align64(raw));
                }
            }
            finally
            {
                ArrayPool<float>.Shared.Return(rented);
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private readonly void Run(int first, int last, float* widened)
        {
            float* tileRaw = stackalloc float[(8 * 32) + 16];
            float* tile = Align64(tileRaw);
            int mr = Mr;
            int nr = Nr;
            int esize = WeightMatrix.ElementSize(Type);
            int panels = (Tokens + nr - 1) / nr;
            for (int s = 0; s < Segments.Count; s++)
            {
                KSegment seg = Segments[s];
                int chunk = LinearKChunk(seg.K);
                for (int k0 = 0; k0 < seg.K; k0 += chunk)
                {
                    int kc = Math.Min(chunk, seg.K - k0);
                    bool add = Accumulate || seg.Offset + k0 > 0;
                    for (int block = first; block < last; block++)
                    {
                        int local = block;
                        LinearTarget target = Targets.Find(ref local);
                        byte* w = seg.W != null ? seg.W : target.W;
                        int outF = target.OutF;
                        int o0 = local * mr;
                        int rows = Math.Min(mr, outF - o0);
                        // The broadcast operand: float32 weights and bfloat16 rows are read in place (bfloat16 widened in
                        // the kernel; not the matrix's first element, whose widening word would start before the buffer),
                        // everything else is widened into a float32 block first.
                        float* a;
                        nint aRowStride;
                        nint aColStride = 1;
                        bool bf16InPlace = Type == WeightType.BF16 && !Transposed && (o0 | k0) != 0;
                        if (bf16InPlace)
                        {
                            a = (float*)(w + ((((nint)o0 * InF) + k0) * esize));
                            aRowStride = InF;
                        }
                        else if (Transposed)
                        {
                            if (widened is null)
                            {
                                a = (float*)w + ((nint)k0 * outF) + o0;
                            }
                            else
                            {
                                for (int k = 0; k < kc; k++)
                                {
                                    WidenColumns(Type, w + ((((nint)(k0 + k) * outF) + o0) * esize), widened + ((nint)k * mr), rows);
                                }

                                a = widened;
                            }

                            aRowStride = 1;
                            aColStride = widened is null ? outF : mr;
                        }
                        else if (widened is null)
                        {
                            a = (float*)w + ((nint)o0 * InF) + k0;
                            aRowStride = InF;
                        }
                        else
                        {
                            for (int r = 0; r < rows; r++)
                            {
                                WidenRow(Type, w + ((((nint)(o0 + r) * InF) + k0) * esize), widened + ((nint)r * kc), kc);
                            }

                            a = widened;
                            aRowStride = kc;
                        }

                        // The next row block of this weight is prefetched during the block's last panel, spread over the
                        // kernel's k steps (see NextBlockSource; interleaved A/B, 64-token prefill: F32 0.96, BF16
                        // 0.93). A burst of prefetches at the block's start cost 2-8 % instead.
                        for (int p = 0; p < panels; p++)
                        {
                            int t0 = p * nr;
                            int cols = Math.Min(nr, Tokens - t0);

                            // yᵀ tile: rows are output features (unit stride in y), columns are tokens (stride OutF).
                            float* panel = XT + ((nint)p * nr * InF) + ((nint)(seg.Offset + k0) * nr);
                            float* yt = target.Y + ((nint)t0 * outF) + o0;
                            bool ahead = p == panels - 1 && o0 + mr < outF;
                            if (bf16InPlace && ahead)
                            {
                                MicroTile<NextBlockSource<BF16Source>>((byte*)a, aRowStride * sizeof(ushort), aColStride * sizeof(ushort), panel, kc, rows, cols, yt, 1, outF, add, tile);
                            }
                            else if (!Transposed && widened is null && ahead)
                            {
                                MicroTile<NextBlockSource<F32Source>>((byte*)a, aRowStride * sizeof(float), aColStride * sizeof(float), panel, kc, rows, cols, yt, 1, outF, add, tile);
                            }
                            else if (bf16InPlace)
                            {
                                MicroTile<BF16Source>((byte*)a, aRowStride * sizeof(ushort), aColStride * sizeof(ushort), panel, kc, rows, cols, yt, 1, outF, add, tile);
                            }
                            else
                            {
                                // A float32 weight read down its columns: the first panel's pass touches the line after
                                // each element, so the next block of columns finds its strip in cache (interleaved A/B,
                                // cold weights: a 1x64 training step -4 to -7 %, 4x64 unchanged).
                                if (p == 0 && Transposed && widened is null)
                                {
                                    MicroTile<F32NextLineSource>((byte*)a, aRowStride * sizeof(float), aColStride * sizeof(float), panel, kc, rows, cols, yt, 1, outF, add, tile);
                                }
                                else
                                {
                                    MicroTile<F32Source>((byte*)a, aRowStride * sizeof(float), aColStride * sizeof(float), panel, kc, rows, cols, yt, 1, outF, add, tile);
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// <summary>Column panels of C: pack B per K-block, then sweep all rows of A.</summary>
    private struct PackedJob : IParallelJob
    {
        public float* C;
        public float* A;
        public byte* B;
        public WeightType BType;
        public int M;
        public int N;
        public int K;
        public nint ARowStride;
        public nint AColStride;
        public nint Ldb;
        public bool Accumulate;
        public int Panels;
        public int Items;

        public readonly void Execute(int index)
        {
            (int first, int last) = ComputePool.ItemRange(Panels, index, Items);
            int nr = Nr;
            float[] rented = ArrayPool<float>.Shared.Rent((KBlock * nr) + 16);
            try
            {
                fixed (float* raw = rented)
                {
                    Run(first, last, Align64(raw));
                }
            }
            finally
            {
                ArrayPool<float>.Shared.Return(rented);
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private readonly void Run(int first, int last, float* panel)
        {
            float* tileRaw = stackalloc float[(8 * 32) + 16];
            float* tile = Align64(tileRaw);
            int mr = Mr;
            int nr = Nr;
            int esize = WeightMatrix.ElementSize(BType);
            for (int p = first; p < last; p++)
            {
                int n0 = p * nr;
                int cols = Math.Min(nr, N - n0);
                for (int k0 = 0; k0 < K; k0 += KBlock)
                {
                    int kc = Math.Min(KBlock, K - k0);
                    for (int kk = 0; kk < kc; kk++)
                    {
                        float* dst = panel + ((nint)kk * nr);
                        byte* src = B + ((((nint)(k0 + kk) * Ldb) + n0) * esize);
                        if (cols == nr && PackFullRow(BType, src, dst))
                        {
                            continue;
                        }

                        WidenRow(BType, src, dst, cols);
                        for (int j = cols; j < nr; j++)
                        {
                            dst[j] = 0f;
                        }
                    }

                    // Ask for the next panel block's rows now; packing it then reads from cache, not DRAM.
                    (int pn, int kn) = k0 + KBlock < K ? (p, k0 + KBlock) : (p + 1, 0);
                    if (pn < last)
                    {
                        int nn = pn * nr;
                        PrefetchRows(B + ((((nint)kn * Ldb) + nn) * esize), Ldb * esize, Math.Min(KBlock, K - kn), Math.Min(nr, N - nn) * esize);
                    }

                    bool add = Accumulate || k0 > 0;
                    for (int m0 = 0; m0 < M; m0 += mr)
                    {
                        int rows = Math.Min(mr, M - m0);
                        float* a = A + (m0 * ARowStride) + (k0 * AColStride);
                        MicroTile<F32Source>((byte*)a, ARowStride * sizeof(float), AColStride * sizeof(float), panel, kc, rows, cols, C + ((nint)m0 * N) + n0, N, 1, add, tile);
                    }
                }
            }
        }
    }
}
