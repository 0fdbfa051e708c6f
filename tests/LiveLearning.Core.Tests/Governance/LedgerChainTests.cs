using LiveLearning.Governance;
using NUnit.Framework;

namespace LiveLearning.Tests.Governance;

[TestFixture]
public sealed class LedgerChainTests
{
    [Test]
    public async Task TheInMemoryLedgerChainsEveryEntryAndTheChainVerifies()
    {
        var ledger = new InMemoryLedger();
        foreach (LedgerEntry e in Entries(6))
        {
            await ledger.AppendAsync(e, CancellationToken.None);
        }

        IReadOnlyList<LedgerEntry> chain = ledger.Entries;
        Assert.That(chain.Select(e => e.Index), Is.EqualTo(new long[] { 1, 2, 3, 4, 5, 6 }));
        Assert.That(chain[0].PreviousHash, Is.Empty);
        Assert.That(chain.Skip(1).Select(e => e.PreviousHash), Is.EqualTo(chain.Take(5).Select(e => e.Hash)));
        Assert.That(LedgerChain.Verify(chain), Is.EqualTo(new LedgerVerification(true, 6, null, null)));
    }

    [Test]
    public void AnEditedFieldIsFoundAtItsEntry()
    {
        List<LedgerEntry> chain = Sealed(5);
        foreach (Func<LedgerEntry, LedgerEntry> edit in new Func<LedgerEntry, LedgerEntry>[]
        {
            e => e with { Message = e.Message + "!" },
            e => e with { Loss = 0.5 },
            e => e with { Items = [1, 2, 4] },
            e => e with { At = e.At.AddTicks(1) },
            e => e with { Actor = "mallory" },
            e => e with { Event = LedgerEvent.Rejected },
        })
        {
            List<LedgerEntry> tampered = [.. chain];
            tampered[2] = edit(tampered[2]);
            LedgerVerification v = LedgerChain.Verify(tampered);
            Assert.That(v.Valid, Is.False);
            Assert.That(v.FirstBadIndex, Is.EqualTo(3));
            Assert.That(v.Problem, Does.Contain("edited"));
        }
    }

    [Test]
    public void ADeletedInsertedOrReorderedEntryBreaksTheChain()
    {
        List<LedgerEntry> chain = Sealed(5);
        List<LedgerEntry> deleted = [.. chain];
        deleted.RemoveAt(2);
        Assert.That(LedgerChain.Verify(deleted), Has.Property(nameof(LedgerVerification.FirstBadIndex)).EqualTo(4).And.Property(nameof(LedgerVerification.Valid)).False);

        List<LedgerEntry> swapped = [chain[0], chain[2], chain[1], chain[3], chain[4]];
        Assert.That(LedgerChain.Verify(swapped).Valid, Is.False);

        // A rewritten entry whose hash is recomputed still breaks the link of the one after it.
        List<LedgerEntry> rewritten = [.. chain];
        LedgerEntry forged = chain[2] with { Message = "nothing happened" };
        rewritten[2] = forged with { Hash = LedgerChain.ComputeHash(forged with { Hash = string.Empty }) };
        LedgerVerification v = LedgerChain.Verify(rewritten);
        Assert.That(v.FirstBadIndex, Is.EqualTo(4));
        Assert.That(v.Problem, Does.Contain("link"));
    }

    [Test]
    public async Task ALedgerThatDroppedOldEntriesStillVerifiesFromItsOldestKept()
    {
        var ledger = new InMemoryLedger(capacity: 3);
        foreach (LedgerEntry e in Entries(7))
        {
            await ledger.AppendAsync(e, CancellationToken.None);
        }

        Assert.That(ledger.Entries.Select(e => e.Index), Is.EqualTo(new long[] { 5, 6, 7 }));
        Assert.That(LedgerChain.Verify(ledger.Entries).Valid, Is.True);
    }

    private static List<LedgerEntry> Sealed(int count)
    {
        var chain = new List<LedgerEntry>();
        foreach (LedgerEntry e in Entries(count))
        {
            chain.Add(LedgerChain.Seal(e, chain.Count == 0 ? null : chain[^1]));
        }

        return chain;
    }

    private static IEnumerable<LedgerEntry> Entries(int count)
        => Enumerable.Range(0, count).Select(i => new LedgerEntry(new DateTimeOffset(2026, 12, 3, 12, 0, i, TimeSpan.Zero), "m", "default", LedgerEvent.Step, $"Step {i}")
        {
            Items = [1, 2, 3],
            Loss = i / 3.0,
            Sequence = i,
        });
}
