using LiveLearning.Demo;

// dotnet run --project samples/LiveLearning.Demo [-- --model <hf-model-dir>] [--data <dir>] [--verbose]
string? model = null;
string data = Path.Combine(Path.GetTempPath(), "livelearning-demo");
for (int i = 0; i < args.Length; i++)
{
    switch (args[i])
    {
        case "--model" when i + 1 < args.Length:
            model = args[++i];
            break;
        case "--data" when i + 1 < args.Length:
            data = args[++i];
            break;
        case "--verbose":
            break;
        default:
            Console.Error.WriteLine($"unknown argument '{args[i]}'. Usage: [--model <hf-model-dir>] [--data <dir>] [--verbose]");
            return 2;
    }
}

try
{
    return await DemoRunner.RunAsync(new DemoOptions { ModelDirectory = model, DataDirectory = data }, Console.Out);
}
catch (Exception ex) when (!args.Contains("--verbose"))
{
    // One line, no stack trace: a bad --model directory, a damaged file, a full disk.
    Console.Error.WriteLine($"demo: {ex.GetType().Name}: {ex.Message}");
    return 1;
}
