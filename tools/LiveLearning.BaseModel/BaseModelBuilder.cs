using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using LiveLearning.Models;
using LiveLearning.Numerics;
using LiveLearning.Tokenization;
using LiveLearning.World;

namespace LiveLearning.BaseModel;

/// <summary>
/// Builds the project's own small base model from nothing: a synthetic world, a tokenizer trained on it, a Llama-shaped
/// model pretrained on world A with full-parameter training, saved in the Hugging Face layout (BF16 safetensors) with a
/// training record. The same recipe and thread count give the same bytes.
/// </summary>
public static class BaseModelBuilder
{
    /// <summary>Builds the base model: world, tokenizer, configuration, pretraining, BF16 save and its evaluation.</summary>
        public static async Task<JsonObject> BuildAsync(Recipe recipe, string output, TextWriter log)
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
        BpeTrainer.Write(work, bpe, bosToken: Corpus.EndOfText, eosToken: Corpus.ImEnd);
        log.WriteLine($"tokenizer: {bpe.Vocabulary.Count} tokens ({bpe.Merges.Count} merges) in {clock.Elapsed.TotalSeconds:F1} s");

        // 2. The architecture, and freshly initialised weights.
        int vocab = (bpe.Vocabulary.Count + 63) / 64 * 64;
        WriteConfig(Path.Combine(work, "config.json"), recipe, vocab, bpe);
        FullParameterTrainer.WriteInitialWeights(work, recipe.Seed);
        using FullParameterTrainer trainer = FullParameterTrainer.Open(work, new FullTrainingOptions { LearningRate = recipe.PeakLearningRate }, new ModelOptions { ThreadCount = recipe.Threads, ContextLength = 1024 });
        LlamaModel model = trainer.Model;
        Tokenizer tokenizer = model.Tokenizer!;
        log.WriteLine($"model: {trainer.ParameterCount:N0} parameters, {recipe.Layers} layers x {recipe.Hidden}, vocabulary {vocab}");

        // 3. Pretraining on world A: each epoch a fresh draw of biographies and question blocks.
        int documentsPerEpoch = Corpus.PretrainingEpoch(world, recipe.Seed, 0, recipe.BiographiesPerEpoch).Count;
        int stepsPerEpoch = (documentsPerEpoch + recipe.BatchDocuments - 1) / recipe.BatchDocuments;
        int totalSteps = stepsPerEpoch * recipe.Epochs;
        // A probe across every attribute and held-out phrasing (a 17-stride through all of them).
        List<QuestionItem> probe = [.. Corpus.Questions(world.WorldA.SelectMany(SyntheticWorld.FactsOf), heldOut: true, perFact: 3).Where((_, i) => i % 17 == 0)];
        long tokens = 0;
        int step = 0;
        double lossSum = 0;
        int lossCount = 0;
        var history = new JsonArray();
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
                log.WriteLine($"epoch {epoch + 1,3}/{recipe.Epochs}  step {step,5}  loss {loss:F4}  held-out-template EM {em,5:F1} %  {tokens / trainClock.Elapsed.TotalSeconds:F0} tokens/s  {clock.Elapsed.TotalMinutes:F1} min");
                history.Add(new JsonObject { ["epoch"] = epoch + 1, ["step"] = step, ["loss"] = Math.Round(loss, 4), ["probe_em_pct"] = Math.Round(em, 1) });
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
        JsonObject figures = await EvaluateAsync(output, recipe);
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
            ["log"] = history,
        };
        File.WriteAllText(Path.Combine(output, "training.json"), card.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
        Directory.Delete(work, recursive: true);
        log.WriteLine(card.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        return card;
    }

    /// <summary>Exact-match figures of a saved model on the world its recipe describes.</summary>
        public static async Task<JsonObject> EvaluateAsync(string directory, Recipe recipe, TextWriter? show = null)
    {
        SyntheticWorld world = SyntheticWorld.Generate(recipe.Seed, recipe.WorldAPeople, recipe.NewPeople, Math.Min(recipe.ChangedFacts, recipe.WorldAPeople));
        using LlamaModel model = LlamaModel.Load(directory, new ModelOptions { ThreadCount = recipe.Threads });
        Fact[] worldA = [.. world.WorldA.SelectMany(SyntheticWorld.FactsOf)];
        if (recipe.Show > 0)
        {
            await Quiz.ExactMatchAsync(model, Corpus.Questions(worldA.Take(recipe.Show), heldOut: true), show);
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

    private static void WriteConfig(string path, Recipe recipe, int vocab, TrainedBpe bpe)
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
            ["bos_token_id"] = bpe.Vocabulary[Corpus.EndOfText],
            ["eos_token_id"] = new JsonArray(bpe.Vocabulary[Corpus.ImEnd], bpe.Vocabulary[Corpus.EndOfText]),
            ["torch_dtype"] = "float32",
        };
        File.WriteAllText(path, config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
    }
}
