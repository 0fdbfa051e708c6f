using System.Text;
using LiveLearning.Backends;
using LiveLearning.Storage;
using NUnit.Framework;

namespace LiveLearning.Tests.Storage;

[TestFixture]
public sealed class FileSnapshotStoreTests
{
    private string _parent = string.Empty;
    private string _root = string.Empty;

    [SetUp]
    public void MakeDirectory()
    {
        _parent = Path.Combine(Path.GetTempPath(), "livelearning-snapshots-" + Guid.NewGuid().ToString("N"));
        _root = Path.Combine(_parent, "store");
    }

    [TearDown]
    public void RemoveDirectory()
    {
        if (Directory.Exists(_parent))
        {
            Directory.Delete(_parent, recursive: true);
        }
    }

    [Test]
    public async Task ASnapshotRoundTripsBitForBit()
    {
        var store = new FileSnapshotStore(_root);
        Snapshot saved = MakeSnapshot("m/default@3#01", "before the holidays");
        await store.SaveAsync(saved, CancellationToken.None);
        Snapshot? loaded = await store.LoadAsync(saved.Info.Id, CancellationToken.None);
        Assert.That(loaded, Is.Not.Null);
        AssertSame(loaded!, saved);
        Assert.That(await store.LoadAsync("missing", CancellationToken.None), Is.Null);
        string dir = store.DirectoryOf(saved.Info.Id);
        Assert.That(File.ReadAllText(Path.Combine(dir, "adapter_config.json")), Is.EqualTo("{\"r\": 2}"), "the PEFT config is a file of its own");
        using SafeTensorsFile peft = SafeTensorsFile.Open(Path.Combine(dir, "adapter_model.safetensors"));
        Assert.That(peft.Names, Is.EquivalentTo(new[] { "base_model.model.layers.0.q_proj.lora_A.weight", "base_model.model.layers.0.q_proj.lora_B.weight" }));
    }

    [Test]
    public async Task ListIsOldestFirstAndFiltersByScope()
    {
        var store = new FileSnapshotStore(_root);
        await store.SaveAsync(MakeSnapshot("b", null, minutes: 2), CancellationToken.None);
        await store.SaveAsync(MakeSnapshot("a", null, minutes: 1), CancellationToken.None);
        await store.SaveAsync(MakeSnapshot("c", null, minutes: 3, scope: "other"), CancellationToken.None);
        Assert.That((await store.ListAsync(null, CancellationToken.None)).Select(i => i.Id), Is.EqualTo(new[] { "a", "b", "c" }));
        Assert.That((await store.ListAsync("default", CancellationToken.None)).Select(i => i.Id), Is.EqualTo(new[] { "a", "b" }));
    }

    [Test]
    public async Task AliasesPointReplaceAndGoWithTheirSnapshot()
    {
        var store = new FileSnapshotStore(_root);
        await store.SaveAsync(MakeSnapshot("one", null), CancellationToken.None);
        await store.SaveAsync(MakeSnapshot("two", null), CancellationToken.None);
        await store.SetAliasAsync("production", "one", CancellationToken.None);
        await store.SetAliasAsync("last-good", "one", CancellationToken.None);
        await store.SetAliasAsync("production", "two", CancellationToken.None);
        Assert.That(await store.ListAliasesAsync(CancellationToken.None), Is.EquivalentTo(new Dictionary<string, string> { ["production"] = "two", ["last-good"] = "one" }));
        Assert.That(() => store.SetAliasAsync("x", "missing", CancellationToken.None).AsTask(), Throws.TypeOf<KeyNotFoundException>());
        Assert.That(await store.DeleteAsync("one", CancellationToken.None), Is.True);
        Assert.That(await store.ListAliasesAsync(CancellationToken.None), Is.EquivalentTo(new Dictionary<string, string> { ["production"] = "two" }));
        Assert.That(await store.RemoveAliasAsync("production", CancellationToken.None), Is.True);
        Assert.That(await store.RemoveAliasAsync("production", CancellationToken.None), Is.False);
        Assert.That(await store.DeleteAsync("one", CancellationToken.None), Is.False);
    }

    [TestCase("..")]
    [TestCase("../escape")]
    [TestCase("a/b")]
    [TestCase("a\\b")]
    [TestCase("nul\0byte")]
    [TestCase("bell\u0007")]
    [TestCase("")]
    [TestCase(".hidden")]
    [TestCase("production/../../x")]
    public void HostileAliasesAreRefused(string alias)
    {
        var store = new FileSnapshotStore(_root);
        Assert.That(() => store.SetAliasAsync(alias, "any", CancellationToken.None).AsTask(), Throws.InstanceOf<ArgumentException>());
    }

    [TestCase("..")]
    [TestCase("../../escape")]
    [TestCase("/etc/passwd")]
    [TestCase("a\\..\\b")]
    [TestCase("nul\0byte")]
    [TestCase("line\nbreak\u001b[31m")]
    [TestCase("emoji 🦙 and ü")]
    public async Task HostileIdsStayInsideTheStoreAndRoundTrip(string id)
    {
        var store = new FileSnapshotStore(_root);
        await store.SaveAsync(MakeSnapshot(id, "label with ../ and \0"), CancellationToken.None);
        Assert.That((await store.LoadAsync(id, CancellationToken.None))!.Info.Id, Is.EqualTo(id));
        AssertEverythingInsideRoot();
    }

    [Test]
    public async Task AVeryLongIdIsShortenedAndStillFound()
    {
        var store = new FileSnapshotStore(_root);
        string id = new string('x', 1000) + "/" + new string('.', 300);
        await store.SaveAsync(MakeSnapshot(id, null), CancellationToken.None);
        Assert.That(Path.GetFileName(store.DirectoryOf(id)).Length, Is.LessThanOrEqualTo(200));
        Assert.That((await store.LoadAsync(id, CancellationToken.None))!.Info.Id, Is.EqualTo(id));
        AssertEverythingInsideRoot();
    }

    [Test]
    public void ALoneSurrogateIdIsRefused()
    {
        var store = new FileSnapshotStore(_root);
        Assert.That(() => store.SaveAsync(MakeSnapshot("bad\ud800id", null), CancellationToken.None).AsTask(), Throws.InstanceOf<ArgumentException>());
    }

    [TestCase("adapter_model.safetensors")]
    [TestCase("trainer.safetensors")]
    [TestCase("replay.bin")]
    [TestCase("state.json")]
    [TestCase("adapter_config.json")]
    [TestCase("manifest.json")]
    public async Task AFlippedByteOrATruncationInAnyFileIsDetectedAndNamed(string file)
    {
        foreach (bool truncate in new[] { false, true })
        {
            var store = new FileSnapshotStore(_root);
            string id = $"s-{file}-{truncate}";
            await store.SaveAsync(MakeSnapshot(id, null), CancellationToken.None);
            string path = Path.Combine(store.DirectoryOf(id), file);
            byte[] bytes = File.ReadAllBytes(path);
            if (truncate)
            {
                bytes = bytes[..(bytes.Length / 2)];
            }
            else
            {
                bytes[bytes.Length / 2] ^= 0x20;
            }

            File.WriteAllBytes(path, bytes);
            StorageCorruptedException? ex = Assert.ThrowsAsync<StorageCorruptedException>(async () => await store.LoadAsync(id, CancellationToken.None), $"{file}, truncated: {truncate}");
            Assert.That(ex!.FilePath, Does.EndWith(file));
            IReadOnlyList<(string Directory, string Problem)> problems = await store.VerifyAsync(CancellationToken.None);
            Assert.That(problems.Select(p => p.Directory), Has.Member(store.DirectoryOf(id)));
            if (file is "manifest.json" or "state.json")
            {
                Assert.That((await store.ListAsync(null, CancellationToken.None)).Select(i => i.Id), Has.No.Member(id), "a snapshot whose description is damaged is not listed");
            }

            await store.DeleteAsync(id, CancellationToken.None);
        }
    }

    [Test]
    public async Task EncryptedSnapshotsRoundTripAndLeakNoContent()
    {
        byte[] key = StorageKey.NewKey();
        using var k = new StorageKey(key);
        var store = new FileSnapshotStore(_root, k);
        Snapshot saved = MakeSnapshot("sealed", "top-secret-label");
        await store.SaveAsync(saved, CancellationToken.None);
        AssertSame((await store.LoadAsync("sealed", CancellationToken.None))!, saved);
        byte[] pattern = System.Runtime.InteropServices.MemoryMarshal.AsBytes<float>([1.25f, -2.5f, 3.75f]).ToArray();
        foreach (string file in Directory.GetFiles(_root, "*", SearchOption.AllDirectories))
        {
            byte[] bytes = File.ReadAllBytes(file);
            Assert.That(Encoding.UTF8.GetString(bytes), Does.Not.Contain("top-secret-label").And.Not.Contain("q_proj"), file);
            Assert.That(bytes.AsSpan().IndexOf(pattern), Is.EqualTo(-1), file);
        }

        using var wrong = new StorageKey(StorageKey.NewKey());
        Assert.That(async () => await new FileSnapshotStore(_root, wrong).LoadAsync("sealed", CancellationToken.None), Throws.TypeOf<StorageKeyMismatchException>().With.Message.Contains("different key"));
        Assert.That(async () => await new FileSnapshotStore(_root).LoadAsync("sealed", CancellationToken.None), Throws.TypeOf<StorageKeyMismatchException>());
        Assert.That(async () => await new FileSnapshotStore(_root, wrong).ListAsync(null, CancellationToken.None), Throws.TypeOf<StorageKeyMismatchException>(), "a listing under the wrong key fails rather than showing an empty store");
    }

    [Test]
    public async Task ACancelledSaveLeavesNothingBehind()
    {
        var store = new FileSnapshotStore(_root);
        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();
        Assert.That(async () => await store.SaveAsync(MakeSnapshot("never", null), cancelled.Token), Throws.InstanceOf<OperationCanceledException>());
        Assert.That(Directory.GetFileSystemEntries(Path.Combine(_root, "snapshots")), Is.Empty);
    }

    [Test]
    public async Task SavingAnExistingIdReplacesIt()
    {
        var store = new FileSnapshotStore(_root);
        await store.SaveAsync(MakeSnapshot("same", "first"), CancellationToken.None);
        await store.SaveAsync(MakeSnapshot("same", "second"), CancellationToken.None);
        Assert.That((await store.LoadAsync("same", CancellationToken.None))!.Info.Label, Is.EqualTo("second"));
        Assert.That(Directory.GetDirectories(Path.Combine(_root, "snapshots")), Has.Length.EqualTo(1));
    }

    [Test]
    public async Task TheTrainerFileCarriesTheStepAndMetadataInItsHeader()
    {
        var store = new FileSnapshotStore(_root);
        await store.SaveAsync(MakeSnapshot("t", null), CancellationToken.None);
        using SafeTensorsFile trainer = SafeTensorsFile.Open(Path.Combine(store.DirectoryOf("t"), "trainer.safetensors"));
        Assert.That(trainer.Metadata, Is.EquivalentTo(new Dictionary<string, string> { ["step"] = "42", ["optimizer"] = "adamw" }));
    }

    [Test]
    public async Task ASnapshotMovedAsideByAnInterruptedReplaceIsRecoveredWhenTheStoreOpens()
    {
        var store = new FileSnapshotStore(_root);
        await store.SaveAsync(MakeSnapshot("kept", "old"), CancellationToken.None);
        string aside = Path.Combine(_root, "snapshots", ".tmp-old-" + Guid.NewGuid().ToString("N"));
        Directory.Move(store.DirectoryOf("kept"), aside);
        string deletion = Path.Combine(_root, "snapshots", ".tmp-del-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(deletion);
        var reopened = new FileSnapshotStore(_root);
        Assert.That((await reopened.LoadAsync("kept", CancellationToken.None))!.Info.Label, Is.EqualTo("old"));
        Assert.That(Directory.Exists(aside) || Directory.Exists(deletion), Is.False);
    }

    [Test]
    public async Task LoadsDuringRepeatedReplacementsAlwaysSeeAWholeSnapshot()
    {
        var store = new FileSnapshotStore(_root);
        await store.SaveAsync(MakeSnapshot("busy", "0"), CancellationToken.None);
        Task writer = Task.Run(async () =>
        {
            for (int i = 1; i <= 20; i++)
            {
                await store.SaveAsync(MakeSnapshot("busy", i.ToString(System.Globalization.CultureInfo.InvariantCulture)), CancellationToken.None);
            }
        });
        while (!writer.IsCompleted)
        {
            Snapshot? loaded = await store.LoadAsync("busy", CancellationToken.None);
            Assert.That(loaded, Is.Not.Null);
            Assert.That(await store.ListAsync(null, CancellationToken.None), Has.Count.EqualTo(1));
        }

        await writer;
        Assert.That((await store.LoadAsync("busy", CancellationToken.None))!.Info.Label, Is.EqualTo("20"));
    }

    [Test]
    public void SnapshotDiffGivesPerTensorAndTotalNormsAndTheLearningBetween()
    {
        Snapshot from = WithWeights(MakeSnapshot("from", null), ("a", [2], [1f, 2f]), ("same", [1], [3f]), ("gone", [2], [3f, 4f]), ("reshaped", [1], [6f]));
        Snapshot to = WithWeights(MakeSnapshot("to", null), ("reshaped", [2], [0f, 8f]), ("a", [2], [4f, -2f]), ("same", [1], [3f]), ("new", [3], [0f, 5f, 12f])) with
        {
            Trainer = new TrainerState(50, [], new Dictionary<string, string>()),
            JournalPosition = 30,
        };
        to = to with { Info = to.Info with { Version = to.Info.Version with { Items = 19 } } };

        SnapshotDifference d = SnapshotDiff.Compare(from, to);

        Assert.That(d.Tensors.Select(t => (t.Name, t.Change)), Is.EqualTo(new[]
        {
            ("reshaped", TensorChangeKind.Reshaped), ("a", TensorChangeKind.Changed), ("same", TensorChangeKind.Unchanged), ("new", TensorChangeKind.Added), ("gone", TensorChangeKind.Removed),
        }));
        Assert.That(d.Tensors.Select(t => t.ChangeNorm), Is.EqualTo(new[] { 10.0, 5.0, 0.0, 13.0, 5.0 }).Within(1e-12));
        Assert.That(d.TotalChangeNorm, Is.EqualTo(Math.Sqrt(100 + 25 + 169 + 25)).Within(1e-12));
        Assert.That((d.Steps, d.Items, d.FromJournalPosition, d.ToJournalPosition), Is.EqualTo((8L, 8L, 12L, 30L)));
        Assert.That((d.From.Id, d.To.Id), Is.EqualTo(("from", "to")));
        Assert.That(() => SnapshotDiff.Compare(from, WithWeights(to, ("x", [1], [1f]), ("x", [1], [2f]))), Throws.ArgumentException);
    }

    [Test]
    public async Task PruneKeepsTheNewestPerModelAndScopeAndEveryAliasedOne()
    {
        var store = new FileSnapshotStore(_root);
        for (int i = 0; i < 5; i++)
        {
            await store.SaveAsync(MakeSnapshot($"d{i}", null, minutes: i), CancellationToken.None);
            await store.SaveAsync(MakeSnapshot($"o{i}", null, minutes: i, scope: "other"), CancellationToken.None);
            Snapshot other = MakeSnapshot($"n{i}", null, minutes: i);
            await store.SaveAsync(other with { Info = other.Info with { Model = "another-model" } }, CancellationToken.None);
        }

        await store.SetAliasAsync("production", "d0", CancellationToken.None);
        IReadOnlyList<string> deleted = await new SnapshotRetention { KeepLast = 3 }.PruneAsync(store, CancellationToken.None);

        Assert.That(deleted, Is.EqualTo(new[] { "n0", "o0", "d1", "n1", "o1" }), "oldest first, never the aliased d0");
        Assert.That((await store.ListAsync(null, CancellationToken.None)).Select(i => i.Id), Is.EqualTo(new[] { "d0", "d2", "n2", "o2", "d3", "n3", "o3", "d4", "n4", "o4" }));
        Assert.That(await new SnapshotRetention { KeepLast = 3 }.PruneAsync(store, CancellationToken.None), Is.Empty, "pruning again changes nothing");
        Assert.That(await new SnapshotRetention { KeepLast = 3, KeepAliased = false }.PruneAsync(store, CancellationToken.None), Is.EqualTo(new[] { "d0" }));
        Assert.That(await store.ListAliasesAsync(CancellationToken.None), Is.Empty);
        Assert.That(() => new SnapshotRetention { KeepLast = 0 }.PruneAsync(store, CancellationToken.None).AsTask(), Throws.InstanceOf<ArgumentOutOfRangeException>());
    }

    private static Snapshot WithWeights(Snapshot snapshot, params (string Name, int[] Shape, float[] Values)[] tensors)
        => snapshot with { Weights = new AdapterWeightsData([.. tensors.Select(t => new NamedTensor(t.Name, t.Shape, t.Values))], new Dictionary<string, string>()) };

    private void AssertEverythingInsideRoot()
    {
        string root = Path.GetFullPath(_root) + Path.DirectorySeparatorChar;
        foreach (string entry in Directory.GetFileSystemEntries(_parent, "*", SearchOption.AllDirectories))
        {
            Assert.That(Path.GetFullPath(entry) + Path.DirectorySeparatorChar, Does.StartWith(root), entry);
        }
    }

    private static Snapshot MakeSnapshot(string id, string? label, int minutes = 0, string scope = "default")
    {
        var version = new AdapterVersion
        {
            Id = scope + "@3",
            Scope = scope,
            Number = 3,
            ParentId = scope + "@2",
            ContentHash = "abc",
            CreatedAt = new DateTimeOffset(2026, 12, 3, 9, 0, 0, TimeSpan.Zero),
            Steps = 7,
            Items = 11,
            JournalPosition = 12,
            Reason = "learned",
        };
        var info = new SnapshotInfo(id, scope, label, version, new DateTimeOffset(2026, 12, 3, 10, minutes, 0, TimeSpan.FromHours(1))) { Model = "m" };
        var weights = new AdapterWeightsData(
            [
                new NamedTensor("base_model.model.layers.0.q_proj.lora_B.weight", [2, 3], new float[] { 1.25f, -2.5f, 3.75f, 0, float.Epsilon, -0f }),
                new NamedTensor("base_model.model.layers.0.q_proj.lora_A.weight", [3, 2], new float[] { 0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f }),
            ],
            new Dictionary<string, string> { ["adapter_config.json"] = "{\"r\": 2}", ["backend"] = "lora" });
        var trainer = new TrainerState(42, [new NamedTensor("m.a", [4], new float[] { 1, 2, 3, float.MaxValue }), new NamedTensor("b.v", [1], new float[] { 7 })], new Dictionary<string, string> { ["optimizer"] = "adamw" });
        return new Snapshot(info, weights, trainer, new byte[] { 1, 2, 3, 4, 5 }, 0.125)
        {
            JournalPosition = 12,
            ReplayCredit = 0.375,
            Metrics = new Dictionary<string, double> { ["steps"] = 7, ["loss"] = 1.5 },
        };
    }

    private static void AssertSame(Snapshot actual, Snapshot expected)
    {
        Assert.That(actual.Info, Is.EqualTo(expected.Info));
        Assert.That(actual.KtoReferencePoint, Is.EqualTo(expected.KtoReferencePoint));
        Assert.That(actual.ReplayCredit, Is.EqualTo(expected.ReplayCredit));
        Assert.That(actual.JournalPosition, Is.EqualTo(expected.JournalPosition));
        Assert.That(actual.Metrics, Is.EquivalentTo(expected.Metrics));
        Assert.That(actual.Replay.ToArray(), Is.EqualTo(expected.Replay.ToArray()));
        Assert.That(actual.Weights.Metadata, Is.EquivalentTo(expected.Weights.Metadata));
        Assert.That(actual.Trainer.Metadata, Is.EquivalentTo(expected.Trainer.Metadata));
        Assert.That(actual.Trainer.Step, Is.EqualTo(expected.Trainer.Step));
        AssertTensors(actual.Weights.Tensors, expected.Weights.Tensors);
        AssertTensors(actual.Trainer.Tensors, expected.Trainer.Tensors);
    }

    private static void AssertTensors(IReadOnlyList<NamedTensor> actual, IReadOnlyList<NamedTensor> expected)
    {
        Assert.That(actual.Select(t => t.Name), Is.EqualTo(expected.Select(t => t.Name)), "names in their original order");
        for (int i = 0; i < expected.Count; i++)
        {
            Assert.That(actual[i].Shape, Is.EqualTo(expected[i].Shape));
            Assert.That(actual[i].Values.ToArray().Select(BitConverter.SingleToInt32Bits), Is.EqualTo(expected[i].Values.ToArray().Select(BitConverter.SingleToInt32Bits)));
        }
    }
}
