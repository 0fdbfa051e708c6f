using LiveLearning.Governance;
using LiveLearning.Storage;
using Microsoft.Extensions.DependencyInjection;

namespace LiveLearning.Cli;

/// <summary>A failure the tool reports as one line (no stack trace) with exit code 1.</summary>
internal sealed class CliException(string message) : Exception(message);

/// <summary>Training settings the commands that learn accept.</summary>
internal sealed record LearningSettings(float? LearningRate, int? StepsPerItem, LiveLearning.Lora.LoraConfig? Lora = null);

/// <summary>
/// The files one live model keeps under its data directory — <c>journal/</c>, <c>snapshots/</c>, <c>ledger.db</c> —
/// and, for the commands that need it, the model itself over them (restored on open: newest snapshot, then the journal).
/// </summary>
internal sealed class Workspace : IAsyncDisposable
{
    private readonly ServiceProvider _provider;

    private Workspace(ServiceProvider provider, ILiveModel model)
    {
        _provider = provider;
        Model = model;
    }

    public ILiveModel Model { get; }

    public ISnapshotStore Snapshots => _provider.GetRequiredService<ISnapshotStore>();

    public IQueryableLedger Ledger => _provider.GetRequiredService<IQueryableLedger>();

    public static string JournalDirectory(string data) => Path.Combine(data, "journal");

    public static string SnapshotDirectory(string data) => Path.Combine(data, "snapshots");

    public static string LedgerPath(string data) => Path.Combine(data, "ledger.db");

    /// <summary>The LoRA layout of an imported adapter, kept so every later run trains (and restores) that layout.</summary>
    public static string AdapterConfigPath(string data) => Path.Combine(data, "adapter_config.json");

    /// <summary>Opens the model over the data directory and waits for its recovery.</summary>
    public static async Task<Workspace> OpenAsync(string model, string data, LearningSettings settings, CancellationToken cancellationToken)
    {
        CheckModel(model);

        var services = new ServiceCollection();
        services.AddLiveLearning()
            .UseFileJournal(new FileFeedbackJournalOptions { Directory = JournalDirectory(data) })
            .UseFileSnapshotStore(SnapshotDirectory(data))
            .UseSqliteLedger(LedgerPath(data))
            .AddLoraModel("default", o =>
            {
                o.ModelDirectory = model;
                if (settings.Lora is { } lora)
                {
                    o.Lora = lora;
                }
                else if (File.Exists(AdapterConfigPath(data)))
                {
                    o.Lora = LiveLearning.Lora.LoraAdapter.ParseConfig(File.ReadAllText(AdapterConfigPath(data)), AdapterConfigPath(data));
                }

                if (settings.LearningRate is { } lr)
                {
                    o.Live.Learner.Optimizer = o.Live.Learner.Optimizer with { LearningRate = lr };
                }

                if (settings.StepsPerItem is { } steps)
                {
                    o.Live.Learner.StepsPerItem = steps;
                }
            });
        ServiceProvider provider = services.BuildServiceProvider();
        try
        {
            ILiveModel live = provider.GetRequiredService<ILiveModel>();
            await live.WaitForIdleAsync(cancellationToken: cancellationToken).ConfigureAwait(false);
            return new Workspace(provider, live);
        }
        catch
        {
            await provider.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Throws a one-line error unless <paramref name="model"/> looks like a Hugging Face model directory.</summary>
    public static void CheckModel(string model)
    {
        if (!Directory.Exists(model))
        {
            throw new CliException($"model directory '{model}' does not exist");
        }

        if (!File.Exists(Path.Combine(model, "config.json")))
        {
            throw new CliException($"'{model}' is not a Hugging Face model directory (no config.json)");
        }
    }

    /// <summary>Takes a snapshot so the next run starts here instead of relearning the journal.</summary>
    public Task<SnapshotInfo> CheckpointAsync(string label, CancellationToken cancellationToken) => Model.SnapshotAsync(label, cancellationToken: cancellationToken);

    public ValueTask DisposeAsync() => _provider.DisposeAsync();
}
