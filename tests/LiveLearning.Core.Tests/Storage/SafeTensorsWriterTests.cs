using LiveLearning.Storage;
using NUnit.Framework;
using static LiveLearning.Tests.Storage.SafeTensorsTestFiles;

namespace LiveLearning.Tests.Storage;

[TestFixture]
public sealed class SafeTensorsWriterTests
{
    private string _dir = "";

    [SetUp]
    public void SetUp() => _dir = NewTempDirectory();

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    [Test]
    public void DuplicateNameWritesNothingAndLeavesNoTemporaryFile()
    {
        string path = Path.Combine(_dir, "model.safetensors");
        var e = Assert.Throws<ArgumentException>(() => SafeTensorsWriter.Write(path, [SafeTensorsEntry.FromFloat32("a", [1f], 1), SafeTensorsEntry.FromFloat32("a", [2f], 1)]));
        Assert.That(e!.ParamName, Is.EqualTo("tensors"));
        Assert.That(e.Message, Does.Contain("'a'"));
        Assert.That(Directory.GetFileSystemEntries(_dir), Is.Empty);
    }

    [Test]
    public void FailureWhileEnumeratingKeepsTheExistingFileIntact()
    {
        string path = Path.Combine(_dir, "model.safetensors");
        SafeTensorsWriter.Write(path, [SafeTensorsEntry.FromFloat32("old", [1f], 1)]);
        byte[] before = File.ReadAllBytes(path);

        static IEnumerable<SafeTensorsEntry> Failing()
        {
            yield return SafeTensorsEntry.FromFloat32("new", [2f], 1);
            throw new InvalidOperationException("source failed");
        }

        Assert.That(() => SafeTensorsWriter.Write(path, Failing()), Throws.InvalidOperationException);
        Assert.That(File.ReadAllBytes(path), Is.EqualTo(before));
        Assert.That(Directory.GetFileSystemEntries(_dir), Is.EqualTo(new[] { path }));
    }

    [Test]
    public void FailureWhileWritingDeletesTheTemporaryFile()
    {
        string path = Path.Combine(_dir, "model.safetensors");
        SafeTensorsWriter.Write(path, [SafeTensorsEntry.FromFloat32("old", [1f], 1)]);
        byte[] before = File.ReadAllBytes(path);
        using var gate = new FailingMemory();
        var entry = new SafeTensorsEntry("x", SafeTensorsDType.U8, [4], gate.Memory);
        Assert.That(() => SafeTensorsWriter.Write(path, [entry]), Throws.InstanceOf<IOException>().With.Message.EqualTo("disk gone"));
        Assert.That(File.ReadAllBytes(path), Is.EqualTo(before));
        Assert.That(Directory.GetFileSystemEntries(_dir), Is.EqualTo(new[] { path }));
    }

    [Test]
    public void OverwritesAnExistingFileWithTheNewContent()
    {
        string path = Path.Combine(_dir, "model.safetensors");
        SafeTensorsWriter.Write(path, [SafeTensorsEntry.FromFloat32("old", [1f], 1)]);
        SafeTensorsWriter.Write(path, [SafeTensorsEntry.FromFloat32("new", [2f, 3f], 2)]);
        using SafeTensorsFile file = SafeTensorsFile.Open(path);
        Assert.That(file.Names, Is.EqualTo(new[] { "new" }));
        Assert.That(Directory.GetFileSystemEntries(_dir), Has.Length.EqualTo(1));
    }

    [Test]
    public void EntryRejectsDataOfTheWrongLength()
    {
        var e = Assert.Throws<ArgumentException>(() => _ = new SafeTensorsEntry("w", SafeTensorsDType.F32, [2, 3], new byte[20]));
        Assert.That(e!.ParamName, Is.EqualTo("data"));
        Assert.That(e.Message, Does.Contain("24").And.Contain("20"));
        Assert.That(() => SafeTensorsEntry.FromFloat32("w", [1f, 2f], 3), Throws.ArgumentException.With.Property("ParamName").EqualTo("data"));
    }

    [Test]
    public void EntryRejectsNegativeDimensionsAndReservedOrEmptyNames()
    {
        Assert.That(() => new SafeTensorsEntry("w", SafeTensorsDType.F32, [-1], Array.Empty<byte>()), Throws.ArgumentException.With.Property("ParamName").EqualTo("shape"));
        Assert.That(() => SafeTensorsEntry.FromFloat32("__metadata__", [1f], 1), Throws.ArgumentException.With.Property("ParamName").EqualTo("name"));
        Assert.That(() => SafeTensorsEntry.FromFloat32("", [1f], 1), Throws.ArgumentException.With.Property("ParamName").EqualTo("name"));
    }

    [Test]
    public void RandomTensorsRoundTripExactly()
    {
        var rng = new Random(99);
        SafeTensorsDType[] types = [SafeTensorsDType.F32, SafeTensorsDType.F16, SafeTensorsDType.BF16, SafeTensorsDType.I64, SafeTensorsDType.U8, SafeTensorsDType.I32, SafeTensorsDType.F64, SafeTensorsDType.Bool];
        for (int trial = 0; trial < 200; trial++)
        {
            var entries = new List<SafeTensorsEntry>();
            int count = rng.Next(6);
            for (int t = 0; t < count; t++)
            {
                SafeTensorsDType dtype = types[rng.Next(types.Length)];
                long[] shape = [.. Enumerable.Range(0, rng.Next(4)).Select(_ => (long)rng.Next(4))];
                long elements = shape.Aggregate(1L, (a, b) => a * b);
                var data = new byte[elements * SafeTensorsDTypes.ElementSize(dtype)];
                rng.NextBytes(data);
                entries.Add(new SafeTensorsEntry($"t{trial}.{t}.{rng.Next(1000)}", dtype, shape, data));
            }

            var metadata = rng.Next(2) == 0 ? null : new Dictionary<string, string> { ["k" + rng.Next(10)] = "v" };
            byte[] bytes = SafeTensorsWriter.Serialize(entries, metadata);
            Assert.That(bytes.Length % 8 == 0 || entries.Sum(e => e.Data.Length) % 8 != 0, Is.True);
            using SafeTensorsFile file = SafeTensorsFile.Load(bytes, "random");
            Assert.That(file.Names, Is.EqualTo(entries.Select(e => e.Name).Order(StringComparer.Ordinal).ToArray()));
            foreach (SafeTensorsEntry entry in entries)
            {
                TensorInfo info = file.GetInfo(entry.Name);
                Assert.That((info.DType, info.Shape), Is.EqualTo((entry.DType, entry.Shape)));
                Assert.That(file.GetBytes(entry.Name).ToArray(), Is.EqualTo(entry.Data.ToArray()));
            }

            Assert.That(file.Metadata, Is.EquivalentTo(metadata ?? []));
        }
    }

    /// <summary>Memory whose span access fails, standing in for a device error in the middle of a write.</summary>
    private sealed class FailingMemory : System.Buffers.MemoryManager<byte>
    {
        public override Span<byte> GetSpan() => throw new IOException("disk gone");

        public override System.Buffers.MemoryHandle Pin(int elementIndex = 0) => throw new IOException("disk gone");

        public override void Unpin()
        {
        }

        protected override void Dispose(bool disposing)
        {
        }

        // Length must be known without GetSpan: Memory over a manager uses (manager, start, length).
        public new Memory<byte> Memory => CreateMemory(4);
    }
}
