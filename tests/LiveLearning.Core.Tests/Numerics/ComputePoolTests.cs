using LiveLearning.Numerics;
using NUnit.Framework;

namespace LiveLearning.Tests.Numerics;

[TestFixture]
public sealed class ComputePoolTests
{
    [Test]
    public void EveryItemRunsExactlyOnceForAnyCountAndThreadCount([Values(1, 2, 3, 5)] int threads)
    {
        using var pool = new ComputePool(threads);
        for (int count = 0; count <= 100; count++)
        {
            var job = new CountingJob { Hits = new int[count] };
            pool.For(count, ref job);
            Assert.That(job.Hits, Has.All.EqualTo(1), $"count {count}");
        }
    }

    [Test]
    public void AnExceptionFromAnItemIsRethrownAfterEveryOtherItemRanAndThePoolStaysUsable()
    {
        using var pool = new ComputePool(2);
        var job = new ThrowingJob { Hits = new int[64], ThrowAt = 13 };
        Assert.That(() => pool.For(64, ref job), Throws.InvalidOperationException.With.Message.EqualTo("item 13"));
        Assert.That(job.Hits.Where((_, i) => i != 13), Has.All.EqualTo(1), "every other item still ran once");

        var next = new CountingJob { Hits = new int[64] };
        pool.For(64, ref next);
        Assert.That(next.Hits, Has.All.EqualTo(1), "the pool works after a failed job");
    }

    [Test]
    public void ConcurrentCallersOfBothLanesAllGetTheirOwnResults()
    {
        using var pool = new ComputePool(2);
        var failures = new List<string>();
        Thread[] callers = [.. Enumerable.Range(0, 4).Select(t => new Thread(() =>
        {
            using var lane = t % 2 == 0 ? pool.EnterBackground() : default;
            for (int round = 0; round < 300; round++)
            {
                int count = 1 + ((t * 31 + round) % 40);
                var job = new SquareJob { Output = new long[count], Offset = t * 1000 + round };
                pool.For(count, ref job);
                for (int i = 0; i < count; i++)
                {
                    long expected = (long)(job.Offset + i) * (job.Offset + i);
                    if (job.Output[i] != expected)
                    {
                        lock (failures)
                        {
                            failures.Add($"caller {t} round {round} item {i}: {job.Output[i]} != {expected}");
                        }
                    }
                }
            }
        }))];
        foreach (Thread c in callers)
        {
            c.Start();
        }

        foreach (Thread c in callers)
        {
            Assert.That(c.Join(TimeSpan.FromSeconds(60)), Is.True, "a caller did not finish (deadlock?)");
        }

        Assert.That(failures, Is.Empty);
    }

    [Test]
    public void AJobThatCallsBackIntoItsPoolRunsTheInnerJobInline([Values(false, true)] bool background)
    {
        using var pool = new ComputePool(2);
        using var lane = background ? pool.EnterBackground() : default;
        var job = new NestingJob { Pool = pool, Sums = new long[8] };
        pool.For(8, ref job);
        Assert.That(job.Sums, Has.All.EqualTo(Enumerable.Range(0, 10).Sum()));
    }

    [Test]
    public void BackgroundWorkStartsNoItemWhileAForegroundPassIsOpen()
    {
        using var pool = new ComputePool(2);
        var started = new int[1];
        var job = new SlowJob { Started = started, Millis = 5 };
        ComputePool.ForegroundPassScope pass = pool.EnterForegroundPass();
        var learner = new Thread(() =>
        {
            using var lane = pool.EnterBackground(share: 0);
            pool.For(40, ref job);
        });
        learner.Start();
        Thread.Sleep(300);
        Assert.That(Volatile.Read(ref started[0]), Is.Zero, "no background item starts while the pass is open");
        pass.Dispose();
        Assert.That(learner.Join(TimeSpan.FromSeconds(30)), Is.True);
        Assert.That(started[0], Is.EqualTo(40));
        Assert.That(pool.BackgroundYields, Is.GreaterThan(0));
    }

    [TestCase(0.25)]
    [TestCase(1.0)]
    public void WithAShareBackgroundWorkGetsThroughContinuousForegroundWork(double share)
    {
        using var pool = new ComputePool(2);
        using var done = new ManualResetEventSlim();
        var serving = new Thread(() =>
        {
            using ComputePool.ForegroundPassScope pass = pool.EnterForegroundPass();
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (!done.IsSet && DateTime.UtcNow < deadline)
            {
                var job = new SlowJob { Started = new int[1], Millis = 1 };
                pool.For(4, ref job);
            }
        });
        serving.Start();
        var started = new int[1];
        var learning = new SlowJob { Started = started, Millis = 2 };
        var learner = new Thread(() =>
        {
            using var lane = pool.EnterBackground(share);
            for (int k = 0; k < 10; k++)
            {
                pool.For(4, ref learning);
            }

            done.Set();
        });
        learner.Start();
        Assert.That(learner.Join(TimeSpan.FromSeconds(60)), Is.True, "the background work finished while the foreground never paused");
        Assert.That(serving.Join(TimeSpan.FromSeconds(60)), Is.True);
        Assert.That(started[0], Is.EqualTo(40));
        if (share < 1)
        {
            Assert.That(pool.BackgroundGrants, Is.GreaterThan(0), "it ran by grants of its share");
        }
    }

    [Test]
    public void AShareOutsideZeroToOneIsRefused()
    {
        using var pool = new ComputePool(2);
        Assert.That(() => pool.EnterBackground(1.5), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Property("ParamName").EqualTo("share"));
        Assert.That(() => pool.EnterBackground(double.NaN), Throws.InstanceOf<ArgumentOutOfRangeException>());
    }

    [Test]
    public void AForegroundJobOvertakesARunningBackgroundJob()
    {
        using var pool = new ComputePool(2);
        var started = new int[1];
        var slow = new SlowJob { Started = started, Millis = 20 };
        var learner = new Thread(() =>
        {
            using var lane = pool.EnterBackground();
            pool.For(60, ref slow);
        });
        learner.Start();
        SpinWait.SpinUntil(() => Volatile.Read(ref started[0]) > 2, TimeSpan.FromSeconds(10));

        var fast = new CountingJob { Hits = new int[200] };
        pool.For(200, ref fast);
        int startedWhenServed = Volatile.Read(ref started[0]);

        Assert.That(fast.Hits, Has.All.EqualTo(1));
        Assert.That(startedWhenServed, Is.LessThan(60), "the foreground job finished while the background job still had items left");
        Assert.That(learner.Join(TimeSpan.FromSeconds(30)), Is.True);
        Assert.That(started[0], Is.EqualTo(60));
    }

    [Test]
    public async Task TheBackgroundLaneFlowsAcrossAwaitsAndIsRestoredAfterTheScope()
    {
        using var pool = new ComputePool(2);
        Assert.That(pool.IsBackground, Is.False);
        using (pool.EnterBackground())
        {
            await Task.Yield();
            Assert.That(pool.IsBackground, Is.True);
            await Task.Run(() => Assert.That(pool.IsBackground, Is.True));
        }

        Assert.That(pool.IsBackground, Is.False);
    }

    [Test]
    public void BackgroundAndForegroundGiveBitIdenticalKernelResults()
    {
        using var pool = new ComputePool(2);
        float[] x = TestData.Uniform(64 * 576, seed: 3);
        float[] w = TestData.Uniform(576 * 576, seed: 4);
        var weight = WeightMatrix.FromF32(w, 576, 576);
        float[] foreground = new float[64 * 576];
        float[] background = new float[64 * 576];
        Gemm.Linear(foreground, x, weight, 64, accumulate: false, pool);
        using (pool.EnterBackground())
        {
            Gemm.Linear(background, x, weight, 64, accumulate: false, pool);
        }

        Assert.That(background, Is.EqualTo(foreground));
    }

    [Test]
    public void CallsAfterDisposeThrowObjectDisposed()
    {
        var pool = new ComputePool(2);
        pool.Dispose();
        pool.Dispose();
        var job = new CountingJob { Hits = new int[4] };
        Assert.That(() => pool.For(4, ref job), Throws.InstanceOf<ObjectDisposedException>());
    }

    private struct CountingJob : IParallelJob
    {
        public int[] Hits;

        public readonly void Execute(int index) => Interlocked.Increment(ref Hits[index]);
    }

    private struct ThrowingJob : IParallelJob
    {
        public int[] Hits;
        public int ThrowAt;

        public readonly void Execute(int index)
        {
            if (index == ThrowAt)
            {
                throw new InvalidOperationException($"item {index}");
            }

            Interlocked.Increment(ref Hits[index]);
        }
    }

    private struct SquareJob : IParallelJob
    {
        public long[] Output;
        public int Offset;

        public readonly void Execute(int index) => Output[index] = (long)(Offset + index) * (Offset + index);
    }

    private struct NestingJob : IParallelJob
    {
        public ComputePool Pool;
        public long[] Sums;

        public readonly void Execute(int index)
        {
            var inner = new SumJob { Values = new long[10] };
            Pool.For(10, ref inner);
            Sums[index] = inner.Values.Sum();
        }
    }

    private struct SumJob : IParallelJob
    {
        public long[] Values;

        public readonly void Execute(int index) => Values[index] = index;
    }

    private struct SlowJob : IParallelJob
    {
        public int[] Started;
        public int Millis;

        public readonly void Execute(int index)
        {
            Interlocked.Increment(ref Started[0]);
            Thread.Sleep(Millis);
        }
    }
}
