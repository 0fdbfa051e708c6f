using System.Collections.Concurrent;
using System.Security.Claims;
using System.Text.Encodings.Web;
using System.Text.Json;
using LiveLearning.Governance;
using LiveLearning.Storage;
using LiveLearning.Testing;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;

namespace LiveLearning.Web;

/// <summary>Settings of the web host.</summary>
public sealed record WebHostOptions
{
    /// <summary>A Hugging Face model directory, or null to write the small demo model into the data directory.</summary>
    public string? ModelDirectory { get; init; }

    /// <summary>Where the journal, snapshots and ledger live.</summary>
    public required string DataDirectory { get; init; }

    /// <summary>API keys and the user each one authenticates (user ids: lower-case letters, digits, '-').</summary>
    public required IReadOnlyDictionary<string, string> ApiKeys { get; init; }

    /// <summary>The address to listen on (port 0: any free port).</summary>
    public string Url { get; init; } = "http://127.0.0.1:5080";
}

/// <summary>
/// A web host over one live model: each authenticated user gets a scope of their own over the shared base ("user-"
/// + id), and every endpoint works on the caller's scope only — a user can neither read nor teach another's.
/// </summary>
public static class WebHost
{
    internal const string Organisation = "default";
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web) { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping, NumberHandling = System.Text.Json.Serialization.JsonNumberHandling.AllowNamedFloatingPointLiterals };

    /// <summary>Builds the application (not started).</summary>
    public static WebApplication Build(WebHostOptions options)
    {
        foreach (string user in options.ApiKeys.Values.Distinct(StringComparer.Ordinal))
        {
            if (!ScopeNames.IsValid(UserScopes.ScopeOf(user)))
            {
                throw new ArgumentException($"User id '{user}' cannot name a scope ('{UserScopes.ScopeOf(user)}' breaks the rule: {ScopeNames.Rule}).", nameof(options));
            }
        }

        string data = Path.GetFullPath(options.DataDirectory);
        string model = options.ModelDirectory ?? Path.Combine(data, "model");
        bool demoModel = options.ModelDirectory is null;
        if (demoModel)
        {
            DemoModel.Ensure(model);
        }

        WebApplicationBuilder builder = WebApplication.CreateBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory, WebRootPath = Path.Combine(AppContext.BaseDirectory, "wwwroot") });
        builder.WebHost.UseUrls(options.Url);
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.Services.AddSingleton(new ApiKeys(options.ApiKeys));
        builder.Services.AddAuthentication(ApiKeyHandler.SchemeName).AddScheme<AuthenticationSchemeOptions, ApiKeyHandler>(ApiKeyHandler.SchemeName, null);
        builder.Services.AddAuthorization();
        builder.Services.AddSingleton<UserScopes>();
        builder.Services.AddLiveLearning()
            .UseFileJournal(new FileFeedbackJournalOptions { Directory = Path.Combine(data, "journal") })
            .UseFileSnapshotStore(Path.Combine(data, "snapshots"))
            .UseSqliteLedger(Path.Combine(data, "ledger.db"))
            .AddLoraModel(Organisation, o =>
            {
                o.ModelDirectory = model;
                if (demoModel)
                {
                    DemoModel.Configure(o);
                }
            });

        WebApplication app = builder.Build();
        app.UseDefaultFiles();
        app.UseStaticFiles();
        app.UseAuthentication();
        app.UseAuthorization();
        RouteGroupBuilder api = app.MapGroup("/api").RequireAuthorization();
        Map(api);
        return app;
    }

    private static void Map(RouteGroupBuilder api)
    {
        api.MapGet("/me", (ClaimsPrincipal user, UserScopes scopes) => Results.Json(new { user = user.Identity!.Name, scope = scopes.For(user) }, Json));

        // Completions stream as server-sent events: "token" events, then one "done" with the response id and version.
        api.MapPost("/complete", async (CompleteRequest request, ClaimsPrincipal user, UserScopes scopes, ILiveModel model, HttpContext http, CancellationToken cancellationToken) =>
        {
            if (string.IsNullOrWhiteSpace(request.Prompt))
            {
                return Results.BadRequest(new { error = "prompt is required" });
            }

            string scope = scopes.For(user);
            http.Response.ContentType = "text/event-stream";
            http.Response.Headers.CacheControl = "no-cache";
            string? responseId = null;
            string? version = null;
            await foreach (LiveCompletionUpdate update in model.StreamAsync(request.Prompt, new GenerationOptions { MaxTokens = Math.Clamp(request.MaxTokens ?? 32, 1, 256) }, scope, cancellationToken))
            {
                (responseId, version) = (update.ResponseId, update.Version.Id);
                await Event(http, "token", new { text = update.Text }, cancellationToken);
            }

            await Event(http, "done", new { responseId, version }, cancellationToken);
            return Results.Empty;
        });

        api.MapPost("/feedback", async (FeedbackRequest request, ClaimsPrincipal user, UserScopes scopes, ILiveModel model, CancellationToken cancellationToken) =>
        {
            string scope = scopes.For(user);
            if (request.Scope is not null && request.Scope != scope)
            {
                return Results.Json(new { error = $"you may teach only your own scope ({scope})" }, Json, statusCode: StatusCodes.Status403Forbidden);
            }

            Feedback? item = request.Kind switch
            {
                "good" or "bad" when request.ResponseId is not null => new Rating { ResponseId = request.ResponseId, Positive = request.Kind == "good" },
                "correct" when request.ResponseId is not null && request.Completion is not null => Feedback.Correction(request.ResponseId, request.Completion),
                "demonstration" when request.Prompt is not null && request.Completion is not null => new Demonstration { Prompt = request.Prompt, Completion = request.Completion },
                _ => null,
            };
            if (item is null)
            {
                return Results.BadRequest(new { error = "kind must be good, bad or correct (with responseId), or demonstration (with prompt and completion)" });
            }

            try
            {
                LearnReceipt receipt = await model.LearnAsync(item with { Scope = scope, Source = user.Identity!.Name! }, cancellationToken);
                return receipt.Reason is RejectionReason.ResponseScope or RejectionReason.UnknownResponse
                    ? Results.Json(new { error = "no such response of yours" }, Json, statusCode: StatusCodes.Status404NotFound)
                    : Results.Json(new { receipt.Accepted, receipt.SequenceNumber, receipt.Rule, receipt.Message }, Json);
            }
            catch (KeyNotFoundException ex)
            {
                return Results.Json(new { error = ex.Message }, Json, statusCode: StatusCodes.Status404NotFound);
            }
        });

        api.MapGet("/versions", (ClaimsPrincipal user, UserScopes scopes, ILiveModel model) =>
        {
            string scope = scopes.For(user);
            return Results.Json(model.GetVersionHistory(scope).Select(v => new { v.Id, v.Number, v.CreatedAt, v.Steps, v.Items, v.Reason, current = v.Id == model.GetVersion(scope).Id }), Json);
        });

        api.MapPost("/rollback", async (RollbackRequest request, ClaimsPrincipal user, UserScopes scopes, ILiveModel model, CancellationToken cancellationToken) =>
        {
            string scope = scopes.For(user);
            if (!request.Version.StartsWith(scope + "@", StringComparison.Ordinal))
            {
                return Results.Json(new { error = $"you may roll back only your own scope ({scope})" }, Json, statusCode: StatusCodes.Status403Forbidden);
            }

            await model.WaitForIdleAsync(scope, cancellationToken);
            AdapterVersion v = await model.RollbackAsync(request.Version, "web rollback", user.Identity!.Name, cancellationToken);
            return Results.Json(new { v.Id }, Json);
        });

        api.MapGet("/ledger", async (int? limit, ClaimsPrincipal user, UserScopes scopes, IQueryableLedger ledger, CancellationToken cancellationToken) =>
        {
            var entries = new List<object>();
            await foreach (LedgerEntry e in ledger.QueryAsync(new LedgerQuery { Scope = scopes.For(user) }, cancellationToken))
            {
                entries.Add(new { e.Index, e.At, Event = e.Event.ToString(), e.Message, e.VersionId, e.Actor, e.Loss });
            }

            return Results.Json(entries.TakeLast(Math.Clamp(limit ?? 100, 1, 1000)), Json);
        });

        api.MapGet("/loss", (ClaimsPrincipal user, UserScopes scopes, ILiveModel model) =>
        {
            ScopeStatistics s = model.GetStatistics()[scopes.For(user)];
            return Results.Json(new { version = s.Version.Id, s.Learned, s.Steps, s.LastLoss, progressive = s.Progressive }, Json);
        });
    }

    private static async Task Event(HttpContext http, string name, object data, CancellationToken cancellationToken)
    {
        await http.Response.WriteAsync($"event: {name}\ndata: {JsonSerializer.Serialize(data, Json)}\n\n", cancellationToken);
        await http.Response.Body.FlushAsync(cancellationToken);
    }

    internal sealed record CompleteRequest(string Prompt, int? MaxTokens);

    internal sealed record FeedbackRequest(string Kind, string? ResponseId, string? Prompt, string? Completion, string? Scope);

    internal sealed record RollbackRequest(string Version);
}

/// <summary>The configured API keys.</summary>
internal sealed class ApiKeys(IReadOnlyDictionary<string, string> keys)
{
    public string? UserOf(string key) => keys.TryGetValue(key, out string? user) ? user : null;
}

/// <summary>The API-key scheme: <c>X-Api-Key</c> (or <c>?key=</c> for the page's event stream) names the user.</summary>
internal sealed class ApiKeyHandler(IOptionsMonitor<AuthenticationSchemeOptions> options, ILoggerFactory logger, UrlEncoder encoder, ApiKeys keys)
    : AuthenticationHandler<AuthenticationSchemeOptions>(options, logger, encoder)
{
    public const string SchemeName = "ApiKey";

    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        string? key = Request.Headers["X-Api-Key"].FirstOrDefault() ?? Request.Query["key"].FirstOrDefault();
        if (key is null)
        {
            return Task.FromResult(AuthenticateResult.NoResult());
        }

        string? user = keys.UserOf(key);
        if (user is null)
        {
            return Task.FromResult(AuthenticateResult.Fail("unknown API key"));
        }

        var identity = new ClaimsIdentity([new Claim(ClaimTypes.Name, user)], SchemeName);
        return Task.FromResult(AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(identity), SchemeName)));
    }
}

/// <summary>Each user's scope ("user-" + id, over the organisation's), created on first use.</summary>
internal sealed class UserScopes(ILiveModel model)
{
    private readonly ConcurrentDictionary<string, string> _scopes = new(StringComparer.Ordinal);

    public static string ScopeOf(string user) => "user-" + user;

    public string For(ClaimsPrincipal user) => _scopes.GetOrAdd(user.Identity!.Name!, name =>
    {
        string scope = ScopeOf(name);
        lock (_scopes)
        {
            // Two first requests of one user may race here: the lock makes the second find the scope the first made.
            try
            {
                model.GetVersion(scope);
            }
            catch (ScopeNotFoundException)
            {
                model.CreateScope(new ScopeOptions { Name = scope, Parent = WebHost.Organisation });
            }
        }

        return scope;
    });
}
