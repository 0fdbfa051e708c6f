using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using Microsoft.Extensions.AI;

namespace LiveLearning.Tokenization;

/// <summary>The chat formats this library renders (recognised from the model's Jinja chat template).</summary>
public enum ChatTemplateStyle
{
    /// <summary>ChatML: <c>&lt;|im_start|&gt;{role}\n{content}&lt;|im_end|&gt;\n</c> (SmolLM2-Instruct, Qwen2/2.5-Instruct).</summary>
    ChatMl,

    /// <summary>Llama 3.x Instruct: <c>&lt;|start_header_id|&gt;{role}&lt;|end_header_id|&gt;\n\n{content}&lt;|eot_id|&gt;</c>.</summary>
    Llama3,

    /// <summary>Zephyr (TinyLlama-Chat): <c>&lt;|user|&gt;\n{content}{eos}\n</c>.</summary>
    Zephyr,
}

/// <summary>
/// Renders chat messages into a model's prompt format. Built from tokenizer_config.json by recognising the Jinja
/// <c>chat_template</c> (no Jinja engine is run): ChatML, Llama-3 or Zephyr, with the model's default system prompt
/// (SmolLM2, Qwen2/2.5) and Llama 3.1+'s date header when the template has them. Output equals what Hugging Face
/// transformers' <c>apply_chat_template(tokenize=False)</c> renders for system/user/assistant messages.
/// </summary>
/// <remarks>Immutable and thread-safe.</remarks>
public sealed partial class ChatTemplate
{
    private const string DefaultDate = "26 Jul 2024";

    private ChatTemplate(ChatTemplateStyle style, string? defaultSystemPrompt, bool dateHeader, string bosToken, string eosToken)
    {
        Style = style;
        DefaultSystemPrompt = defaultSystemPrompt;
        IncludesDateHeader = dateHeader;
        BosToken = bosToken;
        EosToken = eosToken;
    }

    /// <summary>The recognised format.</summary>
    public ChatTemplateStyle Style { get; }

    /// <summary>The system prompt inserted when the conversation does not start with a system message, or null.</summary>
    public string? DefaultSystemPrompt { get; }

    /// <summary>Llama 3.1+: a system block with "Cutting Knowledge Date" and "Today Date" always comes first.</summary>
    public bool IncludesDateHeader { get; }

    /// <summary>The BOS token text the template writes (Llama-3: <c>&lt;|begin_of_text|&gt;</c>), or empty.</summary>
    public string BosToken { get; }

    /// <summary>The EOS token text (Zephyr ends every turn with it), or empty.</summary>
    public string EosToken { get; }

    /// <summary>The token text that ends an assistant turn: generation should stop on it.</summary>
    public string EndOfTurnToken => Style switch
    {
        ChatTemplateStyle.ChatMl => "<|im_end|>",
        ChatTemplateStyle.Llama3 => "<|eot_id|>",
        _ => EosToken,
    };

    /// <summary>
    /// Whether the token ids of a prompt should start with the tokenizer's BOS id although the rendered text has no
    /// BOS: true for Zephyr (TinyLlama-Chat was fine-tuned on rendered text tokenized with its BOS; transformers'
    /// <c>apply_chat_template(tokenize=True)</c> omits it, which we consider a bug). <see cref="EncodePrompt"/> applies it.
    /// </summary>
    public bool RequiresBosToken => Style == ChatTemplateStyle.Zephyr;

    /// <summary>Reads tokenizer_config.json and recognises its <c>chat_template</c>.</summary>
    /// <exception cref="TokenizerFormatException">No template, or a template that is not ChatML, Llama-3 or Zephyr.</exception>
    public static ChatTemplate Load(string tokenizerConfigPath)
    {
        ArgumentException.ThrowIfNullOrEmpty(tokenizerConfigPath);
        return FromJson(Tokenizer.ReadCapped(tokenizerConfigPath), Path.GetFileName(tokenizerConfigPath));
    }

    /// <summary>Recognises the <c>chat_template</c> of a tokenizer_config.json text.</summary>
    /// <param name="json">The tokenizer_config.json text.</param>
    /// <param name="sourceName">A name for error messages.</param>
    /// <exception cref="TokenizerFormatException">No template, or a template that is not ChatML, Llama-3 or Zephyr.</exception>
    public static ChatTemplate FromJson(string json, string sourceName)
    {
        ArgumentNullException.ThrowIfNull(json);
        ArgumentException.ThrowIfNullOrEmpty(sourceName);
        var config = TokenizerConfig.Parse(json, sourceName);
        if (config.ChatTemplate is null)
        {
            throw new TokenizerFormatException(sourceName, "chat_template", "is missing: this model has no chat format (use plain text completion)");
        }

        return FromTemplateText(config.ChatTemplate, sourceName, config.BosToken, config.EosToken);
    }

    /// <summary>Recognises a Jinja chat template text (e.g. the content of chat_template.jinja).</summary>
    /// <param name="template">The Jinja template text.</param>
    /// <param name="sourceName">A name for error messages.</param>
    /// <param name="bosToken">The model's BOS token text (tokenizer_config.json <c>bos_token</c>).</param>
    /// <param name="eosToken">The model's EOS token text (tokenizer_config.json <c>eos_token</c>).</param>
    /// <exception cref="TokenizerFormatException">The template is not ChatML, Llama-3 or Zephyr.</exception>
    public static ChatTemplate FromTemplateText(string template, string sourceName, string? bosToken, string? eosToken)
    {
        ArgumentNullException.ThrowIfNull(template);
        ArgumentException.ThrowIfNullOrEmpty(sourceName);
        if (template.Contains("<|im_start|>", StringComparison.Ordinal))
        {
            var m = ChatMlDefaultSystem().Match(template);
            return new ChatTemplate(ChatTemplateStyle.ChatMl, m.Success ? m.Groups[1].Value : null, false, bosToken ?? "", eosToken ?? "");
        }
        if (template.Contains("<|start_header_id|>", StringComparison.Ordinal))
        {
            if (!template.Contains("bos_token", StringComparison.Ordinal) && !template.Contains("<|begin_of_text|>", StringComparison.Ordinal))
            {
                throw new TokenizerFormatException(sourceName, "chat_template", "looks like Llama-3 but never writes the BOS token; this variant is not supported");
            }
            bool dateHeader = template.Contains("Cutting Knowledge Date", StringComparison.Ordinal);
            return new ChatTemplate(ChatTemplateStyle.Llama3, null, dateHeader, bosToken ?? "<|begin_of_text|>", eosToken ?? "");
        }
        if (template.Contains("<|user|>", StringComparison.Ordinal) && template.Contains("<|assistant|>", StringComparison.Ordinal))
        {
            if (string.IsNullOrEmpty(eosToken))
            {
                throw new TokenizerFormatException(sourceName, "eos_token", "is required by a Zephyr-style chat template (every turn ends with it)");
            }
            return new ChatTemplate(ChatTemplateStyle.Zephyr, null, false, bosToken ?? "", eosToken);
        }
        throw new TokenizerFormatException(sourceName, "chat_template",
            "is not a recognised chat format (expected ChatML '<|im_start|>', Llama-3 '<|start_header_id|>' or Zephyr '<|user|>'); pick one explicitly with ChatTemplate.Create");
    }

    /// <summary>Creates a formatter for an explicitly chosen style (user override).</summary>
    /// <param name="style">The format.</param>
    /// <param name="defaultSystemPrompt">System prompt to insert when the conversation has none (null: none).</param>
    /// <param name="bosToken">BOS text written by Llama-3 (default <c>&lt;|begin_of_text|&gt;</c>).</param>
    /// <param name="eosToken">EOS text ending Zephyr turns (default <c>&lt;/s&gt;</c>).</param>
    /// <param name="includeDateHeader">Llama 3.1+ date header.</param>
    public static ChatTemplate Create(ChatTemplateStyle style, string? defaultSystemPrompt = null, string? bosToken = null, string? eosToken = null, bool includeDateHeader = false)
    {
        if (!Enum.IsDefined(style))
        {
            throw new ArgumentOutOfRangeException(nameof(style), style, "Unknown chat template style.");
        }

        return style switch
        {
            ChatTemplateStyle.Llama3 => new ChatTemplate(style, defaultSystemPrompt, includeDateHeader, bosToken ?? "<|begin_of_text|>", eosToken ?? "<|eot_id|>"),
            ChatTemplateStyle.Zephyr => new ChatTemplate(style, defaultSystemPrompt, false, bosToken ?? "<s>", eosToken ?? "</s>"),
            _ => new ChatTemplate(style, defaultSystemPrompt, false, bosToken ?? "", eosToken ?? ""),
        };
    }

    /// <summary>Renders the conversation as prompt text.</summary>
    /// <param name="messages">At least one message.</param>
    /// <param name="addGenerationPrompt">End with the header of an assistant turn, ready for generation.</param>
    /// <param name="date">Llama 3.1+ "Today Date"; null gives the template's own fallback, 26 Jul 2024.</param>
    public string Format(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = true, DateOnly? date = null)
    {
        var sb = new StringBuilder();
        foreach (var (text, _) in Render(messages, addGenerationPrompt, date))
        {
            sb.Append(text);
        }

        return sb.ToString();
    }

    /// <summary>
    /// Renders and encodes a prompt: template text may contain special tokens; message contents are encoded as plain
    /// text when they contain special-token text (so user text cannot inject control tokens), otherwise the whole
    /// prompt is encoded at once exactly as Hugging Face does. No post-processor BOS is added (the text has it), except
    /// when <see cref="RequiresBosToken"/>.
    /// </summary>
    public IReadOnlyList<int> EncodePrompt(Tokenizer tokenizer, IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = true, DateOnly? date = null)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        var parts = Render(messages, addGenerationPrompt, date);
        var ids = new List<int>();
        if (RequiresBosToken && tokenizer.BosTokenId is int bos)
        {
            ids.Add(bos);
        }

        bool injected = parts.Any(p => p.IsContent && tokenizer.ContainsSpecialToken(p.Text));
        if (!injected)
        {
            ids.AddRange(tokenizer.Encode(string.Concat(parts.Select(p => p.Text)), addSpecialTokens: false, allowSpecialTokens: true));
            return [.. ids];
        }
        foreach (var (text, isContent) in parts)
        {
            ids.AddRange(tokenizer.Encode(text, addSpecialTokens: false, allowSpecialTokens: !isContent));
        }
        return [.. ids];
    }

    private List<(string Text, bool IsContent)> Render(IReadOnlyList<ChatMessage> chat, bool addGenerationPrompt, DateOnly? date)
    {
        Turn[] messages = Turns(chat);

        var parts = new List<(string, bool)>();
        void Template(string s) => parts.Add((s, false));
        void Content(string s) => parts.Add((s, true));

        switch (Style)
        {
            case ChatTemplateStyle.ChatMl:
                if (DefaultSystemPrompt is not null && messages[0].Role != ChatRole.System)
                {
                    Template("<|im_start|>system\n");
                    Content(DefaultSystemPrompt);
                    Template("<|im_end|>\n");
                }
                foreach (var m in messages)
                {
                    Template("<|im_start|>" + RoleName(m.Role) + "\n");
                    Content(m.Content);
                    Template("<|im_end|>\n");
                }
                if (addGenerationPrompt)
                {
                    Template("<|im_start|>assistant\n");
                }

                break;

            case ChatTemplateStyle.Llama3:
            {
                Template(BosToken);
                int first = 0;
                if (IncludesDateHeader)
                {
                    string system = messages[0].Role == ChatRole.System ? messages[0].Content.Trim() : (DefaultSystemPrompt ?? "");
                    if (messages[0].Role == ChatRole.System)
                        {
                            first = 1;
                        }

                        string today = date?.ToString("dd MMM yyyy", CultureInfo.InvariantCulture) ?? DefaultDate;
                    Template("<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: " + today + "\n\n");
                    Content(system);
                    Template("<|eot_id|>");
                }
                else if (DefaultSystemPrompt is not null && messages[0].Role != ChatRole.System)
                {
                    Template("<|start_header_id|>system<|end_header_id|>\n\n");
                    Content(DefaultSystemPrompt.Trim());
                    Template("<|eot_id|>");
                }
                for (int i = first; i < messages.Length; i++)
                {
                    Template("<|start_header_id|>" + RoleName(messages[i].Role) + "<|end_header_id|>\n\n");
                    Content(messages[i].Content.Trim());
                    Template("<|eot_id|>");
                }
                if (addGenerationPrompt)
                    {
                        Template("<|start_header_id|>assistant<|end_header_id|>\n\n");
                    }

                    break;
            }

            case ChatTemplateStyle.Zephyr:
                if (DefaultSystemPrompt is not null && messages[0].Role != ChatRole.System)
                {
                    Template("<|system|>\n");
                    Content(DefaultSystemPrompt);
                    Template(EosToken + "\n");
                }
                foreach (var m in messages)
                {
                    Template("<|" + RoleName(m.Role) + "|>\n");
                    Content(m.Content);
                    Template(EosToken + "\n");
                }
                if (addGenerationPrompt)
                {
                    Template("<|assistant|>\n");
                }

                break;
        }
        return parts;
    }

    private static string RoleName(ChatRole role) => role == ChatRole.System ? "system" : role == ChatRole.User ? "user" : "assistant";

    /// <summary>
    /// The messages as (role, text) turns. Only system, user and assistant messages made of text can be rendered: a tool
    /// message, a function call or an image is refused with its index named (the templates recognised here have no slot for them).
    /// </summary>
    private static Turn[] Turns(IReadOnlyList<ChatMessage> messages)
    {
        ArgumentNullException.ThrowIfNull(messages);
        if (messages.Count == 0)
        {
            throw new ArgumentException("At least one message is required.", nameof(messages));
        }

        var turns = new Turn[messages.Count];
        for (int i = 0; i < messages.Count; i++)
        {
            ChatMessage m = messages[i] ?? throw new ArgumentException($"messages[{i}] is null.", nameof(messages));
            if (m.Role != ChatRole.System && m.Role != ChatRole.User && m.Role != ChatRole.Assistant)
            {
                throw new ArgumentException($"messages[{i}] has role '{m.Role}'; the chat template renders system, user and assistant messages only.", nameof(messages));
            }

            foreach (AIContent content in m.Contents)
            {
                if (content is not TextContent)
                {
                    throw new ArgumentException($"messages[{i}] holds {content.GetType().Name}; the chat template renders text only.", nameof(messages));
                }
            }

            turns[i] = new Turn(m.Role, m.Text);
        }

        return turns;
    }

    private readonly record struct Turn(ChatRole Role, string Content);

    /// <summary>
    /// The literal default system prompt of a ChatML template: <c>&lt;|im_start|&gt;system\n…&lt;|im_end|&gt;</c> written as
    /// one Jinja string (no quotes, braces or escapes inside).
    /// </summary>
    [GeneratedRegex(@"<\|im_start\|>system(?:\\n|\n)([^'""{}\\<>\n]+)<\|im_end\|>", RegexOptions.CultureInvariant)]
    private static partial Regex ChatMlDefaultSystem();
}
