namespace LiveLearning.Backends;

/// <summary>
/// The math of the training objectives, as weights on each sequence's summed cross-entropy (what an engine's backward
/// needs: <c>∂L/∂θ = Σ_s (∂L/∂CE_s) · ∂CE_s/∂θ</c>, with <c>CE_s = −ll_s</c>). Sequences are laid out example by example:
/// its completion, then, for a preference, its rejected completion.
/// </summary>
/// <remarks>
/// With example weights <c>w_i</c> and <c>N</c> examples, the batch objective is the weighted mean <c>(1/N) Σ_i w_i · L_i</c>
/// (a weight counts in absolute terms: an item of weight 2 pulls twice as hard, alone in its batch or not), with:
/// <list type="bullet">
/// <item><description>Completion: <c>L = CE / n</c> (mean over its <c>n</c> tokens): weight <c>w / n</c>.</description></item>
/// <item><description>Preference (DPO): <c>z = β·((ll_c − ref_c) − (ll_r − ref_r))</c>, <c>L = −log σ(z)</c>: weights
/// <c>+w·β·σ(−z)</c> on the chosen and <c>−w·β·σ(−z)</c> on the rejected sequence.</description></item>
/// <item><description>Rating (KTO): <c>r = ll − ref</c>; desirable <c>L = λ_D·(1 − σ(β(r − z₀)))</c>, weight
/// <c>+w·λ_D·β·s(1 − s)</c> with <c>s = σ(β(r − z₀))</c>; undesirable <c>L = λ_U·(1 − σ(β(z₀ − r)))</c>, weight
/// <c>−w·λ_U·β·s(1 − s)</c> with <c>s = σ(β(z₀ − r))</c>.</description></item>
/// </list>
/// </remarks>
public static class TrainingObjectives
{
    /// <summary>Sequences the batch runs as.</summary>
    /// <param name="batch">The examples.</param>
    /// <returns>The count.</returns>
    public static int SequenceCount(IReadOnlyList<TrainingExample> batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        int count = 0;
        foreach (TrainingExample e in batch)
        {
            count += e.SequenceCount;
        }

        return count;
    }

    /// <summary>Whether the weights depend on the current log-likelihoods (any preference or rating in the batch).</summary>
    /// <param name="batch">The examples.</param>
    /// <returns>True when a preference or rating is present.</returns>
    public static bool NeedsLogLikelihoods(IReadOnlyList<TrainingExample> batch)
    {
        ArgumentNullException.ThrowIfNull(batch);
        foreach (TrainingExample e in batch)
        {
            if (e.Objective != TrainingObjective.Completion)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// Writes each sequence's weight and returns the batch objective. Without log-likelihoods (a batch of completions
    /// only) the weights are written and 0 is returned: the engine then reports <c>Σ weight·CE</c>, which is the objective.
    /// </summary>
    /// <param name="batch">The examples.</param>
    /// <param name="options">DPO/KTO settings and the step's KTO reference point.</param>
    /// <param name="logLikelihoods">Per sequence, its summed log-likelihood (empty when not <see cref="NeedsLogLikelihoods"/>).</param>
    /// <param name="countedTokens">Per sequence, its labelled tokens.</param>
    /// <param name="weights">Per sequence, the weight written.</param>
    /// <returns>The objective's value.</returns>
    /// <exception cref="ArgumentException">A span's length does not match the batch's sequences.</exception>
    public static double Weigh(IReadOnlyList<TrainingExample> batch, ObjectiveOptions options, ReadOnlySpan<double> logLikelihoods, ReadOnlySpan<int> countedTokens, Span<float> weights)
    {
        ArgumentNullException.ThrowIfNull(batch);
        ArgumentNullException.ThrowIfNull(options);
        int sequences = SequenceCount(batch);
        if (countedTokens.Length != sequences || weights.Length != sequences)
        {
            throw new ArgumentException($"countedTokens and weights need {sequences} entries (one per sequence); got {countedTokens.Length} and {weights.Length}.", nameof(weights));
        }

        bool haveLikelihoods = !logLikelihoods.IsEmpty;
        if (haveLikelihoods && logLikelihoods.Length != sequences)
        {
            throw new ArgumentException($"logLikelihoods needs {sequences} entries; got {logLikelihoods.Length}.", nameof(logLikelihoods));
        }

        if (!haveLikelihoods && NeedsLogLikelihoods(batch))
        {
            throw new ArgumentException("A batch with preferences or ratings needs the current log-likelihoods.", nameof(logLikelihoods));
        }

        double total = batch.Count;
        double loss = 0;
        int s = 0;
        foreach (TrainingExample e in batch)
        {
            double w = total > 0 ? e.Weight / total : 0;
            switch (e.Objective)
            {
                case TrainingObjective.Completion:
                {
                    int n = countedTokens[s];
                    weights[s] = n == 0 ? 0f : (float)(w / n);
                    if (haveLikelihoods && n > 0)
                    {
                        loss += w * (-logLikelihoods[s] / n);
                    }

                    s += 1;
                    break;
                }

                case TrainingObjective.Preference:
                {
                    double beta = options.DpoBeta;
                    double z = beta * ((logLikelihoods[s] - e.ReferenceLogLikelihood) - (logLikelihoods[s + 1] - e.ReferenceRejectedLogLikelihood));
                    loss += w * Softplus(-z);
                    double g = w * beta * Sigmoid(-z);
                    weights[s] = (float)g;
                    weights[s + 1] = (float)-g;
                    s += 2;
                    break;
                }

                default:
                {
                    double beta = options.KtoBeta;
                    double r = logLikelihoods[s] - e.ReferenceLogLikelihood;
                    double z0 = options.KtoReferencePoint;
                    if (e.Desirable)
                    {
                        double sig = Sigmoid(beta * (r - z0));
                        loss += w * options.KtoDesirableWeight * (1 - sig);
                        weights[s] = (float)(w * options.KtoDesirableWeight * beta * sig * (1 - sig));
                    }
                    else
                    {
                        double sig = Sigmoid(beta * (z0 - r));
                        loss += w * options.KtoUndesirableWeight * (1 - sig);
                        weights[s] = (float)(-w * options.KtoUndesirableWeight * beta * sig * (1 - sig));
                    }

                    s += 1;
                    break;
                }
            }
        }

        return loss;
    }

    /// <summary>σ(x) = 1 / (1 + e^(−x)), without overflow for large |x|.</summary>
    /// <param name="x">The argument.</param>
    /// <returns>σ(x).</returns>
    public static double Sigmoid(double x) => x >= 0 ? 1 / (1 + Math.Exp(-x)) : Math.Exp(x) / (1 + Math.Exp(x));

    /// <summary>log(1 + e^x) = −log σ(−x), without overflow for large |x|.</summary>
    /// <param name="x">The argument.</param>
    /// <returns>softplus(x).</returns>
    public static double Softplus(double x) => x > 0 ? x + Math.Log(1 + Math.Exp(-x)) : Math.Log(1 + Math.Exp(x));
}
