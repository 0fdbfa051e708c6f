namespace LiveLearning.Models;

/// <summary>The seven linear projections of a Llama-family decoder layer, the places an adapter can attach.</summary>
public enum Projection
{
    /// <summary><c>self_attn.q_proj</c>: [heads·headDim, hidden].</summary>
    QProj = 0,

    /// <summary><c>self_attn.k_proj</c>: [kvHeads·headDim, hidden].</summary>
    KProj = 1,

    /// <summary><c>self_attn.v_proj</c>: [kvHeads·headDim, hidden].</summary>
    VProj = 2,

    /// <summary><c>self_attn.o_proj</c>: [hidden, heads·headDim].</summary>
    OProj = 3,

    /// <summary><c>mlp.gate_proj</c>: [intermediate, hidden].</summary>
    GateProj = 4,

    /// <summary><c>mlp.up_proj</c>: [intermediate, hidden].</summary>
    UpProj = 5,

    /// <summary><c>mlp.down_proj</c>: [hidden, intermediate].</summary>
    DownProj = 6,
}

/// <summary>Names of projections as they appear in Hugging Face checkpoints.</summary>
public static class ProjectionNames
{
    /// <summary>Number of projections per layer.</summary>
    public const int Count = 7;

    /// <summary>All projections in layer order.</summary>
    public static IReadOnlyList<Projection> All { get; } =
        [Projection.QProj, Projection.KProj, Projection.VProj, Projection.OProj, Projection.GateProj, Projection.UpProj, Projection.DownProj];

    /// <summary>The short module name, e.g. <c>q_proj</c>.</summary>
    /// <param name="projection">The projection.</param>
    /// <returns>The module name.</returns>
    public static string ModuleName(Projection projection) => projection switch
    {
        Projection.QProj => "q_proj",
        Projection.KProj => "k_proj",
        Projection.VProj => "v_proj",
        Projection.OProj => "o_proj",
        Projection.GateProj => "gate_proj",
        Projection.UpProj => "up_proj",
        Projection.DownProj => "down_proj",
        _ => throw new ArgumentOutOfRangeException(nameof(projection), projection, "Unknown projection."),
    };

    /// <summary>The module path inside the model, e.g. <c>model.layers.3.self_attn.q_proj</c>.</summary>
    /// <param name="layer">Layer index.</param>
    /// <param name="projection">The projection.</param>
    /// <returns>The module path.</returns>
    public static string ModulePath(int layer, Projection projection) =>
        projection <= Projection.OProj
            ? $"model.layers.{layer}.self_attn.{ModuleName(projection)}"
            : $"model.layers.{layer}.mlp.{ModuleName(projection)}";

    /// <summary>Parses a short module name (<c>q_proj</c> …).</summary>
    /// <param name="moduleName">The name.</param>
    /// <param name="projection">The projection, when recognised.</param>
    /// <returns>Whether the name is one of the seven projections.</returns>
    public static bool TryParse(string moduleName, out Projection projection)
    {
        foreach (Projection p in All)
        {
            if (string.Equals(ModuleName(p), moduleName, StringComparison.Ordinal))
            {
                projection = p;
                return true;
            }
        }

        projection = default;
        return false;
    }
}
