using System.Buffers.Binary;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace LiveLearning.Governance;

/// <summary>The outcome of <see cref="LedgerChain.Verify"/>.</summary>
/// <param name="Valid">Whether every entry is intact and in place.</param>
/// <param name="Checked">Entries checked.</param>
/// <param name="FirstBadIndex">The <see cref="LedgerEntry.Index"/> (or position, when the index itself is wrong) of the first entry that fails, if any.</param>
/// <param name="Problem">What is wrong with it.</param>
public sealed record LedgerVerification(bool Valid, long Checked, long? FirstBadIndex, string? Problem);

/// <summary>
/// The ledger's hash chain: each entry's <see cref="LedgerEntry.Hash"/> is the SHA-256 of its fields (a fixed,
/// length-prefixed little-endian encoding) and of the previous entry's hash, so editing an entry breaks its own hash,
/// and deleting, inserting or reordering entries breaks the next one's link.
/// </summary>
public static class LedgerChain
{
    /// <summary>Sets <paramref name="entry"/>'s index, previous hash and hash to follow <paramref name="previous"/>.</summary>
    /// <param name="entry">The new entry (its chain fields are ignored).</param>
    /// <param name="previous">The entry before it, or <see langword="null"/> for the first.</param>
    /// <returns>The sealed entry.</returns>
    public static LedgerEntry Seal(LedgerEntry entry, LedgerEntry? previous)
    {
        ArgumentNullException.ThrowIfNull(entry);
        LedgerEntry linked = entry with { Index = (previous?.Index ?? 0) + 1, PreviousHash = previous?.Hash ?? string.Empty, Hash = string.Empty };
        return linked with { Hash = ComputeHash(linked) };
    }

    /// <summary>The hash an entry should carry (over every field but <see cref="LedgerEntry.Hash"/>).</summary>
    /// <param name="entry">The entry.</param>
    /// <returns>Lower-case hex SHA-256.</returns>
    public static string ComputeHash(LedgerEntry entry)
    {
        ArgumentNullException.ThrowIfNull(entry);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var number = new byte[8];
        void Int(long value)
        {
            BinaryPrimitives.WriteInt64LittleEndian(number, value);
            hash.AppendData(number);
        }

        void Text(string? value)
        {
            if (value is null)
            {
                Int(-1);
                return;
            }

            byte[] bytes = Encoding.UTF8.GetBytes(value);
            Int(bytes.Length);
            hash.AppendData(bytes);
        }

        Int(entry.Index);
        Text(entry.PreviousHash);
        Int(entry.At.UtcTicks);
        Int((long)entry.At.Offset.TotalMinutes);
        Text(entry.Model);
        Text(entry.Scope);
        Int((long)entry.Event);
        Text(entry.Message);
        Int(entry.Sequence ?? long.MinValue);
        Text(entry.Source);
        Text(entry.Rule);
        Text(entry.VersionId);
        Text(entry.Actor);
        Int(entry.Loss is { } loss ? BitConverter.DoubleToInt64Bits(loss) : long.MinValue);
        if (entry.Items is null)
        {
            Int(-1);
        }
        else
        {
            Int(entry.Items.Count);
            foreach (long item in entry.Items)
            {
                Int(item);
            }
        }

        if (entry.Figures is null)
        {
            Int(-1);
        }
        else
        {
            Int(entry.Figures.Count);
            foreach (KeyValuePair<string, double> figure in entry.Figures.OrderBy(f => f.Key, StringComparer.Ordinal))
            {
                Text(figure.Key);
                Int(BitConverter.DoubleToInt64Bits(figure.Value));
            }
        }

        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    /// <summary>
    /// Checks a run of entries in order: each hash, each link to the previous hash, consecutive indices. The first
    /// entry's own link is taken as given (it anchors a ledger that dropped older entries).
    /// </summary>
    /// <param name="entries">The entries, oldest first.</param>
    /// <returns>Whether the chain holds, and where it first breaks.</returns>
    public static LedgerVerification Verify(IEnumerable<LedgerEntry> entries)
    {
        ArgumentNullException.ThrowIfNull(entries);
        LedgerEntry? previous = null;
        long count = 0;
        foreach (LedgerEntry e in entries)
        {
            count++;
            string? problem = null;
            if (previous is not null && e.Index != previous.Index + 1)
            {
                problem = string.Create(CultureInfo.InvariantCulture, $"index {e.Index} follows {previous.Index}: an entry is missing or out of order");
            }
            else if (previous is not null && e.PreviousHash != previous.Hash)
            {
                problem = "its link does not match the previous entry's hash: an entry before it was changed, removed or inserted";
            }
            else if (ComputeHash(e) != e.Hash)
            {
                problem = "its hash does not match its content: the entry was edited";
            }

            if (problem is not null)
            {
                return new LedgerVerification(false, count, e.Index, problem);
            }

            previous = e;
        }

        return new LedgerVerification(true, count, null, null);
    }
}
