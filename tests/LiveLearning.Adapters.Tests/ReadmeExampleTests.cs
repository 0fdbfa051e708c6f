// The README's quick start, verbatim between the markers: if this stops compiling or passing, the README is wrong.
using LiveLearning.Lora;
using LiveLearning.Models;
using LiveLearning.Testing;
using LiveLearning.Tokenization;
using Microsoft.Extensions.AI;
using NUnit.Framework;

namespace LiveLearning.Tests;

[TestFixture]
public sealed class ReadmeExampleTests
{
    [Test]
    public async Task TheQuickStartRunsAsWritten()
    {
        string root = Path.Combine(Path.GetTempPath(), "livelearning-tests", Guid.NewGuid().ToString("N"));
        string modelDirectory = Path.Combine(root, "model");
        string adapterDirectory = Path.Combine(root, "adapter");
        ModelWriter.WriteRandom(modelDirectory, new ModelSpec { HiddenSize = 32, IntermediateSize = 64, Layers = 2, Heads = 4, KvHeads = 2, VocabSize = 350, Seed = 5 });
        string fixtures = Path.Combine(TestContext.CurrentContext.TestDirectory, "Tokenization", "Fixtures");
        File.Copy(Path.Combine(fixtures, "smollm2.tokenizer.json"), Path.Combine(modelDirectory, "tokenizer.json"));
        File.Copy(Path.Combine(fixtures, "chat-smollm2.tokenizer_config.json"), Path.Combine(modelDirectory, "tokenizer_config.json"));
        try
        {
            // README quick start begins

            using var model = LlamaModel.Load(modelDirectory, new ModelOptions { ThreadCount = 2 });
            Tokenizer tokenizer = model.Tokenizer!;

            // Chat: the model's own template (ChatML, Llama-3, Zephyr), streamed as text.
            await foreach (string piece in model.GenerateChatAsync(
                [new ChatMessage(ChatRole.User, "Name three prime numbers.")],
                new GenerationOptions { MaxTokens = 64, Temperature = 0.7f, TopP = 0.9f, Seed = 42 }))
            {
                Console.Write(piece);
            }

            // Low level: token ids, a KV cache per sequence, logits into your own buffer.
            KvCache cache = model.CreateCache();
            float[] logits = new float[model.Config.VocabSize];
            model.ForwardInto(tokenizer.Encode("The capital of France is"), logits, cache);

            // Log-likelihood of a completion (what an evaluator needs).
            IReadOnlyList<int> prompt = tokenizer.Encode("Two plus two is");
            IReadOnlyList<int> completion = tokenizer.Encode(" four", addSpecialTokens: false);
            CompletionScore score = model.Score(prompt, completion);
            Console.WriteLine($"log p(completion | prompt) = {score.LogLikelihood:F3}");

            // LoRA: train an adapter online (loss on the completion only), publish immutable versions, save it as PEFT.
            int[] ids = [.. prompt, .. completion];
            int[] labels = [.. prompt.Select(_ => -100), .. completion];
            var config = new LoraConfig { Rank = 8, Alpha = 16, TargetModules = ["q_proj", "v_proj"], Seed = 1 };
            var training = new LoraTrainingState(LoraAdapter.CreateFresh(config, model));   // B = 0: changes nothing yet
            float loss = training.TrainStep(model, [new TrainingSequence(ids, labels)], new OptimizerOptions { LearningRate = 1e-3f, MaxGradNorm = 1.0 });
            LoraAdapter version = training.Publish();   // an immutable value; a pass keeps the version it started with
            await foreach (string piece in model.GenerateTextAsync("Two plus two is", new GenerationOptions { MaxTokens = 8 }, version))
            {
                Console.Write(piece);
            }

            version.SavePeft(adapterDirectory);          // adapter_config.json + adapter_model.safetensors
            // README quick start ends

            Assert.That(float.IsFinite(loss), Is.True);
            Assert.That(double.IsFinite(score.LogLikelihood) && score.LogLikelihood < 0, Is.True);
            Assert.That(File.Exists(Path.Combine(adapterDirectory, "adapter_model.safetensors")), Is.True);
            Assert.That(LoraAdapter.LoadPeft(adapterDirectory, model).ParameterCount, Is.EqualTo(version.ParameterCount));
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [TestCase("engine", "ReadmeExampleTests.cs", "README quick start")]
    [TestCase("live-di", "Live/LiveModelHostingTests.cs", "README DI example")]
    [TestCase("full-training", "Models/FullParameterTrainingTests.cs", "README full training example")]
    public void TheReadmeShowsExactlyTheCodeTheTestsRun(string snippet, string testFile, string marker)
    {
        string? dir = TestContext.CurrentContext.TestDirectory;
        while (dir is not null && !File.Exists(Path.Combine(dir, "LiveLearning.sln")))
        {
            dir = Path.GetDirectoryName(dir);
        }

        Assume.That(dir, Is.Not.Null, "the repository root is not above the test output");
        string[] readme = File.ReadAllLines(Path.Combine(dir!, "README.md"));
        string[] test = File.ReadAllLines(Path.Combine(dir!, "tests", "LiveLearning.Adapters.Tests", testFile));
        int at = Array.FindIndex(readme, l => l == $"<!-- snippet: {snippet} -->");
        Assert.That(at, Is.GreaterThanOrEqualTo(0), $"the README has no '{snippet}' snippet marker");
        int start = Array.FindIndex(readme, at, l => l == "```csharp") + 1;
        int end = Array.FindIndex(readme, start, l => l == "```");
        string[] shown = readme[start..end].Where(l => !(l.StartsWith("using ", StringComparison.Ordinal) && !l.Contains('=', StringComparison.Ordinal))).Select(l => l.Trim()).Where(l => l.Length > 0).ToArray();
        int from = Array.FindIndex(test, l => l.Trim() == $"// {marker} begins") + 1;
        int to = Array.FindIndex(test, l => l.Trim() == $"// {marker} ends");
        Assert.That(from, Is.GreaterThan(0), $"{testFile} has no '{marker}' markers");
        string[] run = test[from..to].Select(l => l.Trim()).Where(l => l.Length > 0).ToArray();
        Assert.That(run, Is.EqualTo(shown));
    }
}
