namespace LiveLearning.Storage;

/// <summary>Stored data failed its checks (checksum, hash, authentication tag, framing): it is never loaded as if it were good.</summary>
public sealed class StorageCorruptedException : IOException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="path">The file.</param>
    /// <param name="offset">Where in it, when known.</param>
    /// <param name="detail">What was wrong.</param>
    public StorageCorruptedException(string path, long? offset, string detail)
        : base($"{path}{(offset is null ? string.Empty : $" at byte {offset}")}: {detail}")
    {
        FilePath = path;
        Offset = offset;
    }

    /// <summary>The file that failed.</summary>
    public string FilePath { get; }

    /// <summary>The byte offset of the failure, when known.</summary>
    public long? Offset { get; }
}

/// <summary>Data was sealed under another key than the one supplied (or is encrypted and no key was supplied, or the reverse).</summary>
public sealed class StorageKeyMismatchException : IOException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="path">The file.</param>
    /// <param name="detail">What did not match.</param>
    public StorageKeyMismatchException(string path, string detail)
        : base($"{path}: {detail}")
    {
        FilePath = path;
    }

    /// <summary>The file that could not be opened with the key given.</summary>
    public string FilePath { get; }
}
