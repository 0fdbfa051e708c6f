using System.Diagnostics;
using System.Diagnostics.Metrics;
using LiveLearning.Lora;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using NUnit.Framework;

namespace LiveLearning.Tests.Live;

/// <summary>The live model as a user meets it: through DI, a host, a Microsoft.Extensions.AI pipeline, metrics and logs.</summary>
[TestFixture]
[NonParallelizable] // listens to process-wide meters and activity sources
public sealed class LiveModelHostingTests
{
    [Test]
    public async Task TheReadmeDependencyInjectionExampleRunsAsWritten()
    {
        string modelDirectory = LiveTestKit.ModelDirectory;

        // README DI example begins
        var services = new ServiceCollection();
        services.AddLiveLearning()
            .AddLoraModel("assistant", o =>
            {
                o.ModelDirectory = modelDirectory;
                o.Lora = new LoraConfig { Rank = 8, Alpha = 16, TargetModules = ["all-linear"] };
                o.Live.Learner.Optimizer = new OptimizerOptions { LearningRate = 1e-2f };
                o.Live.Learner.StepsPerItem = 30;
            });
        await using ServiceProvider provider = services.BuildServiceProvider();
        ILiveModel model = provider.GetRequiredKeyedService<ILiveModel>("assistant");

        LiveCompletion answer = await model.CompleteAsync("The capital of France is", new GenerationOptions { MaxTokens = 8 });
        await model.LearnAsync(Feedback.Correction(answer.ResponseId, " Paris."));
        await model.WaitForIdleAsync();
        Console.WriteLine((await model.CompleteAsync("The capital of France is")).Text);   // " Paris."
        // README DI example ends

        LiveCompletion learned = await model.CompleteAsync("The capital of France is", new GenerationOptions { MaxTokens = 16 });
        TestContext.Out.WriteLine($"{learned.CompletionTokens} tokens, {learned.FinishReason}: {learned.Text}");
        Assert.That(learned.Text, Is.EqualTo(" Paris."));
        Assert.That(provider.GetRequiredService<ILiveModel>(), Is.SameAs(model), "the only model is also the unkeyed default");
        Assert.That(provider.GetRequiredKeyedService<IChatClient>("assistant"), Is.SameAs(model));
        Assert.That(model.Name, Is.EqualTo("assistant"));
    }

    [Test]
    public async Task TheLiveModelWorksInsideAChatClientPipelineAndItsResponseIdsTakeFeedback()
    {
        await using LiveModel live = LiveTestKit.Create(o => o.Learner.StepsPerItem = 20);
        int calls = 0;
        IChatClient client = new ChatClientBuilder(live)
            .Use(async (messages, options, next, cancellationToken) =>
            {
                Interlocked.Increment(ref calls);
                await next(messages, options, cancellationToken);
            })
            .Build();

        var options = new ChatOptions { MaxOutputTokens = 10, Temperature = 0, StopSequences = ["\n\n"], Seed = 5 };
        ChatResponse response = await client.GetResponseAsync([new ChatMessage(ChatRole.User, "Capital of France?")], options);
        Assert.That(calls, Is.EqualTo(1), "the middleware ran");
        Assert.That(response.ResponseId, Does.StartWith("resp_"));
        Assert.That(response.ModelId, Is.EqualTo(live.Name));
        Assert.That(response.Usage!.OutputTokenCount, Is.InRange(1, 10));
        Assert.That(response.Usage.InputTokenCount, Is.GreaterThan(0));
        Assert.That(response.AdditionalProperties![LiveModel.VersionProperty], Is.EqualTo(live.Version.Id));
        Assert.That(client.GetService<ILiveModel>(), Is.SameAs(live), "GetService reaches the live model through the pipeline");
        Assert.That(client.GetService<ChatClientMetadata>()!.ProviderName, Is.EqualTo("LiveLearning"));

        LearnReceipt receipt = await live.LearnAsync(Feedback.Correction(response.ResponseId!, "Paris."));
        Assert.That(receipt.Accepted, Is.True, receipt.Message);
        await live.WaitForIdleAsync();

        var streamed = new System.Text.StringBuilder();
        ChatFinishReason? finish = null;
        await foreach (ChatResponseUpdate update in client.GetStreamingResponseAsync([new ChatMessage(ChatRole.User, "Capital of France?")], options))
        {
            streamed.Append(update.Text);
            finish ??= update.FinishReason;
        }

        Assert.That(streamed.ToString(), Is.EqualTo("Paris."));
        Assert.That(finish, Is.EqualTo(ChatFinishReason.Stop));
        Assert.That(async () => await client.GetResponseAsync("hi", new ChatOptions { Tools = [AIFunctionFactory.Create(() => 1, "one")] }), Throws.InstanceOf<NotSupportedException>());
    }

    [Test]
    public async Task AHostStartsEveryModelValidatesTheirOptionsAndDrainsThemAtShutdown()
    {
        HostApplicationBuilder builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        var logs = new CapturingLoggerProvider();
        builder.Logging.AddProvider(logs);
        builder.Services.AddLiveLearning(o => o.DefaultModel = "b")
            .AddLoraModel("a", o => o.ModelDirectory = LiveTestKit.ModelDirectory)
            .AddLoraModel("b", o => o.ModelDirectory = LiveTestKit.ModelDirectory);
        using IHost host = builder.Build();
        await host.StartAsync();
        Assert.That(logs.Events.Count(e => e.Id.Id == 1), Is.EqualTo(2), "both models started with the host (event 1)");
        ILiveModel b = host.Services.GetRequiredService<ILiveModel>();
        Assert.That(b.Name, Is.EqualTo("b"));
        b.PauseLearning();
        for (int i = 0; i < 3; i++)
        {
            await b.LearnAsync(new Demonstration { Prompt = $"Item {i}", Completion = " queued" });
        }

        // Still paused: the stop itself drains the queue.
        await host.StopAsync();
        Assert.That(logs.Events.Where(e => e.Id.Id == 13).Select(e => e.Message), Has.Some.Contains("Live model b stopped (Drain)"));
        Assert.That(logs.Events.Count(e => e.Id.Id == 7), Is.GreaterThanOrEqualTo(1), "the queued items were learned and published before the host stopped");
        Assert.That(() => b.GetStatistics(), Throws.InstanceOf<ObjectDisposedException>(), "stopped with the host");
    }

    [Test]
    public void InvalidOptionsFailTheHostAtStartNamingTheOption()
    {
        HostApplicationBuilder builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Services.AddLiveLearning().AddLoraModel("broken", o =>
        {
            o.ModelDirectory = Path.Combine(LiveTestKit.ModelDirectory, "missing");
            o.Live.Learner.MaxBatchItems = 0;
        });
        using IHost host = builder.Build();
        OptionsValidationException? error = Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());
        Assert.That(error!.Message, Does.Contain("ModelDirectory").And.Contain("missing"));
        Assert.That(error.Message, Does.Contain("Live.Learner.MaxBatchItems"));
    }

    [Test]
    public async Task AModelThatDrainsPastTheHostsShutdownTimeoutDoesNotKeepTheOthersRunning()
    {
        // LiveLearningHostedService.StopAsync disposes the models one after the other, each awaited with the host's
        // token: when the first drain outlasts the shutdown timeout, WaitAsync throws and the loop ends, so the models
        // after it are never stopped by the host (and the drains are sequential: the timeout must cover their sum).
        HostApplicationBuilder builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromMilliseconds(300));
        builder.Services.AddLiveLearning()
            .AddLoraModel("slow", o =>
            {
                o.ModelDirectory = LiveTestKit.ModelDirectory;
                o.Live.Learner.StepsPerItem = 300;
            })
            .AddLoraModel("idle", o => o.ModelDirectory = LiveTestKit.ModelDirectory);
        using IHost host = builder.Build();
        await host.StartAsync();
        ILiveModel slow = host.Services.GetRequiredKeyedService<ILiveModel>("slow");
        ILiveModel idle = host.Services.GetRequiredKeyedService<ILiveModel>("idle");
        slow.PauseLearning();
        for (int i = 0; i < 3; i++)
        {
            await slow.LearnAsync(new Demonstration { Prompt = $"Item {i}", Completion = " queued" });
        }

        try
        {
            await host.StopAsync();
        }
        catch (Exception ex) when (ex is OperationCanceledException or AggregateException)
        {
            TestContext.Out.WriteLine($"StopAsync: {ex.GetType().Name}");
        }

        Assert.That(() => idle.GetStatistics(), Throws.InstanceOf<ObjectDisposedException>(), "the idle model was stopped with the host");
    }

    [Test]
    public async Task ADefaultModelThatNamesNoModelFailsTheHostAtStart()
    {
        // LiveLearningOptions.DefaultModel is checked only when the unkeyed ILiveModel is first resolved (the first
        // request), not at host start with the other options.
        HostApplicationBuilder builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Services.AddLiveLearning(o => o.DefaultModel = "asistant")
            .AddLoraModel("assistant", o => o.ModelDirectory = LiveTestKit.ModelDirectory);
        using IHost host = builder.Build();
        Exception? error = null;
        try
        {
            await host.StartAsync();
        }
        catch (OptionsValidationException ex)
        {
            error = ex;
        }
        finally
        {
            await host.StopAsync();
        }

        Assert.That(error, Is.InstanceOf<OptionsValidationException>().With.Message.Contains("DefaultModel"), "the host refuses to start");
    }

    [Test]
    public void InvalidLoraSettingsFailTheHostAtStartNamingTheOption()
    {
        // LoraModelOptions validation checks only Lora.Rank; every other LoraConfig setting (dropout, alpha, LoRA+,
        // target modules) passes validation and fails later, in the model factory, after the base model was loaded,
        // as an ArgumentOutOfRangeException naming "Dropout" rather than an OptionsValidationException naming "Lora.Dropout".
        HostApplicationBuilder builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { DisableDefaults = true });
        builder.Services.AddLiveLearning().AddLoraModel("broken", o =>
        {
            o.ModelDirectory = LiveTestKit.ModelDirectory;
            o.Lora = LiveTestKit.Lora with { Dropout = 1.5 };
        });
        using IHost host = builder.Build();
        OptionsValidationException? error = Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());
        Assert.That(error, Is.Not.Null.And.Message.Contains("Lora.Dropout"));
    }

    [Test]
    public async Task WithoutAHostTheModelStartsOnFirstUseAndTheContainerDrainsItOnDisposal()
    {
        var services = new ServiceCollection();
        var ledger = new Governance.InMemoryLedger();
        services.AddSingleton<Governance.ILearningLedger>(ledger);
        services.AddLiveLearning().AddLoraModel("solo", o => o.ModelDirectory = LiveTestKit.ModelDirectory);
        ILiveModel model;
        await using (ServiceProvider provider = services.BuildServiceProvider())
        {
            model = provider.GetRequiredService<ILiveModel>();
            model.PauseLearning();
            await model.LearnAsync(new Demonstration { Prompt = "Hello", Completion = " world" });
            await model.LearnAsync(new Demonstration { Prompt = "Good", Completion = " bye" });
            Assert.That(ledger.Entries.Count(e => e.Event == Governance.LedgerEvent.Step), Is.Zero, "nothing learned while paused");
        }

        // Disposing the container drained the paused queue: both items were learned and published before it returned.
        Assert.That(ledger.Entries.Where(e => e.Event == Governance.LedgerEvent.Step).SelectMany(e => e.Items!), Is.EquivalentTo(new long[] { 1, 2 }));
        Assert.That(ledger.Entries.Count(e => e.Event == Governance.LedgerEvent.Published), Is.GreaterThanOrEqualTo(1));
        Assert.That(() => model.GetStatistics(), Throws.InstanceOf<ObjectDisposedException>());
    }

    [Test]
    public async Task MetricsSpansAndLogEventsDescribeTheLoop()
    {
        var measurements = new List<(string Name, double Value, string? Scope)>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == "LiveLearning")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        void Record(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            string? scope = null;
            foreach (KeyValuePair<string, object?> tag in tags)
            {
                scope = tag.Key == "livelearning.scope" ? tag.Value as string : scope;
            }

            lock (measurements)
            {
                measurements.Add((instrument.Name, value, scope));
            }
        }

        listener.SetMeasurementEventCallback<long>((i, v, t, _) => Record(i, v, t));
        listener.SetMeasurementEventCallback<int>((i, v, t, _) => Record(i, v, t));
        listener.SetMeasurementEventCallback<double>((i, v, t, _) => Record(i, v, t));
        listener.Start();
        var spans = new List<Activity>();
        using var activities = new ActivityListener
        {
            ShouldListenTo = source => source.Name == "LiveLearning",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = a =>
            {
                lock (spans)
                {
                    spans.Add(a);
                }
            },
        };
        ActivitySource.AddActivityListener(activities);
        var logs = new CapturingLoggerProvider();

        await using (LiveModel model = LiveTestKit.Create(o => o.Name = "metered", new LiveModelServices { LoggerFactory = logs }))
        {
            await model.CompleteAsync("Hi", new GenerationOptions { MaxTokens = 2 });
            await model.LearnAsync(new Demonstration { Prompt = "Hi", Completion = " there" });
            await model.LearnAsync(new Demonstration { Prompt = "", Completion = " there" });
            await model.WaitForIdleAsync();
            listener.RecordObservableInstruments();
        }

        string[] names = [.. measurements.Select(m => m.Name).Distinct()];
        Assert.That(names, Is.SupersetOf(new[]
        {
            "livelearning.feedback.received", "livelearning.feedback.accepted", "livelearning.feedback.rejected", "livelearning.learner.steps",
            "livelearning.learner.step.duration", "livelearning.learner.loss", "livelearning.versions.published", "livelearning.responses",
            "livelearning.progressive.loss", "livelearning.queue.depth", "livelearning.version",
        }));
        Assert.That(measurements.Where(m => m.Name == "livelearning.feedback.received").Sum(m => m.Value), Is.EqualTo(2));
        Assert.That(measurements.Where(m => m.Name == "livelearning.feedback.rejected").Sum(m => m.Value), Is.EqualTo(1));
        Assert.That(measurements.Where(m => m.Name == "livelearning.version").Select(m => m.Value), Has.Some.EqualTo(2), "the version gauge reports the published number");
        Assert.That(measurements.Select(m => m.Scope).Distinct(), Is.EqualTo(new[] { "default" }));
        Activity step = spans.Single(a => a.OperationName == "livelearning.learn_step");
        Assert.That(step.GetTagItem("livelearning.scope"), Is.EqualTo("default"));
        Assert.That(step.GetTagItem("livelearning.items"), Is.EqualTo(1));
        Assert.That(logs.Events.Select(e => e.Id.Id).Distinct(), Is.SupersetOf(new[] { 1, 2, 3, 4, 5, 7, 13 }), "started, scope created, accepted, rejected, step, published, stopped");
    }
}
