using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.AI;

namespace LiveLearning.Cli;

internal static partial class LivelearnCli
{
    /// <summary><c>learn --model DIR --feedback FILE.jsonl</c>: every line is checked first, then all are learned.</summary>
    private static Command LearnCommand(TextWriter output, TextWriter error)
    {
        Option<string> model = ModelOption();
        var feedback = new Option<string>("--feedback") { Description = "A JSON-lines file of feedback items (see the README for the schema).", Required = true };
        Option<float?> lr = LearningRateOption();
        Option<int?> steps = StepsOption();
        var command = new Command("learn", "Learn every item of a JSON-lines feedback file, then snapshot.") { model, feedback, lr, steps };
        Handle(command, output, error, async (parsed, o, cancellationToken) =>
        {
            string path = parsed.GetValue(feedback)!;
            Workspace.CheckModel(parsed.GetValue(model)!);

            // Every line is checked before anything is sent: a bad file teaches nothing.
            List<(int Line, Feedback Item)> items = ReadFeedback(path);
            await using Workspace w = await Workspace.OpenAsync(parsed.GetValue(model)!, DataDirectory(parsed), new LearningSettings(parsed.GetValue(lr), parsed.GetValue(steps)), cancellationToken).ConfigureAwait(false);
            int accepted = 0, refused = 0;
            for (int i = 0; i < items.Count; i++)
            {
                LearnReceipt r = await w.Model.LearnAsync(items[i].Item, cancellationToken).ConfigureAwait(false);
                if (r.Accepted)
                {
                    accepted++;
                }
                else
                {
                    refused++;
                    await o.Error.WriteLineAsync($"line {items[i].Line}: refused ({r.Rule ?? r.Reason?.ToString()}): {r.Message}").ConfigureAwait(false);
                }

                if ((i + 1) % Math.Max(1, items.Count / 10) == 0 || i + 1 == items.Count)
                {
                    await o.Error.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"[{new string('#', 20 * (i + 1) / items.Count),-20}] {i + 1}/{items.Count} sent")).ConfigureAwait(false);
                }
            }

            await o.Error.WriteLineAsync("learning ...").ConfigureAwait(false);
            await w.Model.WaitForIdleAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
            SnapshotInfo snapshot = await w.CheckpointAsync($"after learn {Path.GetFileName(path)}", cancellationToken).ConfigureAwait(false);
            AdapterVersion version = w.Model.GetVersion();
            if (o.Json)
            {
                o.WriteJson(j =>
                {
                    j.WriteNumber("accepted", accepted);
                    j.WriteNumber("refused", refused);
                    j.WriteString("version", version.Id);
                    j.WriteString("snapshot", snapshot.Id);
                });
            }
            else
            {
                await o.Out.WriteLineAsync($"learned {accepted} items ({refused} refused); now {version.Id}, snapshot {snapshot.Id}").ConfigureAwait(false);
            }

            return 0;
        });
        return command;
    }

    /// <summary>
    /// Reads a feedback file. Each line is an object with <c>kind</c> (<c>demonstration</c>, <c>preference</c> or
    /// <c>rating</c>), <c>prompt</c> or <c>messages</c> (<c>[{"role","content"}]</c>), the kind's fields
    /// (<c>completion</c>; <c>chosen</c> and <c>rejected</c>; <c>positive</c> and optionally <c>completion</c>), and
    /// optionally <c>source</c>, <c>scope</c>, <c>tags</c>, <c>weight</c>, <c>private</c>. Blank lines are skipped.
    /// </summary>
    internal static List<(int Line, Feedback Item)> ReadFeedback(string path)
    {
        if (!File.Exists(path))
        {
            throw new CliException($"feedback file '{path}' does not exist");
        }

        var items = new List<(int, Feedback)>();
        int number = 0;
        foreach (string line in File.ReadLines(path))
        {
            number++;
            if (string.IsNullOrWhiteSpace(line))
            {
                continue;
            }

            try
            {
                using JsonDocument doc = JsonDocument.Parse(line);
                items.Add((number, ParseFeedback(doc.RootElement)));
            }
            catch (Exception ex) when (ex is JsonException or InvalidOperationException or KeyNotFoundException or FormatException)
            {
                throw new CliException($"{path} line {number}: {ex.Message}");
            }
        }

        return items.Count == 0 ? throw new CliException($"feedback file '{path}' has no items") : items;
    }

    private static Feedback ParseFeedback(JsonElement e)
    {
        string kind = Required(e, "kind");
        string? prompt = Optional(e, "prompt");
        IReadOnlyList<ChatMessage>? messages = e.TryGetProperty("messages", out JsonElement m)
            ? [.. m.EnumerateArray().Select(x => new ChatMessage(new ChatRole(Required(x, "role")), Required(x, "content")))]
            : null;
        if ((prompt is null) == (messages is null))
        {
            throw new FormatException("needs \"prompt\" or \"messages\" (one of them)");
        }

        Feedback item = kind switch
        {
            "demonstration" => new Demonstration { Prompt = prompt, Messages = messages, Completion = Required(e, "completion") },
            "preference" => new Preference { Prompt = prompt, Messages = messages, Chosen = Required(e, "chosen"), Rejected = Required(e, "rejected") },
            "rating" => new Rating { Prompt = prompt, Messages = messages, Positive = e.TryGetProperty("positive", out JsonElement p) ? p.GetBoolean() : throw new KeyNotFoundException("missing \"positive\""), Completion = Required(e, "completion") },
            _ => throw new FormatException($"unknown kind '{kind}' (demonstration, preference or rating)"),
        };
        return item with
        {
            Source = Optional(e, "source") ?? "cli",
            Scope = Optional(e, "scope"),
            Tags = e.TryGetProperty("tags", out JsonElement t) ? [.. t.EnumerateArray().Select(x => x.GetString() ?? string.Empty)] : [],
            Weight = e.TryGetProperty("weight", out JsonElement w) ? w.GetDouble() : 1,
            Private = e.TryGetProperty("private", out JsonElement pr) && pr.GetBoolean(),
        };
    }

    private static string Required(JsonElement e, string name) =>
        e.TryGetProperty(name, out JsonElement v) && v.ValueKind == JsonValueKind.String ? v.GetString()! : throw new KeyNotFoundException($"missing string \"{name}\"");

    private static string? Optional(JsonElement e, string name) => e.TryGetProperty(name, out JsonElement v) ? v.GetString() : null;
}
