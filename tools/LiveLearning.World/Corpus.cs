namespace LiveLearning.World;

/// <summary>A question about one fact, in the plain Q/A form: the prompt, and the answer the model should continue with.</summary>
/// <param name="Fact">The fact asked about.</param>
/// <param name="Prompt">The prompt, ending in <c>A:</c>.</param>
/// <param name="Answer">The expected continuation (the value, led by a space).</param>
public readonly record struct QuestionItem(Fact Fact, string Prompt, string Answer);

/// <summary>
/// Renders the world into text: biographies (each fact in a randomly chosen sentence, sentences in random order, a
/// fresh draw every epoch: several phrasings per person, as knowledge-storage studies found necessary) and question
/// blocks (a person's facts asked with training templates), some in the chat format. Deterministic per seed and epoch.
/// </summary>
public static class Corpus
{
    /// <summary>Chat turns of the chat template the base model ships with (ChatML).</summary>
    public const string ImStart = "<|im_start|>";

    /// <summary>End of a chat turn.</summary>
    public const string ImEnd = "<|im_end|>";

    /// <summary>End of a document.</summary>
    public const string EndOfText = "<|endoftext|>";

    /// <summary>One biography of a person.</summary>
    /// <param name="person">The person.</param>
    /// <param name="rng">The random source choosing templates and order.</param>
    /// <returns>The biography text.</returns>
    public static string Biography(Person person, Random rng)
    {
        ArgumentNullException.ThrowIfNull(person);
        ArgumentNullException.ThrowIfNull(rng);
        string[] sentences = [.. SyntheticWorld.FactsOf(person).Select(f => Templates.Say(Pick(rng, Templates.Biography[f.Attribute]), f))];

        rng.Shuffle(sentences);
        return string.Join(" ", sentences);
    }

    /// <summary>A question-answer line: <c>Q: …\nA: value\n</c>.</summary>
    /// <param name="fact">The fact.</param>
    /// <param name="template">The question template.</param>
    /// <returns>The question item.</returns>
    public static QuestionItem Question(Fact fact, string template) =>
        new(fact, Templates.QuestionPrompt(Templates.Ask(template, fact.Person)), " " + fact.Value);

    /// <summary>The chat-format rendering of a question and its answer (ChatML turns).</summary>
    /// <param name="question">The question.</param>
    /// <param name="answer">The answer.</param>
    /// <returns>The text.</returns>
    public static string ChatExchange(string question, string answer) =>
        $"{ImStart}user\n{question}{ImEnd}\n{ImStart}assistant\n{answer}{ImEnd}\n";

    /// <summary>
    /// The pretraining documents of one epoch: per world-A person, <paramref name="biographies"/> fresh biographies and
    /// one question block (each attribute once, with a random training template, in random order; a
    /// <paramref name="chatShare"/> of the blocks in the chat format). Shuffled. Each document ends with
    /// <see cref="EndOfText"/>, and a plain-text one also starts with it (it is the tokenizer's beginning-of-sequence
    /// token), so the model learns what a document begins with and can be sampled from nothing.
    /// </summary>
    /// <param name="world">The world.</param>
    /// <param name="seed">Seed of the whole run.</param>
    /// <param name="epoch">Epoch number (each epoch draws new phrasings).</param>
    /// <param name="biographies">Biographies per person per epoch.</param>
    /// <param name="chatShare">Share of question blocks written as chat turns.</param>
    /// <returns>The documents.</returns>
    public static List<string> PretrainingEpoch(SyntheticWorld world, int seed, int epoch, int biographies = 1, double chatShare = 0.25)
    {
        ArgumentNullException.ThrowIfNull(world);
        var rng = new Random(unchecked((seed * 1_000_003) + (epoch * 7919) + 17));
        var documents = new List<string>();
        foreach (Person person in world.WorldA)
        {
            for (int b = 0; b < biographies; b++)
            {
                documents.Add(EndOfText + Biography(person, rng) + EndOfText);
            }

            Fact[] facts = [.. SyntheticWorld.FactsOf(person)];
            rng.Shuffle(facts);
            bool chat = rng.NextDouble() < chatShare;
            var block = new System.Text.StringBuilder();
            foreach (Fact fact in facts)
            {
                string template = Pick(rng, Templates.TrainingQuestions[fact.Attribute]);
                QuestionItem q = Question(fact, template);
                block.Append(chat ? ChatExchange(Templates.Ask(template, fact.Person), fact.Value) : q.Prompt + q.Answer + "\n");
            }

            // Plain text starts with the beginning-of-sequence token (the tokenizer adds it to every plain prompt);
            // a chat block starts with its first turn (the chat template renders no such token).
            documents.Add((chat ? "" : EndOfText) + block + EndOfText);
        }

        rng.Shuffle(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(documents));
        return documents;
    }

    /// <summary>Held-out text about world A (biographies drawn with another seed), for probe perplexity.</summary>
    /// <param name="world">The world.</param>
    /// <param name="seed">Seed.</param>
    /// <param name="count">Number of biographies.</param>
    /// <returns>The texts.</returns>
    public static List<string> ProbeText(SyntheticWorld world, int seed, int count)
    {
        ArgumentNullException.ThrowIfNull(world);
        var rng = new Random(unchecked((seed * 1_000_003) - 99));
        return [.. Enumerable.Range(0, count).Select(i => Biography(world.WorldA[(i * 37) % world.WorldA.Count], rng))];
    }

    /// <summary>Questions about facts, one per (fact, template) of the given template set.</summary>
    /// <param name="facts">The facts.</param>
    /// <param name="heldOut">Held-out phrasings (never trained) instead of training phrasings.</param>
    /// <param name="perFact">Templates per fact (the first ones of the set, rotating with the fact's index).</param>
    /// <returns>The questions.</returns>
    public static List<QuestionItem> Questions(IEnumerable<Fact> facts, bool heldOut, int perFact = 1)
    {
        ArgumentNullException.ThrowIfNull(facts);
        var items = new List<QuestionItem>();
        int i = 0;
        foreach (Fact fact in facts)
        {
            string[] set = (heldOut ? Templates.HeldOutQuestions : Templates.TrainingQuestions)[fact.Attribute];
            for (int k = 0; k < perFact; k++)
            {
                items.Add(Question(fact, set[(i + k) % set.Length]));
            }

            i++;
        }

        return items;
    }

    private static T Pick<T>(Random rng, IReadOnlyList<T> items) => items[rng.Next(items.Count)];
}
