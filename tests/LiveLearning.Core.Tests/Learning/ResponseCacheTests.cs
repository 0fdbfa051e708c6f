using LiveLearning.Backends;
using NUnit.Framework;

namespace LiveLearning.Tests.Learning;

[TestFixture]
public sealed class ResponseCacheTests
{
    [Test]
    public void LeastRecentlyUsedIsEvictedFirst()
    {
        var cache = new ResponseCache(3);
        foreach (string id in new[] { "a", "b", "c", "d", "e" })
        {
            cache.Add(Response(id));
        }

        using (Assert.EnterMultipleScope())
        {
            Assert.That(cache.Count, Is.EqualTo(3));
            Assert.That(cache.TryGet("a"), Is.Null);
            Assert.That(cache.TryGet("b"), Is.Null);
            Assert.That(cache.TryGet("c")?.Id, Is.EqualTo("c"));
            Assert.That(cache.TryGet("d")?.Id, Is.EqualTo("d"));
            Assert.That(cache.TryGet("e")?.Id, Is.EqualTo("e"));
        }
    }

    [Test]
    public void TryGetRefreshesRecency()
    {
        var cache = new ResponseCache(3);
        cache.Add(Response("a"));
        cache.Add(Response("b"));
        cache.Add(Response("c"));
        Assert.That(cache.TryGet("a"), Is.Not.Null);

        // b is now the least recently used.
        cache.Add(Response("d"));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(cache.TryGet("b"), Is.Null);
            Assert.That(cache.TryGet("a"), Is.Not.Null);
            Assert.That(cache.TryGet("c"), Is.Not.Null);
            Assert.That(cache.TryGet("d"), Is.Not.Null);
        }

        // Order of use now: a, c, d (d most recent); after two more adds only d and the new ones remain.
        cache.Add(Response("e"));
        cache.Add(Response("f"));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(cache.TryGet("a"), Is.Null);
            Assert.That(cache.TryGet("c"), Is.Null);
            Assert.That(cache.TryGet("d"), Is.Not.Null);
        }
    }

    [Test]
    public void AddingAKnownIdReplacesItAndRefreshesIt()
    {
        var cache = new ResponseCache(3);
        cache.Add(Response("a", "first"));
        cache.Add(Response("b"));
        cache.Add(Response("c"));
        cache.Add(Response("a", "second"));
        cache.Add(Response("d"));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(cache.Count, Is.EqualTo(3));
            Assert.That(cache.TryGet("a")?.Text, Is.EqualTo("second"));
            Assert.That(cache.TryGet("b"), Is.Null, "b was the least recently used once a was re-added");
        }
    }

    [Test]
    public void MatchesAReferenceLruOnASeededSequenceOfOperations()
    {
        const int capacity = 16;
        var cache = new ResponseCache(capacity);
        var reference = new List<string>(); // most recent last
        var rng = new Random(31);
        for (int op = 0; op < 20_000; op++)
        {
            string id = $"r{rng.Next(40)}";
            if (rng.Next(2) == 0)
            {
                cache.Add(Response(id));
                reference.Remove(id);
                reference.Add(id);
                if (reference.Count > capacity)
                {
                    reference.RemoveAt(0);
                }
            }
            else
            {
                bool known = reference.Remove(id);
                if (known)
                {
                    reference.Add(id);
                }

                ServedResponse? got = cache.TryGet(id);
                if ((got is not null) != known || (got is not null && got.Id != id))
                {
                    Assert.Fail($"operation {op}: TryGet({id}) gave {got?.Id ?? "null"}, the reference {(known ? "has" : "does not have")} it");
                }
            }

            if (cache.Count != reference.Count)
            {
                Assert.Fail($"operation {op}: count {cache.Count}, reference {reference.Count}");
            }
        }
    }

    [Test]
    public void CapacityZeroKeepsNothing()
    {
        var cache = new ResponseCache(0);
        cache.Add(Response("a"));
        cache.Add(Response("b"));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(cache.Count, Is.Zero);
            Assert.That(cache.TryGet("a"), Is.Null);
        }
    }

    [Test]
    public void CapacityOneKeepsTheLatest()
    {
        var cache = new ResponseCache(1);
        cache.Add(Response("a"));
        cache.Add(Response("b"));
        using (Assert.EnterMultipleScope())
        {
            Assert.That(cache.Count, Is.EqualTo(1));
            Assert.That(cache.TryGet("a"), Is.Null);
            Assert.That(cache.TryGet("b")?.Id, Is.EqualTo("b"));
        }
    }

    [Test]
    public void ConcurrentAddAndTryGetNeverThrowAndNeverExceedTheCapacity()
    {
        const int capacity = 32;
        const int threads = 4;
        const int operations = 100_000;
        var cache = new ResponseCache(capacity);
        ServedResponse[] pool = [.. Enumerable.Range(0, 48).Select(i => Response($"id{i}"))];
        var failures = new System.Collections.Concurrent.ConcurrentQueue<string>();
        using var start = new Barrier(threads);
        var workers = new Thread[threads];
        for (int t = 0; t < threads; t++)
        {
            int seed = t;
            workers[t] = new Thread(() =>
            {
                var rng = new Random(seed);
                start.SignalAndWait();
                try
                {
                    for (int i = 0; i < operations; i++)
                    {
                        ServedResponse r = pool[rng.Next(pool.Length)];
                        if (rng.Next(2) == 0)
                        {
                            ServedResponse? got = cache.TryGet(r.Id);
                            if (got is not null && !ReferenceEquals(got, r))
                            {
                                failures.Enqueue($"TryGet({r.Id}) gave {got.Id}");
                            }
                        }
                        else
                        {
                            cache.Add(r);
                        }

                        int count = cache.Count;
                        if (count > capacity)
                        {
                            failures.Enqueue($"count {count} > {capacity}");
                        }
                    }
                }
                catch (Exception ex)
                {
                    failures.Enqueue(ex.ToString());
                }
            });
            workers[t].Start();
        }

        foreach (Thread worker in workers)
        {
            worker.Join();
        }

        Assert.That(failures, Is.Empty, string.Join("\n", failures.Take(5)));

        // The map and the recency list still agree: filling the cache with new ids forgets every old one.
        for (int i = 0; i < capacity; i++)
        {
            cache.Add(Response($"fresh{i}"));
        }

        using (Assert.EnterMultipleScope())
        {
            Assert.That(cache.Count, Is.EqualTo(capacity));
            Assert.That(pool.Count(r => cache.TryGet(r.Id) is not null), Is.Zero);
            Assert.That(Enumerable.Range(0, capacity).All(i => cache.TryGet($"fresh{i}") is not null), Is.True);
        }
    }

    private static ServedResponse Response(string id, string text = "text") => new(id, "default", PromptKind.Text, [1, 2, 3], text, "default@1", [4, 5], ServedEnd.StopToken);
}
