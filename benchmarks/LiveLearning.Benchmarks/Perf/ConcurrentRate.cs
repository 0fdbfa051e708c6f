namespace LiveLearning.Benchmarks.Perf;

/// <summary>Operations per second that concurrent writers get done, each awaiting its own before the next.</summary>
internal static class ConcurrentRate
{
    /// <summary>Median of three rounds of <paramref name="items"/> operations shared by <paramref name="writers"/>.</summary>
    /// <param name="writers">Concurrent writers.</param>
    /// <param name="items">Operations per round, over all writers.</param>
    /// <param name="operation">One operation: the writer's index and its operation's index.</param>
    public static double Median(int writers, int items, Func<int, int, Task> operation)
    {
        var rates = new List<double>();
        for (int round = 0; round < 3; round++)
        {
            long start = System.Diagnostics.Stopwatch.GetTimestamp();
            Task[] tasks = [.. Enumerable.Range(0, writers).Select(w => Task.Run(async () =>
            {
                for (int i = 0; i < items / writers; i++)
                {
                    await operation(w, i).ConfigureAwait(false);
                }
            }))];
            Task.WaitAll(tasks);
            rates.Add(items / System.Diagnostics.Stopwatch.GetElapsedTime(start).TotalSeconds);
        }

        rates.Sort();
        return rates[1];
    }
}
