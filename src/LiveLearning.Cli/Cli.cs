using System.CommandLine;
using LiveLearning.Storage;

namespace LiveLearning.Cli;

/// <summary>
/// <c>livelearn</c>: the command tree. Data goes to standard output (text, or JSON with <c>--json</c>), diagnostics and
/// progress to standard error. Exit codes: 0 done, 1 failed (one line, the stack trace only with <c>--verbose</c>),
/// 2 usage, 3 a verification found damage.
/// </summary>
internal static partial class LivelearnCli
{
    internal const int Failed = 1;
    internal const int Usage = 2;
    internal const int Damaged = 3;

    private static readonly Option<string> Data = new("--data")
    {
        Description = "The live model's data directory (journal/, snapshots/, ledger.db).",
        DefaultValueFactory = _ => ".livelearn",
        Recursive = true,
    };

    private static readonly Option<bool> Json = new("--json") { Description = "Write data as JSON (one object per line).", Recursive = true };

    private static readonly Option<bool> Verbose = new("--verbose") { Description = "Show the stack trace of a failure.", Recursive = true };

    private static readonly Option<string> Actor = new("--actor")
    {
        Description = "Who asks (recorded in the ledger).",
        DefaultValueFactory = _ => Environment.UserName,
        Recursive = true,
    };

    /// <summary>Runs the tool.</summary>
    /// <param name="args">The arguments.</param>
    /// <param name="input">Where <c>chat</c> reads from.</param>
    /// <param name="output">Standard output.</param>
    /// <param name="error">Standard error.</param>
    /// <param name="cancellationToken">Stops the command.</param>
    /// <returns>The exit code.</returns>
    public static async Task<int> RunAsync(string[] args, TextReader input, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        var root = new RootCommand("livelearn: chat with a live model and teach it, learn from feedback files, manage versions, audit the ledger.")
        {
            Data,
            Json,
            Verbose,
            Actor,
            ChatCommand(input, output, error),
            LearnCommand(output, error),
            VersionsCommand(output, error),
            LedgerCommand(output, error),
            ForgetCommand(output, error),
            AdapterCommand(output, error),
            BenchCommand(output, error),
        };
        ParseResult parsed = root.Parse(args);
        if (parsed.Errors.Count > 0)
        {
            foreach (var e in parsed.Errors)
            {
                await error.WriteLineAsync($"livelearn: {e.Message}").ConfigureAwait(false);
            }

            await error.WriteLineAsync("Run 'livelearn --help' for usage.").ConfigureAwait(false);
            return Usage;
        }

        return await parsed.InvokeAsync(new InvocationConfiguration { Output = output, Error = error, EnableDefaultExceptionHandler = false }, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Sets a command's action: errors become one line on standard error and exit code 1.</summary>
    private static void Handle(Command command, TextWriter output, TextWriter error, Func<ParseResult, Output, CancellationToken, Task<int>> action) =>
        command.SetAction(async (parsed, cancellationToken) =>
        {
            var o = new Output(output, error, parsed.GetValue(Json));
            try
            {
                return await action(parsed, o, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
            {
                await error.WriteLineAsync(parsed.GetValue(Verbose) ? ex.ToString() : $"livelearn: {Describe(ex)}").ConfigureAwait(false);
                return Failed;
            }
        });

    private static string Describe(Exception ex) => ex switch
    {
        CliException => ex.Message,
        StorageCorruptedException => $"damaged file: {ex.Message}",
        _ => $"{ex.Message} ({ex.GetType().Name})",
    };

    private static string DataDirectory(ParseResult parsed) => Path.GetFullPath(parsed.GetValue(Data)!);

    private static Option<string> ModelOption() => new("--model") { Description = "A Hugging Face model directory (config.json, safetensors, tokenizer.json).", Required = true };

    private static Option<float?> LearningRateOption() => new("--learning-rate") { Description = "The optimizer's learning rate (default: the library's)." };

    private static Option<int?> StepsOption() => new("--steps-per-item") { Description = "Optimizer steps per item (default: the library's)." };
}
