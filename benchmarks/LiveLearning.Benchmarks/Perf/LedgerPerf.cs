using LiveLearning.Governance;

namespace LiveLearning.Benchmarks.Perf;

/// <summary>
/// The audit ledger: entries per second appended by 8 concurrent writers to the SQLite ledger at each durability, with
/// the in-memory ledger as the baseline in the same run; and the time to verify the whole chain per 1 000 entries.
/// An entry is an accepted item's (model, scope, source, sequence, message).
/// </summary>
internal sealed class LedgerPerf : IPerfProbe
{
    private const int Writers = 8;

    public int Order => 56;

    public void Run(PerfContext perf)
    {
        string dir = Path.Combine(Path.GetTempPath(), "ll-perf-ledger-" + Guid.NewGuid().ToString("N"));
        try
        {
            perf.Report("ledger_append_per_s_in_memory", EntriesPerSecond(new InMemoryLedger(100_000), 20_000));
            using (var normal = new SqliteLedger(new SqliteLedgerOptions { Path = Path.Combine(dir, "normal.db") }))
            {
                perf.Report("ledger_append_per_s_sqlite_normal", EntriesPerSecond(normal, 4_000));
                long start = System.Diagnostics.Stopwatch.GetTimestamp();
                LedgerVerification check = normal.VerifyChainAsync().AsTask().GetAwaiter().GetResult();
                double ms = System.Diagnostics.Stopwatch.GetElapsedTime(start).TotalMilliseconds;
                perf.Report("ledger_verify_ms_per_1000_entries", ms * 1000 / Math.Max(1, check.Checked));
            }

            using var full = new SqliteLedger(new SqliteLedgerOptions { Path = Path.Combine(dir, "full.db"), Durability = SqliteDurability.Full });
            perf.Report("ledger_append_per_s_sqlite_full", EntriesPerSecond(full, 800));
        }
        finally
        {
            if (Directory.Exists(dir))
            {
                Directory.Delete(dir, recursive: true);
            }
        }
    }

    /// <summary>Median of three rounds of <paramref name="entries"/> appends shared by the writers.</summary>
    private static double EntriesPerSecond(ILearningLedger ledger, int entries)
    {
        return ConcurrentRate.Median(Writers, entries, async (w, i) =>
        {
            var entry = new LedgerEntry(DateTimeOffset.UnixEpoch, "perf", "default", LedgerEvent.Accepted, "Completion item accepted (40 prompt and 24 completion tokens).") { Source = $"writer-{w}", Sequence = i };
            await ledger.AppendAsync(entry, CancellationToken.None).ConfigureAwait(false);
        });
    }
}
