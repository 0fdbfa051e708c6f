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
        JsonObject figures = await Evaluate(dir, recipe);
        Console.WriteLine(figures.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        return 0;
    }

    await Build(recipe, output ?? throw new ArgumentException("build needs --out <dir>."));
    return 0;
}
catch (Exception ex) when (ex is ArgumentException or FormatException or IOException)
{
    Console.Error.WriteLine($"error: {ex.Message}");
    return 2;
}

static async Task Build(Recipe recipe, string output)
{
    var clock = Stopwatch.StartNew();
    SyntheticWorld world = SyntheticWorld.Generate(recipe.Seed, recipe.WorldAPeople, recipe.NewPeople, Math.Min(recipe.ChangedFacts, recipe.WorldAPeople));
    string work = Path.GetFullPath(output) + ".work";
    if (Directory.Exists(work))
    {
        Directory.Delete(work, recursive: true);
    }

    Directory.CreateDirectory(work);

    // 1. The tokenizer: trained on world-A text and on the words teaching will use later (new people, all templates),
    // so every name is in its vocabulary. Segmentation only: no fact reaches the model this way.
    string[] special = [Corpus.EndOfText, Corpus.ImStart, Corpus.ImEnd];
    var tokenizerText = new List<string>();
    for (int e = 0; e < 3; e++)
    {
        tokenizerText.AddRange(Corpus.PretrainingEpoch(world, recipe.Seed, -1 - e, recipe.BiographiesPerEpoch));
    }

    var rng = new Random(recipe.Seed);
    tokenizerText.AddRange(world.NewPeople.Select(p => Corpus.Biography(p, rng)));
    tokenizerText.AddRange(Corpus.Questions(world.WorldA.Concat(world.NewPeople).SelectMany(SyntheticWorld.FactsOf), heldOut: true, perFact: 3).Select(q => q.Prompt + q.Answer));
    TrainedBpe bpe = BpeTrainer.Train(tokenizerText, recipe.VocabularySize, special);
    BpeTrainer.Write(work, bpe, eosToken: Corpus.ImEnd);
    Console.WriteLine($"tokenizer: {bpe.Vocabulary.Count} tokens ({bpe.Merges.Count} merges) in {clock.Elapsed.TotalSeconds:F1} s");

    // 2. The architecture, and freshly initialised weights.
    int vocab = (bpe.Vocabulary.Count + 63) / 64 * 64;
    WriteConfig(Path.Combine(work, "config.json"), recipe, vocab, bpe);
    FullParameterTrainer.WriteInitialWeights(work, recipe.Seed);
    using FullParameterTrainer trainer = FullParameterTrainer.Open(work, new FullTrainingOptions { LearningRate = recipe.PeakLearningRate }, new ModelOptions { ThreadCount = recipe.Threads, ContextLength = 1024 });
    LlamaModel model = trainer.Model;
    Tokenizer tokenizer = model.Tokenizer!;
    Console.WriteLine($"model: {trainer.ParameterCount:N0} parameters, {recipe.Layers} layers x {recipe.Hidden}, vocabulary {vocab}");

    // 3. Pretraining on world A: each epoch a fresh draw of biographies and question blocks.
    int documentsPerEpoch = Corpus.PretrainingEpoch(world, recipe.Seed, 0, recipe.BiographiesPerEpoch).Count;
    int stepsPerEpoch = (documentsPerEpoch + recipe.BatchDocuments - 1) / recipe.BatchDocuments;
    int totalSteps = stepsPerEpoch * recipe.Epochs;
    List<QuestionItem> probe = [.. Corpus.Questions(world.WorldA.SelectMany(SyntheticWorld.FactsOf), heldOut: true).Where((_, i) => i % 6 == 0)];
    long tokens = 0;
    int step = 0;
    double lossSum = 0;
    int lossCount = 0;
    var log = new JsonArray();
    var trainClock = Stopwatch.StartNew();
    for (int epoch = 0; epoch < recipe.Epochs; epoch++)
    {
        List<string> documents = Corpus.PretrainingEpoch(world, recipe.Seed, epoch, recipe.BiographiesPerEpoch);
        for (int first = 0; first < documents.Count; first += recipe.BatchDocuments)
        {
            TrainingSequence[] batch = [.. documents.Skip(first).Take(recipe.BatchDocuments).Select(d =>
            {
                int[] ids = [.. tokenizer.Encode(d, addSpecialTokens: false)];
                return new TrainingSequence(ids, ids);
            })];
            tokens += batch.Sum(b => b.InputIds.Count);
            FullTrainingStep result = trainer.Step(batch, recipe.LearningRate(step, totalSteps));
            step++;
            lossSum += result.Loss;
            lossCount++;
        }

        bool last = epoch == recipe.Epochs - 1;
        if (epoch % 5 == 4 || last)
        {
            double em = await Quiz.ExactMatchAsync(model, probe);
            double loss = lossSum / lossCount;
            Console.WriteLine($"epoch {epoch + 1,3}/{recipe.Epochs}  step {step,5}  loss {loss:F4}  held-out-template EM {em,5:F1} %  {tokens / trainClock.Elapsed.TotalSeconds:F0} tokens/s  {clock.Elapsed.TotalMinutes:F1} min");
            log.Add(new JsonObject { ["epoch"] = epoch + 1, ["step"] = step, ["loss"] = Math.Round(loss, 4), ["probe_em_pct"] = Math.Round(em, 1) });
            lossSum = 0;
            lossCount = 0;
        }
    }

    double trainSeconds = trainClock.Elapsed.TotalSeconds;

    // 4. Save in BF16 and measure the saved model (what users get), not the float32 one in memory.
    if (Directory.Exists(output))
    {
        Directory.Delete(output, recursive: true);
    }

    trainer.Save(output, WeightType.BF16);
    JsonObject figures = await Evaluate(output, recipe);
    var card = new JsonObject
    {
        ["name"] = "livelearning-base",
        ["command"] = $"dotnet run -c Release --project tools/LiveLearning.BaseModel -- build --out {output} {recipe.Arguments}",
        ["seed"] = recipe.Seed,
        ["parameters"] = trainer.ParameterCount,
        ["bytes_bf16"] = new FileInfo(Path.Combine(output, "model.safetensors")).Length,
        ["training_tokens"] = tokens,
        ["training_steps"] = step,
        ["training_seconds"] = Math.Round(trainSeconds, 1),
        ["total_seconds"] = Math.Round(clock.Elapsed.TotalSeconds, 1),
        ["threads"] = model.ThreadCount,
        ["processor"] = Environment.ProcessorCount,
        ["figures"] = figures,
        ["log"] = log,
    };
    File.WriteAllText(Path.Combine(output, "training.json"), card.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
    Directory.Delete(work, recursive: true);
    Console.WriteLine(card.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
}

static async Task<JsonObject> Evaluate(string directory, Recipe recipe)
{
    SyntheticWorld world = SyntheticWorld.Generate(recipe.Seed, recipe.WorldAPeople, recipe.NewPeople, Math.Min(recipe.ChangedFacts, recipe.WorldAPeople));
    using LlamaModel model = LlamaModel.Load(directory, new ModelOptions { ThreadCount = recipe.Threads });
    Fact[] worldA = [.. world.WorldA.SelectMany(SyntheticWorld.FactsOf)];
    if (recipe.Show > 0)
    {
        await Quiz.ExactMatchAsync(model, Corpus.Questions(worldA.Take(recipe.Show), heldOut: true), Console.Out);
    }

    double heldOut = await Quiz.ExactMatchAsync(model, Corpus.Questions(worldA, heldOut: true, perFact: Templates.HeldOutQuestions[LiveLearning.World.Attribute.BirthCity].Length));
    double trained = await Quiz.ExactMatchAsync(model, Corpus.Questions(worldA, heldOut: false));
    double newPeople = await Quiz.ExactMatchAsync(model, Corpus.Questions(world.NewPeople.SelectMany(SyntheticWorld.FactsOf), heldOut: false));
    var byAttribute = new JsonObject();
    foreach (LiveLearning.World.Attribute a in Enum.GetValues<LiveLearning.World.Attribute>())
    {
        byAttribute[a.ToString()] = Math.Round(await Quiz.ExactMatchAsync(model, Corpus.Questions(worldA.Where(f => f.Attribute == a).Take(60), heldOut: true)), 1);
    }

    return new JsonObject
    {
        ["world_a_heldout_template_em_pct"] = Math.Round(heldOut, 2),
        ["world_a_training_template_em_pct"] = Math.Round(trained, 2),
        ["new_people_em_pct"] = Math.Round(newPeople, 2),
        ["heldout_em_by_attribute_pct"] = byAttribute,
    };
}

static void WriteConfig(string path, Recipe recipe, int vocab, TrainedBpe bpe)
{
    var config = new JsonObject
    {
        ["architectures"] = new JsonArray("LlamaForCausalLM"),
        ["model_type"] = "llama",
        ["hidden_size"] = recipe.Hidden,
        ["intermediate_size"] = recipe.Intermediate,
        ["num_hidden_layers"] = recipe.Layers,
        ["num_attention_heads"] = recipe.Heads,
        ["num_key_value_heads"] = recipe.KvHeads,
        ["head_dim"] = recipe.Hidden / recipe.Heads,
        ["hidden_act"] = "silu",
        ["max_position_embeddings"] = 1024,
        ["rms_norm_eps"] = 1e-5,
        ["rope_theta"] = 10000.0,
        ["attention_bias"] = false,
        ["mlp_bias"] = false,
        ["tie_word_embeddings"] = true,
        ["vocab_size"] = vocab,
        ["bos_token_id"] = bpe.Vocabulary[Corpus.ImStart],
        ["eos_token_id"] = new JsonArray(bpe.Vocabulary[Corpus.ImEnd], bpe.Vocabulary[Corpus.EndOfText]),
        ["torch_dtype"] = "float32",
    };
    File.WriteAllText(path, config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
}
