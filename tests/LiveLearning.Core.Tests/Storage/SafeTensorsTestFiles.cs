using System.Buffers.Binary;
using System.Text;

namespace LiveLearning.Tests.Storage;

/// <summary>Builds raw safetensors bytes by hand (independent of the writer) and temporary directories.</summary>
internal static class SafeTensorsTestFiles
{
    /// <summary>8-byte LE length + header text (as given, no padding) + <paramref name="dataBytes"/> zero bytes.</summary>
    public static byte[] Raw(string headerJson, long dataBytes, ulong? headerLength = null)
    {
        byte[] header = Encoding.UTF8.GetBytes(headerJson);
        return RawBytes(header, dataBytes, headerLength);
    }

    public static byte[] RawBytes(byte[] header, long dataBytes, ulong? headerLength = null)
    {
        var file = new byte[8 + header.Length + dataBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(file, headerLength ?? (ulong)header.Length);
        header.CopyTo(file, 8);
        return file;
    }

    public static string NewTempDirectory()
    {
        string dir = Path.Combine(Path.GetTempPath(), "ll-storage-tests-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        return dir;
    }
}
