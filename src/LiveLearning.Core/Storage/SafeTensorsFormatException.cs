namespace LiveLearning.Storage;

/// <summary>
/// A safetensors file (or a sharded checkpoint index) is malformed. The message names the file and the field that
/// is wrong; nothing is loaded from a file that raised it. It derives from <see cref="IOException"/> because the
/// framework's <see cref="InvalidDataException"/> is sealed.
/// </summary>
public sealed class SafeTensorsFormatException : IOException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="filePath">The file (or in-memory source name) that is malformed.</param>
    /// <param name="field">The part of the file that is wrong, e.g. <c>header length</c> or <c>tensor 'w' data_offsets</c>.</param>
    /// <param name="detail">What is wrong with it.</param>
    /// <param name="innerException">The underlying error, if any.</param>
    public SafeTensorsFormatException(string filePath, string field, string detail, Exception? innerException = null)
        : base($"{filePath}: invalid {field}: {detail}", innerException)
    {
        FilePath = filePath;
        Field = field;
    }

    /// <summary>The file (or in-memory source name) that is malformed.</summary>
    public string FilePath { get; }

    /// <summary>The part of the file that is wrong, e.g. <c>header length</c> or <c>tensor 'w' data_offsets</c>.</summary>
    public string Field { get; }
}
