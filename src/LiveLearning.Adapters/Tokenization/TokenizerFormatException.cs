namespace LiveLearning.Tokenization;

/// <summary>
/// A tokenizer file (<c>tokenizer.json</c>, <c>tokenizer_config.json</c>) is malformed, inconsistent or uses a
/// component this library does not implement. The message names the file and the field.
/// (Derives from <see cref="FormatException"/> because <see cref="InvalidDataException"/> is sealed.)
/// </summary>
public sealed class TokenizerFormatException : FormatException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="sourceName">The file (or caller-given source name) that was being read.</param>
    /// <param name="field">The JSON field that is wrong, e.g. <c>model.merges[12]</c> or <c>chat_template</c>.</param>
    /// <param name="message">What is wrong.</param>
    /// <param name="innerException">The underlying error, if any.</param>
    public TokenizerFormatException(string sourceName, string field, string message, Exception? innerException = null)
        : base($"{sourceName}: {field}: {message}", innerException)
    {
        SourceName = sourceName;
        Field = field;
    }

    /// <summary>Creates the exception with a message only (source and field unknown).</summary>
    public TokenizerFormatException() : this("<unknown>", "<unknown>", "invalid tokenizer data") { }

    /// <summary>Creates the exception with a message only (source and field unknown).</summary>
    /// <param name="message">What is wrong.</param>
    public TokenizerFormatException(string message) : this("<unknown>", "<unknown>", message) { }

    /// <summary>Creates the exception with a message and inner exception (source and field unknown).</summary>
    /// <param name="message">What is wrong.</param>
    /// <param name="innerException">The underlying error.</param>
    public TokenizerFormatException(string message, Exception innerException) : this("<unknown>", "<unknown>", message, innerException) { }

    /// <summary>The file (or caller-given source name) that was being read.</summary>
    public string SourceName { get; }

    /// <summary>The JSON field that is wrong (dotted path, e.g. <c>pre_tokenizer.pretokenizers[0].type</c>).</summary>
    public string Field { get; }
}
