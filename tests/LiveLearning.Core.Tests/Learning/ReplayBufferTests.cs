using System.Buffers.Binary;
using FsCheck;
using FsCheck.Fluent;
using LiveLearning.Backends;
using NUnit.Framework;

namespace LiveLearning.Tests.Learning;

[TestFixture]
public sealed class ReplayBufferTests
{
    // The serialised header: magic (4), version (4), kind (1), capacityItems (4), capacityBytes (8), seen (8),
    // generator state (8); then the kind's extra (source-balanced: sources and their counts) and the item count.
    private const int CapacityItemsOffset = 9;
    private const int HeaderLength = 37;

    public enum Kind
    {
        Reservoir,
        SourceBalanced,
    }

    [Test]
    public void ReservoirKeepsEveryItemWithTheSameProbability()
    {
        const int n = 200;
        const int capacity = 20;
        const int trials = 4000;
        const double p = (double)capacity / n;
        ReplayItem[] items = [.. Enumerable.Range(0, n).Select(i => Item(i))];
        var kept = new int[n];
        for (int trial = 0; trial < trials; trial++)
        {
            var buffer = new ReservoirReplayBuffer(capacity, long.MaxValue, (ulong)trial);
            foreach (ReplayItem item in items)
            {
                buffer.Add(item);
            }

            foreach (ReplayItem item in buffer.Items())
            {
                kept[item.Sequence]++;
            }
        }

        // Each item's count is Binomial(trials, p): sd = sqrt(trials·p·(1−p)) ≈ 19, so 5 sd is ±95 around 400. The
        // first and last 50 items' mean counts have sd ≈ 19/√50 ≈ 2.7 (less: the counts are negatively correlated).
        double sd = Math.Sqrt(trials * p * (1 - p));
        double expected = trials * p;
        using (Assert.EnterMultipleScope())
        {
            Assert.That(kept.Sum(), Is.EqualTo(capacity * trials), "the reservoir is full after every trial");
            for (int i = 0; i < n; i++)
            {
                Assert.That(kept[i], Is.EqualTo(expected).Within(5 * sd), $"item {i}");
            }

            Assert.That(kept.Take(50).Average(), Is.EqualTo(expected).Within(5 * sd / Math.Sqrt(50)), "the first 50 items");
            Assert.That(kept.Skip(n - 50).Average(), Is.EqualTo(expected).Within(5 * sd / Math.Sqrt(50)), "the last 50 items");
        }
    }

    [Test]
    public void CapacityInItemsAndBytesIsNeverExceeded()
    {
        PropertyRuns.Check(Prop.ForAll(Gen.Choose(0, int.MaxValue).ToArbitrary(), CapacityHolds), seed: 1, cases: 400);
    }

    [Test]
    public void AnOfferIsKeptOrLeavesTheBufferAsItWas()
    {
        // For the source-balanced buffer, from a source already seen (a new source shrinks every other share first).
        PropertyRuns.Check(Prop.ForAll(Gen.Choose(0, int.MaxValue).ToArbitrary(), OfferIsKeptOrChangesNothing), seed: 2, cases: 300);
    }

    [Test]
    public void ItemLargerThanTheByteCapacityIsNeverKept([Values] Kind kind)
    {
        ReplayBuffer buffer = Create(kind, capacityItems: 50, capacityBytes: 1000, seed: 3);
        for (int i = 0; i < 200; i++)
        {
            // Every third item is 96 + 2 + 4·300 bytes, over the capacity.
            buffer.Add(i % 3 == 0 ? Item(i, completionTokens: 299) : Item(i, $"s{i % 4}"));
        }

        using (Assert.EnterMultipleScope())
        {
            Assert.That(buffer.Seen, Is.EqualTo(200));
            Assert.That(buffer.Items().Where(item => item.Bytes > 1000), Is.Empty);
            Assert.That(buffer.Items(), Is.Not.Empty);
            Assert.That(buffer.Bytes, Is.LessThanOrEqualTo(1000));
        }

        ReplayBuffer onlyLarge = Create(kind, capacityItems: 50, capacityBytes: 1000, seed: 3);
        onlyLarge.Add(Item(0, completionTokens: 299));
        Assert.That(onlyLarge.Count, Is.Zero);
    }

    [Test]
    public void OfferingTheSameItemAgainNeverHangs([Values] Kind kind)
    {
        // A (150 bytes) and B (102 bytes) fill the 252 bytes; offering A again may replace B, leaving two copies of A
        // (300 bytes) that must be trimmed although both are "the new item".
        ReplayItem a = Item(1, completionTokens: 12);
        ReplayItem b = Item(2, completionTokens: 0);
        Assert.That((a.Bytes, b.Bytes), Is.EqualTo((150L, 102L)));
        for (ulong seed = 0; seed < 20; seed++)
        {
            ReplayBuffer buffer = Create(kind, capacityItems: 10, capacityBytes: 252, seed: seed);
            RunWithin(TimeSpan.FromSeconds(30), () =>
            {
                buffer.Add(a);
                buffer.Add(b);
                for (int i = 0; i < 20; i++)
                {
                    buffer.Add(a);
                }
            });
            Assert.That(buffer.Bytes, Is.LessThanOrEqualTo(252), $"seed {seed}");
        }
    }

    [Test]
    public void SampleDrawsOnlyKeptItems([Values] Kind kind)
    {
        ReplayBuffer buffer = Create(kind, capacityItems: 20, capacityBytes: long.MaxValue, seed: 11);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(buffer.Sample(5), Is.Empty, "an empty buffer draws nothing");
            for (int i = 0; i < 300; i++)
            {
                buffer.Add(Item(i, $"s{i % 5}"));
            }

            var kept = new HashSet<ReplayItem>(buffer.Items(), ReferenceEqualityComparer.Instance);
            IReadOnlyList<ReplayItem> drawn = buffer.Sample(5000);
            Assert.That(drawn, Has.Count.EqualTo(5000));
            Assert.That(drawn.Where(item => !kept.Contains(item)), Is.Empty);
            Assert.That(buffer.Sample(0), Is.Empty);
            Assert.That(() => buffer.Sample(-1), Throws.TypeOf<ArgumentOutOfRangeException>());
            Assert.That(buffer.Items(), Has.Count.EqualTo(20), "sampling does not change the contents");
        }
    }

    [Test]
    public void ReservoirSampleIsUniformOverTheKeptItems()
    {
        var buffer = new ReservoirReplayBuffer(20, long.MaxValue, 5);
        for (int i = 0; i < 100; i++)
        {
            buffer.Add(Item(i));
        }

        const int draws = 20_000;
        Dictionary<long, int> counts = buffer.Sample(draws).GroupBy(item => item.Sequence).ToDictionary(g => g.Key, g => g.Count());

        // Binomial(20000, 1/20): mean 1000, sd ≈ 30.8; 5 sd ≈ 154.
        double sd = Math.Sqrt(draws * 0.05 * 0.95);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(counts, Has.Count.EqualTo(20));
            foreach ((long sequence, int count) in counts)
            {
                Assert.That(count, Is.EqualTo(1000).Within(5 * sd), $"item {sequence}");
            }
        }
    }

    [TestCase("loud first")]
    [TestCase("loud last")]
    [TestCase("interleaved")]
    public void SourceBalancedBufferKeepsEverySourceRepresented(string order)
    {
        // One source sends 1000 items, nine send 10 each; 100 items shared by ten sources is 10 each.
        List<ReplayItem> offers = [.. Enumerable.Range(0, 1000).Select(i => Item(i, "loud"))];
        List<ReplayItem> quiet = [.. Enumerable.Range(0, 90).Select(i => Item(1000 + i, $"quiet{i % 9}"))];
        offers = order switch
        {
            "loud first" => [.. offers, .. quiet],
            "loud last" => [.. quiet, .. offers],
            _ => Shuffled([.. offers, .. quiet], seed: 17),
        };

        foreach (ulong seed in new ulong[] { 1, 2, 3 })
        {
            var buffer = new SourceBalancedReplayBuffer(100, long.MaxValue, seed);
            foreach (ReplayItem item in offers)
            {
                buffer.Add(item);
            }

            Dictionary<string, int> perSource = buffer.Items().GroupBy(item => item.Source).ToDictionary(g => g.Key, g => g.Count());
            using (Assert.EnterMultipleScope())
            {
                Assert.That(perSource.Keys, Is.EquivalentTo(new[] { "loud" }.Concat(Enumerable.Range(0, 9).Select(i => $"quiet{i}"))), "every source keeps a share");
                Assert.That(perSource["loud"], Is.EqualTo(10), "the loud source keeps its share and no more");
                Assert.That(perSource.Where(kv => kv.Key != "loud").Select(kv => kv.Value), Is.All.EqualTo(10), "a quiet source's items all fit in its share");
                Assert.That(buffer.Count, Is.EqualTo(100));
            }
        }
    }

    [Test]
    public void SourceBalancedBufferKeepsAUniformSampleOfEachSource()
    {
        // The loud source's 1000 items go first; its share then shrinks from 100 to 10 as nine others arrive.
        const int trials = 400;
        var perDecile = new int[10];
        for (int trial = 0; trial < trials; trial++)
        {
            var buffer = new SourceBalancedReplayBuffer(100, long.MaxValue, (ulong)trial);
            for (int i = 0; i < 1000; i++)
            {
                buffer.Add(Item(i, "loud"));
            }

            for (int i = 0; i < 90; i++)
            {
                buffer.Add(Item(1000 + i, $"quiet{i % 9}"));
            }

            foreach (ReplayItem item in buffer.Items().Where(item => item.Source == "loud"))
            {
                perDecile[item.Sequence / 100]++;
            }
        }

        // Each trial keeps 10 of the 1000: a decile holds Hypergeometric(1000, 100, 10) of them (mean 1, variance
        // ≈ 0.9), so over 400 trials a decile's count has mean 400 and sd ≈ 19; 5 sd ≈ 95.
        using (Assert.EnterMultipleScope())
        {
            Assert.That(perDecile.Sum(), Is.EqualTo(10 * trials));
            for (int d = 0; d < 10; d++)
            {
                Assert.That(perDecile[d], Is.EqualTo(400).Within(95), $"items {d * 100}..{(d * 100) + 99}");
            }
        }
    }

    [Test]
    public void SourceBalancedSampleChoosesSourcesUniformly()
    {
        // The loud source keeps 20 items (200 / 10), each quiet one its 3: drawing items uniformly would pick the loud
        // source 20/47 of the time; drawing a source first picks each 1/10 of the time.
        var buffer = new SourceBalancedReplayBuffer(200, long.MaxValue, 8);
        for (int i = 0; i < 1000; i++)
        {
            buffer.Add(Item(i, "loud"));
        }

        for (int i = 0; i < 27; i++)
        {
            buffer.Add(Item(1000 + i, $"quiet{i % 9}"));
        }

        const int draws = 20_000;
        IReadOnlyList<ReplayItem> drawn = buffer.Sample(draws);
        Dictionary<string, int> perSource = drawn.GroupBy(item => item.Source).ToDictionary(g => g.Key, g => g.Count());

        // Binomial(20000, 0.1): sd ≈ 42; 5 sd ≈ 212. Within the loud source each of its 20 items: mean 100, sd ≈ 10.
        double sd = Math.Sqrt(draws * 0.1 * 0.9);
        using (Assert.EnterMultipleScope())
        {
            Assert.That(buffer.Items().Count(item => item.Source == "loud"), Is.EqualTo(20));
            Assert.That(perSource, Has.Count.EqualTo(10));
            foreach ((string source, int count) in perSource)
            {
                Assert.That(count, Is.EqualTo(2000).Within(5 * sd), source);
            }

            foreach (IGrouping<long, ReplayItem> item in drawn.Where(item => item.Source == "loud").GroupBy(item => item.Sequence))
            {
                Assert.That(item.Count(), Is.EqualTo(100).Within(50), $"loud item {item.Key}");
            }
        }
    }

    [Test]
    public void SourceBalancedBufferNeverKeepsMoreItemsThanItsCapacityWhenSourcesOutnumberIt()
    {
        var buffer = new SourceBalancedReplayBuffer(4, long.MaxValue, 1);
        for (int i = 0; i < 30; i++)
        {
            buffer.Add(Item(i, $"user{i % 10}"));
            Assert.That(buffer.Count, Is.LessThanOrEqualTo(4), $"after offer {i}");
        }

        using (Assert.EnterMultipleScope())
        {
            Assert.That(buffer.Count, Is.EqualTo(4), "the capacity is still used");
            Assert.That(buffer.Items().Select(item => item.Source).Distinct().Count(), Is.EqualTo(4), "one item per source while sources outnumber the capacity");
        }
    }

    [Test]
    public void NoneKindKeepsNothing()
    {
        ReplayBuffer buffer = ReplayBuffer.Create(new ReplayOptions { Kind = ReplayKind.None, CapacityItems = 100, CapacityBytes = 1 << 20 }, 1);
        for (int i = 0; i < 50; i++)
        {
            buffer.Add(Item(i));
        }

        using (Assert.EnterMultipleScope())
        {
            Assert.That(buffer.Count, Is.Zero);
            Assert.That(buffer.Bytes, Is.Zero);
            Assert.That(buffer.Items(), Is.Empty);
            Assert.That(buffer.Sample(10), Is.Empty);
            Assert.That(buffer.Seen, Is.EqualTo(50));
            Assert.That(buffer.CapacityItems, Is.Zero);
        }
    }

    [Test]
    public void CreateMakesTheKindTheOptionsName()
    {
        using (Assert.EnterMultipleScope())
        {
            ReplayBuffer reservoir = ReplayBuffer.Create(new ReplayOptions { Kind = ReplayKind.Reservoir, CapacityItems = 7, CapacityBytes = 999 }, 1);
            Assert.That(reservoir, Is.TypeOf<ReservoirReplayBuffer>());
            Assert.That((reservoir.CapacityItems, reservoir.CapacityBytes), Is.EqualTo((7, 999L)));
            Assert.That(ReplayBuffer.Create(new ReplayOptions { Kind = ReplayKind.SourceBalanced }, 1), Is.TypeOf<SourceBalancedReplayBuffer>());
            Assert.That(() => new ReservoirReplayBuffer(-1, 10, 0), Throws.TypeOf<ArgumentOutOfRangeException>());
            Assert.That(() => new SourceBalancedReplayBuffer(1, -10, 0), Throws.TypeOf<ArgumentOutOfRangeException>());
            Assert.That(() => reservoir.Add(null!), Throws.ArgumentNullException);
        }
    }

    [Test]
    public void SerializeRoundTripsContentsAndEveryFutureDecision([Values] Kind kind)
    {
        foreach ((int capacityItems, long capacityBytes) in new[] { (0, 0L), (1, 1L << 20), (16, 1L << 20), (40, 2500L), (200, 1L << 30) })
        {
            for (int seed = 0; seed < 5; seed++)
            {
                var rng = new Random(seed);
                ReplayBuffer original = Create(kind, capacityItems, capacityBytes, (ulong)seed * 7919);
                for (int i = 0; i < 150; i++)
                {
                    original.Add(RichItem(rng, i));
                }

                string context = $"{kind}, capacity {capacityItems} items / {capacityBytes} bytes, seed {seed}";
                byte[] bytes = original.Serialize();
                ReplayBuffer restored = ReplayBuffer.Deserialize(bytes);
                AssertSameState(original, restored, context);

                // The same future: the same draws, then the same keep/evict decisions for the same offers.
                Assert.That(restored.Sample(64).Select(Describe), Is.EqualTo(original.Sample(64).Select(Describe)), $"{context}: draws");
                for (int i = 0; i < 200; i++)
                {
                    ReplayItem offer = RichItem(rng, 150 + i);
                    original.Add(offer);
                    restored.Add(offer);

                    // Sequence numbers are unique here: the same sequence of them is the same items in the same order.
                    if (!original.Items().Select(item => item.Sequence).SequenceEqual(restored.Items().Select(item => item.Sequence))
                        || (original.Seen, original.Bytes) != (restored.Seen, restored.Bytes))
                    {
                        Assert.Fail($"{context}: the buffers differ after offer {i}");
                    }
                }

                AssertSameState(original, restored, $"{context}: after the same offers");

                Assert.That(restored.Sample(64).Select(Describe), Is.EqualTo(original.Sample(64).Select(Describe)), $"{context}: later draws");
                Assert.That(restored.Serialize(), Is.EqualTo(original.Serialize()), $"{context}: serialised again");
            }
        }
    }

    [Test]
    public void EveryTruncationThrowsFormatException([Values] Kind kind)
    {
        byte[] bytes = Populated(kind, 4).Serialize();
        var failures = new List<string>();
        for (int length = 0; length < bytes.Length; length++)
        {
            try
            {
                ReplayBuffer.Deserialize(bytes.AsSpan(0, length));
                failures.Add($"{length} bytes deserialised");
            }
            catch (FormatException)
            {
            }
            catch (Exception ex)
            {
                failures.Add($"{length} bytes: {ex.GetType().Name}: {ex.Message}");
            }
        }

        Assert.That(failures, Is.Empty, $"of {bytes.Length} bytes:\n" + string.Join("\n", failures.Take(10)));
    }

    [Test]
    public void CorruptedBytesDeserializeToAWorkingBufferOrThrowFormatException([Values] Kind kind)
    {
        ReplayBuffer original = Populated(kind, 9);
        byte[] bytes = original.Serialize();
        var rng = new Random(kind == Kind.Reservoir ? 1234 : 5678);
        var failures = new List<string>();
        int deserialised = 0;
        RunWithin(TimeSpan.FromSeconds(120), () =>
        {
            for (int trial = 0; trial < 3000; trial++)
            {
                byte[] data = Corrupt(bytes, rng, out string how);
                try
                {
                    ReplayBuffer buffer = ReplayBuffer.Deserialize(data);
                    deserialised++;
                    Exercise(buffer, rng);
                }
                catch (FormatException)
                {
                }
                catch (Exception ex)
                {
                    failures.Add($"trial {trial} ({how}): {ex.GetType().Name}: {ex.Message}");
                }
            }
        });

        using (Assert.EnterMultipleScope())
        {
            Assert.That(failures, Is.Empty, string.Join("\n", failures.Take(10)));
            Assert.That(deserialised, Is.InRange(1, 2999), "some corruptions (of item contents) still parse, most do not");
        }
    }

    [Test]
    public void MalformedHeadersAreFormatErrors()
    {
        byte[] good = Populated(Kind.Reservoir, 2).Serialize();
        byte[] Patched(int offset, params byte[] value)
        {
            byte[] copy = (byte[])good.Clone();
            value.CopyTo(copy, offset);
            return copy;
        }

        using (Assert.EnterMultipleScope())
        {
            Assert.That(() => ReplayBuffer.Deserialize(Patched(0, 0, 0, 0, 0)), Throws.TypeOf<FormatException>(), "magic");
            Assert.That(() => ReplayBuffer.Deserialize(Patched(4, 2, 0, 0, 0)), Throws.TypeOf<FormatException>(), "version");
            Assert.That(() => ReplayBuffer.Deserialize(Patched(8, 0)), Throws.TypeOf<FormatException>(), "kind None");
            Assert.That(() => ReplayBuffer.Deserialize(Patched(8, 9)), Throws.TypeOf<FormatException>(), "unknown kind");
            Assert.That(() => ReplayBuffer.Deserialize(Patched(CapacityItemsOffset, 0xFF, 0xFF, 0xFF, 0xFF)), Throws.TypeOf<FormatException>(), "negative capacity");
            Assert.That(() => ReplayBuffer.Deserialize(Patched(CapacityItemsOffset, 1, 0, 0, 0)), Throws.TypeOf<FormatException>(), "more items than the capacity");
            Assert.That(() => ReplayBuffer.Deserialize([.. good, 0]), Throws.TypeOf<FormatException>(), "trailing byte");
            Assert.That(() => ReplayBuffer.Deserialize([]), Throws.TypeOf<FormatException>(), "empty");
        }
    }

    [Test]
    public void MalformedStringLengthsAreFormatErrors()
    {
        // One reservoir item: header, count (4), sequence (8), then the source as a 7-bit encoded length and UTF-8.
        var buffer = new ReservoirReplayBuffer(1, 1 << 20, 0);
        buffer.Add(Item(0, "s"));
        byte[] good = buffer.Serialize();
        int sourceOffset = HeaderLength + 4 + 8;
        Assert.That(good.AsSpan(sourceOffset, 2).ToArray(), Is.EqualTo(new byte[] { 1, (byte)'s' }), "the layout assumed here");
        byte[] WithLength(params byte[] length) => [.. good[..sourceOffset], .. length, .. good[(sourceOffset + 1)..]];

        using (Assert.EnterMultipleScope())
        {
            Assert.That(() => ReplayBuffer.Deserialize(WithLength(0xFF, 0xFF, 0xFF, 0xFF, 0x0F)), Throws.TypeOf<FormatException>(), "a length that overflows to -1");
            Assert.That(() => ReplayBuffer.Deserialize(WithLength(0xFF, 0xFF, 0xFF, 0xFF, 0x07)), Throws.TypeOf<FormatException>(), "int.MaxValue characters");
            Assert.That(() => ReplayBuffer.Deserialize(WithLength(0x80, 0x80, 0x80, 0x80, 0x80, 0x01)), Throws.TypeOf<FormatException>(), "more than five length bytes");
            Assert.That(ReplayBuffer.Deserialize(WithLength(0x81, 0x00)).Items()[0].Source, Is.EqualTo("s"), "a redundant (non-minimal) length still parses");
        }
    }

    [Test]
    public void AHugeItemCountIsAFormatErrorNotAnAllocation()
    {
        // A corrupted header may claim int.MaxValue items within an int.MaxValue capacity.
        byte[] data = new ReservoirReplayBuffer(10, 1000, 0).Serialize();
        Assert.That(data, Has.Length.EqualTo(HeaderLength + 4));
        BinaryPrimitives.WriteInt32LittleEndian(data.AsSpan(CapacityItemsOffset), int.MaxValue);
        BinaryPrimitives.WriteInt32LittleEndian(data.AsSpan(HeaderLength), int.MaxValue);
        Assert.That(() => ReplayBuffer.Deserialize(data), Throws.TypeOf<FormatException>());
    }

    [Test]
    public void ANegativePerSourceCountIsAFormatError()
    {
        // Source-balanced extra: source count (4), then per source its name (1-byte length + UTF-8) and items seen (8).
        var buffer = new SourceBalancedReplayBuffer(2, 1 << 20, 0);
        buffer.Add(Item(0, "s"));
        byte[] data = buffer.Serialize();
        int seenOffset = HeaderLength + 4 + 1 + 1;
        Assert.That(BinaryPrimitives.ReadInt64LittleEndian(data.AsSpan(seenOffset)), Is.EqualTo(1), "the layout assumed here");
        BinaryPrimitives.WriteInt64LittleEndian(data.AsSpan(seenOffset), -5);
        Assert.That(() => ReplayBuffer.Deserialize(data), Throws.TypeOf<FormatException>());
    }

    [Test]
    public void SplitMix64MatchesTheReferenceSequence()
    {
        // Vigna's splitmix64 from state 1234567 (the published reference outputs).
        var random = new SplitMix64(1234567);
        ulong[] expected = [6457827717110365317, 3203168211198807973, 9817491932198370423, 4593380528125082431, 16408922859458223821];
        Assert.That(Enumerable.Range(0, 5).Select(_ => random.NextUInt64()), Is.EqualTo(expected));
    }

    [Test]
    public void SplitMix64DrawsBelowABoundUniformlyWithoutModuloBias()
    {
        var random = new SplitMix64(42);
        using (Assert.EnterMultipleScope())
        {
            // n = 3·2^61: plain x mod n would put 3/4 of the draws below 2^62 instead of the uniform 2/3.
            const long n = 3L << 61;
            const int draws = 20_000;
            int below = 0;
            for (int i = 0; i < draws; i++)
            {
                long x = random.NextInt64(n);
                Assert.That(x, Is.InRange(0L, n - 1));
                below += x < (1L << 62) ? 1 : 0;
            }

            // Binomial(20000, 2/3): sd ≈ 67; 5 sd ≈ 333 (the biased 3/4 is 1667 away).
            Assert.That(below, Is.EqualTo(draws * 2 / 3).Within(5 * Math.Sqrt(draws * 2.0 / 9)));

            var counts = new int[7];
            for (int i = 0; i < 70_000; i++)
            {
                counts[random.NextInt64(7)]++;
            }

            // Binomial(70000, 1/7): sd ≈ 92.6.
            Assert.That(counts, Is.All.EqualTo(10_000).Within(5 * 92.6));
            Assert.That(random.NextInt64(1), Is.Zero);
            Assert.That(() => new SplitMix64(1).NextInt64(0), Throws.TypeOf<ArgumentOutOfRangeException>());
        }
    }

    [Test]
    public void SplitMix64SeedMixesTheTextDeterministically()
    {
        using (Assert.EnterMultipleScope())
        {
            string name = string.Concat("ac", "me");
            Assert.That(SplitMix64.Seed(0, name), Is.EqualTo(SplitMix64.Seed(0, "acme")), "a function of the seed and the text only");
            Assert.That(SplitMix64.Seed(0, "acme"), Is.Not.EqualTo(SplitMix64.Seed(0, "acme/alice")));
            Assert.That(SplitMix64.Seed(0, "acme"), Is.Not.EqualTo(SplitMix64.Seed(1, "acme")));
            Assert.That(SplitMix64.Seed(0, "ab"), Is.Not.EqualTo(SplitMix64.Seed(0, "ba")));
        }
    }

    private static bool CapacityHolds(int seed)
    {
        var rng = new Random(seed);
        Kind kind = rng.Next(2) == 0 ? Kind.Reservoir : Kind.SourceBalanced;
        int capacityItems = rng.Next(0, 25);
        long capacityBytes = new[] { 0L, 100, 300, 1000, 3000, 1L << 40 }[rng.Next(6)];
        ReplayBuffer buffer = Create(kind, capacityItems, capacityBytes, (ulong)seed);
        int sources = rng.Next(1, 31);
        int offers = rng.Next(0, 150);
        for (int i = 0; i < offers; i++)
        {
            buffer.Add(Item(i, $"s{rng.Next(sources)}", rng.Next(8) == 0 ? rng.Next(100, 800) : rng.Next(0, 60)));
            IReadOnlyList<ReplayItem> items = buffer.Items();
            string? problem =
                buffer.Count > capacityItems ? $"{buffer.Count} items" :
                buffer.Bytes > capacityBytes ? $"{buffer.Bytes} bytes" :
                buffer.Bytes != items.Sum(item => item.Bytes) ? $"Bytes {buffer.Bytes} is not the items' {items.Sum(item => item.Bytes)}" :
                buffer.Count != items.Count ? "Count is not the items'" :
                items.Any(item => item.Bytes > capacityBytes) ? "an item over the byte capacity is kept" :
                buffer.Seen != i + 1 ? $"Seen {buffer.Seen}" :
                null;
            if (problem is not null)
            {
                throw new AssertionException($"seed {seed}: {kind} of {capacityItems} items / {capacityBytes} bytes, {sources} sources, after offer {i}: {problem}");
            }
        }

        return true;
    }

    private static bool OfferIsKeptOrChangesNothing(int seed)
    {
        var rng = new Random(seed);
        Kind kind = rng.Next(2) == 0 ? Kind.Reservoir : Kind.SourceBalanced;
        int capacityItems = rng.Next(1, 25);
        long capacityBytes = new[] { 300L, 1000, 3000, 1L << 40 }[rng.Next(4)];
        ReplayBuffer buffer = Create(kind, capacityItems, capacityBytes, (ulong)seed);
        int sources = rng.Next(1, 6);
        var seenSources = new HashSet<string>();
        for (int i = 0; i < 150; i++)
        {
            ReplayItem offer = Item(i, $"s{rng.Next(sources)}", rng.Next(8) == 0 ? rng.Next(100, 800) : rng.Next(0, 60));
            IReadOnlyList<ReplayItem> before = buffer.Items();
            buffer.Add(offer);
            IReadOnlyList<ReplayItem> after = buffer.Items();
            // The source-balanced buffer learns of a source from its first offer that fits the byte capacity.
            bool newSource = offer.Bytes <= capacityBytes && seenSources.Add(offer.Source);
            bool comparable = kind == Kind.Reservoir || !newSource;
            if (comparable && !after.Contains(offer) && !after.SequenceEqual(before))
            {
                throw new AssertionException($"seed {seed}: {kind} of {capacityItems} items / {capacityBytes} bytes, offer {i} ({offer.Bytes} bytes from {offer.Source}) is not kept but the contents changed");
            }
        }

        return true;
    }

    /// <summary>Uses a deserialised buffer: offers, draws and a second round trip must all work.</summary>
    private static void Exercise(ReplayBuffer buffer, Random rng)
    {
        string[] sources = [.. buffer.Items().Select(item => item.Source).Distinct(), "new-source"];
        for (int i = 0; i < 30; i++)
        {
            buffer.Add(Item(10_000 + i, sources[rng.Next(sources.Length)], rng.Next(0, 40)));
        }

        buffer.Sample(10);
        ReplayBuffer again = ReplayBuffer.Deserialize(buffer.Serialize());
        if (Describe(again) != Describe(buffer))
        {
            throw new InvalidOperationException("a deserialised buffer does not round-trip");
        }
    }

    private static byte[] Corrupt(byte[] bytes, Random rng, out string how)
    {
        byte[] data = (byte[])bytes.Clone();
        int changes = rng.Next(1, 4);
        var positions = new List<int>();
        for (int c = 0; c < changes; c++)
        {
            int at = rng.Next(data.Length);
            positions.Add(at);
            data[at] ^= (byte)rng.Next(1, 256);
        }

        how = $"bytes {string.Join(", ", positions)} changed";
        switch (rng.Next(6))
        {
            case 0:
                int cut = rng.Next(data.Length);
                how += $", cut to {cut}";
                return data[..cut];
            case 1:
                int insert = rng.Next(data.Length);
                how += $", a byte inserted at {insert}";
                return [.. data[..insert], (byte)rng.Next(256), .. data[insert..]];
            default:
                return data;
        }
    }

    private static ReplayBuffer Populated(Kind kind, int seed)
    {
        var rng = new Random(seed);
        ReplayBuffer buffer = Create(kind, 24, 1L << 20, (ulong)seed);
        for (int i = 0; i < 60; i++)
        {
            buffer.Add(RichItem(rng, i));
        }

        return buffer;
    }

    private static List<ReplayItem> Shuffled(ReplayItem[] items, int seed)
    {
        new Random(seed).Shuffle(items);
        return [.. items];
    }

    private static ReplayBuffer Create(Kind kind, int capacityItems, long capacityBytes, ulong seed) => kind == Kind.Reservoir
        ? new ReservoirReplayBuffer(capacityItems, capacityBytes, seed)
        : new SourceBalancedReplayBuffer(capacityItems, capacityBytes, seed);

    /// <summary>An item of <c>96 + 2·|source| + 4·(1 + completionTokens)</c> bytes.</summary>
    private static ReplayItem Item(long sequence, string source = "s", int completionTokens = 3) =>
        new(sequence, source, new TrainingExample(TrainingObjective.Completion, [1], [.. Enumerable.Range(0, completionTokens)]));

    /// <summary>An item of any objective, with every field the format carries set to something non-default.</summary>
    private static ReplayItem RichItem(Random rng, long sequence)
    {
        string[] sources = ["alice", "bob", "carol", "d\u00e9j\u00e0", "\u6771\u4eac", "x"];
        var objective = (TrainingObjective)rng.Next(3);
        int[] Ids(int min, int max) => [.. Enumerable.Range(0, rng.Next(min, max)).Select(_ => rng.Next(8) == 0 ? int.MaxValue : rng.Next(-3, 50_000))];
        return new ReplayItem(sequence, sources[rng.Next(sources.Length)], new TrainingExample(objective, Ids(1, 6), Ids(0, 12))
        {
            Rejected = objective == TrainingObjective.Preference || rng.Next(4) == 0 ? Ids(0, 9) : null,
            Desirable = rng.Next(2) == 0,
            Weight = Math.Pow(10, (rng.NextDouble() * 4) - 2),
            ReferenceLogLikelihood = -50 * rng.NextDouble(),
            ReferenceRejectedLogLikelihood = -50 * rng.NextDouble(),
        });
    }

    private static string Describe(ReplayItem item)
    {
        TrainingExample e = item.Example;
        static string Ids(IReadOnlyList<int>? ids) => ids is null ? "null" : string.Join(",", ids);
        return $"{item.Sequence}|{item.Source}|{e.Objective}|{e.Desirable}|{e.Weight:R}|{e.ReferenceLogLikelihood:R}|{e.ReferenceRejectedLogLikelihood:R}|{Ids(e.Prompt)}|{Ids(e.Completion)}|{Ids(e.Rejected)}";
    }

    private static string Describe(ReplayBuffer buffer) =>
        $"{buffer.GetType().Name} {buffer.CapacityItems}/{buffer.CapacityBytes} seen {buffer.Seen} count {buffer.Count} bytes {buffer.Bytes}: {string.Join(" ; ", buffer.Items().Select(Describe))}";

    private static void AssertSameState(ReplayBuffer expected, ReplayBuffer actual, string context)
    {
        using (Assert.EnterMultipleScope())
        {
            Assert.That(actual.GetType(), Is.EqualTo(expected.GetType()), context);
            Assert.That((actual.CapacityItems, actual.CapacityBytes, actual.Seen, actual.Count, actual.Bytes), Is.EqualTo((expected.CapacityItems, expected.CapacityBytes, expected.Seen, expected.Count, expected.Bytes)), context);
            Assert.That(actual.Items().Select(Describe), Is.EqualTo(expected.Items().Select(Describe)), $"{context}: the same items in the same order");
        }
    }

    /// <summary>Runs <paramref name="action"/>, failing (instead of hanging the run) if it has not finished in <paramref name="limit"/>; only a hang can take that long.</summary>
    private static void RunWithin(TimeSpan limit, Action action)
    {
        var task = Task.Factory.StartNew(action, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        Assert.That(task.Wait(limit), Is.True, $"did not finish within {limit}: a hang");
        task.GetAwaiter().GetResult();
    }
}
