using LiveLearning.Backends;
using LiveLearning.Governance;
using LiveLearning.Storage;
using Microsoft.Extensions.AI;

namespace LiveLearning.Tests.Live;

/// <summary>A backend that forwards everything to a real one; tests override the member they need to observe or stall.</summary>
internal class ForwardingBackend(ILearningBackend inner) : ILearningBackend
{
    public ILearningBackend Inner { get; } = inner;

    public string ModelId => Inner.ModelId;

    public int ContextLength => Inner.ContextLength;

    public bool SupportsChat => Inner.SupportsChat;

    public static ForwardingBackend Over(Func<ILearningBackend, ForwardingBackend> wrap) =>
        wrap(new LiveLearning.Lora.LoraBackend(LiveLearning.Models.LlamaModel.Load(LiveTestKit.ModelDirectory, new LiveLearning.Models.ModelOptions { ThreadCount = 2 }), LiveTestKit.Lora, ownsModel: true));

    public IReadOnlyList<int> EncodePrompt(string text) => Inner.EncodePrompt(text);

    public IReadOnlyList<int> EncodeChatPrompt(IReadOnlyList<ChatMessage> messages) => Inner.EncodeChatPrompt(messages);

    public IReadOnlyList<int> EncodeCompletion(string completion, PromptKind kind, bool appendEnd) => Inner.EncodeCompletion(completion, kind, appendEnd);

    public virtual IAdapterTrainer CreateTrainer(TrainerOptions options) => Inner.CreateTrainer(options);

    public IAdapterWeights ImportWeights(AdapterWeightsData data) => Inner.ImportWeights(data);

    public CompletionScore Score(IReadOnlyList<int> prompt, IReadOnlyList<int> completion, IReadOnlyList<IAdapterWeights> adapters) => Inner.Score(prompt, completion, adapters);

    public virtual IAsyncEnumerable<GeneratedToken> GenerateAsync(IReadOnlyList<int> prompt, PromptKind kind, GenerationOptions options, IReadOnlyList<IAdapterWeights> adapters, CancellationToken cancellationToken) =>
        Inner.GenerateAsync(prompt, kind, options, adapters, cancellationToken);

    public IDisposable EnterLearningPriority(double share) => Inner.EnterLearningPriority(share);

    public virtual void Dispose() => Inner.Dispose();
}

/// <summary>A ledger that fails the appends <see cref="ShouldFail"/> picks (a database or disk that is briefly unavailable).</summary>
internal sealed class FailingLedger(Func<LedgerEntry, bool> shouldFail) : ILearningLedger
{
    private readonly InMemoryLedger _entries = new();

    public Func<LedgerEntry, bool> ShouldFail { get; } = shouldFail;

    public IReadOnlyList<LedgerEntry> Entries => _entries.Entries;

    public ValueTask AppendAsync(LedgerEntry entry, CancellationToken cancellationToken) =>
        ShouldFail(entry) ? throw new IOException($"The ledger is unavailable ({entry.Event}).") : _entries.AppendAsync(entry, cancellationToken);
}

/// <summary>The in-memory journal, keeping every record appended for inspection.</summary>
internal sealed class CapturingJournal : IFeedbackJournal
{
    private readonly InMemoryFeedbackJournal _inner = new();
    private readonly List<JournalRecord> _records = [];

    public long LastSequence => _inner.LastSequence;

    public IReadOnlyList<JournalRecord> Records
    {
        get
        {
            lock (_records)
            {
                return [.. _records];
            }
        }
    }

    public JournalAppend Append(JournalRecord record)
    {
        lock (_records)
        {
            _records.Add(record);
        }

        return _inner.Append(record);
    }

    public IAsyncEnumerable<JournalRecord> ReadAsync(long afterSequence, CancellationToken cancellationToken) => _inner.ReadAsync(afterSequence, cancellationToken);

    public ValueTask<int> RemoveThroughAsync(long sequence, CancellationToken cancellationToken) => _inner.RemoveThroughAsync(sequence, cancellationToken);

    public long RemovedThrough => _inner.RemovedThrough;

    public ValueTask<int> EraseAsync(long afterSequence, Func<JournalRecord, bool> match, CancellationToken cancellationToken) => _inner.EraseAsync(afterSequence, match, cancellationToken);
}
