using LiveLearning.Lora;
using LiveLearning.Models;
using NUnit.Framework;

namespace LiveLearning.Tests.Lora;

/// <summary>Central finite differences of the training loss along a seeded direction in one slot's parameters.</summary>
internal static class GradientChecks
{
    /// <summary>
    /// Checks <c>g·d</c> against <c>(L(θ+εd) − L(θ−εd)) / 2ε</c> for a random unit direction <c>d</c> over the slot's A and
    /// B, and the same for A only and B only (so an error in either half cannot hide behind the other).
    /// </summary>
    public static void CheckSlot(LlamaModel model, IReadOnlyList<TrainingSequence> batch, LoraAdapter adapter, int layer, Projection projection, float[] gradient, Func<LoraAdapter, IModelAdapter> wrap)
    {
        LoraLayer slot = adapter.GetLayer(layer, projection)!;
        int aLength = slot.A.Length;
        var rng = new Random((layer * 31) + (int)projection);
        foreach ((int from, int to) in new[] { (0, aLength), (aLength, gradient.Length) })
        {
            double[] d = new double[gradient.Length];
            double norm = 0;
            for (int i = from; i < to; i++)
            {
                d[i] = (rng.NextDouble() * 2) - 1;
                norm += d[i] * d[i];
            }

            norm = Math.Sqrt(norm);
            double analytic = 0;
            for (int i = from; i < to; i++)
            {
                d[i] /= norm;
                analytic += gradient[i] * d[i];
            }

            const double eps = 2e-2;
            double Loss(double sign)
            {
                float[] a = slot.A.ToArray();
                float[] b = slot.B.ToArray();
                for (int i = from; i < to; i++)
                {
                    float delta = (float)(sign * eps * d[i]);
                    if (i < aLength)
                    {
                        a[i] += delta;
                    }
                    else
                    {
                        b[i - aLength] += delta;
                    }
                }

                var layers = adapter.Entries().ToDictionary(e => (e.Layer, e.Projection), e => e.Lora);
                layers[(layer, projection)] = new LoraLayer(a, b, slot.InFeatures, slot.OutFeatures, slot.Rank, slot.Alpha, slot.UseRsLora, slot.Dropout).WithDropout(slot.Dropout, slot.DropoutSeed);
                IModelAdapter probe = wrap(new LoraAdapter(adapter.NumLayers, layers, adapter.Config));
                return model.ComputeGradients(batch, probe, new AdapterGradients(probe, model.Config.NumLayers)).Loss;
            }

            double numeric = (Loss(1) - Loss(-1)) / (2 * eps);
            Assert.That(analytic, Is.EqualTo(numeric).Within((0.02 * Math.Abs(numeric)) + 2e-4), $"{ProjectionNames.ModulePath(layer, projection)} {(from == 0 ? "A" : "B")}");
        }
    }
}
