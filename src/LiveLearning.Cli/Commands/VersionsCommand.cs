using System.CommandLine;
using System.Globalization;
using LiveLearning.Storage;

namespace LiveLearning.Cli;

internal static partial class LivelearnCli
{
    /// <summary><c>versions list|show|diff|tag|rollback</c>: the snapshots kept, and moving between them.</summary>
    private static Command VersionsCommand(TextWriter output, TextWriter error)
    {
        var list = new Command("list", "The snapshots kept, oldest first, with their aliases.");
        Handle(list, output, error, async (parsed, o, cancellationToken) =>
        {
            FileSnapshotStore store = OpenStore(parsed);
            IReadOnlyDictionary<string, string> aliases = await store.ListAliasesAsync(cancellationToken).ConfigureAwait(false);
            foreach (SnapshotInfo s in await store.ListAsync(null, cancellationToken).ConfigureAwait(false))
            {
                string[] names = [.. aliases.Where(a => a.Value == s.Id).Select(a => a.Key).Order(StringComparer.Ordinal)];
                if (o.Json)
                {
                    o.WriteJson(j =>
                    {
                        j.WriteString("id", s.Id);
                        j.WriteString("version", s.Version.Id);
                        j.WriteString("label", s.Label);
                        j.WriteString("createdAt", s.CreatedAt);
                        j.WriteNumber("items", s.Version.Items);
                        j.WriteNumber("journalPosition", s.Version.JournalPosition);
                        j.WriteStartArray("aliases");
                        foreach (string n in names)
                        {
                            j.WriteStringValue(n);
                        }

                        j.WriteEndArray();
                    });
                }
                else
                {
                    await o.Out.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"{s.Id}  {s.Version.Id,-12} {s.CreatedAt:u}  {s.Version.Items,6} items  {s.Label}{(names.Length > 0 ? "  [" + string.Join(", ", names) + "]" : string.Empty)}")).ConfigureAwait(false);
                }
            }

            return 0;
        });

        var idA = new Argument<string>("from") { Description = "A snapshot id or alias." };
        var idB = new Argument<string>("to") { Description = "A snapshot id or alias." };
        var diff = new Command("diff", "What changed between two snapshots: weight-change norms per tensor, steps and items between.") { idA, idB };
        Handle(diff, output, error, async (parsed, o, cancellationToken) =>
        {
            FileSnapshotStore store = OpenStore(parsed);
            Snapshot from = await LoadAsync(store, parsed.GetValue(idA)!, cancellationToken).ConfigureAwait(false);
            Snapshot to = await LoadAsync(store, parsed.GetValue(idB)!, cancellationToken).ConfigureAwait(false);
            SnapshotDifference d = SnapshotDiff.Compare(from, to);
            if (o.Json)
            {
                o.WriteJson(j =>
                {
                    j.WriteString("from", d.From.Id);
                    j.WriteString("to", d.To.Id);
                    j.WriteNumber("totalChangeNorm", d.TotalChangeNorm);
                    j.WriteNumber("steps", d.Steps);
                    j.WriteNumber("items", d.Items);
                    j.WriteStartObject("tensors");
                    foreach (TensorDifference t in d.Tensors)
                    {
                        j.WriteNumber(t.Name, t.ChangeNorm);
                    }

                    j.WriteEndObject();
                });
            }
            else
            {
                await o.Out.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"{d.From.Version.Id} -> {d.To.Version.Id}: {d.Steps} steps, {d.Items} items (journal {d.FromJournalPosition + 1}..{d.ToJournalPosition}), total change {d.TotalChangeNorm:G4}")).ConfigureAwait(false);
                foreach (TensorDifference t in d.Tensors.OrderByDescending(t => t.ChangeNorm).Take(10))
                {
                    await o.Out.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"  {t.ChangeNorm,12:G4}  {t.Name} ({t.Change})")).ConfigureAwait(false);
                }
            }

            return 0;
        });

        var showId = new Argument<string>("snapshot") { Description = "A snapshot id or alias." };
        var show = new Command("show", "One snapshot: its version, parent, steps, items, journal position, label and metrics.") { showId };
        Handle(show, output, error, async (parsed, o, cancellationToken) =>
        {
            Snapshot s = await LoadAsync(OpenStore(parsed), parsed.GetValue(showId)!, cancellationToken).ConfigureAwait(false);
            AdapterVersion v = s.Info.Version;
            if (o.Json)
            {
                o.WriteJson(j =>
                {
                    j.WriteString("id", s.Info.Id);
                    j.WriteString("version", v.Id);
                    j.WriteString("parent", v.ParentId);
                    j.WriteString("label", s.Info.Label);
                    j.WriteString("createdAt", s.Info.CreatedAt);
                    j.WriteNumber("steps", v.Steps);
                    j.WriteNumber("items", v.Items);
                    j.WriteNumber("journalPosition", v.JournalPosition);
                    j.WriteString("contentHash", v.ContentHash);
                    j.WriteStartObject("metrics");
                    foreach ((string k, double m) in s.Metrics)
                    {
                        if (double.IsFinite(m))
                        {
                            j.WriteNumber(k, m);
                        }
                    }

                    j.WriteEndObject();
                });
            }
            else
            {
                await o.Out.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"{s.Info.Id}\n  version {v.Id} (parent {v.ParentId ?? "none"}), {v.Steps} steps, {v.Items} items, journal through #{v.JournalPosition}\n  label {s.Info.Label ?? "(none)"}, taken {s.Info.CreatedAt:u}, content {v.ContentHash}")).ConfigureAwait(false);
                foreach ((string k, double m) in s.Metrics.OrderBy(m => m.Key, StringComparer.Ordinal))
                {
                    await o.Out.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"  {k} = {m:G6}")).ConfigureAwait(false);
                }
            }

            return 0;
        });

        var snapshotId = new Argument<string>("snapshot") { Description = "The snapshot id." };
        var alias = new Argument<string>("alias") { Description = "The alias (e.g. production, last-good)." };
        var tag = new Command("tag", "Point an alias at a snapshot.") { snapshotId, alias };
        Handle(tag, output, error, async (parsed, o, cancellationToken) =>
        {
            await OpenStore(parsed).SetAliasAsync(parsed.GetValue(alias)!, parsed.GetValue(snapshotId)!, cancellationToken).ConfigureAwait(false);
            await o.Error.WriteLineAsync($"{parsed.GetValue(alias)} -> {parsed.GetValue(snapshotId)}").ConfigureAwait(false);
            return 0;
        });

        Option<string> model = ModelOption();
        var target = new Argument<string>("version") { Description = "A version id (scope@number) or a snapshot alias." };
        var reason = new Option<string?>("--reason") { Description = "Why (recorded in the ledger)." };
        var rollback = new Command("rollback", "Serve an earlier version's weights again (recorded with actor and reason), then snapshot.") { target, model, reason };
        Handle(rollback, output, error, async (parsed, o, cancellationToken) =>
        {
            await using Workspace w = await Workspace.OpenAsync(parsed.GetValue(model)!, DataDirectory(parsed), new LearningSettings(null, null), cancellationToken).ConfigureAwait(false);
            AdapterVersion v = await w.Model.RollbackAsync(parsed.GetValue(target)!, parsed.GetValue(reason), parsed.GetValue(Actor), cancellationToken).ConfigureAwait(false);
            SnapshotInfo s = await w.CheckpointAsync($"rollback to {parsed.GetValue(target)}", cancellationToken).ConfigureAwait(false);
            await o.Out.WriteLineAsync($"rolled back to the weights of {parsed.GetValue(target)}: now {v.Id}, snapshot {s.Id}").ConfigureAwait(false);
            return 0;
        });

        return new Command("versions", "The snapshots kept, their differences and aliases, and rollback.") { list, show, diff, tag, rollback };
    }

    private static FileSnapshotStore OpenStore(ParseResult parsed)
    {
        string dir = Workspace.SnapshotDirectory(DataDirectory(parsed));
        return Directory.Exists(dir) ? new FileSnapshotStore(dir) : throw new CliException($"no snapshots in '{DataDirectory(parsed)}' (nothing was learned there yet)");
    }

    private static async Task<Snapshot> LoadAsync(FileSnapshotStore store, string idOrAlias, CancellationToken cancellationToken)
    {
        IReadOnlyDictionary<string, string> aliases = await store.ListAliasesAsync(cancellationToken).ConfigureAwait(false);
        string id = aliases.TryGetValue(idOrAlias, out string? target) ? target : idOrAlias;
        return await store.LoadAsync(id, cancellationToken).ConfigureAwait(false) ?? throw new CliException($"no snapshot '{idOrAlias}'");
    }
}
