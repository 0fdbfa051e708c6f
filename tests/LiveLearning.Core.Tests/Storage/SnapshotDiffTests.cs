using LiveLearning.Backends;
using LiveLearning.Storage;
using NUnit.Framework;

namespace LiveLearning.Tests.Storage;

[TestFixture]
public sealed class SnapshotDiffTests
{
    [Test]
    public void ChangeNormsAreThoseOfTheDifferencePerTensor()
    {
        Snapshot from = Make("a", 2, 10, 5, ("x", [1f, 2f]), ("same", [3f]), ("gone", [3f, 4f]));
        Snapshot to = Make("b", 7, 30, 12, ("x", [4f, 6f]), ("same", [3f]), ("new", [0f, 5f, 12f]));
        SnapshotDifference d = SnapshotDiff.Compare(from, to);
        Assert.That(d.Tensors.Select(t => (t.Name, t.Change)), Is.EqualTo(new[]
        {
            ("x", TensorChangeKind.Changed), ("same", TensorChangeKind.Unchanged), ("new", TensorChangeKind.Added), ("gone", TensorChangeKind.Removed),
        }));
        Assert.That(d.Tensors.Select(t => t.ChangeNorm), Is.EqualTo(new[] { 5.0, 0.0, 13.0, 5.0 }).Within(1e-12));
        Assert.That(d.TotalChangeNorm, Is.EqualTo(Math.Sqrt(25 + 169 + 25)).Within(1e-12));
        Assert.That((d.Steps, d.Items, d.FromJournalPosition, d.ToJournalPosition), Is.EqualTo((5L, 20L, 5L, 12L)));
    }

    [Test]
    public async Task PruneKeepsTheNewestPerScopeAndEveryAliasedOne()
    {
        var store = new InMemorySnapshotStore();
        for (int i = 0; i < 6; i++)
        {
            await store.SaveAsync(Make($"d{i}", i, i, i, ("x", [i])), CancellationToken.None);
            Snapshot other = Make($"o{i}", i, i, i, ("x", [i]));
            await store.SaveAsync(other with { Info = other.Info with { Scope = "other" } }, CancellationToken.None);
        }

        await store.SetAliasAsync("last-good", "d1", CancellationToken.None);
        IReadOnlyList<string> deleted = await new SnapshotRetention { KeepLast = 2 }.PruneAsync(store, CancellationToken.None);
        Assert.That(deleted, Is.EquivalentTo(new[] { "d0", "d2", "d3", "o0", "o1", "o2", "o3" }));
        Assert.That((await store.ListAsync("default", CancellationToken.None)).Select(i => i.Id), Is.EqualTo(new[] { "d1", "d4", "d5" }));
    }

    private static Snapshot Make(string id, long step, long items, long position, params (string Name, float[] Values)[] tensors)
    {
        var version = new AdapterVersion { Id = "default@" + step, Scope = "default", Number = step + 1, ContentHash = id, CreatedAt = DateTimeOffset.UnixEpoch, Items = items, Reason = "learned" };
        var info = new SnapshotInfo(id, "default", null, version, DateTimeOffset.UnixEpoch.AddMinutes(step));
        var weights = new AdapterWeightsData([.. tensors.Select(t => new NamedTensor(t.Name, [t.Values.Length], t.Values))], new Dictionary<string, string>());
        return new Snapshot(info, weights, new TrainerState(step, [], new Dictionary<string, string>()), Array.Empty<byte>(), 0) { JournalPosition = position };
    }
}
