using System.CommandLine;
using System.Globalization;
using LiveLearning.Governance;

namespace LiveLearning.Cli;

internal static partial class LivelearnCli
{
    /// <summary><c>ledger query|export|verify</c>: the audit ledger, read without loading the model.</summary>
    private static Command LedgerCommand(TextWriter output, TextWriter error)
    {
        var source = new Option<string?>("--source") { Description = "Entries of one source." };
        var version = new Option<string?>("--version") { Description = "Entries about one version." };
        var item = new Option<long?>("--item") { Description = "Entries about one journal item (and the steps that learned it)." };
        var kind = new Option<LedgerEvent?>("--event") { Description = "One kind of entry (Accepted, Rejected, Step, Published, RolledBack, ...)." };
        var scope = new Option<string?>("--scope") { Description = "Entries of one scope." };
        var limit = new Option<int?>("--limit") { Description = "At most this many entries." };
        var query = new Command("query", "Entries matching every filter given, oldest first.") { source, version, item, kind, scope, limit };
        Handle(query, output, error, async (parsed, o, cancellationToken) =>
        {
            using SqliteLedger ledger = OpenLedger(parsed);
            var filter = new LedgerQuery
            {
                Source = parsed.GetValue(source),
                VersionId = parsed.GetValue(version),
                Item = parsed.GetValue(item),
                Event = parsed.GetValue(kind),
                Scope = parsed.GetValue(scope),
                Limit = parsed.GetValue(limit),
            };
            await foreach (LedgerEntry e in ledger.QueryAsync(filter, cancellationToken).ConfigureAwait(false))
            {
                if (o.Json)
                {
                    // The same object as an export line.
                    o.WriteJsonLine(j => LedgerJson.Write(j, e));
                }
                else
                {
                    await o.Out.WriteLineAsync(string.Create(CultureInfo.InvariantCulture, $"{e.Index,6}  {e.At:u}  {e.Event,-16} {e.Scope,-10} {e.Message}{(e.Actor is null ? string.Empty : $"  (by {e.Actor})")}")).ConfigureAwait(false);
                }
            }

            return 0;
        });

        var file = new Option<string>("--out") { Description = "The JSON-lines file to write.", Required = true };
        var export = new Command("export", "Write every entry as JSON lines (chain fields included: the file verifies on its own).") { file };
        Handle(export, output, error, async (parsed, o, cancellationToken) =>
        {
            using SqliteLedger ledger = OpenLedger(parsed);
            string path = Path.GetFullPath(parsed.GetValue(file)!);
            string temporary = path + ".partial";
            long count;
            await using (FileStream stream = File.Create(temporary))
            {
                count = await LedgerJson.WriteAsync(ledger.QueryAsync(LedgerQuery.All, cancellationToken), stream, cancellationToken).ConfigureAwait(false);
            }

            File.Move(temporary, path, overwrite: true);
            await o.Error.WriteLineAsync($"{count} entries written to {path}").ConfigureAwait(false);
            return 0;
        });

        var verify = new Command("verify", "Check the hash chain: exit 0 when it holds, 3 when an entry was edited, deleted or reordered.");
        Handle(verify, output, error, async (parsed, o, cancellationToken) =>
        {
            using SqliteLedger ledger = OpenLedger(parsed);
            LedgerVerification v = await ledger.VerifyChainAsync(cancellationToken).ConfigureAwait(false);
            if (o.Json)
            {
                o.WriteJson(j =>
                {
                    j.WriteBoolean("valid", v.Valid);
                    j.WriteNumber("checked", v.Checked);
                    if (!v.Valid)
                    {
                        j.WriteNumber("firstBadIndex", v.FirstBadIndex ?? -1);
                        j.WriteString("problem", v.Problem);
                    }
                });
            }
            else
            {
                await o.Out.WriteLineAsync(v.Valid ? $"ledger chain verified ({v.Checked} entries)" : $"ledger chain BROKEN at entry {v.FirstBadIndex}: {v.Problem}").ConfigureAwait(false);
            }

            return v.Valid ? 0 : Damaged;
        });

        return new Command("ledger", "The audit ledger: query, export, verify.") { query, export, verify };
    }

    private static SqliteLedger OpenLedger(ParseResult parsed)
    {
        string path = Workspace.LedgerPath(DataDirectory(parsed));
        return File.Exists(path)
            ? new SqliteLedger(new SqliteLedgerOptions { Path = path, CheckHeadOnOpen = false })
            : throw new CliException($"no ledger at '{path}'");
    }
}
