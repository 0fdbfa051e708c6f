using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using LiveLearning.BaseModel;
using LiveLearning.Models;
using LiveLearning.Numerics;
using LiveLearning.Tokenization;
using LiveLearning.World;

// Builds the project's own small base model from nothing: a synthetic world, a tokenizer trained on it, a Llama-shaped
// model pretrained on world A with full-parameter training, saved in the Hugging Face layout (BF16 safetensors).
//
//   dotnet run -c Release --project tools/LiveLearning.BaseModel -- build --out models/livelearning-base
//   dotnet run -c Release --project tools/LiveLearning.BaseModel -- eval --model models/livelearning-base
CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
if (args.Length == 0 || args[0] is not ("build" or "eval"))
{
    Console.Error.WriteLine("usage: build --out <dir> [--seed N --epochs N --people N --hidden N --layers N ...] | eval --model <dir>");
    return 2;
}

try
{
    Recipe recipe = Recipe.Parse(args[1..], out string? output, out string? modelDirectory);
    if (args[0] == "eval")
    {
        string dir = modelDirectory ?? throw new ArgumentException("eval needs --model <dir>.");
        JsonObject figures = await BaseModelBuilder.EvaluateAsync(dir, recipe, Console.Out);
        Console.WriteLine(figures.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        return 0;
    }

    await BaseModelBuilder.BuildAsync(recipe, output ?? throw new ArgumentException("build needs --out <dir>."), Console.Out);
    return 0;
}
catch (Exception ex) when (ex is ArgumentException or FormatException or IOException)
{
    Console.Error.WriteLine($"error: {ex.Message}");
    return 2;
}

