using System.Diagnostics.CodeAnalysis;
using System.Diagnostics.Metrics;
using LiveLearning.Backends;
using LiveLearning.Governance;
using LiveLearning.Storage;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace LiveLearning;

/// <summary>Registers live models in a service collection.</summary>
public static class LiveLearningServiceCollectionExtensions
{
    /// <summary>
    /// Adds the live-learning services: the default journal, snapshot store, evaluator and ledger (each replaceable),
    /// <see cref="TimeProvider.System"/> unless one is registered, and a hosted service that starts every model with the
    /// host and drains it at shutdown. Add models with the returned builder.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <param name="configure">Options shared by every model (e.g. the default model's name), or <see langword="null"/>.</param>
    /// <returns>The builder.</returns>
    public static LiveLearningBuilder AddLiveLearning(this IServiceCollection services, Action<LiveLearningOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.AddOptions();
        OptionsBuilder<LiveLearningOptions> options = services.AddOptions<LiveLearningOptions>();
        if (configure is not null)
        {
            options.Configure(configure);
        }

        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<IFeedbackJournal, InMemoryFeedbackJournal>();
        services.TryAddSingleton<ISnapshotStore, InMemorySnapshotStore>();
        services.TryAddSingleton<IVersionEvaluator, PromoteAlways>();
        services.TryAddSingleton<ILearningLedger, InMemoryLedger>();
        services.TryAddSingleton<LiveModelRegistry>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<LiveModelOptions>, LiveModelOptionsValidator>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<LiveLearningOptions>, LiveLearningOptionsValidator>());
        options.ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, LiveLearningHostedService>());
        services.TryAddSingleton(sp => sp.GetRequiredService<LiveModelRegistry>().Default(sp));
        services.TryAddSingleton<IChatClient>(sp => sp.GetRequiredService<ILiveModel>());
        return new LiveLearningBuilder(services);
    }
}

/// <summary>Options shared by every live model of a container.</summary>
public sealed class LiveLearningOptions
{
    /// <summary>The model resolved as the unkeyed <see cref="ILiveModel"/> and <see cref="IChatClient"/>; <see langword="null"/> for the first one added.</summary>
    public string? DefaultModel { get; set; }
}

/// <summary>Adds live models and the collaborators they share to a service collection.</summary>
public sealed class LiveLearningBuilder
{
    internal LiveLearningBuilder(IServiceCollection services) => Services = services;

    /// <summary>The service collection.</summary>
    public IServiceCollection Services { get; }

    /// <summary>
    /// Adds a live model over a backend: a keyed singleton <see cref="ILiveModel"/> and <see cref="IChatClient"/> under
    /// <paramref name="name"/>, created on first use or at host start, with its options validated at start.
    /// </summary>
    /// <param name="name">The model's name (its DI key).</param>
    /// <param name="backend">Creates the backend (it is owned and disposed by the model).</param>
    /// <param name="configure">Configures the model's options, or <see langword="null"/> for defaults.</param>
    /// <returns>This builder.</returns>
    /// <exception cref="ArgumentException">A model of that name was added already.</exception>
    public LiveLearningBuilder AddModel(string name, Func<IServiceProvider, ILearningBackend> backend, Action<LiveModelOptions>? configure = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(backend);
        OptionsBuilder<LiveModelOptions> options = Services.AddOptions<LiveModelOptions>(name).Configure(o => o.Name = name);
        if (configure is not null)
        {
            options.Configure(configure);
        }

        options.ValidateOnStart();
        return AddModel(name, backend, sp => sp.GetRequiredService<IOptionsMonitor<LiveModelOptions>>().Get(name));
    }

    /// <summary>
    /// Adds a live model whose options come from <paramref name="options"/> (e.g. a section of an engine's own options,
    /// validated by that engine's registration); otherwise like <see cref="AddModel(string, Func{IServiceProvider, ILearningBackend}, Action{LiveModelOptions}?)"/>.
    /// </summary>
    /// <param name="name">The model's name (its DI key; it replaces <see cref="LiveModelOptions.Name"/>).</param>
    /// <param name="backend">Creates the backend (it is owned and disposed by the model).</param>
    /// <param name="options">Provides the model's options.</param>
    /// <returns>This builder.</returns>
    /// <exception cref="ArgumentException">A model of that name was added already.</exception>
    public LiveLearningBuilder AddModel(string name, Func<IServiceProvider, ILearningBackend> backend, Func<IServiceProvider, LiveModelOptions> options)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(backend);
        ArgumentNullException.ThrowIfNull(options);
        LiveModelRegistry.Register(Services, name);
        Services.AddKeyedSingleton<ILiveModel>(name, (sp, _) =>
        {
            LiveModelOptions o = options(sp);
            o.Name = name;
            IReadOnlyList<string> problems = o.Validate();
            if (problems.Count > 0)
            {
                throw new OptionsValidationException(name, typeof(LiveModelOptions), problems.Select(p => $"Live model '{name}': {p}"));
            }

            return new LiveModel(backend(sp), o, CreateServices(sp));
        });
        Services.AddKeyedSingleton<IChatClient>(name, (sp, key) => sp.GetRequiredKeyedService<ILiveModel>(key));
        return this;
    }

    /// <summary>Adds a validation rule every model runs on every feedback item (in the order added).</summary>
    /// <typeparam name="TRule">The rule; a singleton resolved from the container.</typeparam>
    /// <returns>This builder.</returns>
    public LiveLearningBuilder AddGateRule<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] TRule>()
        where TRule : class, IFeedbackGate
    {
        Services.AddSingleton<IFeedbackGate, TRule>();
        return this;
    }

    /// <summary>Adds a gate every model runs on every feedback item (in the order added).</summary>
    /// <param name="gate">The gate (shared by every model of the container).</param>
    /// <returns>This builder.</returns>
    public LiveLearningBuilder AddGateRule(IFeedbackGate gate)
    {
        ArgumentNullException.ThrowIfNull(gate);
        Services.AddSingleton(gate);
        return this;
    }

    /// <summary>Adds a rule, with the policy its violations follow, to every model's gate (in the order added).</summary>
    /// <param name="rule">The rule, e.g. <see cref="SchemaRule"/>, <see cref="DuplicateRule"/>, <see cref="TokenBudgetRule"/>.</param>
    /// <param name="policy">What a violation does. Default: the item is dropped.</param>
    /// <returns>This builder.</returns>
    public LiveLearningBuilder AddGateRule(IFeedbackRule rule, RulePolicy policy = RulePolicy.Drop)
    {
        ArgumentNullException.ThrowIfNull(rule);
        return AddGateRule(new PolicyGate(rule, policy));
    }

    /// <summary>Adds a rule built from the container (e.g. one that needs its <see cref="TimeProvider"/>), with its policy.</summary>
    /// <param name="rule">Builds the rule, once.</param>
    /// <param name="policy">What a violation does. Default: the item is dropped.</param>
    /// <returns>This builder.</returns>
    public LiveLearningBuilder AddGateRule(Func<IServiceProvider, IFeedbackRule> rule, RulePolicy policy = RulePolicy.Drop)
    {
        ArgumentNullException.ThrowIfNull(rule);
        if (!Enum.IsDefined(policy))
        {
            throw new ArgumentOutOfRangeException(nameof(policy), policy, "Unknown rule policy.");
        }

        Services.AddSingleton<IFeedbackGate>(sp => new PolicyGate(rule(sp), policy));
        return this;
    }

    /// <summary>Adds a rule given as a delegate that says what is wrong with an item (or returns null), with its policy.</summary>
    /// <param name="name">The rule's name (receipts and the ledger name it).</param>
    /// <param name="check">The check (thread-safe).</param>
    /// <param name="policy">What a violation does. Default: the item is dropped.</param>
    /// <returns>This builder.</returns>
    public LiveLearningBuilder AddGateRule(string name, Func<GateContext, string?> check, RulePolicy policy = RulePolicy.Drop) =>
        AddGateRule(new DelegateRule(name, check), policy);

    /// <summary>Replaces the feedback journal.</summary>
    /// <typeparam name="TJournal">The journal; a singleton.</typeparam>
    /// <returns>This builder.</returns>
    public LiveLearningBuilder UseJournal<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] TJournal>()
        where TJournal : class, IFeedbackJournal
    {
        Services.Replace(ServiceDescriptor.Singleton<IFeedbackJournal, TJournal>());
        return this;
    }

    /// <summary>
    /// Uses the durable <see cref="FileFeedbackJournal"/> (created on first use, disposed with the container after the
    /// models): <c>LearnAsync</c> returns once its record is durable, and a restart recovers what was acknowledged.
    /// </summary>
    /// <param name="options">Directory, flush policy, segment size, optional key.</param>
    /// <returns>This builder.</returns>
    public LiveLearningBuilder UseFileJournal(FileFeedbackJournalOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrEmpty(options.Directory);
        Services.Replace(ServiceDescriptor.Singleton<IFeedbackJournal>(_ => new FileFeedbackJournal(options)));
        return this;
    }

    /// <summary>Uses the durable <see cref="FileSnapshotStore"/> in <paramref name="directory"/> (optionally sealed with <paramref name="key"/>).</summary>
    /// <param name="directory">The store's root.</param>
    /// <param name="key">Encrypts snapshots at rest; the caller keeps ownership of it.</param>
    /// <returns>This builder.</returns>
    public LiveLearningBuilder UseFileSnapshotStore(string directory, StorageKey? key = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        Services.Replace(ServiceDescriptor.Singleton<ISnapshotStore>(_ => new FileSnapshotStore(directory, key)));
        return this;
    }

    /// <summary>Replaces the snapshot store.</summary>
    /// <typeparam name="TStore">The store; a singleton.</typeparam>
    /// <returns>This builder.</returns>
    public LiveLearningBuilder UseSnapshotStore<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] TStore>()
        where TStore : class, ISnapshotStore
    {
        Services.Replace(ServiceDescriptor.Singleton<ISnapshotStore, TStore>());
        return this;
    }

    /// <summary>Replaces the version evaluator (the promotion rule).</summary>
    /// <typeparam name="TEvaluator">The evaluator; a singleton.</typeparam>
    /// <returns>This builder.</returns>
    public LiveLearningBuilder UseEvaluator<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] TEvaluator>()
        where TEvaluator : class, IVersionEvaluator
    {
        Services.Replace(ServiceDescriptor.Singleton<IVersionEvaluator, TEvaluator>());
        return this;
    }

    /// <summary>Replaces the version evaluator with an instance (e.g. a <see cref="RegressionEvaluator"/> with its guard and probe sets).</summary>
    /// <param name="evaluator">The evaluator, shared by every model of the container.</param>
    /// <returns>This builder.</returns>
    public LiveLearningBuilder UseEvaluator(IVersionEvaluator evaluator)
    {
        ArgumentNullException.ThrowIfNull(evaluator);
        Services.Replace(ServiceDescriptor.Singleton(evaluator));
        return this;
    }

    /// <summary>Guards promotions with a <see cref="RegressionEvaluator"/>: a candidate that fails the guard set or the probe set is refused.</summary>
    /// <param name="options">The guard and probe sets and tolerances.</param>
    /// <returns>This builder.</returns>
    /// <exception cref="ArgumentException">A setting or example is invalid.</exception>
    public LiveLearningBuilder UseRegressionEvaluator(RegressionEvaluatorOptions options) => UseEvaluator(new RegressionEvaluator(options));

    /// <summary>Replaces the audit ledger.</summary>
    /// <typeparam name="TLedger">The ledger; a singleton.</typeparam>
    /// <returns>This builder.</returns>
    public LiveLearningBuilder UseLedger<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] TLedger>()
        where TLedger : class, ILearningLedger
    {
        Services.Replace(ServiceDescriptor.Singleton<ILearningLedger, TLedger>());
        return this;
    }

    private static LiveModelServices CreateServices(IServiceProvider sp) => new()
    {
        Time = sp.GetRequiredService<TimeProvider>(),
        LoggerFactory = sp.GetService<ILoggerFactory>(),
        MeterFactory = sp.GetService<IMeterFactory>(),
        Gates = [.. sp.GetServices<IFeedbackGate>()],
        Journal = sp.GetRequiredService<IFeedbackJournal>(),
        Snapshots = sp.GetRequiredService<ISnapshotStore>(),
        Evaluator = sp.GetRequiredService<IVersionEvaluator>(),
        Ledger = sp.GetRequiredService<ILearningLedger>(),
    };
}

/// <summary>Validates a live model's options at start; every problem names its option.</summary>
internal sealed class LiveModelOptionsValidator : IValidateOptions<LiveModelOptions>
{
    public ValidateOptionsResult Validate(string? name, LiveModelOptions options)
    {
        IReadOnlyList<string> problems = options.Validate();
        return problems.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(problems.Select(p => $"Live model '{name}': {p}"));
    }
}

/// <summary>Checks at start that <see cref="LiveLearningOptions.DefaultModel"/> names a model that was added.</summary>
internal sealed class LiveLearningOptionsValidator(IEnumerable<LiveModelRegistration> registrations) : IValidateOptions<LiveLearningOptions>
{
    public ValidateOptionsResult Validate(string? name, LiveLearningOptions options)
    {
        string[] names = [.. registrations.Select(r => r.Name)];
        return options.DefaultModel is null || names.Contains(options.DefaultModel)
            ? ValidateOptionsResult.Success
            : ValidateOptionsResult.Fail($"LiveLearningOptions.DefaultModel '{options.DefaultModel}' names no added model (added: {string.Join(", ", names)}).");
    }
}

/// <summary>The names of the models added, for the unkeyed default and the hosted service.</summary>
internal sealed class LiveModelRegistry(IOptions<LiveLearningOptions> options, IEnumerable<LiveModelRegistration> registrations)
{
    public IReadOnlyList<string> Names { get; } = [.. registrations.Select(r => r.Name)];

    public static void Register(IServiceCollection services, string name)
    {
        if (services.Any(d => d.ServiceType == typeof(LiveModelRegistration) && d.ImplementationInstance is LiveModelRegistration r && r.Name == name))
        {
            throw new ArgumentException($"A live model named '{name}' was added already.", nameof(name));
        }

        services.AddSingleton(new LiveModelRegistration(name));
    }

    public ILiveModel Default(IServiceProvider services)
    {
        string name = options.Value.DefaultModel ?? (Names.Count > 0 ? Names[0] : throw new InvalidOperationException("No live model was added: call AddLoraModel (or AddModel) on the AddLiveLearning builder."));
        if (!Names.Contains(name))
        {
            throw new InvalidOperationException($"LiveLearningOptions.DefaultModel '{name}' names no added model (added: {string.Join(", ", Names)}).");
        }

        return services.GetRequiredKeyedService<ILiveModel>(name);
    }
}

/// <summary>One added model's name.</summary>
internal sealed record LiveModelRegistration(string Name);

/// <summary>Starts every live model with the host (loading it, starting its learners) and drains them at shutdown.</summary>
internal sealed class LiveLearningHostedService(IServiceProvider services, LiveModelRegistry registry) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        foreach (string name in registry.Names)
        {
            cancellationToken.ThrowIfCancellationRequested();
            services.GetRequiredKeyedService<ILiveModel>(name);
        }

        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        // Every model drains at once (not one after another); if the host's shutdown timeout fires first, every model
        // stops between steps instead, and the stop still waits for them to end.
        ILiveModel[] models = [.. registry.Names.Select(n => services.GetRequiredKeyedService<ILiveModel>(n))];
        Task all = Task.WhenAll(models.Select(m => m.DisposeAsync().AsTask()));
        try
        {
            await all.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            foreach (LiveModel model in models.OfType<LiveModel>())
            {
                model.StopLearningNow();
            }

            await all.ConfigureAwait(false);
        }
    }
}
