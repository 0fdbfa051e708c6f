using System.CommandLine;

namespace LiveLearning.Cli;

internal static partial class LivelearnCli
{
    /// <summary><c>chat --model DIR</c>: answers stream as they are generated; slash commands teach and manage.</summary>
    private static Command ChatCommand(TextReader input, TextWriter output, TextWriter error)
    {
        Option<string> model = ModelOption();
        Option<float?> lr = LearningRateOption();
        Option<int?> steps = StepsOption();
        var maxTokens = new Option<int>("--max-tokens") { Description = "Longest answer, in tokens.", DefaultValueFactory = _ => 64 };
        var command = new Command("chat", "Chat with the live model; /good, /bad, /correct <text>, /prefer <text>, /snapshot, /rollback <version>, /quarantine, /approve <id>, /discard <id>, /stats, /quit.") { model, lr, steps, maxTokens };
        Handle(command, output, error, async (parsed, o, cancellationToken) =>
        {
            await using Workspace w = await Workspace.OpenAsync(parsed.GetValue(model)!, DataDirectory(parsed), new LearningSettings(parsed.GetValue(lr), parsed.GetValue(steps)), cancellationToken).ConfigureAwait(false);
            string actor = parsed.GetValue(Actor)!;
            var generation = new GenerationOptions { MaxTokens = parsed.GetValue(maxTokens) };
            string? lastPrompt = null, lastResponse = null, lastText = null;
            await o.Error.WriteLineAsync($"livelearn chat: {w.Model.GetVersion().Id}; /quit to leave").ConfigureAwait(false);
            while (await input.ReadLineAsync(cancellationToken).ConfigureAwait(false) is { } line)
            {
                line = line.Trim();
                if (line.Length == 0)
                {
                    continue;
                }

                if (!line.StartsWith('/'))
                {
                    string? responseId = null;
                    var text = new System.Text.StringBuilder();
                    await foreach (LiveCompletionUpdate update in w.Model.StreamAsync(line, generation, cancellationToken: cancellationToken).ConfigureAwait(false))
                    {
                        await o.Out.WriteAsync(update.Text).ConfigureAwait(false);
                        await o.Out.FlushAsync(cancellationToken).ConfigureAwait(false);
                        text.Append(update.Text);
                        responseId = update.ResponseId;
                    }

                    await o.Out.WriteLineAsync().ConfigureAwait(false);
                    (lastPrompt, lastResponse, lastText) = (line, responseId, text.ToString());
                    continue;
                }

                string[] parts = line.Split(' ', 2, StringSplitOptions.TrimEntries);
                string argument = parts.Length > 1 ? parts[1] : string.Empty;
                switch (parts[0])
                {
                    case "/quit" or "/exit":
                        await w.CheckpointAsync("after chat", cancellationToken).ConfigureAwait(false);
                        return 0;
                    case "/good" or "/bad" when lastResponse is not null:
                        await Report(o, await w.Model.LearnAsync(new Rating { ResponseId = lastResponse, Positive = parts[0] == "/good", Source = actor }, cancellationToken).ConfigureAwait(false)).ConfigureAwait(false);
                        break;
                    case "/correct" when lastResponse is not null && argument.Length > 0:
                        await Report(o, await w.Model.LearnAsync(Feedback.Correction(lastResponse, " " + argument) with { Source = actor }, cancellationToken).ConfigureAwait(false)).ConfigureAwait(false);
                        break;
                    case "/prefer" when lastPrompt is not null && lastText is not null && argument.Length > 0:
                        await Report(o, await w.Model.LearnAsync(new Preference { Prompt = lastPrompt, Chosen = " " + argument, Rejected = lastText, Source = actor }, cancellationToken).ConfigureAwait(false)).ConfigureAwait(false);
                        break;
                    case "/snapshot":
                        await w.Model.WaitForIdleAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
                        SnapshotInfo s = await w.CheckpointAsync(argument.Length > 0 ? argument : "chat", cancellationToken).ConfigureAwait(false);
                        await o.Error.WriteLineAsync($"snapshot {s.Id} of {s.Version.Id}").ConfigureAwait(false);
                        break;
                    case "/rollback" when argument.Length > 0:
                        await w.Model.WaitForIdleAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
                        AdapterVersion v = await w.Model.RollbackAsync(argument, reason: "chat /rollback", actor: actor, cancellationToken: cancellationToken).ConfigureAwait(false);
                        await o.Error.WriteLineAsync($"rolled back to the weights of {argument}: now {v.Id}").ConfigureAwait(false);
                        break;
                    case "/quarantine":
                        foreach (QuarantinedItem q in w.Model.GetQuarantine())
                        {
                            await o.Error.WriteLineAsync($"#{q.Id} {q.Source} ({q.Rule}): {q.Reason}").ConfigureAwait(false);
                        }

                        break;
                    case "/approve" when long.TryParse(argument, out long approve):
                        await Report(o, await w.Model.ApproveQuarantinedAsync(approve, actor, cancellationToken).ConfigureAwait(false)).ConfigureAwait(false);
                        break;
                    case "/discard" when long.TryParse(argument, out long discard):
                        await o.Error.WriteLineAsync(w.Model.DiscardQuarantined(discard, "chat /discard", actor) ? $"discarded #{discard}" : $"no quarantined item #{discard}").ConfigureAwait(false);
                        break;
                    case "/stats":
                        ScopeStatistics stats = w.Model.GetStatistics()[w.Model.GetVersion().Scope];
                        await o.Error.WriteLineAsync($"{stats.Version.Id}: {stats.Accepted} accepted, {stats.Learned} learned, queue {stats.QueueDepth}").ConfigureAwait(false);
                        break;
                    default:
                        await o.Error.WriteLineAsync($"'{parts[0]}' needs an answer first or an argument; commands: /good /bad /correct <text> /prefer <text> /snapshot [label] /rollback <version> /quarantine /approve <id> /discard <id> /stats /quit").ConfigureAwait(false);
                        break;
                }
            }

            await w.CheckpointAsync("after chat", cancellationToken).ConfigureAwait(false);
            return 0;
        });
        return command;
    }

    private static Task Report(Output o, LearnReceipt r) =>
        o.Error.WriteLineAsync(r.Accepted ? $"taught (item #{r.SequenceNumber})" : $"refused ({r.Rule ?? r.Reason?.ToString()}): {r.Message}");
}
