namespace LiveLearning.Models;

/// <summary>A model directory could not be loaded: a file is missing, or a tensor is missing or does not fit the configuration.</summary>
public sealed class ModelLoadException : IOException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="path">The file or directory concerned.</param>
    /// <param name="item">The tensor name or key concerned, if any.</param>
    /// <param name="message">What was wrong.</param>
    /// <param name="inner">The underlying error, if any.</param>
    public ModelLoadException(string path, string? item, string message, Exception? inner = null)
        : base($"{Path.GetFileName(path)}{(item is null ? string.Empty : $" ({item})")}: {message}", inner)
    {
        FilePath = path;
        Item = item;
    }

    /// <summary>The file or directory concerned.</summary>
    public string FilePath { get; }

    /// <summary>The tensor or key concerned, if any.</summary>
    public string? Item { get; }
}
