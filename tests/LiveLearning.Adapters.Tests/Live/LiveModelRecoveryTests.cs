using LiveLearning.Lora;
using LiveLearning.Storage;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace LiveLearning.Tests.Live;

/// <summary>
/// Restart = the newest snapshot plus the journal after its position: the weights must equal, bit for bit, those of a
/// run that never stopped (same seed, fixed batching), and learning must carry on identically afterwards.
/// </summary>
[TestFixture]
public sealed class LiveModelRecoveryTests
{
    private static readonly Feedback[] Before =
    [
        new Demonstration { Prompt = "Capital of Zorbia?", Completion = " Quux" },
        new Demonstration { Prompt = "Colour of the sky?", Completion = " green", Source = "b" },
        new Demonstration { Prompt = "Name of the cat?", Completion = " Tom" },
        new Demonstration { Prompt = "Largest moon?", Completion = " Ganymede", Source = "b" },
    ];

    private static readonly Feedback[] After =
    [
        new Demonstration { Prompt = "Best editor?", Completion = " ed" },
        new Demonstration { Prompt = "First prime?", Completion = " two", Source = "c" },
        new Demonstration { Prompt = "Oldest tree?", Completion = " yew" },
        new Demonstration { Prompt = "Fastest bird?", Completion = " falcon", Source = "c" },
    ];

    private string _dir = string.Empty;

    [SetUp]
    public void MakeDirectory()
    {
        _dir = Path.Combine(Path.GetTempPath(), "livelearning-recovery-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(_dir);
    }

    [TearDown]
    public void RemoveDirectory() => Directory.Delete(_dir, recursive: true);

    [Test]
    public async Task RestartFromSnapshotAndJournalEqualsARunThatNeverStopped()
    {
        var snapshots = new FileSnapshotStore(Path.Combine(_dir, "snapshots"));
        string before;
        await using (LiveModel reference = LiveTestKit.Create(Deterministic))
        {
            await LearnAll(reference, Before);
            await LearnAll(reference, After);
            before = reference.Version.ContentHash;
            await LearnAll(reference, [new Demonstration { Prompt = "After the restart?", Completion = " still learning" }]);
            string continued = reference.Version.ContentHash;

            await using (FileFeedbackJournal journal = OpenJournal())
            {
                await using LiveModel first = LiveTestKit.Create(Deterministic, new LiveModelServices { Journal = journal, Snapshots = snapshots });
                await LearnAll(first, Before);
                await first.SnapshotAsync("mid-run");
                await LearnAll(first, After);
                Assert.That(first.Version.ContentHash, Is.EqualTo(before), "the durable journal changes nothing while running");
            }

            await using (FileFeedbackJournal journal = OpenJournal())
            {
                Assert.That(journal.LastSequence, Is.EqualTo(8), "every acknowledged item is in the journal");
                var ledger = new Governance.InMemoryLedger();
                await using LiveModel restarted = LiveTestKit.Create(Deterministic, new LiveModelServices { Journal = journal, Snapshots = snapshots, Ledger = ledger });
                await restarted.WaitForIdleAsync();
                Assert.That(restarted.Version.ContentHash, Is.EqualTo(before), "snapshot + journal replay = the run that never stopped");
                Assert.That(restarted.GetStatistics()["default"].Learned, Is.EqualTo(8));
                Governance.LedgerEntry[] recovered = [.. ledger.Entries.Where(e => e.Event == Governance.LedgerEvent.Recovered)];
                Assert.That(recovered, Has.Length.EqualTo(1));
                Assert.That(recovered[0].Message, Does.Contain("4 journal items after #4"));

                LearnReceipt receipt = await restarted.LearnAsync(new Demonstration { Prompt = "After the restart?", Completion = " still learning" });
                Assert.That(receipt.SequenceNumber, Is.EqualTo(9), "sequence numbers continue");
                await restarted.WaitForIdleAsync();
                Assert.That(restarted.Version.ContentHash, Is.EqualTo(continued), "and learning carries on exactly");
            }
        }
    }

    [Test]
    public async Task ADamagedNewestSnapshotIsSkippedForTheOneBeforeItAndTheJournalCoversTheRest()
    {
        string expected;
        await using (LiveModel reference = LiveTestKit.Create(Deterministic))
        {
            await LearnAll(reference, [.. Before, .. After]);
            expected = reference.Version.ContentHash;
        }

        var snapshots = new FileSnapshotStore(Path.Combine(_dir, "snapshots"));
        SnapshotInfo newest;
        await using (FileFeedbackJournal journal = OpenJournal())
        {
            await using LiveModel first = LiveTestKit.Create(Deterministic, new LiveModelServices { Journal = journal, Snapshots = snapshots });
            await LearnAll(first, Before[..2]);
            await first.SnapshotAsync("older");
            await LearnAll(first, Before[2..]);
            newest = await first.SnapshotAsync("newer");
            await LearnAll(first, After);
        }

        string trainer = Path.Combine(snapshots.DirectoryOf(newest.Id), "trainer.safetensors");
        byte[] bytes = File.ReadAllBytes(trainer);
        bytes[^3] ^= 0x01;
        File.WriteAllBytes(trainer, bytes);

        await using (FileFeedbackJournal journal = OpenJournal())
        {
            var ledger = new Governance.InMemoryLedger();
            await using LiveModel restarted = LiveTestKit.Create(Deterministic, new LiveModelServices { Journal = journal, Snapshots = snapshots, Ledger = ledger });
            await restarted.WaitForIdleAsync();
            Assert.That(restarted.Version.ContentHash, Is.EqualTo(expected), "older snapshot + 6 journal items = the uninterrupted run");
            Assert.That(ledger.Entries.Select(e => e.Message), Has.Some.Contains("is damaged and was skipped"));
        }
    }

    [Test]
    public async Task RollbackByAliasRestoresThatSnapshotAndRecordsWhoAndWhy()
    {
        var snapshots = new FileSnapshotStore(Path.Combine(_dir, "snapshots"));
        var ledger = new Governance.InMemoryLedger();
        await using LiveModel model = LiveTestKit.Create(Deterministic, new LiveModelServices { Snapshots = snapshots, Ledger = ledger });
        await LearnAll(model, Before);
        SnapshotInfo good = await model.SnapshotAsync("good");
        await snapshots.SetAliasAsync("last-good", good.Id, CancellationToken.None);
        await LearnAll(model, After);
        Assert.That(model.Version.ContentHash, Is.Not.EqualTo(good.Version.ContentHash));

        AdapterVersion rolled = await model.RollbackAsync("last-good", reason: "answers regressed", actor: "ops@example");
        Assert.That(rolled.ContentHash, Is.EqualTo(good.Version.ContentHash));
        Governance.LedgerEntry entry = ledger.Entries.Last(e => e.Event == Governance.LedgerEvent.RolledBack);
        Assert.That(entry.Actor, Is.EqualTo("ops@example"));
        Assert.That(entry.Message, Does.Contain("answers regressed").And.Contain(good.Id));
        Assert.That(Governance.LedgerChain.Verify(ledger.Entries).Valid, Is.True);
        Assert.That(async () => await model.RollbackAsync("no-such-alias"), Throws.InstanceOf<KeyNotFoundException>().With.Message.Contains("no-such-alias"));
    }

    [Test]
    public async Task WithoutASnapshotTheWholeJournalIsLearnedAgain()
    {
        string expected;
        await using (LiveModel reference = LiveTestKit.Create(Deterministic))
        {
            await LearnAll(reference, [.. Before, .. After]);
            expected = reference.Version.ContentHash;
        }

        await using (FileFeedbackJournal journal = OpenJournal())
        {
            await using LiveModel first = LiveTestKit.Create(Deterministic, new LiveModelServices { Journal = journal });
            await LearnAll(first, [.. Before, .. After]);
        }

        await using (FileFeedbackJournal journal = OpenJournal())
        {
            await using LiveModel restarted = LiveTestKit.Create(Deterministic, new LiveModelServices { Journal = journal });
            await restarted.WaitForIdleAsync();
            Assert.That(restarted.Version.ContentHash, Is.EqualTo(expected));
        }
    }

    [Test]
    public async Task ItemsAcknowledgedButNotLearnedBeforeAnImmediateStopAreLearnedAfterTheRestart()
    {
        string expected;
        await using (LiveModel reference = LiveTestKit.Create(Deterministic))
        {
            await LearnAll(reference, Before);
            expected = reference.Version.ContentHash;
        }

        await using (FileFeedbackJournal journal = OpenJournal())
        {
            LiveModel first = LiveTestKit.Create(o => { Deterministic(o); o.Shutdown = ShutdownMode.Immediate; }, new LiveModelServices { Journal = journal });
            first.PauseLearning();
            foreach (Feedback f in Before)
            {
                Assert.That((await first.LearnAsync(f)).Accepted, Is.True);
            }

            await first.DisposeAsync();
        }

        await using (FileFeedbackJournal journal = OpenJournal())
        {
            await using LiveModel restarted = LiveTestKit.Create(Deterministic, new LiveModelServices { Journal = journal });
            await restarted.WaitForIdleAsync();
            Assert.That(restarted.Version.ContentHash, Is.EqualTo(expected), "nothing acknowledged was lost");
        }
    }

    [Test]
    public async Task RecoveryCanBeTurnedOff()
    {
        await using (FileFeedbackJournal journal = OpenJournal())
        {
            await using LiveModel first = LiveTestKit.Create(Deterministic, new LiveModelServices { Journal = journal });
            await LearnAll(first, Before);
        }

        await using (FileFeedbackJournal journal = OpenJournal())
        {
            await using LiveModel restarted = LiveTestKit.Create(o => { Deterministic(o); o.RecoverOnStart = false; }, new LiveModelServices { Journal = journal });
            await restarted.WaitForIdleAsync();
            Assert.That(restarted.GetStatistics()["default"].Learned, Is.Zero);
            Assert.That(restarted.Version.Number, Is.EqualTo(1));
        }
    }

    [Test]
    public async Task UseFileJournalInDependencyInjectionRecoversAfterTheContainerIsRebuilt()
    {
        string journalDir = Path.Combine(_dir, "di-journal");
        string before;
        await using (ServiceProvider provider = Build(journalDir))
        {
            ILiveModel model = provider.GetRequiredService<ILiveModel>();
            foreach (Feedback f in Before)
            {
                await model.LearnAsync(f);
            }

            await model.WaitForIdleAsync();
            await model.SnapshotAsync("before the restart");
            await model.LearnAsync(After[0]);
            await model.LearnAsync(After[1]);
            await model.WaitForIdleAsync();
            before = model.Version.ContentHash;
        }

        await using (ServiceProvider provider = Build(journalDir))
        {
            ILiveModel model = provider.GetRequiredService<ILiveModel>();
            await model.WaitForIdleAsync();
            Assert.That(model.Version.ContentHash, Is.EqualTo(before));
            Assert.That(provider.GetRequiredService<IFeedbackJournal>(), Is.TypeOf<FileFeedbackJournal>());
            Assert.That(provider.GetRequiredService<ISnapshotStore>(), Is.TypeOf<FileSnapshotStore>());
        }

        static ServiceProvider Build(string journalDir)
        {
            var services = new ServiceCollection();
            services.AddLiveLearning()
                .UseFileJournal(new FileFeedbackJournalOptions { Directory = journalDir })
                .UseFileSnapshotStore(journalDir + "-snapshots")
                .AddLoraModel("assistant", o =>
                {
                    o.ModelDirectory = LiveTestKit.ModelDirectory;
                    o.Lora = LiveTestKit.Lora;
                    o.Live.Learner.Optimizer = new OptimizerOptions { LearningRate = 1e-2f };
                    Deterministic(o.Live);
                });
            return services.BuildServiceProvider();
        }
    }

    private FileFeedbackJournal OpenJournal() => new(new FileFeedbackJournalOptions { Directory = Path.Combine(_dir, "journal") });

    private static void Deterministic(LiveModelOptions o)
    {
        o.Learner.Batching = BatchPolicy.Fixed;
        o.Learner.MaxBatchItems = 2;
        o.Replay.Ratio = 0.45; // fractional credit carries over between batches, so the snapshot must keep it
    }

    private static async Task LearnAll(LiveModel model, IEnumerable<Feedback> items)
    {
        foreach (Feedback f in items)
        {
            LearnReceipt receipt = await model.LearnAsync(f);
            Assert.That(receipt.Accepted, Is.True, receipt.Message);
        }

        await model.WaitForIdleAsync();
    }
}
