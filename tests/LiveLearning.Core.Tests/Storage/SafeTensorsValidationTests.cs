using System.Buffers.Binary;
using System.Diagnostics;
using LiveLearning.Storage;
using NUnit.Framework;
using static LiveLearning.Tests.Storage.SafeTensorsTestFiles;

namespace LiveLearning.Tests.Storage;

/// <summary>Every rule of the reference reader: each malformed file raises the typed exception naming file and field.</summary>
[TestFixture]
public sealed class SafeTensorsValidationTests
{
    private const string Source = "bad.safetensors";

    private static IEnumerable<TestCaseData> MalformedHeaders()
    {
        const string w = "tensor 'w'";
        yield return Case("not JSON", "{abc", 0, "header");
        yield return Case("not an object", "[1, 2]", 0, "header");
        yield return Case("leading space before the object", " {}", 0, "header");
        yield return Case("content after the object", "{}x", 0, "header");
        yield return Case("two objects", "{}{}", 0, "header");
        yield return Case("unterminated object", "{\"w\":", 0, "header");
        yield return Case("comment", "{/*c*/}", 0, "header");
        yield return Case("unknown dtype", """{"w":{"dtype":"Q4_0","shape":[1],"data_offsets":[0,1]}}""", 1, w + " dtype");
        yield return Case("dtype not a string", """{"w":{"dtype":4,"shape":[1],"data_offsets":[0,4]}}""", 4, w + " dtype");
        yield return Case("lower-case dtype", """{"w":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}}""", 4, w + " dtype");
        yield return Case("negative dimension", """{"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}""", 4, w + " shape");
        yield return Case("fractional dimension", """{"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}""", 4, w + " shape");
        yield return Case("dimension as string", """{"w":{"dtype":"F32","shape":["1"],"data_offsets":[0,4]}}""", 4, w + " shape");
        yield return Case("shape not an array", """{"w":{"dtype":"F32","shape":1,"data_offsets":[0,4]}}""", 4, w + " shape");
        yield return Case("shape overflows 64 bits", """{"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}""", 4, w + " shape");
        yield return Case("byte size overflows 64 bits", """{"w":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,8]}}""", 8, w + " shape");
        yield return Case("missing dtype", """{"w":{"shape":[1],"data_offsets":[0,4]}}""", 4, w + " dtype");
        yield return Case("missing shape", """{"w":{"dtype":"F32","data_offsets":[0,4]}}""", 4, w + " shape");
        yield return Case("missing data_offsets", """{"w":{"dtype":"F32","shape":[1]}}""", 4, w + " data_offsets");
        yield return Case("three data_offsets", """{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}""", 4, w + " data_offsets");
        yield return Case("one data_offset", """{"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}}""", 4, w + " data_offsets");
        yield return Case("negative offset", """{"w":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}""", 4, w + " data_offsets");
        yield return Case("end before begin", """{"w":{"dtype":"F32","shape":[0],"data_offsets":[4,0]}}""", 4, w + " data_offsets");
        yield return Case("size does not match shape", """{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}""", 4, w + " data_offsets");
        yield return Case("does not start at 0", """{"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}""", 8, w + " data_offsets");
        yield return Case("gap between tensors", """{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}""", 12, w + " data_offsets");
        yield return Case("overlapping tensors", """{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}""", 8, w + " data_offsets");
        yield return Case("same range twice", """{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""", 4, w + " data_offsets");
        yield return Case("trailing bytes after the last tensor", """{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""", 5, "data buffer");
        yield return Case("tensors cover more than the file", """{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""", 4, "data buffer");
        yield return Case("data but no tensors", "{}", 4, "data buffer");
        yield return Case("duplicate tensor name", """{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}""", 8, "key 'w'");
        yield return Case("duplicate field", """{"w":{"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}}""", 4, w + " dtype");
        yield return Case("tensor entry not an object", """{"w":[1]}""", 0, w);
        yield return Case("metadata value not a string", """{"__metadata__":{"format":1}}""", 0, "__metadata__ 'format'");
        yield return Case("metadata not an object", """{"__metadata__":"pt"}""", 0, "__metadata__");
        yield return Case("duplicate metadata", """{"__metadata__":{},"__metadata__":{}}""", 0, "key '__metadata__'");
    }

    private static TestCaseData Case(string what, string json, int dataBytes, string field) =>
        new TestCaseData(json, dataBytes, field).SetName($"MalformedHeaderIsRejected({what})");

    [TestCaseSource(nameof(MalformedHeaders))]
    public void MalformedHeaderIsRejected(string json, int dataBytes, string field)
    {
        byte[] bytes = Raw(json, dataBytes);
        var e = Assert.Throws<SafeTensorsFormatException>(() => SafeTensorsFile.Load(bytes, Source).Dispose());
        Assert.That(e!.FilePath, Is.EqualTo(Source));
        Assert.That(e.Field, Is.EqualTo(field), e.Message);
        Assert.That(e.Message, Does.Contain(Source).And.Contain(field));
    }

    [TestCase(0)]
    [TestCase(3)]
    [TestCase(7)]
    public void FileShorterThanTheLengthPrefixIsRejected(int length)
    {
        var e = Assert.Throws<SafeTensorsFormatException>(() => SafeTensorsFile.Load(new byte[length], Source));
        Assert.That(e!.Field, Is.EqualTo("header length"));
    }

    [Test]
    public void HeaderLengthPastTheEndIsRejected()
    {
        byte[] bytes = Raw("{}", 0, headerLength: 3);
        var e = Assert.Throws<SafeTensorsFormatException>(() => SafeTensorsFile.Load(bytes, Source));
        Assert.That(e!.Field, Is.EqualTo("header length"));
        Assert.That(e.Message, Does.Contain("past the end"));
    }

    [Test]
    public void HugeHeaderLengthFailsFastWithoutAllocating()
    {
        byte[] bytes = Raw("{}", 0, headerLength: 100UL * 1024 * 1024 * 1024);
        long before = GC.GetAllocatedBytesForCurrentThread();
        var watch = Stopwatch.StartNew();
        var e = Assert.Throws<SafeTensorsFormatException>(() => SafeTensorsFile.Load(bytes, Source));
        watch.Stop();
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.That(e!.Field, Is.EqualTo("header length"));
        Assert.That(e.Message, Does.Contain("limit"));
        Assert.That(allocated, Is.LessThan(1 << 20), "no allocation proportional to the claimed length");
        Assert.That(watch.Elapsed, Is.LessThan(TimeSpan.FromSeconds(5)));
    }

    [Test]
    public void HeaderJustAboveTheReferenceLimitIsRejected()
    {
        byte[] bytes = Raw("{}", 0, headerLength: 100_000_001);
        Assert.That(() => SafeTensorsFile.Load(bytes, Source), Throws.InstanceOf<SafeTensorsFormatException>().With.Property("Field").EqualTo("header length"));
    }

    [Test]
    public void InvalidUtf8HeaderIsRejected()
    {
        byte[] bytes = RawBytes([(byte)'{', (byte)'"', 0xC3, 0x28, (byte)'"', (byte)':', (byte)'1', (byte)'}'], 0);
        var e = Assert.Throws<SafeTensorsFormatException>(() => SafeTensorsFile.Load(bytes, Source));
        Assert.That((e!.Field, e.Message.Contains("UTF-8", StringComparison.Ordinal)), Is.EqualTo(("header", true)));
    }

    [Test]
    public void LoneSurrogateEscapeInANameIsRejectedAsFormatError()
    {
        byte[] bytes = Raw("""{"\ud800":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}""", 0);
        Assert.That(() => SafeTensorsFile.Load(bytes, Source), Throws.InstanceOf<SafeTensorsFormatException>());
    }

    [Test]
    public void MappedFileErrorsNameThePath()
    {
        string dir = NewTempDirectory();
        try
        {
            string path = Path.Combine(dir, "model.safetensors");
            File.WriteAllBytes(path, Raw("""{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}""", 4));
            var e = Assert.Throws<SafeTensorsFormatException>(() => SafeTensorsFile.Open(path));
            Assert.That((e!.FilePath, e.Field), Is.EqualTo((path, "tensor 'w' data_offsets")));

            File.WriteAllBytes(path, Raw("{}", 0, headerLength: 100UL << 30));
            Assert.That(() => SafeTensorsFile.Open(path), Throws.InstanceOf<SafeTensorsFormatException>().With.Property("Field").EqualTo("header length"));

            File.WriteAllBytes(path, []);
            Assert.That(() => SafeTensorsFile.Open(path), Throws.InstanceOf<SafeTensorsFormatException>().With.Property("Field").EqualTo("header length"));

            // The file handle was released after each failure: the file can be deleted.
            File.Delete(path);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Test]
    public void RandomCorruptionOfAValidFileNeverEscapesTheTypedException()
    {
        byte[] valid = SafeTensorsWriter.Serialize(
            [SafeTensorsEntry.FromFloat32("model.embed_tokens.weight", TestData.Uniform(12, 1), 3, 4), SafeTensorsEntry.ToBFloat16("model.norm.weight", TestData.Uniform(4, 2), 4)],
            new Dictionary<string, string> { ["format"] = "pt" });
        int headerEnd = 8 + (int)BinaryPrimitives.ReadUInt64LittleEndian(valid);
        var rng = new Random(1234);
        int rejected = 0;
        for (int trial = 0; trial < 3000; trial++)
        {
            byte[] bytes;
            if (trial % 3 == 0)
            {
                bytes = valid.AsSpan(0, rng.Next(valid.Length)).ToArray();
            }
            else
            {
                bytes = (byte[])valid.Clone();
                int flips = 1 + rng.Next(3);
                for (int f = 0; f < flips; f++)
                {
                    bytes[rng.Next(headerEnd)] = (byte)rng.Next(256);
                }
            }

            try
            {
                using SafeTensorsFile file = SafeTensorsFile.Load(bytes, Source);
                foreach (string name in file.Names)
                {
                    _ = file.GetBytes(name).Span.Length;
                }
            }
            catch (SafeTensorsFormatException e)
            {
                Assert.That(e.Message, Does.Contain(Source));
                rejected++;
            }
        }

        Assert.That(rejected, Is.GreaterThan(2000));
    }
}
