using System.Text;
using LiveLearning.Storage;
using NUnit.Framework;
using static LiveLearning.Tests.Storage.SafeTensorsTestFiles;

namespace LiveLearning.Tests.Storage;

[TestFixture]
public sealed class SafeTensorsCheckpointTests
{
    private string _dir = "";

    [SetUp]
    public void SetUp() => _dir = NewTempDirectory();

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    private static List<SafeTensorsEntry> Entries() =>
    [
        SafeTensorsEntry.ToBFloat16("model.embed_tokens.weight", TestData.Uniform(40, 1), 10, 4),
        SafeTensorsEntry.ToBFloat16("model.layers.0.self_attn.q_proj.weight", TestData.Uniform(16, 2), 4, 4),
        SafeTensorsEntry.FromFloat32("model.norm.weight", TestData.Uniform(4, 3), 4),
        SafeTensorsEntry.ToFloat16("lm_head.weight", TestData.Uniform(40, 4), 10, 4),
    ];

    [Test]
    public void ShardedCheckpointRoundTripsAcrossShards()
    {
        List<SafeTensorsEntry> entries = Entries();
        IReadOnlyList<string> shards = SafeTensorsCheckpoint.WriteSharded(_dir, entries, maxShardBytes: 64);
        Assert.That(shards, Has.Count.GreaterThan(1));
        Assert.That(shards[0], Is.EqualTo($"model-00001-of-{shards.Count:D5}.safetensors"));

        using SafeTensorsCheckpoint checkpoint = SafeTensorsCheckpoint.Open(_dir);
        Assert.That(checkpoint.IndexPath, Is.EqualTo(Path.Combine(Path.GetFullPath(_dir), SafeTensorsCheckpoint.IndexFileName)));
        Assert.That(checkpoint.Files, Has.Count.EqualTo(shards.Count));
        Assert.That(checkpoint.Names, Is.EqualTo(entries.Select(e => e.Name).Order(StringComparer.Ordinal).ToArray()));
        foreach (SafeTensorsEntry entry in entries)
        {
            Assert.That(checkpoint.GetBytes(entry.Name).ToArray(), Is.EqualTo(entry.Data.ToArray()), entry.Name);
        }

        Assert.That(checkpoint.GetMatrix("lm_head.weight").Rows, Is.EqualTo(10));
        Assert.That(() => checkpoint.GetInfo("missing"), Throws.InstanceOf<KeyNotFoundException>().With.Message.Contains("missing"));

        string index = File.ReadAllText(checkpoint.IndexPath!);
        Assert.That(index, Does.Contain("\"total_size\": " + entries.Sum(e => e.Data.Length)));
    }

    [Test]
    public void SingleFileIsPreferredOverTheIndex()
    {
        SafeTensorsCheckpoint.WriteSharded(_dir, Entries(), maxShardBytes: 64);
        SafeTensorsWriter.Write(Path.Combine(_dir, "model.safetensors"), [SafeTensorsEntry.FromFloat32("only", [1f], 1)]);
        using SafeTensorsCheckpoint checkpoint = SafeTensorsCheckpoint.Open(_dir);
        Assert.That((checkpoint.IndexPath, checkpoint.Names), Is.EqualTo(((string?)null, new[] { "only" })));
    }

    [Test]
    public void DirectoryWithoutWeightsThrowsFileNotFound() =>
        Assert.That(() => SafeTensorsCheckpoint.Open(_dir), Throws.InstanceOf<FileNotFoundException>().With.Message.Contains("model.safetensors"));

    [TestCase("../x.safetensors")]
    [TestCase("..")]
    [TestCase("/etc/passwd")]
    [TestCase("sub/x.safetensors")]
    [TestCase("sub\\x.safetensors")]
    [TestCase("")]
    public void ShardNamesOutsideTheDirectoryAreRefused(string shard)
    {
        // A real shard exists next to the directory so a traversal would otherwise succeed.
        SafeTensorsWriter.Write(Path.Combine(_dir, "x.safetensors"), [SafeTensorsEntry.FromFloat32("w", [1f], 1)]);
        string model = Path.Combine(_dir, "model");
        Directory.CreateDirectory(model);
        WriteIndex(model, "{\"weight_map\":{\"w\":\"" + shard.Replace("\\", "\\\\", StringComparison.Ordinal) + "\"}}");
        var e = Assert.Throws<SafeTensorsFormatException>(() => SafeTensorsCheckpoint.Open(model));
        Assert.That(e!.Field, Is.EqualTo("weight_map 'w'"));
        Assert.That(e.FilePath, Does.EndWith(SafeTensorsCheckpoint.IndexFileName));
        Assert.That(e.Message, Does.Contain("plain file name"));
    }

    [Test]
    public void TensorMissingFromItsShardIsRefused()
    {
        SafeTensorsWriter.Write(Path.Combine(_dir, "a.safetensors"), [SafeTensorsEntry.FromFloat32("w", [1f], 1)]);
        WriteIndex(_dir, """{"metadata":{"total_size":4},"weight_map":{"w":"a.safetensors","v":"a.safetensors"}}""");
        var e = Assert.Throws<SafeTensorsFormatException>(() => SafeTensorsCheckpoint.Open(_dir));
        Assert.That(e!.Field, Is.EqualTo("weight_map 'v'"));
    }

    [Test]
    public void TensorStoredInTwoShardsIsRefused()
    {
        SafeTensorsWriter.Write(Path.Combine(_dir, "a.safetensors"), [SafeTensorsEntry.FromFloat32("w", [1f], 1)]);
        SafeTensorsWriter.Write(Path.Combine(_dir, "b.safetensors"), [SafeTensorsEntry.FromFloat32("w", [2f], 1), SafeTensorsEntry.FromFloat32("v", [2f], 1)]);
        WriteIndex(_dir, """{"weight_map":{"w":"a.safetensors","v":"b.safetensors"}}""");
        var e = Assert.Throws<SafeTensorsFormatException>(() => SafeTensorsCheckpoint.Open(_dir));
        Assert.That(e!.Field, Is.EqualTo("tensor 'w'"));
        Assert.That(e.Message, Does.Contain("a.safetensors").And.Contain("b.safetensors"));
    }

    [Test]
    public void MissingShardFileIsRefused()
    {
        WriteIndex(_dir, """{"weight_map":{"w":"model-00001-of-00002.safetensors"}}""");
        var e = Assert.Throws<SafeTensorsFormatException>(() => SafeTensorsCheckpoint.Open(_dir));
        Assert.That((e!.Field, e.Message.Contains("does not exist", StringComparison.Ordinal)), Is.EqualTo(("weight_map 'w'", true)));
    }

    [TestCase("not json", "index")]
    [TestCase("[]", "index")]
    [TestCase("""{"metadata":{}}""", "weight_map")]
    [TestCase("""{"weight_map":[]}""", "weight_map")]
    [TestCase("""{"weight_map":{"w":3}}""", "weight_map 'w'")]
    [TestCase("""{"weight_map":{"w":"a.safetensors","w":"a.safetensors"}}""", "index")]
    public void MalformedIndexIsRefused(string json, string field)
    {
        WriteIndex(_dir, json);
        var e = Assert.Throws<SafeTensorsFormatException>(() => SafeTensorsCheckpoint.Open(_dir));
        Assert.That(e!.Field, Is.EqualTo(field), e.Message);
    }

    [Test]
    public void CorruptShardIsReportedWithTheShardPath()
    {
        string shard = Path.Combine(_dir, "a.safetensors");
        File.WriteAllBytes(shard, Raw("{", 0));
        WriteIndex(_dir, """{"weight_map":{"w":"a.safetensors"}}""");
        var e = Assert.Throws<SafeTensorsFormatException>(() => SafeTensorsCheckpoint.Open(_dir));
        Assert.That(e!.FilePath, Is.EqualTo(shard));
    }

    private static void WriteIndex(string dir, string json) =>
        File.WriteAllText(Path.Combine(dir, SafeTensorsCheckpoint.IndexFileName), json, new UTF8Encoding(false));
}
