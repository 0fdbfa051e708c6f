namespace LiveLearning.Models;

/// <summary>
/// A model <c>config.json</c> is malformed or describes a model the runtime does not support. The message names the
/// source, the key and the offending value. It derives from <see cref="IOException"/> because the framework's
/// <see cref="InvalidDataException"/> is sealed.
/// </summary>
public sealed class ModelConfigException : IOException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="sourceName">The file (or name given to <c>ModelConfig.Parse</c>).</param>
    /// <param name="key">The key at fault (dotted for nested keys, e.g. <c>rope_scaling.factor</c>); null for a document-level error.</param>
    /// <param name="detail">What is wrong, including the value.</param>
    /// <param name="innerException">The underlying error, if any.</param>
    public ModelConfigException(string sourceName, string? key, string detail, Exception? innerException = null)
        : base(key is null ? $"{sourceName}: {detail}" : $"{sourceName}: '{key}' {detail}", innerException)
    {
        SourceName = sourceName;
        Key = key;
    }

    /// <summary>The file (or name given to <c>ModelConfig.Parse</c>).</summary>
    public string SourceName { get; }

    /// <summary>The key at fault (dotted for nested keys); null for a document-level error such as invalid JSON.</summary>
    public string? Key { get; }
}
