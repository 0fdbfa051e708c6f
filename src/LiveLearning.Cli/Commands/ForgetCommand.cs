using System.CommandLine;

namespace LiveLearning.Cli;

internal static partial class LivelearnCli
{
    /// <summary><c>forget --source S --model DIR</c>: everything one source taught, gone; then snapshot.</summary>
    private static Command ForgetCommand(TextWriter output, TextWriter error)
    {
        Option<string> model = ModelOption();
        var source = new Option<string>("--source") { Description = "The source to forget.", Required = true };
        var reason = new Option<string?>("--reason") { Description = "Why (recorded in the ledger)." };
        var command = new Command("forget", "Rebuild without everything a source taught, erase its journal records and the snapshots it influenced.") { source, model, reason };
        Handle(command, output, error, async (parsed, o, cancellationToken) =>
        {
            await using Workspace w = await Workspace.OpenAsync(parsed.GetValue(model)!, DataDirectory(parsed), new LearningSettings(null, null), cancellationToken).ConfigureAwait(false);
            ForgetReport report = await w.Model.ForgetSourceAsync(parsed.GetValue(source)!, parsed.GetValue(reason), parsed.GetValue(Actor), cancellationToken: cancellationToken).ConfigureAwait(false);
            await w.CheckpointAsync($"after forgetting {parsed.GetValue(source)}", cancellationToken).ConfigureAwait(false);
            foreach (ScopeForgetReport s in report.Scopes)
            {
                await o.Out.WriteLineAsync($"{s.Scope}: {s.ItemsForgotten} items forgotten, rebuilt from {s.RebuiltFrom ?? "the initial state"} relearning {s.ItemsRelearned}, {s.SnapshotsDeleted.Count} snapshots deleted; now {s.Version.Id}").ConfigureAwait(false);
            }

            return 0;
        });
        return command;
    }
}
