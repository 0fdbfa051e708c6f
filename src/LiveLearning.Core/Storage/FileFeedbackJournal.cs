using System.Buffers;
using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Threading.Channels;

namespace LiveLearning.Storage;

/// <summary>When an appended record counts as durable.</summary>
public enum JournalFlushPolicy
{
    /// <summary>After it is written and flushed to the storage device (fsync). Appends waiting together share one flush (group commit).</summary>
    Fsync,

    /// <summary>After the next periodic fsync (every <see cref="FileFeedbackJournalOptions.FlushInterval"/>): larger groups, a longer wait.</summary>
    FsyncInterval,

    /// <summary>After it is handed to the operating system: survives the process being killed, not a power loss.</summary>
    OperatingSystem,
}

/// <summary>Options of <see cref="FileFeedbackJournal"/>.</summary>
public sealed record FileFeedbackJournalOptions
{
    /// <summary>The journal's directory (created if missing). Required.</summary>
    public required string Directory { get; init; }

    /// <summary>When an append is durable. Default <see cref="JournalFlushPolicy.Fsync"/>.</summary>
    public JournalFlushPolicy FlushPolicy { get; init; } = JournalFlushPolicy.Fsync;

    /// <summary>The period of <see cref="JournalFlushPolicy.FsyncInterval"/>. Default 10 ms.</summary>
    public TimeSpan FlushInterval { get; init; } = TimeSpan.FromMilliseconds(10);

    /// <summary>A segment is closed and a new one started once it reaches this size. Default 64 MiB.</summary>
    public long SegmentBytes { get; init; } = 64L << 20;

    /// <summary>Seals every record with AES-256-GCM under this key; <see langword="null"/> (default) stores plaintext.</summary>
    public StorageKey? Key { get; init; }
}

/// <summary>
/// The durable feedback journal: append-only segment files of length-prefixed, CRC-32C-checksummed records, each under
/// its sequence number. One writer task drains every append waiting, writes them as one block and flushes once (group
/// commit), then completes their <see cref="JournalAppend.Durable"/> tasks. Opening it scans the segments: a torn tail
/// of the newest segment (a write cut short by a crash) is detected and cut off; damage anywhere else is an error.
/// </summary>
/// <remarks>
/// <para>Segment file <c>journal-&lt;first sequence, 20 digits&gt;.seg</c>: a 24-byte header (magic <c>LLJ1</c>, format
/// version, flags, the key's fingerprint when encrypted), then records: <c>u32 length · u32 crc32c(body) · body</c> with
/// <c>body = u64 sequence · payload</c>, the payload sealed with the key (the sequence as associated data) when one is
/// given.</para>
/// <para>After a write or flush fails, the journal refuses every later append (the failure is in the exception): an
/// acknowledged item is never followed by a hole.</para>
/// <para>Erasing (<see cref="EraseAsync"/>) turns records into tombstones in place: the payload is overwritten with zeros
/// and the checksum recomputed, so sequence numbers and offsets stay as they were and nothing of the erased content
/// remains in the file. The positions to erase are first written to an intent file (flushed), so a crash halfway is
/// finished when the journal is next opened, and a record is never left half erased.</para>
/// </remarks>
public sealed class FileFeedbackJournal : IFeedbackJournal, IAsyncDisposable, IDisposable
{
    private const uint Magic = 0x314A4C4C; // "LLJ1"
    private const ushort FormatVersion = 1;
    private const int HeaderBytes = 24;
    private const int FramingBytes = 8;
    private const int MaxRecordBytes = 256 << 20;
    private const string EraseIntentFile = "erase-intent.bin";

    private readonly FileFeedbackJournalOptions _options;
    private readonly string _directory;
    private readonly Lock _appendLock = new();
    private readonly Channel<Pending> _pending = Channel.CreateUnbounded<Pending>(new UnboundedChannelOptions { SingleReader = true });
    private readonly List<Segment> _segments = [];
    private readonly Task _writer;
    private readonly ArrayBufferWriter<byte> _encodeBuffer = new();

    // Readers and an erase's in-place writes exclude each other: a reader never sees a record half erased.
    private readonly SemaphoreSlim _files = new(1, 1);
    private FileStream? _tail;
    private long _last;
    private long _durableSequence;
    private Exception? _failure;
    private int _disposed;

    /// <summary>Opens (or creates) the journal in <see cref="FileFeedbackJournalOptions.Directory"/>, cutting a torn tail.</summary>
    /// <param name="options">The options.</param>
    /// <exception cref="StorageCorruptedException">A segment other than the newest is damaged, or a header is invalid.</exception>
    /// <exception cref="StorageKeyMismatchException">The segments were written under another key, or with/without encryption.</exception>
    public FileFeedbackJournal(FileFeedbackJournalOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrEmpty(options.Directory);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.SegmentBytes, 4096L, nameof(options));
        if (options.FlushInterval <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.FlushInterval, "FlushInterval must be positive.");
        }

        _options = options;
        _directory = Path.GetFullPath(options.Directory);
        System.IO.Directory.CreateDirectory(_directory);
        Open();
        _durableSequence = _last;
        _writer = Task.Run(WriteLoopAsync);
    }

    /// <inheritdoc />
    public long LastSequence => Interlocked.Read(ref _last);

    /// <summary>The highest sequence number known durable.</summary>
    public long DurableSequence => Interlocked.Read(ref _durableSequence);

    /// <inheritdoc />
    public long RemovedThrough
    {
        get
        {
            lock (_segments)
            {
                return _segments.Count == 0 ? 0 : _segments[0].First - 1;
            }
        }
    }

    /// <summary>Bytes of a torn tail cut off when the journal was opened (0 when the last write was whole).</summary>
    public long TornBytesCut { get; private set; }

    /// <summary>The segment files, oldest first.</summary>
    public IReadOnlyList<string> SegmentFiles
    {
        get
        {
            lock (_segments)
            {
                return [.. _segments.Select(s => s.Path)];
            }
        }
    }

    /// <inheritdoc />
    public JournalAppend Append(JournalRecord record)
    {
        ArgumentNullException.ThrowIfNull(record);
        lock (_appendLock)
        {
            ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
            if (_failure is { } failure)
            {
                throw new IOException($"The journal in {_directory} stopped accepting records after a write failed: {failure.Message}", failure);
            }

            long sequence = _last + 1;
            byte[] frame = EncodeFrame(record, sequence);
            var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            if (!_pending.Writer.TryWrite(new Pending(sequence, frame, done)))
            {
                throw new ObjectDisposedException(nameof(FileFeedbackJournal));
            }

            Interlocked.Exchange(ref _last, sequence);
            return new JournalAppend(sequence, done.Task);
        }
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<JournalRecord> ReadAsync(long afterSequence, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await foreach (LiveRecord r in LiveRecordsAsync(afterSequence, cancellationToken).ConfigureAwait(false))
        {
            yield return r.Decode(this);
        }
    }

    /// <inheritdoc />
    public async ValueTask<int> EraseAsync(long afterSequence, Func<JournalRecord, bool> match, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(match);
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);

        // Only durable records are erased (a record still being written is erased by a later call).
        var targets = new List<EraseTarget>();
        await foreach (LiveRecord r in LiveRecordsAsync(afterSequence, cancellationToken).ConfigureAwait(false))
        {
            if (match(r.Decode(this)))
            {
                targets.Add(new EraseTarget(Path.GetFileName(r.Path), r.Offset - FramingBytes, r.Length, r.Sequence));
            }
        }

        if (targets.Count == 0)
        {
            return 0;
        }

        await _files.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            // Intent first (flushed), then the in-place writes, then the intent goes: a crash in between is finished on open.
            string intent = Path.Combine(_directory, EraseIntentFile);
            AtomicFile.Write(intent, stream => WriteIntent(stream, targets));
            ApplyErase(targets);
            File.Delete(intent);
        }
        finally
        {
            _files.Release();
        }

        return targets.Count;
    }

    /// <inheritdoc />
    public ValueTask<int> RemoveThroughAsync(long sequence, CancellationToken cancellationToken)
    {
        // A segment goes when the next one starts at or before sequence + 1 (all its records are ≤ sequence); the
        // newest segment (the one being written) always stays.
        int removed = 0;
        lock (_segments)
        {
            while (_segments.Count > 1 && _segments[1].First <= sequence + 1)
            {
                cancellationToken.ThrowIfCancellationRequested();
                File.Delete(_segments[0].Path);
                _segments.RemoveAt(0);
                removed++;
            }
        }

        return ValueTask.FromResult(removed);
    }

    /// <summary>Waits for every record appended so far to be durable, then stops the writer and closes the files.</summary>
    /// <returns>A task that completes when the journal is closed.</returns>
    public async ValueTask DisposeAsync()
    {
        lock (_appendLock)
        {
            if (Interlocked.Exchange(ref _disposed, 1) != 0)
            {
                return;
            }

            _pending.Writer.TryComplete();
        }

        await _writer.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _tail?.Dispose();
    }

    /// <summary>Same as <see cref="DisposeAsync"/>, waiting on the calling thread.</summary>
    public void Dispose() => DisposeAsync().AsTask().GetAwaiter().GetResult();

    /// <summary>The records after <paramref name="afterSequence"/> that are durable now and not erased, in order; records
    /// appended later are not waited for, and segments removed by retention since the listing are skipped (nobody needed them).</summary>
    private async IAsyncEnumerable<LiveRecord> LiveRecordsAsync(long afterSequence, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        long upTo = DurableSequence;
        Segment[] segments;
        lock (_segments)
        {
            segments = [.. _segments];
        }

        for (int i = 0; i < segments.Length; i++)
        {
            long nextFirst = i + 1 < segments.Length ? segments[i + 1].First : long.MaxValue;
            if (nextFirst <= afterSequence + 1 || segments[i].First > upTo)
            {
                continue;
            }

            byte[]? data = await ReadSegmentAsync(segments[i].Path, cancellationToken).ConfigureAwait(false);
            if (data is null)
            {
                continue;
            }

            foreach ((long sequence, int offset, int length) in Scan(segments[i].Path, data, torn: out _, allowTorn: true))
            {
                if (sequence > upTo)
                {
                    break;
                }

                if (sequence > afterSequence && !IsTombstone(data.AsSpan(offset, length)))
                {
                    cancellationToken.ThrowIfCancellationRequested();
                    yield return new LiveRecord(segments[i].Path, data, sequence, offset, length);
                }
            }
        }
    }

    /// <summary>A segment's bytes, or null when retention removed it since it was listed.</summary>
    private async ValueTask<byte[]?> ReadSegmentAsync(string path, CancellationToken cancellationToken)
    {
        await _files.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            return await File.ReadAllBytesAsync(path, cancellationToken).ConfigureAwait(false);
        }
        catch (FileNotFoundException)
        {
            return null;
        }
        finally
        {
            _files.Release();
        }
    }

    /// <summary>An erased record: its payload is all zeros (a live payload starts with a non-zero format version, and a
    /// sealed one is a nonce and ciphertext, never all zeros).</summary>
    private static bool IsTombstone(ReadOnlySpan<byte> body) => !body[8..].ContainsAnyExcept((byte)0);

    /// <summary>The intent: magic, count, then (segment file name, frame offset, body length, sequence) each, and a CRC-32C of it all.</summary>
    private static void WriteIntent(Stream stream, List<EraseTarget> targets)
    {
        using var content = new MemoryStream();
        using (var writer = new BinaryWriter(content, System.Text.Encoding.UTF8, leaveOpen: true))
        {
            writer.Write(Magic);
            writer.Write(targets.Count);
            foreach (EraseTarget t in targets)
            {
                writer.Write(t.File);
                writer.Write(t.FrameOffset);
                writer.Write(t.BodyLength);
                writer.Write(t.Sequence);
            }
        }

        Span<byte> crc = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(crc, Crc32C.Compute(content.GetBuffer().AsSpan(0, (int)content.Length)));
        stream.Write(content.GetBuffer().AsSpan(0, (int)content.Length));
        stream.Write(crc);
    }

    /// <summary>Overwrites each target's payload with zeros and its checksum with the tombstone's, then flushes each file.
    /// Idempotent, and a target whose frame is not the record it names is left alone.</summary>
    private void ApplyErase(List<EraseTarget> targets)
    {
        foreach (IGrouping<string, EraseTarget> file in targets.GroupBy(t => t.File, StringComparer.Ordinal))
        {
            string path = Path.Combine(_directory, file.Key);
            if (!File.Exists(path))
            {
                continue;
            }

            using var stream = new FileStream(path, FileMode.Open, FileAccess.ReadWrite, FileShare.ReadWrite);
            var framing = new byte[FramingBytes + 8];
            foreach (EraseTarget t in file)
            {
                stream.Position = t.FrameOffset;
                if (stream.Read(framing) != framing.Length
                    || BinaryPrimitives.ReadInt32LittleEndian(framing) != t.BodyLength
                    || BinaryPrimitives.ReadInt64LittleEndian(framing[FramingBytes..]) != t.Sequence)
                {
                    continue;
                }

                // body = sequence · zeros; one write covers checksum, sequence and payload.
                var tail = new byte[4 + t.BodyLength];
                Span<byte> body = tail.AsSpan(4);
                BinaryPrimitives.WriteInt64LittleEndian(body, t.Sequence);
                BinaryPrimitives.WriteUInt32LittleEndian(tail, Crc32C.Compute(body));
                stream.Position = t.FrameOffset + 4;
                stream.Write(tail);
            }

            stream.Flush(flushToDisk: true);
        }
    }

    /// <summary>Finishes an erase a crash interrupted (its intent file is still there).</summary>
    private void FinishInterruptedErase()
    {
        string intent = Path.Combine(_directory, EraseIntentFile);
        if (!File.Exists(intent))
        {
            return;
        }

        byte[] data = File.ReadAllBytes(intent);
        if (data.Length < 12 || Crc32C.Compute(data.AsSpan(0, data.Length - 4)) != BinaryPrimitives.ReadUInt32LittleEndian(data.AsSpan(data.Length - 4)))
        {
            // Written atomically (temporary file, flush, rename), so damage came afterwards: nothing is guessed.
            throw new StorageCorruptedException(intent, null, "the erase intent fails its checksum");
        }

        var targets = new List<EraseTarget>();
        using (var reader = new BinaryReader(new MemoryStream(data, 0, data.Length - 4), System.Text.Encoding.UTF8))
        {
            if (reader.ReadUInt32() != Magic)
            {
                throw new StorageCorruptedException(intent, 0, "not an erase intent file (bad magic number)");
            }

            int count = reader.ReadInt32();
            for (int i = 0; i < count; i++)
            {
                string file = reader.ReadString();
                if (file != Path.GetFileName(file) || !file.StartsWith("journal-", StringComparison.Ordinal))
                {
                    throw new StorageCorruptedException(intent, reader.BaseStream.Position, $"'{file}' is not a segment of this journal");
                }

                targets.Add(new EraseTarget(file, reader.ReadInt64(), reader.ReadInt32(), reader.ReadInt64()));
            }
        }

        ApplyErase(targets);
        File.Delete(intent);
    }

    private byte[] EncodeFrame(JournalRecord record, long sequence)
    {
        _encodeBuffer.ResetWrittenCount();
        JournalRecordCodec.Encode(record, _encodeBuffer);
        ReadOnlySpan<byte> payload = _encodeBuffer.WrittenSpan;
        Span<byte> sequenceBytes = stackalloc byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(sequenceBytes, sequence);
        byte[]? sealedPayload = _options.Key?.Seal(payload, sequenceBytes);
        ReadOnlySpan<byte> stored = sealedPayload ?? payload;
        int bodyLength = 8 + stored.Length;
        if (bodyLength > MaxRecordBytes)
        {
            throw new ArgumentException($"The record is {bodyLength} bytes; a journal record holds at most {MaxRecordBytes}.", nameof(record));
        }

        var frame = new byte[FramingBytes + bodyLength];
        Span<byte> body = frame.AsSpan(FramingBytes);
        sequenceBytes.CopyTo(body);
        stored.CopyTo(body[8..]);
        BinaryPrimitives.WriteInt32LittleEndian(frame, bodyLength);
        BinaryPrimitives.WriteUInt32LittleEndian(frame.AsSpan(4), Crc32C.Compute(body));
        return frame;
    }

    private JournalRecord DecodePayload(string path, ReadOnlySpan<byte> body, long sequence, int offset)
    {
        ReadOnlySpan<byte> payload = body[8..];
        byte[]? opened = null;
        if (_options.Key is { } key)
        {
            opened = key.TryOpen(payload, body[..8]) ?? throw new StorageCorruptedException(path, offset, $"record #{sequence} fails its authentication tag");
            payload = opened;
        }

        try
        {
            return JournalRecordCodec.Decode(payload, sequence);
        }
        catch (FormatException ex)
        {
            throw new StorageCorruptedException(path, offset, $"record #{sequence}: {ex.Message}");
        }
    }

    /// <summary>Reads the segment files, checks their headers and records, and cuts a torn tail off the newest.</summary>
    private void Open()
    {
        FinishInterruptedErase();
        string[] files = [.. System.IO.Directory.GetFiles(_directory, "journal-*.seg").Order(StringComparer.Ordinal)];
        long last = 0;
        for (int i = 0; i < files.Length; i++)
        {
            string path = files[i];
            long first = ParseFirst(path);
            bool newest = i == files.Length - 1;
            byte[] data = File.ReadAllBytes(path);
            CheckHeader(path, data, allowShort: newest);
            long end = HeaderBytes;
            long previous = last;
            var records = Scan(path, data, out long tornAt, allowTorn: newest);
            foreach ((long sequence, int offset, int length) in records)
            {
                if (sequence <= previous)
                {
                    throw new StorageCorruptedException(path, offset - FramingBytes, $"record #{sequence} does not follow #{previous}");
                }

                // Decoding proves the payload (and, encrypted, the key) good: an acknowledged record is never cut.
                if (!IsTombstone(data.AsSpan(offset, length)))
                {
                    DecodePayload(path, data.AsSpan(offset, length), sequence, offset);
                }

                previous = sequence;
                end = offset + length;
            }

            if (newest && (tornAt >= 0 || data.Length < HeaderBytes))
            {
                long keep = data.Length < HeaderBytes ? 0 : end;
                TornBytesCut = data.Length - keep;
                using var stream = new FileStream(path, FileMode.Open, FileAccess.Write);
                stream.SetLength(keep);
                if (keep == 0)
                {
                    WriteHeader(stream);
                }

                stream.Flush(flushToDisk: true);
            }

            last = previous;
            _segments.Add(new Segment(path, first));
        }

        _last = last;
        if (_segments.Count == 0)
        {
            StartSegment(1);
        }
        else
        {
            _tail = new FileStream(_segments[^1].Path, FileMode.Append, FileAccess.Write, FileShare.Read, 1 << 16);
        }
    }

    private void CheckHeader(string path, byte[] data, bool allowShort)
    {
        if (data.Length < HeaderBytes)
        {
            if (allowShort)
            {
                return; // a segment whose header write was cut short: rewritten empty
            }

            throw new StorageCorruptedException(path, 0, "the segment header is truncated");
        }

        if (BinaryPrimitives.ReadUInt32LittleEndian(data) != Magic)
        {
            throw new StorageCorruptedException(path, 0, "not a journal segment (bad magic number)");
        }

        ushort version = BinaryPrimitives.ReadUInt16LittleEndian(data.AsSpan(4));
        if (version != FormatVersion)
        {
            throw new StorageCorruptedException(path, 4, $"segment format version {version} is not supported (expected {FormatVersion})");
        }

        bool encrypted = (BinaryPrimitives.ReadUInt16LittleEndian(data.AsSpan(6)) & 1) != 0;
        if (encrypted && _options.Key is null)
        {
            throw new StorageKeyMismatchException(path, "the journal is encrypted and no key was given");
        }

        if (!encrypted && _options.Key is not null)
        {
            throw new StorageKeyMismatchException(path, "the journal is not encrypted but a key was given");
        }

        if (_options.Key is { } key && !key.Matches(data.AsSpan(8, StorageKey.FingerprintBytes)))
        {
            throw new StorageKeyMismatchException(path, "the journal was written under a different key");
        }
    }

    /// <summary>The records of one segment: (sequence, body offset, body length); stops at the first bad frame.</summary>
    private static List<(long Sequence, int Offset, int Length)> Scan(string path, byte[] data, out long torn, bool allowTorn)
    {
        var records = new List<(long, int, int)>();
        torn = -1;
        int at = HeaderBytes;
        while (at < data.Length)
        {
            string? problem = null;
            int length = 0;
            if (data.Length - at < FramingBytes)
            {
                problem = "the record framing is truncated";
            }
            else
            {
                length = BinaryPrimitives.ReadInt32LittleEndian(data.AsSpan(at));
                if (length < 8 || length > MaxRecordBytes || length > data.Length - at - FramingBytes)
                {
                    problem = $"record length {length} does not fit";
                }
                else if (Crc32C.Compute(data.AsSpan(at + FramingBytes, length)) != BinaryPrimitives.ReadUInt32LittleEndian(data.AsSpan(at + 4)))
                {
                    problem = "record checksum mismatch";
                }
            }

            if (problem is not null)
            {
                // A torn tail is the end of the file: the last write, cut short. Valid records after the bad one mean
                // the damage is inside the journal, and cutting there would drop records that were acknowledged.
                long last = records.Count == 0 ? ParseFirst(path) - 1 : records[^1].Item1;
                if (!allowTorn || ValidRecordFollows(data, at + 1, last))
                {
                    throw new StorageCorruptedException(path, at, allowTorn ? problem + "; valid records follow it, so this is damage, not a torn tail" : problem);
                }

                torn = at;
                break;
            }

            long sequence = BinaryPrimitives.ReadInt64LittleEndian(data.AsSpan(at + FramingBytes));
            records.Add((sequence, at + FramingBytes, length));
            at += FramingBytes + length;
        }

        return records;
    }

    /// <summary>Whether a whole, checksummed record numbered after <paramref name="last"/> starts anywhere from <paramref name="from"/> on.</summary>
    private static bool ValidRecordFollows(byte[] data, int from, long last)
    {
        for (int at = from; at <= data.Length - FramingBytes - 8; at++)
        {
            int length = BinaryPrimitives.ReadInt32LittleEndian(data.AsSpan(at));
            if (length < 8 || length > data.Length - at - FramingBytes)
            {
                continue;
            }

            // The sequence number is a cheap filter before the checksum: the damaged record was last + 1.
            long sequence = BinaryPrimitives.ReadInt64LittleEndian(data.AsSpan(at + FramingBytes));
            if (sequence > last && sequence <= last + 1024 && Crc32C.Compute(data.AsSpan(at + FramingBytes, length)) == BinaryPrimitives.ReadUInt32LittleEndian(data.AsSpan(at + 4)))
            {
                return true;
            }
        }

        return false;
    }

    private static long ParseFirst(string path)
    {
        string name = Path.GetFileNameWithoutExtension(path);
        return long.TryParse(name.AsSpan("journal-".Length), NumberStyles.None, CultureInfo.InvariantCulture, out long first) && first > 0
            ? first
            : throw new StorageCorruptedException(path, null, "the segment file name does not give its first sequence number");
    }

    private void StartSegment(long first)
    {
        string path = Path.Combine(_directory, string.Create(CultureInfo.InvariantCulture, $"journal-{first:D20}.seg"));
        var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.Read, 1 << 16);
        WriteHeader(stream);
        stream.Flush(flushToDisk: true);
        _tail = stream;
        lock (_segments)
        {
            _segments.Add(new Segment(path, first));
        }
    }

    private void WriteHeader(Stream stream)
    {
        Span<byte> header = stackalloc byte[HeaderBytes];
        header.Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(header, Magic);
        BinaryPrimitives.WriteUInt16LittleEndian(header[4..], FormatVersion);
        BinaryPrimitives.WriteUInt16LittleEndian(header[6..], _options.Key is null ? (ushort)0 : (ushort)1);
        _options.Key?.Fingerprint.Span.CopyTo(header[8..]);
        stream.Write(header);
    }

    private async Task WriteLoopAsync()
    {
        var group = new List<Pending>();
        ChannelReader<Pending> reader = _pending.Reader;
        long lastFsync = Environment.TickCount64;
        while (await reader.WaitToReadAsync().ConfigureAwait(false))
        {
            if (_options.FlushPolicy == JournalFlushPolicy.FsyncInterval)
            {
                // Let the group grow until the period is up.
                long wait = (long)_options.FlushInterval.TotalMilliseconds - (Environment.TickCount64 - lastFsync);
                if (wait > 0)
                {
                    await Task.Delay(TimeSpan.FromMilliseconds(wait)).ConfigureAwait(false);
                }
            }

            group.Clear();
            while (reader.TryRead(out Pending? p))
            {
                group.Add(p);
            }

            try
            {
                if (_failure is not null)
                {
                    throw new IOException("An earlier write failed.", _failure);
                }

                WriteGroup(group);
                if (_options.FlushPolicy != JournalFlushPolicy.OperatingSystem)
                {
                    _tail!.Flush(flushToDisk: true);
                    lastFsync = Environment.TickCount64;
                }

                Interlocked.Exchange(ref _durableSequence, group[^1].Sequence);
                foreach (Pending p in group)
                {
                    p.Done.TrySetResult();
                }
            }
            catch (Exception ex)
            {
                lock (_appendLock)
                {
                    _failure ??= ex;
                }

                foreach (Pending p in group)
                {
                    p.Done.TrySetException(new IOException($"Journal record #{p.Sequence} could not be made durable: {ex.Message}", ex));
                }
            }
        }
    }

    private void WriteGroup(List<Pending> group)
    {
        foreach (Pending p in group)
        {
            if (_tail!.Length >= _options.SegmentBytes)
            {
                _tail.Flush(flushToDisk: true);
                _tail.Dispose();
                StartSegment(p.Sequence);
            }

            _tail!.Write(p.Frame);
        }

        _tail!.Flush(flushToDisk: false);
    }

    private sealed record Pending(long Sequence, byte[] Frame, TaskCompletionSource Done);

    private sealed record Segment(string Path, long First);

    /// <summary>One live record's frame body inside a segment's bytes.</summary>
    private readonly record struct LiveRecord(string Path, byte[] Data, long Sequence, int Offset, int Length)
    {
        public JournalRecord Decode(FileFeedbackJournal journal) => journal.DecodePayload(Path, Data.AsSpan(Offset, Length), Sequence, Offset);
    }

    private sealed record EraseTarget(string File, long FrameOffset, int BodyLength, long Sequence);
}
