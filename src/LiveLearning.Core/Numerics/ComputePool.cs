using System.Diagnostics;
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
/// (so back-to-back kernel calls cost a few hundred nanoseconds to dispatch) and then sleep. Two lanes share the
/// threads: the foreground (serving; the default) and the background (learning), which yields to the foreground.
/// </summary>
/// <remarks>
/// <para>The calling thread always takes part in the work, so a pool of <c>n</c> threads owns <c>n - 1</c>
/// workers. Work items are claimed dynamically, but every item writes its own output with a computation that
/// does not depend on which thread runs it, so results are deterministic for a fixed split, whichever lane runs it.</para>
/// <para>Calls from several threads of the same lane are serialised. A job that calls back into its own pool
/// (from the caller or a worker) runs that inner job inline on the current thread.</para>
/// <para>Priority: code inside <see cref="EnterBackground(double)"/> dispatches on the background lane. While a foreground
/// job runs, or a foreground pass is open (<see cref="EnterForegroundPass"/>, which a model opens around each serving
/// forward pass), no thread starts a background item: workers take foreground items first, and the background caller
/// blocks (without spinning) after the item it is running until the foreground is idle. So that continuous serving
/// cannot starve learning, the background gets a share <c>s</c> of the pool: once it has waited
/// <c>(1 − s) / s</c> times the length of its recent jobs, its next job runs with a grant, at the pool's full width, and
/// foreground dispatch waits for that one job. With <c>s</c> = 0 learning only runs when serving is idle; with
/// <c>s</c> = 1 it never yields. A background job's results are unchanged by being paused or granted.</para>
/// </remarks>
public sealed unsafe class ComputePool : IDisposable
{
    private const int SpinIterationsBeforeSleep = 20_000;

    /// <summary>The share of the pool background work gets while foreground work keeps it busy, unless told otherwise.</summary>
    public const double DefaultBackgroundShare = 0.25;

    private readonly Thread[] _workers;
    private readonly Lane _foreground = new();
    private readonly Lane _background = new();
    private readonly object _sleepLock = new();
    private readonly AsyncLocal<bool> _inBackground = new();
    private readonly object _idleLock = new();

    // Incremented by every dispatch and every time the foreground becomes idle: sleeping workers wait for it to change.
    private int _signal;
    private int _sleepers;

    // Open foreground passes plus running foreground jobs; background items start only while it is 0.
    private int _foregroundBusy;
    private int _idleWaiters;

    // Background jobs running with a grant (they do not yield, and foreground dispatch waits for them).
    private int _grants;
    private readonly object _grantLock = new();

    // The learning share and an exponential average of background job durations, in timestamp ticks.
    private double _share = DefaultBackgroundShare;
    private long _backgroundJobTicks = Stopwatch.Frequency / 1000;
    private long _backgroundYields;
    private long _backgroundGrants;
    private volatile bool _disposed;
    private int _disposeStarted;

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

    /// <summary>Whether calls from the current flow (thread or async context) run on the background lane.</summary>
    public bool IsBackground => _inBackground.Value;

    /// <summary>Times a background caller paused for the foreground (a measure of how often serving preempted learning).</summary>
    public long BackgroundYields => Interlocked.Read(ref _backgroundYields);

    /// <summary>Times a waiting background job was granted its turn while the foreground was busy (its share).</summary>
    public long BackgroundGrants => Interlocked.Read(ref _backgroundGrants);

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

        bool background = _inBackground.Value;
        if (IsReentrant())
        {
            RunInline(count, ref job);
            return;
        }

        if (background)
        {
            RunBackground(count, ref job);
            return;
        }

        WaitForGrants();
        if (count == 1 || _workers.Length == 0)
        {
            {
                Interlocked.Increment(ref _foregroundBusy);
                try
                {
                    RunInline(count, ref job);
                }
                finally
                {
                    LeaveForeground();
                }
            }

            return;
        }

        lock (_foreground.DispatchLock)
        {
            _foreground.DispatchingThread = Environment.CurrentManagedThreadId;
            Interlocked.Increment(ref _foregroundBusy);
            try
            {
                // The workers reach the job through a pointer, so it must not move: work on a copy on this
                // thread's stack (the caller's job may live in a movable heap object) and copy it back after.
                TJob local = job;
                long none = 0;
                Dispatch(_foreground, count, (nint)Unsafe.AsPointer(ref local), &Invoke<TJob>, yieldable: false, ref none);
                job = local;
            }
            finally
            {
                _foreground.DispatchingThread = 0;
                LeaveForeground();
            }
        }
    }

    /// <summary>
    /// Makes the current flow (this thread, and the async continuations it starts) dispatch on the background lane
    /// until the scope is disposed: its jobs yield to foreground work, within the share <paramref name="share"/>.
    /// Used by learners, so serving keeps priority.
    /// </summary>
    /// <param name="share">The share of the pool background work gets while the foreground keeps it busy, in [0, 1].</param>
    /// <returns>The scope; dispose it to restore the previous lane.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="share"/> is outside [0, 1].</exception>
    public BackgroundScope EnterBackground(double share)
    {
        if (!(share >= 0 && share <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(share), share, "The background share must be in [0, 1].");
        }

        Volatile.Write(ref _share, share);
        return EnterBackground();
    }

    /// <summary>A background job: wait for its turn (or a grant), then run it, yielding between items unless granted.</summary>
    private void RunBackground<TJob>(int count, ref TJob job)
        where TJob : struct, IParallelJob
    {
        long waited = 0;
        bool granted = false;
        long started = Stopwatch.GetTimestamp();
        try
        {
            if (count == 1 || _workers.Length == 0)
            {
                granted = WaitForTurn(ref waited);
                waited = 0;
                started = Stopwatch.GetTimestamp();
                for (int i = 0; i < count; i++)
                {
                    if (i > 0 && !granted)
                    {
                        granted = WaitForTurn(ref waited);
                    }

                    job.Execute(i);
                }

                return;
            }

            lock (_background.DispatchLock)
            {
                // The turn (and any grant) is decided by the holder of the lock, so a grant never waits behind another
                // learner's job, and foreground dispatch waits for one job at most.
                granted = WaitForTurn(ref waited);
                waited = 0;
                started = Stopwatch.GetTimestamp();
                _background.DispatchingThread = Environment.CurrentManagedThreadId;
                try
                {
                    TJob local = job;
                    granted = Dispatch(_background, count, (nint)Unsafe.AsPointer(ref local), &Invoke<TJob>, yieldable: !granted, ref waited);
                    job = local;
                }
                finally
                {
                    _background.DispatchingThread = 0;
                }
            }
        }
        finally
        {
            // The average running time of background jobs (their pauses left out) sets how long the next may be kept waiting.
            long ticks = Stopwatch.GetTimestamp() - started - waited;
            long average = Volatile.Read(ref _backgroundJobTicks);
            Volatile.Write(ref _backgroundJobTicks, Math.Max(1, ((average * 7) + ticks) / 8));
            if (granted)
            {
                EndGrant();
            }
        }
    }

    /// <summary>
    /// Makes the current flow (this thread, and the async continuations it starts) dispatch on the background lane
    /// until the scope is disposed: its jobs yield to foreground work. Used by learners, so serving keeps priority.
    /// </summary>
    /// <returns>The scope; dispose it to restore the previous lane.</returns>
    public BackgroundScope EnterBackground()
    {
        bool previous = _inBackground.Value;
        _inBackground.Value = true;
        return new BackgroundScope(this, previous);
    }

    /// <summary>
    /// Marks a foreground pass (e.g. one serving forward pass of many kernels) as running, so background work does not
    /// start items in the gaps between its kernels. A no-op on the background lane.
    /// </summary>
    /// <returns>The scope; dispose it when the pass ends.</returns>
    public ForegroundPassScope EnterForegroundPass()
    {
        if (_inBackground.Value || _disposed)
        {
            return default;
        }

        Interlocked.Increment(ref _foregroundBusy);
        return new ForegroundPassScope(this);
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
        if (Interlocked.Exchange(ref _disposeStarted, 1) != 0)
        {
            return;
        }

        // No dispatch lock is taken: a job in flight finishes on its caller's thread (which claims whatever items the
        // departing workers leave), waiting background work stops waiting, and new calls are refused.
        _disposed = true;
        Signal();
        lock (_idleLock)
        {
            Monitor.PulseAll(_idleLock);
        }

        lock (_grantLock)
        {
            Monitor.PulseAll(_grantLock);
        }

        foreach (Thread worker in _workers)
        {
            worker.Join();
        }
    }

    private static void Invoke<TJob>(nint state, int index)
        where TJob : struct, IParallelJob
        => Unsafe.AsRef<TJob>((void*)state).Execute(index);

    /// <summary>Runs every item on the calling thread (a job called from inside a job of this pool).</summary>
    private static void RunInline<TJob>(int count, ref TJob job)
        where TJob : struct, IParallelJob
    {
        for (int i = 0; i < count; i++)
        {
            job.Execute(i);
        }
    }

    private bool IsReentrant()
    {
        int me = Environment.CurrentManagedThreadId;
        if (Volatile.Read(ref _foreground.DispatchingThread) == me || Volatile.Read(ref _background.DispatchingThread) == me)
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

    /// <summary>Runs a job on <paramref name="lane"/>; a yieldable one pauses for the foreground and may be granted on the way. Returns whether it ran granted.</summary>
    private bool Dispatch(Lane lane, int count, nint state, delegate*<nint, int, void> invoke, bool yieldable, ref long waited)
    {
        bool granted = !yieldable && ReferenceEquals(lane, _background);
        int generation = lane.Generation + 1;

        // First the claim word moves to the new generation with nothing claimable (index 0xFFFFFFFF), so no thread can
        // claim an item of the previous job against the fields written next; then the fields; then the items open.
        Interlocked.Exchange(ref lane.Next, ((long)generation << 32) | 0xFFFF_FFFFL);
        lane.JobState = state;
        lane.JobInvoke = invoke;
        lane.JobCount = count;
        lane.Completed = 0;
        lane.Failure = null;
        Interlocked.Exchange(ref lane.Generation, generation);
        Interlocked.Exchange(ref lane.Next, (long)generation << 32);
        Signal();

        while (RunItems(lane, generation, state, invoke, count, yieldable && !granted))
        {
            // The foreground took over: pause this thread (the workers serve it) and go on once it is idle, or granted.
            granted = WaitForTurn(ref waited);
            if (granted)
            {
                Signal();
            }
        }

        var spin = default(SpinWait);
        while (Volatile.Read(ref lane.Completed) < count)
        {
            spin.SpinOnce(sleep1Threshold: -1);
        }

        if (lane.Failure is { } failure)
        {
            lane.Failure = null;
            if (granted && yieldable)
            {
                EndGrant();
            }

            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(failure);
        }

        return granted;
    }

    /// <summary>
    /// Claims and runs items of <paramref name="lane"/>'s job <paramref name="generation"/> until none is left. A yielding
    /// (ungranted background) run stops before claiming an item while the foreground is busy, and then returns true.
    /// </summary>
    private bool RunItems(Lane lane, int generation, nint state, delegate*<nint, int, void> invoke, int count, bool yielding)
    {
        while (true)
        {
            if (yielding && Volatile.Read(ref _foregroundBusy) > 0 && Volatile.Read(ref _grants) == 0)
            {
                return true;
            }

            // Claim with compare-and-swap so a thread still holding an older generation never consumes
            // an index of the next job.
            long current = Volatile.Read(ref lane.Next);
            if ((int)(current >> 32) != generation)
            {
                return false;
            }

            int index = (int)(current & 0xFFFF_FFFF);
            if ((uint)index >= (uint)count)
            {
                return false;
            }

            if (Interlocked.CompareExchange(ref lane.Next, current + 1, current) != current)
            {
                continue;
            }

            try
            {
                invoke(state, index);
            }
            catch (Exception ex)
            {
                Interlocked.CompareExchange(ref lane.Failure, ex, null);
            }

            Interlocked.Increment(ref lane.Completed);
        }
    }

    /// <summary>Whether <paramref name="lane"/> has an unclaimed item of its current job.</summary>
    private static bool HasWork(Lane lane)
    {
        long next = Volatile.Read(ref lane.Next);
        return (uint)(next & 0xFFFF_FFFF) < (uint)Volatile.Read(ref lane.JobCount);
    }

    /// <summary>
    /// Waits until the foreground is idle (returns false), or until this background work has waited its allowance
    /// (returns true: it runs granted, and must call <see cref="EndGrant"/> when the job ends).
    /// </summary>
    private bool WaitForTurn(ref long waitedTicks)
    {
        if (Volatile.Read(ref _foregroundBusy) == 0 || _disposed)
        {
            return false;
        }

        double share = Volatile.Read(ref _share);
        long allowance = share <= 0 ? long.MaxValue : share >= 1 ? 0 : (long)(Volatile.Read(ref _backgroundJobTicks) * (1 - share) / share);
        long start = Stopwatch.GetTimestamp();
        try
        {
            return WaitUntil(start, allowance);
        }
        finally
        {
            waitedTicks += Stopwatch.GetTimestamp() - start;
        }
    }

    private bool WaitUntil(long start, long allowance)
    {
        Interlocked.Increment(ref _backgroundYields);
        lock (_idleLock)
        {
            Interlocked.Increment(ref _idleWaiters); // a full fence: the leaver's check below and ours cannot both miss
            try
            {
                // The leaver pulses under this lock after its decrement, so no wake-up is lost; the timeout is a backstop.
                while (Volatile.Read(ref _foregroundBusy) > 0 && !_disposed)
                {
                    long waited = Stopwatch.GetTimestamp() - start;
                    if (waited >= allowance)
                    {
                        Interlocked.Increment(ref _grants);
                        Interlocked.Increment(ref _backgroundGrants);
                        return true;
                    }

                    double remainingMs = (double)(allowance - waited) * 1000 / Stopwatch.Frequency;
                    Monitor.Wait(_idleLock, (int)Math.Clamp(remainingMs, 1, 50));
                }
            }
            finally
            {
                Interlocked.Decrement(ref _idleWaiters);
            }
        }

        return false;
    }

    private void EndGrant()
    {
        Interlocked.Decrement(ref _grants);
        lock (_grantLock)
        {
            Monitor.PulseAll(_grantLock);
        }
    }

    /// <summary>Foreground dispatch waits for a granted background job to finish (at most one job's length).</summary>
    private void WaitForGrants()
    {
        if (Volatile.Read(ref _grants) == 0)
        {
            return;
        }

        lock (_grantLock)
        {
            while (Volatile.Read(ref _grants) > 0 && !_disposed)
            {
                Monitor.Wait(_grantLock, 10);
            }
        }
    }

    private void LeaveForeground()
    {
        if (Interlocked.Decrement(ref _foregroundBusy) == 0)
        {
            if (Volatile.Read(ref _idleWaiters) > 0)
            {
                lock (_idleLock)
                {
                    Monitor.PulseAll(_idleLock);
                }
            }

            // A background job may be waiting for the workers: wake them for it.
            if (HasWork(_background))
            {
                Signal();
            }
        }
    }

    private void Signal()
    {
        Interlocked.Increment(ref _signal);
        if (Volatile.Read(ref _sleepers) > 0)
        {
            lock (_sleepLock)
            {
                Monitor.PulseAll(_sleepLock);
            }
        }
    }

    private void WorkerLoop()
    {
        while (!_disposed)
        {
            // Read the signal before looking for work, so a dispatch after the look is never missed.
            int seen = Volatile.Read(ref _signal);
            bool ran = TryRun(_foreground, yielding: false);
            if (Volatile.Read(ref _foregroundBusy) == 0 || Volatile.Read(ref _grants) > 0)
            {
                ran |= TryRun(_background, yielding: true);
            }

            if (ran)
            {
                continue;
            }

            int spins = 0;
            while (Volatile.Read(ref _signal) == seen && !_disposed)
            {
                if (++spins < SpinIterationsBeforeSleep)
                {
                    Thread.SpinWait(8);
                    continue;
                }

                lock (_sleepLock)
                {
                    Interlocked.Increment(ref _sleepers);
                    while (Volatile.Read(ref _signal) == seen && !_disposed)
                    {
                        Monitor.Wait(_sleepLock);
                    }

                    Interlocked.Decrement(ref _sleepers);
                }
            }
        }
    }

    /// <summary>Runs items of <paramref name="lane"/>'s current job, if it has any left; true if it ran one.</summary>
    private bool TryRun(Lane lane, bool yielding)
    {
        // The generation comes from the claim word, read before the job's fields: a dispatcher moves the claim word to
        // the next generation (with nothing claimable) before it rewrites the fields, so fields of a newer job can only
        // pair with a claim value that no compare-and-swap can match any more.
        long before = Volatile.Read(ref lane.Next);
        int generation = (int)(before >> 32);
        nint state = Volatile.Read(ref lane.JobState);
        delegate*<nint, int, void> invoke = lane.JobInvoke;
        int count = Volatile.Read(ref lane.JobCount);
        if ((uint)(before & 0xFFFF_FFFF) >= (uint)count)
        {
            return false;
        }

        RunItems(lane, generation, state, invoke, count, yielding);
        return Volatile.Read(ref lane.Next) != before;
    }

    /// <summary>Restores the previous lane when disposed (see <see cref="EnterBackground()"/>).</summary>
    public readonly struct BackgroundScope : IDisposable
    {
        private readonly ComputePool? _pool;
        private readonly bool _previous;

        internal BackgroundScope(ComputePool pool, bool previous)
        {
            _pool = pool;
            _previous = previous;
        }

        /// <summary>Restores the lane the flow had before the scope.</summary>
        public void Dispose()
        {
            if (_pool is not null)
            {
                _pool._inBackground.Value = _previous;
            }
        }
    }

    /// <summary>Ends a foreground pass when disposed (see <see cref="EnterForegroundPass"/>).</summary>
    public readonly struct ForegroundPassScope : IDisposable
    {
        private readonly ComputePool? _pool;

        internal ForegroundPassScope(ComputePool pool) => _pool = pool;

        /// <summary>Ends the pass; background work may start again once no other foreground work runs.</summary>
        public void Dispose() => _pool?.LeaveForeground();
    }

    /// <summary>One lane's job slot: the job of the current generation and its claim and completion counters.</summary>
    private sealed class Lane
    {
        public readonly Lock DispatchLock = new();

        // Current job: a pointer to the caller's job struct (it lives on the caller's stack, which stays
        // put because the caller blocks until the job completes) and a function that invokes it.
        public nint JobState;
        public delegate*<nint, int, void> JobInvoke;
        public int JobCount;

        // High 32 bits: generation of the current job; low 32 bits: next unclaimed index.
        public long Next;
        public int Generation;
        public int Completed;
        public Exception? Failure;
        public int DispatchingThread;
    }
}
