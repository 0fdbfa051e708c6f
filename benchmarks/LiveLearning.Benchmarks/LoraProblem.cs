using System.Numerics.Tensors;
using LiveLearning.Numerics;

namespace LiveLearning.Benchmarks;

/// <summary>Buffers for one LoRA layer call, and the unfused composition used as the baseline.</summary>
internal sealed class LoraProblem
{
    private readonly float[] _x, _a, _b, _y, _h, _dy, _dA, _dB, _dx, _dh, _bt, _dbt;

    public LoraProblem(int tokens, int inFeatures, int outFeatures, int rank)
    {
        Tokens = tokens;
        In = inFeatures;
        Out = outFeatures;
        Rank = rank;
        var rng = new Random(1234);
        float[] Fill(int n)
        {
            var v = new float[n];
            for (int i = 0; i < n; i++)
            {
                v[i] = (float)((rng.NextDouble() * 2) - 1);
            }

            return v;
        }

        _x = Fill(tokens * inFeatures);
        _a = Fill(rank * inFeatures);
        _b = Fill(outFeatures * rank);
        _dy = Fill(tokens * outFeatures);
        _y = new float[tokens * outFeatures];
        _h = new float[tokens * rank];
        _dA = new float[rank * inFeatures];
        _dB = new float[outFeatures * rank];
        _dx = new float[tokens * inFeatures];
        _dh = new float[tokens * rank];
        _bt = new float[rank * outFeatures];
        _dbt = new float[rank * outFeatures];
        Scale = 2f;
    }

    public int Tokens { get; }

    public int In { get; }

    public int Out { get; }

    public int Rank { get; }

    public float Scale { get; }

    public void FusedForward(ComputePool? pool) =>
        LoraKernels.Forward(_y, _h, _x, _a, _b, Tokens, In, Out, Rank, Scale, pool);

    public void FusedBackward(ComputePool? pool) =>
        LoraKernels.Backward(_dA, _dB, _dx, _dh, _dy, _x, _h, _a, _b, Tokens, In, Out, Rank, Scale, pool);

    /// <summary>The straightforward way: a Dot per element of h, then B applied row by row with MultiplyAdd.</summary>
    public void UnfusedForward()
    {
        int n = In, o = Out, r = Rank;
        for (int t = 0; t < Tokens; t++)
        {
            for (int k = 0; k < r; k++)
            {
                _h[(t * r) + k] = TensorPrimitives.Dot(_x.AsSpan(t * n, n), _a.AsSpan(k * n, n));
            }
        }

        TransposeB();
        for (int t = 0; t < Tokens; t++)
        {
            Span<float> yRow = _y.AsSpan(t * o, o);
            for (int k = 0; k < r; k++)
            {
                TensorPrimitives.MultiplyAdd(_bt.AsSpan(k * o, o), Scale * _h[(t * r) + k], yRow, yRow);
            }
        }
    }

    /// <summary>The straightforward way: dH by Dot, then dB, dA and dx each as MultiplyAdd sweeps over rows.</summary>
    public void UnfusedBackward()
    {
        int n = In, o = Out, r = Rank;
        TransposeB();
        for (int t = 0; t < Tokens; t++)
        {
            for (int k = 0; k < r; k++)
            {
                _dh[(t * r) + k] = Scale * TensorPrimitives.Dot(_dy.AsSpan(t * o, o), _bt.AsSpan(k * o, o));
            }
        }

        Array.Clear(_dbt);
        for (int k = 0; k < r; k++)
        {
            Span<float> dbRow = _dbt.AsSpan(k * o, o);
            Span<float> daRow = _dA.AsSpan(k * n, n);
            for (int t = 0; t < Tokens; t++)
            {
                TensorPrimitives.MultiplyAdd(_dy.AsSpan(t * o, o), Scale * _h[(t * r) + k], dbRow, dbRow);
                TensorPrimitives.MultiplyAdd(_x.AsSpan(t * n, n), _dh[(t * r) + k], daRow, daRow);
            }
        }

        for (int j = 0; j < o; j++)
        {
            for (int k = 0; k < r; k++)
            {
                _dB[(j * r) + k] += _dbt[(k * o) + j];
            }
        }

        for (int t = 0; t < Tokens; t++)
        {
            Span<float> dxRow = _dx.AsSpan(t * n, n);
            for (int k = 0; k < r; k++)
            {
                TensorPrimitives.MultiplyAdd(_a.AsSpan(k * n, n), _dh[(t * r) + k], dxRow, dxRow);
            }
        }
    }

    private void TransposeB()
    {
        for (int j = 0; j < Out; j++)
        {
            for (int k = 0; k < Rank; k++)
            {
                _bt[(k * Out) + j] = _b[(j * Rank) + k];
            }
        }
    }
}
