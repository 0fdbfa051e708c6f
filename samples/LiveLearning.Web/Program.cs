using LiveLearning.Web;

// dotnet run -c Release --project samples/LiveLearning.Web [-- --model <dir>] [--data <dir>] [--url http://127.0.0.1:5080]
// API keys: LIVELEARNING_API_KEYS="key1=alice;key2=bob" (default: alice-key=alice;bob-key=bob, for trying it out).
string? model = null;
string data = Path.Combine(Path.GetTempPath(), "livelearning-web");
string url = "http://127.0.0.1:5080";
for (int i = 0; i + 1 < args.Length; i += 2)
{
    switch (args[i])
    {
        case "--model": model = args[i + 1]; break;
        case "--data": data = args[i + 1]; break;
        case "--url": url = args[i + 1]; break;
        default:
            Console.Error.WriteLine($"unknown argument '{args[i]}'");
            return 2;
    }
}

string keys = Environment.GetEnvironmentVariable("LIVELEARNING_API_KEYS") ?? "alice-key=alice;bob-key=bob";
var apiKeys = keys.Split(';', StringSplitOptions.RemoveEmptyEntries).Select(p => p.Split('=', 2)).ToDictionary(p => p[0], p => p[1], StringComparer.Ordinal);
WebApplication app = WebHost.Build(new WebHostOptions { ModelDirectory = model, DataDirectory = data, ApiKeys = apiKeys, Url = url });
Console.WriteLine($"LiveLearning web: {url} (data in {data}); API keys for: {string.Join(", ", apiKeys.Values)}");
await app.RunAsync();
return 0;
