using LiveLearning.Backends;
using LiveLearning.Storage;

namespace LiveLearning.Benchmarks.Perf;

/// <summary>
/// The durable journal: items per second that 8 concurrent writers get acknowledged (each awaiting its record's
/// durability before the next, as <c>LearnAsync</c> does) under each flush policy, and the in-memory journal as the
/// baseline in the same run. A record is a 64-token correction (prompt and completion ids).
/// </summary>
internal sealed class JournalPerf : IPerfProbe
{
    private const int Writers = 8;

    public int Order => 55;

    public void Run(PerfContext perf)
    {
        string dir = Path.Combine(Path.GetTempPath(), "ll-perf-journal-" + Guid.NewGuid().ToString("N"));
        try
        {
            double memory = ItemsPerSecond(new InMemoryFeedbackJournal(), 4000);
            perf.Report("journal_append_items_per_s_in_memory", memory);
            foreach ((JournalFlushPolicy policy, string name, int items) in new[]
            {
                (JournalFlushPolicy.Fsync, "fsync", 800),
                (JournalFlushPolicy.FsyncInterval, "fsync_interval_10ms", 800),
                (JournalFlushPolicy.OperatingSystem, "os", 4000),
            })
            {
                string sub = Path.Combine(dir, name);
                using var journal = new FileFeedbackJournal(new FileFeedbackJournalOptions { Directory = sub, FlushPolicy = policy });
                perf.Report($"journal_append_items_per_s_{name}", ItemsPerSecond(journal, items));
            }

            using var key = new StorageKey(StorageKey.NewKey());
            using var sealedJournal = new FileFeedbackJournal(new FileFeedbackJournalOptions { Directory = Path.Combine(dir, "sealed"), Key = key });
            perf.Report("journal_append_items_per_s_fsync_encrypted", ItemsPerSecond(sealedJournal, 800));
        }
        finally
        {
            if (Directory.Exists(dir))
            {
                Directory.Delete(dir, recursive: true);
            }
        }
    }

    /// <summary>Median of three rounds of <paramref name="items"/> appends shared by the writers.</summary>
    private static double ItemsPerSecond(IFeedbackJournal journal, int items)
    {
        var record = new JournalRecord
        {
            Scope = "default",
            ReceivedAt = DateTimeOffset.UnixEpoch,
            Source = "perf",
            Example = new TrainingExample(TrainingObjective.Completion, [.. Enumerable.Range(1, 40)], [.. Enumerable.Range(100, 24)]),
        };
        return ConcurrentRate.Median(Writers, items, async (_, _) => await journal.Append(record).Durable.ConfigureAwait(false));
    }
}
