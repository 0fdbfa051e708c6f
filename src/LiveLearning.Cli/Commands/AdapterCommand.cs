using System.CommandLine;
using LiveLearning.Storage;

namespace LiveLearning.Cli;

internal static partial class LivelearnCli
{
    /// <summary><c>adapter export-peft &lt;snapshot or alias&gt; --out DIR</c>: a snapshot's adapter as PEFT files.</summary>
    private static Command AdapterCommand(TextWriter output, TextWriter error)
    {
        var snapshot = new Argument<string>("snapshot") { Description = "A snapshot id or alias." };
        var directory = new Option<string>("--out") { Description = "The directory to write adapter_model.safetensors and adapter_config.json to.", Required = true };
        var export = new Command("export-peft", "Write a snapshot's adapter in the PEFT format (loadable by PEFT and by LoraAdapter.LoadPeft).") { snapshot, directory };
        Handle(export, output, error, async (parsed, o, cancellationToken) =>
        {
            Snapshot s = await LoadAsync(OpenStore(parsed), parsed.GetValue(snapshot)!, cancellationToken).ConfigureAwait(false);
            if (!s.Weights.Metadata.ContainsKey(PeftFiles.ConfigFile))
            {
                throw new CliException($"snapshot '{s.Info.Id}' has no adapter_config.json (its backend is not a PEFT adapter)");
            }

            string dir = Path.GetFullPath(parsed.GetValue(directory)!);
            PeftFiles.Write(dir, s.Weights);
            await o.Out.WriteLineAsync($"{s.Info.Version.Id} ({s.Weights.Tensors.Count} tensors) written to {dir}").ConfigureAwait(false);
            return 0;
        });
        var peftDir = new Argument<string>("peft") { Description = "A PEFT adapter directory (adapter_config.json, adapter_model.safetensors)." };
        Option<string> model = ModelOption();
        var mergedDir = new Option<string>("--out") { Description = "The directory to write the merged model to (config, weights, tokenizer).", Required = true };
        var merge = new Command("merge", "Write a copy of the model with a PEFT adapter merged into its weights (W + scale·B·A); it then needs no adapter.") { peftDir, model, mergedDir };
        Handle(merge, output, error, async (parsed, o, cancellationToken) =>
        {
            Workspace.CheckModel(parsed.GetValue(model)!);
            string source = parsed.GetValue(peftDir)!;
            if (!File.Exists(Path.Combine(source, "adapter_config.json")))
            {
                throw new CliException($"'{source}' is not a PEFT adapter directory (no adapter_config.json)");
            }

            using var baseModel = LiveLearning.Models.LlamaModel.Load(parsed.GetValue(model)!);
            LiveLearning.Lora.LoraAdapter adapter = LiveLearning.Lora.LoraAdapter.LoadPeft(source, baseModel);
            string destination = Path.GetFullPath(parsed.GetValue(mergedDir)!);
            LiveLearning.Lora.LoraMerge.SaveMerged(baseModel, adapter, destination);
            await o.Out.WriteLineAsync($"merged {source} into a copy of the model at {destination}").ConfigureAwait(false);
            return 0;
        });

        var importDir = new Argument<string>("peft") { Description = "A PEFT adapter directory (adapter_config.json, adapter_model.safetensors)." };
        Option<string> importModel = ModelOption();
        var reason = new Option<string?>("--reason") { Description = "Why (recorded in the ledger)." };
        var import = new Command("import-peft", "Make a PEFT adapter the live model's current version (later runs train that layout), then snapshot.") { importDir, importModel, reason };
        Handle(import, output, error, async (parsed, o, cancellationToken) =>
        {
            string source = parsed.GetValue(importDir)!;
            string configPath = Path.Combine(source, PeftFiles.ConfigFile);
            if (!File.Exists(configPath) || !File.Exists(Path.Combine(source, PeftFiles.WeightsFile)))
            {
                throw new CliException($"'{source}' is not a PEFT adapter directory (adapter_config.json and adapter_model.safetensors)");
            }

            LiveLearning.Backends.AdapterWeightsData weights = PeftFiles.Read(source);
            string config = weights.Metadata[PeftFiles.ConfigFile];
            LiveLearning.Lora.LoraConfig lora = LiveLearning.Lora.LoraAdapter.ParseConfig(config, configPath);
            string data = DataDirectory(parsed);
            await using Workspace w = await Workspace.OpenAsync(parsed.GetValue(importModel)!, data, new LearningSettings(null, null, lora), cancellationToken).ConfigureAwait(false);
            AdapterVersion v = await w.Model.ImportAdapterAsync(weights, reason: parsed.GetValue(reason), actor: parsed.GetValue(Actor), cancellationToken: cancellationToken).ConfigureAwait(false);
            await File.WriteAllTextAsync(Workspace.AdapterConfigPath(data), config, cancellationToken).ConfigureAwait(false);
            SnapshotInfo s = await w.CheckpointAsync($"imported {Path.GetFileName(Path.GetFullPath(source).TrimEnd(Path.DirectorySeparatorChar))}", cancellationToken).ConfigureAwait(false);
            await o.Out.WriteLineAsync($"imported {source} ({weights.Tensors.Count} tensors, r={lora.Rank}) as {v.Id}, snapshot {s.Id}").ConfigureAwait(false);
            return 0;
        });

        return new Command("adapter", "Adapters in the PEFT format: export a snapshot's, import one, merge one into the model.") { export, import, merge };
    }
}
