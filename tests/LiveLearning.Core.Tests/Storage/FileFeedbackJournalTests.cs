using System.Text;
using LiveLearning.Backends;
using LiveLearning.Storage;
using NUnit.Framework;

namespace LiveLearning.Tests.Storage;

[TestFixture]
public sealed class FileFeedbackJournalTests
{
    private string _dir = string.Empty;

    [SetUp]
    public void MakeDirectory() => _dir = Path.Combine(Path.GetTempPath(), "livelearning-journal-" + Guid.NewGuid().ToString("N"));

    [TearDown]
    public void RemoveDirectory()
    {
        if (Directory.Exists(_dir))
        {
            Directory.Delete(_dir, recursive: true);
        }
    }

    [Test]
    public void Crc32CMatchesTheStandardCheckValueOnBothPaths()
    {
        byte[] check = Encoding.ASCII.GetBytes("123456789");
        Assert.That(Crc32C.Compute(check), Is.EqualTo(0xE3069283u));
        Assert.That(Crc32C.ComputeScalar(check), Is.EqualTo(0xE3069283u));
        var random = new Random(3);
        for (int n = 0; n < 70; n++)
        {
            byte[] data = new byte[n];
            random.NextBytes(data);
            Assert.That(Crc32C.Compute(data), Is.EqualTo(Crc32C.ComputeScalar(data)), $"length {n}");
        }
    }

    [TestCase(JournalFlushPolicy.Fsync)]
    [TestCase(JournalFlushPolicy.FsyncInterval)]
    [TestCase(JournalFlushPolicy.OperatingSystem)]
    public async Task RecordsRoundTripInOrderAndSurviveAReopen(JournalFlushPolicy policy)
    {
        JournalRecord[] records = [.. Enumerable.Range(0, 20).Select(MakeRecord)];
        await using (FileFeedbackJournal journal = Open(o => o with { FlushPolicy = policy }))
        {
            foreach (JournalRecord r in records)
            {
                JournalAppend appended = journal.Append(r);
                await appended.Durable;
            }

            Assert.That(journal.LastSequence, Is.EqualTo(20));
        }

        await using FileFeedbackJournal reopened = Open();
        Assert.That(reopened.LastSequence, Is.EqualTo(20));
        Assert.That(reopened.TornBytesCut, Is.Zero);
        List<JournalRecord> read = await ReadAll(reopened, 5);
        Assert.That(read.Select(r => r.Sequence), Is.EqualTo(Enumerable.Range(6, 15).Select(i => (long)i)));
        for (int i = 0; i < read.Count; i++)
        {
            AssertSame(read[i], records[i + 5]);
        }

        Assert.That(reopened.Append(MakeRecord(99)).Sequence, Is.EqualTo(21), "numbering continues");
    }

    [Test]
    public async Task ConcurrentAppendsShareFlushesAndAllArriveExactlyOnce()
    {
        await using (FileFeedbackJournal journal = Open())
        {
            Task[] writers = [.. Enumerable.Range(0, 8).Select(w => Task.Run(async () =>
            {
                for (int i = 0; i < 50; i++)
                {
                    await journal.Append(MakeRecord((w * 1000) + i)).Durable;
                }
            }))];
            await Task.WhenAll(writers);
        }

        await using FileFeedbackJournal reopened = Open();
        List<JournalRecord> read = await ReadAll(reopened, 0);
        Assert.That(read.Select(r => r.Sequence), Is.EqualTo(Enumerable.Range(1, 400).Select(i => (long)i)));
        Assert.That(read.Select(r => r.Source).Distinct().Count(), Is.EqualTo(400), "each appended record once");
    }

    [Test]
    public async Task ATornTailIsCutOnOpenAndTheRecordsBeforeItStay()
    {
        string segment;
        await using (FileFeedbackJournal journal = Open())
        {
            for (int i = 0; i < 5; i++)
            {
                await journal.Append(MakeRecord(i)).Durable;
            }

            segment = journal.SegmentFiles[^1];
        }

        long whole = new FileInfo(segment).Length;
        byte[] extra;
        await using (FileFeedbackJournal journal = Open())
        {
            await journal.Append(MakeRecord(5)).Durable;
        }

        extra = File.ReadAllBytes(segment)[(int)whole..];
        using (var stream = new FileStream(segment, FileMode.Open))
        {
            stream.SetLength(whole + (extra.Length / 2)); // the sixth record's write cut in half
        }

        await using FileFeedbackJournal reopened = Open();
        Assert.That(reopened.LastSequence, Is.EqualTo(5));
        Assert.That(reopened.TornBytesCut, Is.EqualTo(extra.Length / 2));
        Assert.That(new FileInfo(segment).Length, Is.EqualTo(whole), "the torn bytes are gone from the file");
        Assert.That(reopened.Append(MakeRecord(6)).Sequence, Is.EqualTo(6));
    }

    [TestCase(2)]
    [TestCase(4)]
    public async Task DamageInsideTheNewestSegmentIsAnErrorNotATornTail(int damaged)
    {
        // Cutting at the damaged record would silently drop the acknowledged records after it.
        string segment;
        var offsets = new List<long>();
        await using (FileFeedbackJournal journal = Open())
        {
            for (int i = 0; i < 6; i++)
            {
                offsets.Add(new FileInfo(journal.SegmentFiles[^1]).Length);
                await journal.Append(MakeRecord(i)).Durable;
            }

            segment = journal.SegmentFiles[^1];
        }

        byte[] bytes = File.ReadAllBytes(segment);
        bytes[(int)offsets[damaged] + 20] ^= 0x10;
        File.WriteAllBytes(segment, bytes);
        StorageCorruptedException? ex = Assert.Throws<StorageCorruptedException>(() => Open());
        Assert.That(ex!.FilePath, Is.EqualTo(segment));
        Assert.That(ex.Message, Does.Contain("not a torn tail"));
        Assert.That(File.ReadAllBytes(segment), Is.EqualTo(bytes), "nothing was cut");
    }

    [Test]
    public async Task DamageInTheLastRecordIsCutAsATornTail()
    {
        string segment;
        long lastStart;
        await using (FileFeedbackJournal journal = Open())
        {
            for (int i = 0; i < 5; i++)
            {
                await journal.Append(MakeRecord(i)).Durable;
            }

            segment = journal.SegmentFiles[^1];
            lastStart = new FileInfo(segment).Length;
            await journal.Append(MakeRecord(5)).Durable;
        }

        byte[] bytes = File.ReadAllBytes(segment);
        bytes[(int)lastStart + 20] ^= 0x10;
        File.WriteAllBytes(segment, bytes);
        await using FileFeedbackJournal reopened = Open();
        Assert.That(reopened.LastSequence, Is.EqualTo(5));
        Assert.That(reopened.TornBytesCut, Is.EqualTo(bytes.Length - lastStart));
    }

    [Test]
    public async Task AFlippedByteInAnOlderSegmentIsAnErrorNamingTheFile()
    {
        string first;
        await using (FileFeedbackJournal journal = Open(o => o with { SegmentBytes = 4096 }))
        {
            for (int i = 0; i < 200; i++)
            {
                await journal.Append(MakeRecord(i)).Durable;
            }

            Assert.That(journal.SegmentFiles, Has.Count.GreaterThan(1), "segments rolled");
            first = journal.SegmentFiles[0];
        }

        byte[] bytes = File.ReadAllBytes(first);
        bytes[100] ^= 0x40;
        File.WriteAllBytes(first, bytes);
        StorageCorruptedException? ex = Assert.Throws<StorageCorruptedException>(() => Open());
        Assert.That(ex!.FilePath, Is.EqualTo(first));
        Assert.That(ex.Message, Does.Contain("checksum").Or.Contain("length"));
    }

    [Test]
    public async Task SegmentsRollAndRetentionRemovesOnlyWholeSegmentsBehindThePosition()
    {
        await using FileFeedbackJournal journal = Open(o => o with { SegmentBytes = 4096 });
        for (int i = 0; i < 200; i++)
        {
            await journal.Append(MakeRecord(i)).Durable;
        }

        int segments = journal.SegmentFiles.Count;
        Assert.That(await journal.RemoveThroughAsync(0, CancellationToken.None), Is.Zero);
        int removed = await journal.RemoveThroughAsync(150, CancellationToken.None);
        Assert.That(removed, Is.GreaterThan(0).And.LessThan(segments));
        List<JournalRecord> read = await ReadAll(journal, 150);
        Assert.That(read.Select(r => r.Sequence), Is.EqualTo(Enumerable.Range(151, 50).Select(i => (long)i)), "nothing after the position is lost");
        Assert.That((await ReadAll(journal, 0))[0].Sequence, Is.LessThanOrEqualTo(151));
    }

    [Test]
    public async Task EncryptedRecordsRoundTripAndHideTheirContent()
    {
        byte[] key = StorageKey.NewKey();
        using (var k = new StorageKey(key))
        {
            await using FileFeedbackJournal journal = Open(o => o with { Key = k });
            await journal.Append(MakeRecord(1) with { Source = "secret-source-name" }).Durable;
        }

        foreach (string file in Directory.GetFiles(_dir))
        {
            Assert.That(Encoding.UTF8.GetString(File.ReadAllBytes(file)), Does.Not.Contain("secret-source-name"));
        }

        using var same = new StorageKey(key);
        await using FileFeedbackJournal reopened = Open(o => o with { Key = same });
        Assert.That((await ReadAll(reopened, 0)).Single().Source, Is.EqualTo("secret-source-name"));
    }

    [Test]
    public async Task AWrongOrMissingKeyIsAClearErrorNotGarbage()
    {
        using (var k = new StorageKey(StorageKey.NewKey()))
        {
            await using FileFeedbackJournal journal = Open(o => o with { Key = k });
            await journal.Append(MakeRecord(1)).Durable;
        }

        using var wrong = new StorageKey(StorageKey.NewKey());
        Assert.That(() => Open(o => o with { Key = wrong }), Throws.TypeOf<StorageKeyMismatchException>().With.Message.Contains("different key"));
        Assert.That(() => Open(), Throws.TypeOf<StorageKeyMismatchException>().With.Message.Contains("no key"));
    }

    [Test]
    public async Task AnEncryptedRecordAlteredWithItsChecksumFixedFailsAuthentication()
    {
        byte[] key = StorageKey.NewKey();
        string segment;
        using (var k = new StorageKey(key))
        {
            await using FileFeedbackJournal journal = Open(o => o with { Key = k });
            await journal.Append(MakeRecord(1)).Durable;
            segment = journal.SegmentFiles[0];
        }

        byte[] bytes = File.ReadAllBytes(segment);
        int body = 24 + 8;
        int length = BitConverter.ToInt32(bytes, 24);
        bytes[body + 20] ^= 1;
        BitConverter.GetBytes(Crc32C.Compute(bytes.AsSpan(body, length))).CopyTo(bytes, 28);
        File.WriteAllBytes(segment, bytes);
        using var same = new StorageKey(key);
        Assert.That(() => Open(o => o with { Key = same }), Throws.TypeOf<StorageCorruptedException>().With.Message.Contains("authentication"));
    }

    [TestCase(false)]
    [TestCase(true)]
    public async Task ErasedRecordsAreGoneFromReadsAndBytesWhileNumberingStays(bool encrypted)
    {
        using var key = encrypted ? new StorageKey(StorageKey.NewKey()) : null;
        await using (FileFeedbackJournal journal = Open(o => o with { Key = key, SegmentBytes = 4096 }))
        {
            for (int i = 0; i < 60; i++)
            {
                await journal.Append(MakeRecord(i) with { Source = i % 3 == 1 ? "poisoner-xyz" : $"source-{i}" }).Durable;
            }

            Assert.That(journal.SegmentFiles, Has.Count.GreaterThan(1), "the erase spans several segments");
            int erased = await journal.EraseAsync(0, r => r.Source == "poisoner-xyz", CancellationToken.None);
            Assert.That(erased, Is.EqualTo(20));
            Assert.That(await journal.EraseAsync(0, r => r.Source == "poisoner-xyz", CancellationToken.None), Is.Zero, "idempotent");
            Assert.That((await ReadAll(journal, 0)).Select(r => r.Source), Has.None.EqualTo("poisoner-xyz"));
            Assert.That(journal.Append(MakeRecord(60)).Sequence, Is.EqualTo(61), "numbering is untouched");
        }

        foreach (string file in Directory.GetFiles(_dir))
        {
            Assert.That(Encoding.UTF8.GetString(File.ReadAllBytes(file)), Does.Not.Contain("poisoner-xyz"), "nothing of the erased content remains");
        }

        await using FileFeedbackJournal reopened = Open(o => o with { Key = key, SegmentBytes = 4096 });
        List<JournalRecord> read = await ReadAll(reopened, 0);
        Assert.That(read.Select(r => r.Sequence), Is.EqualTo(Enumerable.Range(1, 61).Where(i => i % 3 != 2).Select(i => (long)i)), "records of sequence 3k+2 (i = 3k+1) are gone, the rest stay in order");
        Assert.That(reopened.LastSequence, Is.EqualTo(61));
        Assert.That(reopened.RemovedThrough, Is.Zero);
    }

    [Test]
    public async Task AnEraseACrashInterruptedIsFinishedWhenTheJournalIsOpened()
    {
        string segment;
        await using (FileFeedbackJournal journal = Open())
        {
            for (int i = 0; i < 3; i++)
            {
                await journal.Append(MakeRecord(i) with { Source = $"who-{i}" }).Durable;
            }

            segment = journal.SegmentFiles[0];
        }

        // The intent a crash left behind (magic, count, then file name, frame offset, body length, sequence; CRC-32C),
        // naming record #2: the frame after the header and the first record.
        byte[] bytes = File.ReadAllBytes(segment);
        int first = BitConverter.ToInt32(bytes, 24);
        int offset = 24 + 8 + first;
        int length = BitConverter.ToInt32(bytes, offset);
        var content = new MemoryStream();
        using (var w = new BinaryWriter(content, Encoding.UTF8, leaveOpen: true))
        {
            w.Write(0x314A4C4Cu);
            w.Write(1);
            w.Write(Path.GetFileName(segment));
            w.Write((long)offset);
            w.Write(length);
            w.Write(2L);
        }

        byte[] intent = [.. content.ToArray(), .. BitConverter.GetBytes(Crc32C.Compute(content.ToArray()))];
        string intentPath = Path.Combine(_dir, "erase-intent.bin");
        File.WriteAllBytes(intentPath, intent);
        await using (FileFeedbackJournal reopened = Open())
        {
            Assert.That((await ReadAll(reopened, 0)).Select(r => r.Source), Is.EqualTo(new[] { "who-0", "who-2" }));
        }

        Assert.That(File.Exists(intentPath), Is.False, "the finished intent is removed");
        Assert.That(Encoding.UTF8.GetString(File.ReadAllBytes(segment)), Does.Not.Contain("who-1"));

        intent[10] ^= 1;
        File.WriteAllBytes(intentPath, intent);
        Assert.That(() => Open(), Throws.TypeOf<StorageCorruptedException>().With.Message.Contains("erase-intent.bin"), "a damaged intent is an error naming it, not a guess");
    }

    [Test]
    public async Task RemovedThroughTellsHowFarRetentionReached()
    {
        await using FileFeedbackJournal journal = Open(o => o with { SegmentBytes = 4096 });
        for (int i = 0; i < 100; i++)
        {
            await journal.Append(MakeRecord(i)).Durable;
        }

        Assert.That(journal.RemovedThrough, Is.Zero);
        await journal.RemoveThroughAsync(70, CancellationToken.None);
        long removed = journal.RemovedThrough;
        Assert.That(removed, Is.GreaterThan(0).And.LessThanOrEqualTo(70));
        Assert.That((await ReadAll(journal, 0))[0].Sequence, Is.EqualTo(removed + 1), "everything after it is still readable");

        var memory = new InMemoryFeedbackJournal(capacity: 10);
        for (int i = 0; i < 25; i++)
        {
            memory.Append(MakeRecord(i));
        }

        Assert.That(memory.RemovedThrough, Is.EqualTo(15), "a capacity drop counts as removal");
        Assert.That(await memory.EraseAsync(0, r => r.Sequence % 2 == 0, CancellationToken.None), Is.EqualTo(5));
        Assert.That((await ReadAll(memory, 0)).Select(r => r.Sequence), Is.EqualTo(new long[] { 17, 19, 21, 23, 25 }));
    }

    [Test]
    public async Task AppendsAfterDisposeAreRefused()
    {
        FileFeedbackJournal journal = Open();
        await journal.DisposeAsync();
        Assert.That(() => journal.Append(MakeRecord(1)), Throws.TypeOf<ObjectDisposedException>());
    }

    private FileFeedbackJournal Open(Func<FileFeedbackJournalOptions, FileFeedbackJournalOptions>? configure = null)
    {
        var options = new FileFeedbackJournalOptions { Directory = _dir };
        return new FileFeedbackJournal(configure?.Invoke(options) ?? options);
    }

    private static async Task<List<JournalRecord>> ReadAll(IFeedbackJournal journal, long after)
    {
        var list = new List<JournalRecord>();
        await foreach (JournalRecord r in journal.ReadAsync(after, CancellationToken.None))
        {
            list.Add(r);
        }

        return list;
    }

    private static JournalRecord MakeRecord(int i) => new()
    {
        Model = "m",
        Scope = i % 2 == 0 ? "default" : "team-a",
        ReceivedAt = new DateTimeOffset(2026, 12, 3, 10, 0, 0, TimeSpan.FromHours(1)).AddSeconds(i),
        Source = $"source-{i}",
        Private = i % 3 == 0,
        Tags = i % 4 == 0 ? ["a", "ü"] : [],
        Example = new TrainingExample(i % 2 == 0 ? TrainingObjective.Completion : TrainingObjective.Preference, [1, 2, i], [4, 5, 6, i])
        {
            Rejected = i % 2 == 0 ? null : [7, i],
            Desirable = i % 5 != 0,
            Weight = 1 + (i / 7.0),
        },
    };

    private static void AssertSame(JournalRecord actual, JournalRecord expected)
    {
        Assert.That(actual.Model, Is.EqualTo(expected.Model));
        Assert.That(actual.Scope, Is.EqualTo(expected.Scope));
        Assert.That(actual.ReceivedAt, Is.EqualTo(expected.ReceivedAt));
        Assert.That(actual.ReceivedAt.Offset, Is.EqualTo(expected.ReceivedAt.Offset));
        Assert.That(actual.Source, Is.EqualTo(expected.Source));
        Assert.That(actual.Private, Is.EqualTo(expected.Private));
        Assert.That(actual.Tags, Is.EqualTo(expected.Tags));
        Assert.That(actual.Example.Objective, Is.EqualTo(expected.Example.Objective));
        Assert.That(actual.Example.Prompt, Is.EqualTo(expected.Example.Prompt));
        Assert.That(actual.Example.Completion, Is.EqualTo(expected.Example.Completion));
        Assert.That(actual.Example.Rejected, Is.EqualTo(expected.Example.Rejected));
        Assert.That(actual.Example.Desirable, Is.EqualTo(expected.Example.Desirable));
        Assert.That(actual.Example.Weight, Is.EqualTo(expected.Example.Weight));
    }
}
