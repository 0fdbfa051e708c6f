using System.Globalization;
using System.Text.RegularExpressions;

namespace LiveLearning.Governance;

/// <summary>Limits of <see cref="SchemaRule"/>. Every limit is checked; 0 (or null) switches one off.</summary>
public sealed record SchemaRuleOptions
{
    /// <summary>Longest prompt, in characters (a conversation: all its messages). Default 32 768.</summary>
    public int MaxPromptCharacters { get; init; } = 32_768;

    /// <summary>Longest completion (each of a preference's two), in characters. Default 32 768.</summary>
    public int MaxCompletionCharacters { get; init; } = 32_768;

    /// <summary>Most messages in a conversation. Default 64.</summary>
    public int MaxMessages { get; init; } = 64;

    /// <summary>The message roles allowed (e.g. system, user, assistant), or null for any. Default null.</summary>
    public IReadOnlySet<string>? AllowedRoles { get; init; }

    /// <summary>Longest source id, in characters. Default 200.</summary>
    public int MaxSourceLength { get; init; } = 200;

    /// <summary>The pattern a source id must match in full, or null for any. Default letters, digits and <c>._:@/-</c>.</summary>
    public string? SourcePattern { get; init; } = "[A-Za-z0-9._:@/-]+";

    /// <summary>Most tags. Default 32.</summary>
    public int MaxTags { get; init; } = 32;

    /// <summary>Longest tag, in characters. Default 100.</summary>
    public int MaxTagLength { get; init; } = 100;

    /// <summary>
    /// Refuse control characters (other than tab, line feed and carriage return), unpaired UTF-16 surrogates (text that
    /// was not valid Unicode) and U+FFFD (text that was not valid UTF-8 when it was decoded). Default true.
    /// </summary>
    public bool RejectInvalidText { get; init; } = true;
}

/// <summary>Schema and length limits: text sizes, message count and roles, source and tag shape, invalid text.</summary>
public sealed class SchemaRule : IFeedbackRule
{
    private readonly SchemaRuleOptions _options;
    private readonly Regex? _source;

    /// <summary>Creates the rule.</summary>
    /// <param name="options">The limits; null for the defaults.</param>
    /// <exception cref="ArgumentException">A limit is negative or the source pattern is not a valid expression.</exception>
    public SchemaRule(SchemaRuleOptions? options = null)
    {
        _options = options ?? new SchemaRuleOptions();
        int[] limits = [_options.MaxPromptCharacters, _options.MaxCompletionCharacters, _options.MaxMessages, _options.MaxSourceLength, _options.MaxTags, _options.MaxTagLength];
        if (limits.Any(l => l < 0))
        {
            throw new ArgumentException("Schema limits must not be negative (0 switches one off).", nameof(options));
        }

        try
        {
            _source = _options.SourcePattern is null ? null : new Regex($"^(?:{_options.SourcePattern})$", RegexOptions.CultureInvariant, TimeSpan.FromMilliseconds(100));
        }
        catch (ArgumentException ex)
        {
            throw new ArgumentException($"SourcePattern '{_options.SourcePattern}' is not a valid regular expression: {ex.Message}", nameof(options), ex);
        }
    }

    /// <inheritdoc />
    public string Name => "schema";

    /// <inheritdoc />
    public ValueTask<string?> CheckAsync(GateContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        return ValueTask.FromResult(Check(context.Feedback));
    }

    private string? Check(Feedback f)
    {
        SchemaRuleOptions o = _options;
        if (o.MaxSourceLength > 0 && f.Source.Length > o.MaxSourceLength)
        {
            return Invariant($"the source id has {f.Source.Length} characters; at most {o.MaxSourceLength}");
        }

        if (_source is not null && !_source.IsMatch(f.Source))
        {
            return $"the source id does not match {o.SourcePattern}";
        }

        if (o.MaxTags > 0 && f.Tags.Count > o.MaxTags)
        {
            return Invariant($"{f.Tags.Count} tags; at most {o.MaxTags}");
        }

        if (o.MaxTagLength > 0 && f.Tags.FirstOrDefault(t => t.Length > o.MaxTagLength) is { } tag)
        {
            return Invariant($"a tag has {tag.Length} characters; at most {o.MaxTagLength}");
        }

        if (f.Messages is { } messages)
        {
            if (o.MaxMessages > 0 && messages.Count > o.MaxMessages)
            {
                return Invariant($"{messages.Count} messages; at most {o.MaxMessages}");
            }

            if (o.AllowedRoles is { } roles && messages.FirstOrDefault(m => !roles.Contains(m.Role.Value)) is { } odd)
            {
                return $"role '{odd.Role.Value}' is not allowed";
            }
        }

        string prompt = FeedbackText.Prompt(f);
        if (o.MaxPromptCharacters > 0 && prompt.Length > o.MaxPromptCharacters)
        {
            return Invariant($"the prompt has {prompt.Length} characters; at most {o.MaxPromptCharacters}");
        }

        foreach (string completion in FeedbackText.Completions(f))
        {
            if (o.MaxCompletionCharacters > 0 && completion.Length > o.MaxCompletionCharacters)
            {
                return Invariant($"a completion has {completion.Length} characters; at most {o.MaxCompletionCharacters}");
            }

            if (o.RejectInvalidText && Invalid(completion) is { } problem)
            {
                return $"a completion {problem}";
            }
        }

        if (o.RejectInvalidText && Invalid(prompt) is { } bad)
        {
            return $"the prompt {bad}";
        }

        foreach (string t in f.Tags)
        {
            if (o.RejectInvalidText && Invalid(t) is { } badTag)
            {
                return $"a tag {badTag}";
            }
        }

        return o.RejectInvalidText && Invalid(f.Source) is { } badSource ? $"the source id {badSource}" : null;
    }

    /// <summary>What is invalid in a text, or null.</summary>
    private static string? Invalid(string text)
    {
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                i++;
                continue;
            }

            if (char.IsSurrogate(c))
            {
                return Invariant($"has an unpaired surrogate at {i} (not valid Unicode)");
            }

            if (c == '\uFFFD')
            {
                return Invariant($"has a replacement character at {i} (it was not valid UTF-8)");
            }

            if (char.IsControl(c) && c is not ('\t' or '\n' or '\r'))
            {
                return Invariant($"has control character U+{(int)c:X4} at {i}");
            }
        }

        return null;
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
