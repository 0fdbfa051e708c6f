using System.Runtime.CompilerServices;

namespace LiveLearning.Numerics;

/// <summary>
/// One unit of parallel work: <see cref="Execute"/> is called once for every index in <c>[0, count)</c>.
/// Implemented by small structs so a dispatch allocates nothing and the call is specialised by the JIT.
/// </summary>
public interface IParallelJob
{
    /// <summary>Runs work item <paramref name="index"/>. Items must write disjoint outputs.</summary>
    void Execute(int index);
}

/// <summary>
/// A small fork-join pool for compute kernels: dedicated worker threads that spin briefly between jobs
/// (so back-to-back kernel calls cost a few hundred nanoseconds to dispatch) and then sleep.
/// </summary>
/// <remarks>
/// <para>The calling thread always takes part in the work, so a pool of <c>n</c> threads owns <c>n - 1</c>
/// workers. Work items are claimed dynamically, but every item writes its own output with a computation that
/// does not depend on which thread runs it, so results are deterministic for a fixed split.</para>
/// <para>Calls from several threads at once are serialised. A job that calls back into its own pool
/// (from the caller or a worker) runs that inner job inline on the current thread.</para>
/// </remarks>
public sealed unsafe class ComputePool : IDisposable
{
    private const int SpinIterationsBeforeSleep = 20_000;

    private readonly Thread[] _workers;
    private readonly Lock _dispatchLock = new();
    private readonly object _sleepLock = new();

    // Current job: a pointer to the caller's job struct (it lives on the caller's stack, which stays
    // put because the caller blocks until the job completes) and a function that invokes it.
    private nint _jobState;
    private delegate*<nint, int, void> _jobInvoke;
    private int _jobCount;

    // High 32 bits: generation of the current job; low 32 bits: next unclaimed index.
    private long _next;
    private int _generation;
    private int _completed;
    private int _sleepers;
    private volatile bool _disposed;
    private Exception? _failure;
    private int _dispatchingThread;

    /// <summary>Creates a pool that uses <paramref name="threadCount"/> threads including the caller.</summary>
    /// <param name="threadCount">Total threads; defaults to <see cref="Environment.ProcessorCount"/>.</param>
    /// <exception cref="ArgumentOutOfRangeException">If <paramref name="threadCount"/> is less than 1 or more than 256.</exception>
    public ComputePool(int threadCount = 0)
    {
        if (threadCount == 0)
        {
            threadCount = Environment.ProcessorCount;
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(threadCount, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(threadCount, 256);
        ThreadCount = threadCount;
        _workers = new Thread[threadCount - 1];
        for (int i = 0; i < _workers.Length; i++)
        {
            _workers[i] = new Thread(WorkerLoop)
            {
                IsBackground = true,
                Name = $"LiveLearning compute {i + 1}",
            };
            _workers[i].Start();
        }
    }

    /// <summary>Total number of threads that run work, including the calling thread.</summary>
    public int ThreadCount { get; }

    /// <summary>
    /// Runs <c>job.Execute(i)</c> for every <c>i</c> in <c>[0, count)</c> across the pool and returns when all
    /// have finished. The first exception thrown by any item is rethrown here after all items have run.
    /// </summary>
    /// <typeparam name="TJob">The job struct.</typeparam>
    /// <param name="count">Number of work items.</param>
    /// <param name="job">The job; passed by reference and never copied.</param>
    public void For<TJob>(int count, ref TJob job)
        where TJob : struct, IParallelJob
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (count == 0)
        {
            return;
        }

        if (count == 1 || _workers.Length == 0 || IsReentrant())
        {
            for (int i = 0; i < count; i++)
            {
                job.Execute(i);
            }

            return;
        }

        lock (_dispatchLock)
        {
            _dispatchingThread = Environment.CurrentManagedThreadId;
            try
            {
                // The workers reach the job through a pointer, so it must not move: work on a copy on this
                // thread's stack (the caller's job may live in a movable heap object) and copy it back after.
                TJob local = job;
                Dispatch(count, (nint)Unsafe.AsPointer(ref local), &Invoke<TJob>);
                job = local;
            }
            finally
            {
                _dispatchingThread = 0;
            }
        }
    }

    /// <summary>
    /// Item <paramref name="index"/> of <paramref name="items"/> contiguous, near-equal parts of <c>[0, total)</c>: the
    /// split every range-parallel job uses, so a part depends only on the three numbers.
    /// </summary>
    /// <param name="total">Length of the range.</param>
    /// <param name="index">The item, 0 to <paramref name="items"/> − 1.</param>
    /// <param name="items">Number of items (at least 1).</param>
    /// <returns>The part's start (inclusive) and end (exclusive).</returns>
    public static (int Start, int End) ItemRange(int total, int index, int items)
        => ((int)((long)total * index / items), (int)((long)total * (index + 1) / items));

    /// <summary>
    /// Work items for a pass over independent rows (normalisation, rotation, element-wise activations): one per 16 Ki
    /// elements, at most two per thread and one per row; 1 without a pool of several threads or for zero rows.
    /// </summary>
    /// <param name="pool">The pool, or <see langword="null"/>.</param>
    /// <param name="rows">Number of rows.</param>
    /// <param name="elements">Elements in all rows together.</param>
    /// <returns>The item count (at least 1).</returns>
    public static int RowItems(ComputePool? pool, int rows, long elements)
        => pool is null || pool.ThreadCount == 1 || rows == 0 ? 1 : (int)Math.Clamp(elements / 16384, 1, Math.Min(rows, 2 * pool.ThreadCount));

    /// <summary>Convenience: runs <paramref name="job"/> on a pool when one is given, else inline.</summary>
    /// <typeparam name="TJob">The job struct.</typeparam>
    /// <param name="pool">The pool, or <see langword="null"/> to run on the calling thread.</param>
    /// <param name="count">Number of work items.</param>
    /// <param name="job">The job.</param>
    public static void Run<TJob>(ComputePool? pool, int count, ref TJob job)
        where TJob : struct, IParallelJob
    {
        if (pool is null)
        {
            for (int i = 0; i < count; i++)
            {
                job.Execute(i);
            }
        }
        else
        {
            pool.For(count, ref job);
        }
    }

    /// <summary>Stops the worker threads. Jobs already running finish first.</summary>
    public void Dispose()
    {
        lock (_dispatchLock)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            lock (_sleepLock)
            {
                Monitor.PulseAll(_sleepLock);
            }
        }

        foreach (Thread worker in _workers)
        {
            worker.Join();
        }
    }

    private static void Invoke<TJob>(nint state, int index)
        where TJob : struct, IParallelJob
        => Unsafe.AsRef<TJob>((void*)state).Execute(index);

    private bool IsReentrant()
    {
        int me = Environment.CurrentManagedThreadId;
        if (Volatile.Read(ref _dispatchingThread) == me)
        {
            return true;
        }

        foreach (Thread worker in _workers)
        {
            if (worker.ManagedThreadId == me)
            {
                return true;
            }
        }

        return false;
    }

    private void Dispatch(int count, nint state, delegate*<nint, int, void> invoke)
    {
        int generation = _generation + 1;
        _jobState = state;
        _jobInvoke = invoke;
        _jobCount = count;
        _completed = 0;
        _failure = null;
        Interlocked.Exchange(ref _next, (long)generation << 32);
        Interlocked.Exchange(ref _generation, generation);
        if (Volatile.Read(ref _sleepers) > 0)
        {
            lock (_sleepLock)
            {
                Monitor.PulseAll(_sleepLock);
            }
        }

        RunItems(generation, state, invoke, count);

        var spin = default(SpinWait);
        while (Volatile.Read(ref _completed) < count)
        {
            spin.SpinOnce(sleep1Threshold: -1);
        }

        if (_failure is { } failure)
        {
            _failure = null;
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
        }
    }

    private void RunItems(int generation, nint state, delegate*<nint, int, void> invoke, int count)
    {
        while (true)
        {
            // Claim with compare-and-swap so a thread still holding an older generation never consumes
            // an index of the next job.
            long current = Volatile.Read(ref _next);
            if ((int)(current >> 32) != generation)
            {
                return;
            }

            int index = (int)(current & 0xFFFF_FFFF);
            if (index >= count)
            {
                return;
            }

            if (Interlocked.CompareExchange(ref _next, current + 1, current) != current)
            {
                continue;
            }

            try
            {
                invoke(state, index);
            }
            catch (Exception ex)
            {
                Interlocked.CompareExchange(ref _failure, ex, null);
            }

            Interlocked.Increment(ref _completed);
        }
    }

    private void WorkerLoop()
    {
        int seen = Volatile.Read(ref _generation);
        while (true)
        {
            int spins = 0;
            int generation;
            while ((generation = Volatile.Read(ref _generation)) == seen && !_disposed)
            {
                if (++spins < SpinIterationsBeforeSleep)
                {
                    Thread.SpinWait(8);
                    continue;
                }

                lock (_sleepLock)
                {
                    Interlocked.Increment(ref _sleepers);
                    while (Volatile.Read(ref _generation) == seen && !_disposed)
                    {
                        Monitor.Wait(_sleepLock);
                    }

                    Interlocked.Decrement(ref _sleepers);
                }
            }

            if (_disposed)
            {
                return;
            }

            seen = generation;
            nint state = Volatile.Read(ref _jobState);
            delegate*<nint, int, void> invoke = _jobInvoke;
            int count = Volatile.Read(ref _jobCount);
            RunItems(generation, state, invoke, count);
        }
    }
}
