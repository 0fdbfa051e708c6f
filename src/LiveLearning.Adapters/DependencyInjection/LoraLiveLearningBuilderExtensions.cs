using LiveLearning.Lora;
using LiveLearning.Models;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace LiveLearning;

/// <summary>How a LoRA live model is built: the base model's directory, how it runs, the adapters' shape, and the loop.</summary>
public sealed class LoraModelOptions
{
    /// <summary>The base model's directory as downloaded from a model hub (config.json, safetensors, tokenizer.json).</summary>
    public string ModelDirectory { get; set; } = string.Empty;

    /// <summary>How the base model is loaded and run (threads, context length).</summary>
    public ModelOptions Model { get; set; } = new();

    /// <summary>The LoRA adapter of every scope. Default rank 8, alpha 16 on q_proj and v_proj.</summary>
    public LoraConfig Lora { get; set; } = new() { Rank = 8, Alpha = 16, TargetModules = ["q_proj", "v_proj"] };

    /// <summary>The live loop: scopes, learner, replay, objectives, limits.</summary>
    public LiveModelOptions Live { get; set; } = new();
}

/// <summary>Adds LoRA live models over Llama-family base models.</summary>
public static class LoraLiveLearningBuilderExtensions
{
    /// <summary>
    /// Adds a live model named <paramref name="name"/> whose engine is LoRA over the base model in
    /// <see cref="LoraModelOptions.ModelDirectory"/> (loaded when the model is first resolved, or at host start).
    /// </summary>
    /// <param name="builder">The builder from <see cref="LiveLearningServiceCollectionExtensions.AddLiveLearning"/>.</param>
    /// <param name="name">The model's name (its DI key).</param>
    /// <param name="configure">Configures the model.</param>
    /// <returns>The builder.</returns>
    public static LiveLearningBuilder AddLoraModel(this LiveLearningBuilder builder, string name, Action<LoraModelOptions> configure)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(configure);
        builder.Services.AddOptions<LoraModelOptions>(name).Configure(configure).ValidateOnStart();
        builder.Services.AddSingleton<IValidateOptions<LoraModelOptions>>(new LoraModelOptionsValidator(name));
        return builder.AddModel(
            name,
            sp =>
            {
                LoraModelOptions o = sp.GetRequiredService<IOptionsMonitor<LoraModelOptions>>().Get(name);
                LlamaModel model = LlamaModel.Load(o.ModelDirectory, o.Model);
                try
                {
                    return new LoraBackend(model, o.Lora, ownsModel: true);
                }
                catch
                {
                    model.Dispose();
                    throw;
                }
            },
            sp => sp.GetRequiredService<IOptionsMonitor<LoraModelOptions>>().Get(name).Live);
    }

    internal static List<string> Problems(LoraModelOptions o)
    {
        var problems = new List<string>();
        if (string.IsNullOrWhiteSpace(o.ModelDirectory))
        {
            problems.Add("ModelDirectory must name the base model's directory.");
        }
        else if (!Directory.Exists(o.ModelDirectory))
        {
            problems.Add($"ModelDirectory '{o.ModelDirectory}' does not exist.");
        }

        if (o.Model is null)
        {
            problems.Add("Model must not be null.");
        }
        else if (o.Model.ThreadCount < 0)
        {
            problems.Add($"Model.ThreadCount must not be negative (was {o.Model.ThreadCount}).");
        }

        if (o.Lora is null)
        {
            problems.Add("Lora must not be null.");
        }
        else
        {
            try
            {
                o.Lora.Validate();
            }
            catch (ArgumentException ex)
            {
                problems.Add($"Lora.{ex.ParamName}: {ex.Message.Split(" (Parameter", 2)[0]}");
            }
        }

        if (o.Live is null)
        {
            problems.Add("Live must not be null.");
        }
        else
        {
            problems.AddRange(o.Live.Validate().Select(p => "Live." + p));
        }

        return problems;
    }

    private sealed class LoraModelOptionsValidator(string name) : IValidateOptions<LoraModelOptions>
    {
        public ValidateOptionsResult Validate(string? optionsName, LoraModelOptions options)
        {
            if (optionsName != name)
            {
                return ValidateOptionsResult.Skip;
            }

            List<string> problems = Problems(options);
            return problems.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(problems.Select(p => $"LoRA model '{name}': {p}"));
        }
    }
}
