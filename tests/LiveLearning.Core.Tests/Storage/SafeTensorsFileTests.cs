using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using LiveLearning.Numerics;
using LiveLearning.Storage;
using NUnit.Framework;
using static LiveLearning.Tests.Storage.SafeTensorsTestFiles;

namespace LiveLearning.Tests.Storage;

[TestFixture]
public sealed class SafeTensorsFileTests
{
    private const string Source = "memory.safetensors";
    private string _dir = "";

    [SetUp]
    public void SetUp() => _dir = NewTempDirectory();

    [TearDown]
    public void TearDown() => Directory.Delete(_dir, recursive: true);

    [Test]
    public void EmptyFileMatchesTheReferenceGoldenBytes()
    {
        byte[] bytes = SafeTensorsWriter.Serialize([]);
        byte[] expected = [8, 0, 0, 0, 0, 0, 0, 0, (byte)'{', (byte)'}', 32, 32, 32, 32, 32, 32];
        Assert.That(bytes, Is.EqualTo(expected));
        using SafeTensorsFile file = SafeTensorsFile.Load(bytes, Source);
        Assert.That(file.Names, Is.Empty);
        Assert.That(file.Metadata, Is.Empty);
    }

    [Test]
    public void SingleF32TensorMatchesTheReferenceGoldenLayout()
    {
        float[] values = [0, 1, 2, 3, 4, 5];
        byte[] bytes = SafeTensorsWriter.Serialize([SafeTensorsEntry.FromFloat32("attn.0", values, 1, 2, 3)]);

        const string json = """{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}""";
        Assert.That(json, Has.Length.EqualTo(64), "the reference golden JSON is exactly 64 bytes, so no padding");
        Assert.That(bytes, Has.Length.EqualTo(8 + 64 + 24));
        Assert.That(BinaryPrimitives.ReadUInt64LittleEndian(bytes), Is.EqualTo(64UL));
        Assert.That(Encoding.ASCII.GetString(bytes, 8, 64), Is.EqualTo(json));
        for (int i = 0; i < 6; i++)
        {
            Assert.That(BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(72 + (4 * i))), Is.EqualTo((float)i));
        }
    }

    [Test]
    public void HeaderIsPaddedWithSpacesToAMultipleOf8WithMetadataFirst()
    {
        var metadata = new Dictionary<string, string> { ["format"] = "pt" };
        byte[] bytes = SafeTensorsWriter.Serialize([SafeTensorsEntry.FromFloat32("b", [1f], 1), SafeTensorsEntry.FromFloat32("a", [2f, 3f], 2)], metadata);
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        string header = Encoding.UTF8.GetString(bytes, 8, (int)n);
        const string json = """{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}""";
        Assert.That(n % 8, Is.EqualTo(0UL));
        Assert.That(header.TrimEnd(' '), Is.EqualTo(json));
        Assert.That(header, Has.Length.EqualTo((json.Length + 7) / 8 * 8));
        Assert.That(bytes, Has.Length.EqualTo(8 + (int)n + 12));
        Assert.That(BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(8 + (int)n)), Is.EqualTo(2f), "data follows key order: 'a' first");
    }

    [Test]
    public void KeysAreSortedBytewiseByUtf8()
    {
        // U+FF21 (3 UTF-8 bytes, EF BC A1) sorts before U+1F600 (F0 ...) bytewise, but after it in UTF-16 ordinal order.
        string fullwidth = "\uFF21";
        string emoji = "\U0001F600";
        byte[] bytes = SafeTensorsWriter.Serialize([SafeTensorsEntry.FromFloat32(emoji, [1f], 1), SafeTensorsEntry.FromFloat32(fullwidth, [2f], 1)]);
        using SafeTensorsFile file = SafeTensorsFile.Load(bytes, Source);
        Assert.That(file.GetInfo(fullwidth).ByteOffset, Is.EqualTo(0));
        Assert.That(file.GetInfo(emoji).ByteOffset, Is.EqualTo(4));
    }

    [TestCase(SafeTensorsDType.F32)]
    [TestCase(SafeTensorsDType.F16)]
    [TestCase(SafeTensorsDType.BF16)]
    public void FloatTensorsRoundTripThroughAMappedFile(SafeTensorsDType dtype)
    {
        float[] matrix = TestData.Uniform(6 * 5, seed: 11);
        float[] vector = TestData.Uniform(7, seed: 12);
        string path = Path.Combine(_dir, "model.safetensors");
        SafeTensorsEntry m = SafeTensorsEntry.FromFloats("m", dtype, matrix, 6, 5);
        SafeTensorsEntry v = SafeTensorsEntry.FromFloats("v", dtype, vector, 7);
        SafeTensorsWriter.Write(path, [m, v, SafeTensorsEntry.FromFloats("empty", dtype, [], 0, 3), SafeTensorsEntry.FromFloats("scalar", dtype, [2.5f])]);

        using SafeTensorsFile file = SafeTensorsFile.Open(path);
        Assert.That(file.Names, Is.EqualTo(new[] { "empty", "m", "scalar", "v" }));
        Assert.That(file.GetBytes("m").ToArray(), Is.EqualTo(m.Data.ToArray()), "stored bytes are identical");
        Assert.That(file.GetBytes("v").ToArray(), Is.EqualTo(v.Data.ToArray()));

        float[] expected = [.. matrix.Select(x => Rounded(dtype, x))];
        Assert.That(file.ReadAsFloat32("m"), Is.EqualTo(expected));
        Assert.That(file.GetVector("v"), Is.EqualTo(vector.Select(x => Rounded(dtype, x)).ToArray()));

        WeightMatrix w = file.GetMatrix("m");
        Assert.That((w.Rows, w.Cols, SafeTensorsDTypes.FromWeightType(w.Type)), Is.EqualTo((6, 5, dtype)));
        var row = new float[5];
        w.ReadRow(4, row);
        Assert.That(row, Is.EqualTo(expected.AsSpan(20, 5).ToArray()));

        WeightMatrix asRow = file.GetMatrix("v");
        Assert.That((asRow.Rows, asRow.Cols), Is.EqualTo((1, 7)));

        TensorInfo empty = file.GetInfo("empty");
        Assert.That((empty.Shape, empty.ElementCount, empty.ByteLength), Is.EqualTo((new long[] { 0, 3 }, 0L, 0L)));
        Assert.That(file.ReadAsFloat32("empty"), Is.Empty);
        TensorInfo scalar = file.GetInfo("scalar");
        Assert.That((scalar.Rank, scalar.ElementCount), Is.EqualTo((0, 1L)));
        Assert.That(file.ReadAsFloat32("scalar"), Is.EqualTo(new[] { 2.5f }));
    }

    [Test]
    public void IntegerAndMetadataRoundTripInMemory()
    {
        long[] ids = [long.MinValue, -1, 0, 1, long.MaxValue, 42];
        var metadata = new Dictionary<string, string> { ["format"] = "pt", ["note"] = "ünïcode \"quoted\"" };
        byte[] bytes = SafeTensorsWriter.Serialize([SafeTensorsEntry.FromInt64("ids", ids, 2, 3)], metadata);
        using SafeTensorsFile file = SafeTensorsFile.Load(bytes, Source);
        Assert.That(file.ReadAsInt64("ids"), Is.EqualTo(ids));
        Assert.That(file.GetInfo("ids").DType, Is.EqualTo(SafeTensorsDType.I64));
        Assert.That(file.Metadata, Is.EquivalentTo(metadata));
        Assert.That(() => file.ReadAsFloat32("ids"), Throws.InvalidOperationException.With.Message.Contains("ids"));
        Assert.That(() => file.GetMatrix("ids"), Throws.InvalidOperationException.With.Message.Contains("I64"));
    }

    [Test]
    public void ReaderAcceptsUnorderedKeysExtraFieldsAndEveryRecognisedDType()
    {
        // Data order differs from key order, one entry has an unknown extra field (ignored like the reference).
        string json = """{"z":{"dtype":"BOOL","shape":[2],"data_offsets":[0,2],"extra":[1,{"a":2}]},"a":{"shape":[1],"dtype":"F64","data_offsets":[2,10]},"m":{"dtype":"F8_E4M3","shape":[],"data_offsets":[10,11]}}""";
        byte[] bytes = Raw(json + "   ", 11);
        BinaryPrimitives.WriteDoubleLittleEndian(bytes.AsSpan(bytes.Length - 9), 0.25);
        using SafeTensorsFile file = SafeTensorsFile.Load(bytes, Source);
        Assert.That(file.Names, Is.EqualTo(new[] { "a", "m", "z" }));
        Assert.That(file.ReadAsFloat32("a"), Is.EqualTo(new[] { 0.25f }));
        Assert.That(file.GetInfo("m").DType, Is.EqualTo(SafeTensorsDType.F8E4M3));
        Assert.That(file.GetInfo("z").ByteOffset, Is.EqualTo(0));
    }

    [Test]
    public void TensorsAfterOddSizedOnesAreReadCorrectlyAtUnalignedOffsets()
    {
        float[] values = [1.5f, -2.25f, 3e-8f];
        string path = Path.Combine(_dir, "unaligned.safetensors");
        SafeTensorsWriter.Write(path, [SafeTensorsEntry.ToFloat16("a", [1f, 2f, 3f], 3), SafeTensorsEntry.FromFloat32("b", values, 1, 3)]);
        using SafeTensorsFile file = SafeTensorsFile.Open(path);
        Assert.That(file.GetInfo("b").ByteOffset, Is.EqualTo(6), "F32 data starts at a 2-byte aligned offset");
        Assert.That(file.ReadAsFloat32("b"), Is.EqualTo(values));
        Assert.That(file.GetMatrix("b").AsF32().ToArray(), Is.EqualTo(values));
        Assert.That(file.ReadAsFloat32("a"), Is.EqualTo(new[] { 1f, 2f, 3f }));
    }

    [Test]
    public void StreamLoadMatchesMemoryLoadAndRefusesOversizedStreams()
    {
        byte[] bytes = SafeTensorsWriter.Serialize([SafeTensorsEntry.FromFloat32("a", [1f, 2f], 2)]);
        using (SafeTensorsFile file = SafeTensorsFile.Load(new MemoryStream(bytes), Source))
        {
            Assert.That(file.ReadAsFloat32("a"), Is.EqualTo(new[] { 1f, 2f }));
        }

        var e = Assert.Throws<SafeTensorsFormatException>(() => SafeTensorsFile.Load(new MemoryStream(bytes), Source, maxBytes: bytes.Length - 1));
        Assert.That(e!.Field, Is.EqualTo("file length"));
    }

    [Test]
    public void MissingTensorThrowsKeyNotFoundNamingFileAndTensor()
    {
        using SafeTensorsFile file = SafeTensorsFile.Load(SafeTensorsWriter.Serialize([SafeTensorsEntry.FromFloat32("a", [1f], 1)]), Source);
        Assert.That(() => file.GetInfo("lm_head.weight"), Throws.InstanceOf<KeyNotFoundException>().With.Message.Contains(Source).And.Message.Contains("lm_head.weight"));
        Assert.That(() => file.GetBytes("nope"), Throws.InstanceOf<KeyNotFoundException>());
        Assert.That(file.TryGetInfo("nope", out _), Is.False);
        Assert.That(file.TryGetBytes("a", out ReadOnlyMemory<byte> a) && a.Length == 4, Is.True);
    }

    [Test]
    public void MemoryFromADisposedFileThrowsInsteadOfReadingUnmappedPages()
    {
        string path = Path.Combine(_dir, "x.safetensors");
        SafeTensorsWriter.Write(path, [SafeTensorsEntry.FromFloat32("a", [1f, 2f], 2)]);
        SafeTensorsFile file = SafeTensorsFile.Open(path);
        ReadOnlyMemory<byte> bytes = file.GetBytes("a");
        Assert.That(MemoryMarshal.Cast<byte, float>(bytes.Span)[1], Is.EqualTo(2f));
        file.Dispose();
        Assert.That(() => bytes.Span.Length, Throws.InstanceOf<ObjectDisposedException>());
        Assert.That(() => file.GetBytes("a"), Throws.InstanceOf<ObjectDisposedException>());
    }

    private static float Rounded(SafeTensorsDType dtype, float x) => dtype switch
    {
        SafeTensorsDType.F16 => (float)(Half)x,
        SafeTensorsDType.BF16 => Precision.BF16ToSingle(Precision.SingleToBF16(x)),
        _ => x,
    };
}
