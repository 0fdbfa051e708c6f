using LiveLearning.Governance;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace LiveLearning;

/// <summary>Registers the SQLite ledger.</summary>
public static class SqliteLiveLearningBuilderExtensions
{
    /// <summary>Records every model's decisions in a SQLite ledger (also resolvable as <see cref="IQueryableLedger"/> and <see cref="SqliteLedger"/>).</summary>
    /// <param name="builder">The builder.</param>
    /// <param name="path">The database file.</param>
    /// <param name="durability">How durable each append is. Default <see cref="SqliteDurability.Normal"/>.</param>
    /// <returns>The builder.</returns>
    public static LiveLearningBuilder UseSqliteLedger(this LiveLearningBuilder builder, string path, SqliteDurability durability = SqliteDurability.Normal)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        builder.Services.TryAddSingleton(_ => new SqliteLedger(new SqliteLedgerOptions { Path = path, Durability = durability }));
        builder.Services.Replace(ServiceDescriptor.Singleton<ILearningLedger>(sp => sp.GetRequiredService<SqliteLedger>()));
        builder.Services.Replace(ServiceDescriptor.Singleton<IQueryableLedger>(sp => sp.GetRequiredService<SqliteLedger>()));
        return builder;
    }
}
