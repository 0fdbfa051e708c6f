using System.Buffers.Binary;
using System.Text;
using LiveLearning.Backends;

namespace LiveLearning;

/// <summary>One learned item kept for replay.</summary>
/// <param name="Sequence">Its journal sequence number.</param>
/// <param name="Source">Its source.</param>
/// <param name="Example">The example (with its reference log-likelihoods).</param>
public sealed record ReplayItem(long Sequence, string Source, TrainingExample Example)
{
    /// <summary>Bytes the item counts for against <see cref="ReplayOptions.CapacityBytes"/>: its token ids and a fixed overhead.</summary>
    public long Bytes => 96 + (2L * Source.Length) + (4L * (Example.Prompt.Count + Example.Completion.Count + (Example.Rejected?.Count ?? 0)));
}

/// <summary>
/// A bounded sample of the items a scope has learned, mixed into later steps against forgetting. Capacity is in
/// items and in bytes; draws come from the buffer's own seeded generator, and <see cref="Serialize"/> captures the
/// contents and the generator, so a restored buffer draws exactly what the original would have.
/// </summary>
/// <remarks>Not thread-safe: one learner owns it.</remarks>
public abstract class ReplayBuffer
{
    private const uint Magic = 0x4252_4C4C; // "LLRB"
    private const int FormatVersion = 1;
    private const int MaxTokensPerSequence = 1 << 24;

    private SplitMix64 _random;
    private int _count;
    private long _bytesKept;

    private protected ReplayBuffer(int capacityItems, long capacityBytes, ulong seed)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(capacityItems);
        ArgumentOutOfRangeException.ThrowIfNegative(capacityBytes);
        CapacityItems = capacityItems;
        CapacityBytes = capacityBytes;
        _random = new SplitMix64(seed);
    }

    /// <summary>Most items kept.</summary>
    public int CapacityItems { get; }

    /// <summary>Most bytes kept.</summary>
    public long CapacityBytes { get; }

    /// <summary>Items kept now (safe to read from any thread while the owner adds).</summary>
    public int Count => Volatile.Read(ref _count);

    /// <summary>Bytes kept now (safe to read from any thread while the owner adds).</summary>
    public long Bytes => Volatile.Read(ref _bytesKept);

    /// <summary>Items offered so far (kept or not).</summary>
    public long Seen { get; private protected set; }

    /// <summary>Creates the buffer <paramref name="options"/> describe.</summary>
    /// <param name="options">Kind and capacity.</param>
    /// <param name="seed">The seed of its draws.</param>
    /// <returns>The buffer (<see cref="ReplayKind.None"/> gives one of capacity 0).</returns>
    public static ReplayBuffer Create(ReplayOptions options, ulong seed)
    {
        ArgumentNullException.ThrowIfNull(options);
        return options.Kind switch
        {
            ReplayKind.SourceBalanced => new SourceBalancedReplayBuffer(options.CapacityItems, options.CapacityBytes, seed),
            ReplayKind.Reservoir => new ReservoirReplayBuffer(options.CapacityItems, options.CapacityBytes, seed),
            _ => new ReservoirReplayBuffer(0, 0, seed),
        };
    }

    /// <summary>Offers a learned item; the buffer keeps it or not by its sampling rule.</summary>
    /// <param name="item">The item.</param>
    public void Add(ReplayItem item)
    {
        ArgumentNullException.ThrowIfNull(item);
        Seen++;
        if (CapacityItems == 0 || item.Bytes > CapacityBytes)
        {
            return;
        }

        AddCore(item);
        Refresh();
    }

    /// <summary>Draws <paramref name="count"/> items (with replacement); none when empty.</summary>
    /// <param name="count">Items wanted.</param>
    /// <returns>The items.</returns>
    public IReadOnlyList<ReplayItem> Sample(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        if (Count == 0 || count == 0)
        {
            return [];
        }

        var result = new ReplayItem[count];
        for (int i = 0; i < count; i++)
        {
            result[i] = SampleOne();
        }

        return result;
    }

    /// <summary>Removes every kept item of <paramref name="source"/> (excluding it from replay, or forgetting it).</summary>
    /// <param name="source">The source.</param>
    /// <returns>The number of items removed.</returns>
    public int RemoveSource(string source)
    {
        ArgumentNullException.ThrowIfNull(source);
        int removed = RemoveSourceCore(source);
        Refresh();
        return removed;
    }

    /// <summary>The items kept, in the buffer's order.</summary>
    /// <returns>The items.</returns>
    public abstract IReadOnlyList<ReplayItem> Items();

    /// <summary>The buffer's contents and generator state as bytes (a versioned little-endian format).</summary>
    /// <returns>The bytes.</returns>
    public byte[] Serialize()
    {
        using var stream = new MemoryStream();
        using (var w = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true))
        {
            w.Write(Magic);
            w.Write(FormatVersion);
            w.Write((byte)(this is SourceBalancedReplayBuffer ? ReplayKind.SourceBalanced : ReplayKind.Reservoir));
            w.Write(CapacityItems);
            w.Write(CapacityBytes);
            w.Write(Seen);
            w.Write(_random.State);
            WriteExtra(w);
            IReadOnlyList<ReplayItem> items = Items();
            w.Write(items.Count);
            foreach (ReplayItem item in items)
            {
                w.Write(item.Sequence);
                w.Write(item.Source);
                TrainingExample e = item.Example;
                w.Write((byte)e.Objective);
                w.Write(e.Desirable);
                w.Write(e.Weight);
                w.Write(e.ReferenceLogLikelihood);
                w.Write(e.ReferenceRejectedLogLikelihood);
                WriteIds(w, e.Prompt);
                WriteIds(w, e.Completion);
                WriteIds(w, e.Rejected);
            }
        }

        return stream.ToArray();
    }

    /// <summary>Rebuilds a buffer from <see cref="Serialize"/>'s bytes.</summary>
    /// <param name="data">The bytes.</param>
    /// <returns>The buffer, equal to the one serialised (contents and future draws).</returns>
    /// <exception cref="FormatException">The bytes are not a replay buffer of a known version, or are truncated or inconsistent (the field is named).</exception>
    public static ReplayBuffer Deserialize(ReadOnlySpan<byte> data)
    {
        var r = new Reader(data);
        if (r.UInt32("magic") != Magic)
        {
            throw new FormatException("Replay buffer: the data does not start with the replay-buffer magic number.");
        }

        int version = r.Int32("version");
        if (version != FormatVersion)
        {
            throw new FormatException($"Replay buffer: format version {version} is not supported (expected {FormatVersion}).");
        }

        var kind = (ReplayKind)r.Byte("kind");
        int capacityItems = r.Int32("capacityItems");
        long capacityBytes = r.Int64("capacityBytes");
        long seen = r.Int64("seen");
        ulong state = r.UInt64("random");
        if (capacityItems < 0 || capacityBytes < 0 || seen < 0 || kind is not (ReplayKind.Reservoir or ReplayKind.SourceBalanced))
        {
            throw new FormatException("Replay buffer: kind or capacity out of range.");
        }

        ReplayBuffer buffer = kind == ReplayKind.SourceBalanced
            ? new SourceBalancedReplayBuffer(capacityItems, capacityBytes, 0)
            : new ReservoirReplayBuffer(capacityItems, capacityBytes, 0);
        buffer._random = new SplitMix64(state);
        buffer.Seen = seen;
        buffer.ReadExtra(ref r);
        int count = r.Int32("count");
        if (count < 0 || count > capacityItems)
        {
            throw new FormatException($"Replay buffer: count {count} is outside [0, {capacityItems}].");
        }

        var items = new List<ReplayItem>();
        for (int i = 0; i < count; i++)
        {
            long sequence = r.Int64("sequence");
            string source = r.String("source");
            var objective = (TrainingObjective)r.Byte("objective");
            if (!Enum.IsDefined(objective))
            {
                throw new FormatException($"Replay buffer: item {i} has unknown objective {(int)objective}.");
            }

            bool desirable = r.Byte("desirable") != 0;
            double weight = r.Double("weight");
            double reference = r.Double("referenceLogLikelihood");
            double referenceRejected = r.Double("referenceRejectedLogLikelihood");
            int[] prompt = r.Ids("prompt") ?? throw new FormatException($"Replay buffer: item {i} has no prompt.");
            int[] completion = r.Ids("completion") ?? throw new FormatException($"Replay buffer: item {i} has no completion.");
            int[]? rejected = r.Ids("rejected");
            if (objective == TrainingObjective.Preference && rejected is null)
            {
                throw new FormatException($"Replay buffer: preference item {i} has no rejected completion.");
            }

            items.Add(new ReplayItem(sequence, source, new TrainingExample(objective, prompt, completion)
            {
                Rejected = rejected,
                Desirable = desirable,
                Weight = weight,
                ReferenceLogLikelihood = reference,
                ReferenceRejectedLogLikelihood = referenceRejected,
            }));
        }

        if (!r.AtEnd)
        {
            throw new FormatException("Replay buffer: bytes after the last item.");
        }

        buffer.Load(items);
        buffer.Refresh();
        return buffer;
    }

    private protected abstract int CountCore { get; }

    private protected abstract long BytesCore { get; }

    private protected abstract void AddCore(ReplayItem item);

    private protected abstract ReplayItem SampleOne();

    private protected abstract int RemoveSourceCore(string source);

    private protected abstract void Load(List<ReplayItem> items);

    private protected virtual void WriteExtra(BinaryWriter writer)
    {
    }

    private protected virtual void ReadExtra(ref Reader reader)
    {
    }

    private protected long Next(long n) => _random.NextInt64(n);

    /// <summary>Publishes the figures the owner's changes produced, for readers on other threads.</summary>
    private void Refresh()
    {
        Volatile.Write(ref _count, CountCore);
        Volatile.Write(ref _bytesKept, BytesCore);
    }

    private static void WriteIds(BinaryWriter w, IReadOnlyList<int>? ids)
    {
        if (ids is null)
        {
            w.Write(-1);
            return;
        }

        w.Write(ids.Count);
        foreach (int id in ids)
        {
            w.Write(id);
        }
    }

    /// <summary>Bounds-checked little-endian reads; every failure names the field.</summary>
    private protected ref struct Reader(ReadOnlySpan<byte> data)
    {
        private readonly ReadOnlySpan<byte> _data = data;
        private int _offset;

        public readonly bool AtEnd => _offset == _data.Length;

        public byte Byte(string field) => Take(1, field)[0];

        public int Int32(string field) => BinaryPrimitives.ReadInt32LittleEndian(Take(4, field));

        public uint UInt32(string field) => BinaryPrimitives.ReadUInt32LittleEndian(Take(4, field));

        public long Int64(string field) => BinaryPrimitives.ReadInt64LittleEndian(Take(8, field));

        public ulong UInt64(string field) => BinaryPrimitives.ReadUInt64LittleEndian(Take(8, field));

        public double Double(string field) => BinaryPrimitives.ReadDoubleLittleEndian(Take(8, field));

        public string String(string field)
        {
            // BinaryWriter's 7-bit encoded length prefix.
            int length = 0;
            for (int shift = 0; ; shift += 7)
            {
                if (shift > 28)
                {
                    throw new FormatException($"Replay buffer: the length of {field} is malformed.");
                }

                byte b = Byte(field);
                length |= (b & 0x7F) << shift;
                if ((b & 0x80) == 0)
                {
                    break;
                }
            }

            return Encoding.UTF8.GetString(Take(length, field));
        }

        public int[]? Ids(string field)
        {
            int count = Int32(field);
            if (count == -1)
            {
                return null;
            }

            if (count < 0 || count > MaxTokensPerSequence)
            {
                throw new FormatException($"Replay buffer: {field} has {count} ids.");
            }

            ReadOnlySpan<byte> bytes = Take(4 * count, field);
            var ids = new int[count];
            for (int i = 0; i < count; i++)
            {
                ids[i] = BinaryPrimitives.ReadInt32LittleEndian(bytes[(4 * i)..]);
            }

            return ids;
        }

        private ReadOnlySpan<byte> Take(int count, string field)
        {
            if (count < 0 || count > _data.Length - _offset)
            {
                throw new FormatException($"Replay buffer: the data ends inside {field} (offset {_offset}).");
            }

            ReadOnlySpan<byte> slice = _data.Slice(_offset, count);
            _offset += count;
            return slice;
        }
    }
}

/// <summary>
/// A uniform sample of every item offered (reservoir sampling, Vitter's algorithm R): once full, the <c>n</c>-th item
/// replaces a random kept one with probability <c>capacity / n</c>. When the byte capacity binds first, random items are
/// evicted until the new one fits.
/// </summary>
internal sealed class ReservoirReplayBuffer(int capacityItems, long capacityBytes, ulong seed) : ReplayBuffer(capacityItems, capacityBytes, seed)
{
    private readonly List<ReplayItem> _items = [];
    private long _bytes;

    private protected override int CountCore => _items.Count;

    private protected override long BytesCore => _bytes;

    public override IReadOnlyList<ReplayItem> Items() => [.. _items];

    private protected override void AddCore(ReplayItem item)
    {
        if (_items.Count < CapacityItems && _bytes + item.Bytes <= CapacityBytes)
        {
            _items.Add(item);
            _bytes += item.Bytes;
            return;
        }

        long j = Next(Seen);
        if (j >= CapacityItems)
        {
            return;
        }

        int slot = (int)(j % Math.Max(1, _items.Count));
        if (_items.Count == 0)
        {
            _items.Add(item);
            _bytes += item.Bytes;
        }
        else
        {
            _bytes += item.Bytes - _items[slot].Bytes;
            _items[slot] = item;
        }

        // The new item stays (by its slot: the same item may also be kept from an earlier offer).
        int keep = slot;
        while (_bytes > CapacityBytes && _items.Count > 1)
        {
            int evict = (int)Next(_items.Count);
            if (evict == keep)
            {
                continue;
            }

            int last = _items.Count - 1;
            _bytes -= _items[evict].Bytes;
            _items[evict] = _items[last];
            _items.RemoveAt(last);
            if (keep == last)
            {
                keep = evict;
            }
        }
    }

    private protected override ReplayItem SampleOne() => _items[(int)Next(_items.Count)];

    private protected override int RemoveSourceCore(string source)
    {
        int removed = _items.RemoveAll(i => i.Source == source);
        _bytes = _items.Sum(i => i.Bytes);
        return removed;
    }

    private protected override void Load(List<ReplayItem> items)
    {
        _items.AddRange(items);
        _bytes = items.Sum(i => i.Bytes);
    }
}

/// <summary>
/// A reservoir per source, the capacity shared equally between the sources seen, and draws that pick a source
/// uniformly first: one loud source cannot crowd out the others, in memory or in replay.
/// </summary>
internal sealed class SourceBalancedReplayBuffer(int capacityItems, long capacityBytes, ulong seed) : ReplayBuffer(capacityItems, capacityBytes, seed)
{
    private readonly SortedDictionary<string, (List<ReplayItem> Items, long Seen)> _sources = new(StringComparer.Ordinal);
    private long _bytes;

    private protected override int CountCore => _sources.Values.Sum(s => s.Items.Count);

    private protected override long BytesCore => _bytes;

    public override IReadOnlyList<ReplayItem> Items() => [.. _sources.Values.SelectMany(s => s.Items)];

    private protected override void AddCore(ReplayItem item)
    {
        if (!_sources.TryGetValue(item.Source, out var entry))
        {
            entry = ([], 0);
            _sources[item.Source] = entry;
            Rebalance();
        }

        entry.Seen++;
        _sources[item.Source] = entry;
        int shareItems = ShareItems(item.Source);
        long shareBytes = Math.Max(1, CapacityBytes / _sources.Count);
        if (item.Bytes > shareBytes)
        {
            // It can never fit its source's share: replacing a kept item would only lose that one.
            return;
        }

        List<ReplayItem> items = entry.Items;
        long bytes = items.Sum(i => i.Bytes);
        if (items.Count < shareItems && bytes + item.Bytes <= shareBytes)
        {
            items.Add(item);
            _bytes += item.Bytes;
            return;
        }

        long j = Next(entry.Seen);
        if (j >= shareItems || items.Count == 0)
        {
            return;
        }

        int slot = (int)(j % items.Count);
        _bytes += item.Bytes - items[slot].Bytes;
        items[slot] = item;
        Trim(items, shareItems, shareBytes, keep: slot);
    }

    private protected override ReplayItem SampleOne()
    {
        List<ReplayItem>[] nonEmpty = [.. _sources.Values.Select(s => s.Items).Where(l => l.Count > 0)];
        List<ReplayItem> items = nonEmpty[(int)Next(nonEmpty.Length)];
        return items[(int)Next(items.Count)];
    }

    private protected override void Load(List<ReplayItem> items)
    {
        foreach (ReplayItem item in items)
        {
            if (!_sources.TryGetValue(item.Source, out var entry))
            {
                throw new FormatException($"Replay buffer: item {item.Sequence} names source '{item.Source}', which has no entry.");
            }

            entry.Items.Add(item);
            _bytes += item.Bytes;
        }
    }

    private protected override void WriteExtra(BinaryWriter writer)
    {
        writer.Write(_sources.Count);
        foreach ((string source, (List<ReplayItem> _, long seen)) in _sources)
        {
            writer.Write(source);
            writer.Write(seen);
        }
    }

    private protected override void ReadExtra(ref Reader reader)
    {
        int count = reader.Int32("sources");
        if (count < 0 || count > 1_000_000)
        {
            throw new FormatException($"Replay buffer: {count} sources.");
        }

        for (int i = 0; i < count; i++)
        {
            string source = reader.String("source");
            long seen = reader.Int64("sourceSeen");
            if (seen < 0)
            {
                throw new FormatException($"Replay buffer: source '{source}' has seen {seen} items.");
            }

            _sources[source] = ([], seen);
        }
    }

    /// <summary>Shrinks every source to the (new, smaller) equal share.</summary>
    private protected override int RemoveSourceCore(string source)
    {
        // The source leaves the shares too: the others' shares grow back as they add items.
        if (!_sources.Remove(source, out var entry))
        {
            return 0;
        }

        _bytes -= entry.Items.Sum(i => i.Bytes);
        return entry.Items.Count;
    }

    private void Rebalance()
    {
        long shareBytes = Math.Max(1, CapacityBytes / _sources.Count);
        int rank = 0;
        foreach ((List<ReplayItem> items, long _) in _sources.Values)
        {
            Trim(items, ShareItems(rank++), shareBytes, keep: -1);
        }
    }

    /// <summary>The items <paramref name="source"/> may keep (see <see cref="ShareItems(int)"/>).</summary>
    private int ShareItems(string source) => CapacityItems >= _sources.Count
        ? CapacityItems / _sources.Count
        : ShareItems(_sources.Keys.TakeWhile(name => string.CompareOrdinal(name, source) < 0).Count());

    /// <summary>
    /// The share of the source at <paramref name="rank"/> in ordinal order: an equal part of the capacity; while sources
    /// outnumber the capacity, one item for each of the first <see cref="ReplayBuffer.CapacityItems"/> sources and none for
    /// the others, so the shares never add up to more than the capacity.
    /// </summary>
    private int ShareItems(int rank)
    {
        int share = CapacityItems / _sources.Count;
        return share > 0 ? share : rank < CapacityItems ? 1 : 0;
    }

    /// <summary>Evicts random items until <paramref name="items"/> fits the share, sparing the item at <paramref name="keep"/> (−1: none) while others remain.</summary>
    private void Trim(List<ReplayItem> items, int shareItems, long shareBytes, int keep)
    {
        long bytes = items.Sum(i => i.Bytes);
        while (items.Count > 0 && (items.Count > shareItems || bytes > shareBytes))
        {
            int evict = (int)Next(items.Count);
            if (evict == keep && items.Count > 1)
            {
                continue;
            }

            int last = items.Count - 1;
            bytes -= items[evict].Bytes;
            _bytes -= items[evict].Bytes;
            items[evict] = items[last];
            items.RemoveAt(last);
            if (keep == last)
            {
                keep = evict;
            }
        }
    }
}
