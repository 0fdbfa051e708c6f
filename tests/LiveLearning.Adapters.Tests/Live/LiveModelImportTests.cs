using LiveLearning.Governance;
using LiveLearning.Lora;
using LiveLearning.Storage;
using NUnit.Framework;

namespace LiveLearning.Tests.Live;

/// <summary>Importing adapter weights trained elsewhere as a scope's current version.</summary>
[TestFixture]
public sealed class LiveModelImportTests
{
    [Test]
    public async Task ImportedWeightsServeAsTheyDidWhereTheyWereTrained()
    {
        var snapshots = new InMemorySnapshotStore();
        await using LiveModel teacher = LiveTestKit.Create(o => o.Learner.StepsPerItem = 30, new LiveModelServices { Snapshots = snapshots });
        await teacher.LearnAsync(new Demonstration { Prompt = "Capital of Zorbia?", Completion = " Quux" });
        await teacher.WaitForIdleAsync();
        SnapshotInfo info = await teacher.SnapshotAsync();
        Snapshot snapshot = (await snapshots.LoadAsync(info.Id, CancellationToken.None))!;
        string taught = (await teacher.CompleteAsync("Capital of Zorbia?", new GenerationOptions { MaxTokens = 3 })).Text;

        var ledger = new InMemoryLedger();
        await using LiveModel student = LiveTestKit.Create(services: new LiveModelServices { Ledger = ledger });
        AdapterVersion imported = await student.ImportAdapterAsync(snapshot.Weights, reason: "trained offline", actor: "ml-team");
        Assert.That(imported.ContentHash, Is.EqualTo(teacher.Version.ContentHash));
        Assert.That(imported.Reason, Is.EqualTo("imported"));
        Assert.That((await student.CompleteAsync("Capital of Zorbia?", new GenerationOptions { MaxTokens = 3 })).Text, Is.EqualTo(taught));
        LedgerEntry entry = ledger.Entries.Single(e => e.Event == LedgerEvent.Imported);
        Assert.That(entry.Actor, Is.EqualTo("ml-team"));
        Assert.That(entry.Message, Does.Contain("trained offline"));

        // Learning continues from the imported weights.
        await student.LearnAsync(new Demonstration { Prompt = "Name of the cat?", Completion = " Tom" });
        await student.WaitForIdleAsync();
        Assert.That(student.Version.ParentId, Is.EqualTo(imported.Id));
    }

    [Test]
    public async Task AnAdapterOfAnotherLayoutIsRefusedAndNothingChanges()
    {
        var snapshots = new InMemorySnapshotStore();
        await using LiveModel other = LiveTestKit.Create(services: new LiveModelServices { Snapshots = snapshots }, lora: new LoraConfig { Rank = 4, Alpha = 8, TargetModules = ["q_proj"] });
        Snapshot snapshot = (await snapshots.LoadAsync((await other.SnapshotAsync()).Id, CancellationToken.None))!;
        await using LiveModel model = LiveTestKit.Create();
        AdapterVersion before = model.Version;
        Assert.That(() => model.ImportAdapterAsync(snapshot.Weights), Throws.ArgumentException);
        Assert.That(model.Version, Is.EqualTo(before));
        Assert.That(() => model.ImportAdapterAsync(new Backends.AdapterWeightsData([], new Dictionary<string, string>())), Throws.InstanceOf<FormatException>().Or.InstanceOf<ArgumentException>());
    }
}
