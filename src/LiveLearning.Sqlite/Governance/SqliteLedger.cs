using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using LiveLearning.Storage;
using Microsoft.Data.Sqlite;

namespace LiveLearning.Governance;

/// <summary>How hard SQLite pushes each append to the disk (its <c>synchronous</c> setting, in WAL mode).</summary>
public enum SqliteDurability
{
    /// <summary>Survives a crash of the process; an operating-system crash or power loss may lose the last appends, never corrupt the file. Fast.</summary>
    Normal,

    /// <summary>Every append is flushed to the disk before it returns: survives power loss. One flush per entry.</summary>
    Full,
}

/// <summary>Settings of <see cref="SqliteLedger"/>.</summary>
public sealed record SqliteLedgerOptions
{
    /// <summary>The database file (created with its directory if missing).</summary>
    public required string Path { get; init; }

    /// <summary>How durable each append is. Default <see cref="SqliteDurability.Normal"/>.</summary>
    public SqliteDurability Durability { get; init; } = SqliteDurability.Normal;

    /// <summary>Run SQLite's <c>quick_check</c> when opening (time linear in the file's size). Default true.</summary>
    public bool CheckOnOpen { get; init; } = true;

    /// <summary>
    /// Refuse to open when the chain head does not match the newest stored entry (entries deleted or added outside
    /// the ledger); false opens it anyway, to inspect and verify a damaged ledger. Default true.
    /// </summary>
    public bool CheckHeadOnOpen { get; init; } = true;
}

/// <summary>
/// The audit ledger in a SQLite database: append-only, hash-chained (<see cref="LedgerChain"/>), indexed for queries by
/// model, scope, source, version, item, event, actor and time, exportable as JSON lines (<see cref="LedgerJson"/>).
/// The chain's head (last index and hash) is kept in its own table and written in the same transaction as each entry,
/// so <see cref="VerifyChainAsync"/> detects an edited, inserted, reordered or deleted entry — the newest included.
/// </summary>
/// <remarks>
/// Thread-safe; several processes may append to one file (each append reads the head inside its write transaction).
/// The chain proves integrity against edits inside the file; against someone rewriting the whole file, publish the
/// head hash elsewhere from time to time (<see cref="GetHeadAsync"/>).
/// </remarks>
public sealed class SqliteLedger : IQueryableLedger, IDisposable
{
    private const int SchemaVersion = 1;
    private const string Columns = "idx, at_ticks, at_offset, model, scope, event, message, sequence, source, rule, version_id, items, loss_bits, figures, actor, prev_hash, hash";

    private readonly string _path;
    private readonly string _connectionString;
    private readonly SqliteConnection _writer;
    private readonly Lock _gate = new();
    private bool _disposed;

    /// <summary>Opens (or creates) the ledger.</summary>
    /// <param name="options">Where and how.</param>
    /// <exception cref="StorageCorruptedException">The file is not a SQLite database, fails its check, or its head does not match its newest entry.</exception>
    public SqliteLedger(SqliteLedgerOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrWhiteSpace(options.Path);
        if (!Enum.IsDefined(options.Durability))
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.Durability, "Unknown durability.");
        }

        _path = System.IO.Path.GetFullPath(options.Path);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(_path)!);
        _connectionString = new SqliteConnectionStringBuilder { DataSource = _path, Pooling = false, DefaultTimeout = 30 }.ToString();
        _writer = new SqliteConnection(_connectionString);
        try
        {
            _writer.Open();
            Execute(_writer, "PRAGMA journal_mode=WAL;");
            Execute(_writer, options.Durability == SqliteDurability.Full ? "PRAGMA synchronous=FULL;" : "PRAGMA synchronous=NORMAL;");
            if (options.CheckOnOpen && Scalar(_writer, "PRAGMA quick_check;") is string check && check != "ok")
            {
                throw new StorageCorruptedException(_path, null, $"SQLite quick_check failed: {check}");
            }

            CreateSchema();
            string? problem = options.CheckHeadOnOpen ? CheckHead(_writer) : null;
            if (problem is not null)
            {
                throw new StorageCorruptedException(_path, null, problem);
            }
        }
        catch (SqliteException ex)
        {
            _writer.Dispose();
            throw new StorageCorruptedException(_path, null, $"not a readable ledger database ({ex.Message})");
        }
        catch
        {
            _writer.Dispose();
            throw;
        }
    }

    /// <summary>The database file.</summary>
    public string Path => _path;

    /// <inheritdoc />
    public ValueTask AppendAsync(LedgerEntry entry, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(entry);
        cancellationToken.ThrowIfCancellationRequested();
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);

            // BEGIN IMMEDIATE: the head read and the insert are one write transaction, also across processes.
            using SqliteTransaction tx = _writer.BeginTransaction(deferred: false);
            (long lastIndex, string lastHash) = ReadHead(_writer, tx);
            LedgerEntry linked = entry with { Index = lastIndex + 1, PreviousHash = lastHash, Hash = string.Empty };
            linked = linked with { Hash = LedgerChain.ComputeHash(linked) };
            Insert(linked, tx);
            using (SqliteCommand head = Command(_writer, "UPDATE head SET last_index = $i, last_hash = $h WHERE id = 1;", tx))
            {
                head.Parameters.AddWithValue("$i", linked.Index);
                head.Parameters.AddWithValue("$h", linked.Hash);
                head.ExecuteNonQuery();
            }

            tx.Commit();
        }

        return ValueTask.CompletedTask;
    }

    /// <summary>The chain's head: the newest entry's index and hash (0 and empty for an empty ledger).</summary>
    /// <param name="cancellationToken">Cancels the read.</param>
    /// <returns>The head.</returns>
    public ValueTask<(long Index, string Hash)> GetHeadAsync(CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        using SqliteConnection c = OpenReader();
        return ValueTask.FromResult(ReadHead(c, null));
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<LedgerEntry> QueryAsync(LedgerQuery query, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(query);
        await using SqliteConnection c = OpenReader();
        await using SqliteCommand cmd = c.CreateCommand();
        var where = new List<string>();
        void Filter(string clause, string name, object? value)
        {
            if (value is not null)
            {
                where.Add(clause);
                cmd.Parameters.AddWithValue(name, value);
            }
        }

        Filter("model = $model", "$model", query.Model);
        Filter("scope = $scope", "$scope", query.Scope);
        Filter("source = $source", "$source", query.Source);
        Filter("version_id = $version", "$version", query.VersionId);
        Filter("(sequence = $item OR idx IN (SELECT idx FROM entry_items WHERE item = $item))", "$item", query.Item);
        Filter("event = $event", "$event", query.Event is { } kind ? (int)kind : null);
        Filter("actor = $actor", "$actor", query.Actor);
        Filter("at_ticks >= $from", "$from", query.From?.UtcTicks);
        Filter("at_ticks < $to", "$to", query.To?.UtcTicks);
        Filter("idx > $after", "$after", query.AfterIndex);
        cmd.CommandText = $"SELECT {Columns} FROM entries{(where.Count == 0 ? string.Empty : " WHERE " + string.Join(" AND ", where))} ORDER BY idx{(query.Limit is { } limit ? string.Create(CultureInfo.InvariantCulture, $" LIMIT {Math.Max(0, limit)}") : string.Empty)};";
        await using SqliteDataReader reader = await cmd.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            yield return Read(reader);
        }
    }

    /// <inheritdoc />
    public ValueTask<LedgerVerification> VerifyChainAsync(CancellationToken cancellationToken = default)
    {
        using SqliteConnection c = OpenReader();
        using SqliteTransaction snapshot = c.BeginTransaction(deferred: true);
        using (SqliteCommand first = Command(c, "SELECT idx, prev_hash FROM entries ORDER BY idx LIMIT 1;", snapshot))
        using (SqliteDataReader r = first.ExecuteReader())
        {
            // The chain's first entry: index 1 with no link (otherwise entries before the first stored one were deleted).
            if (r.Read() && (r.GetInt64(0) != 1 || r.GetString(1).Length != 0))
            {
                return ValueTask.FromResult(new LedgerVerification(false, 0, r.GetInt64(0), string.Create(CultureInfo.InvariantCulture, $"the first stored entry is {r.GetInt64(0)}, not the chain's first: the entries before it were deleted")));
            }
        }

        LedgerVerification chain = LedgerChain.Verify(ReadAll(c, snapshot, cancellationToken));
        if (!chain.Valid)
        {
            return ValueTask.FromResult(chain);
        }

        string? problem = CheckHead(c, snapshot);
        return ValueTask.FromResult(problem is null ? chain : new LedgerVerification(false, chain.Checked, null, problem));
    }

    /// <summary>Closes the database.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            _writer.Dispose();
        }
    }

    private void CreateSchema()
    {
        using SqliteTransaction tx = _writer.BeginTransaction(deferred: false);
        Execute(_writer, """
            CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS entries (
                idx INTEGER PRIMARY KEY, at_ticks INTEGER NOT NULL, at_offset INTEGER NOT NULL, model TEXT NOT NULL,
                scope TEXT NOT NULL, event INTEGER NOT NULL, message TEXT NOT NULL, sequence INTEGER, source TEXT,
                rule TEXT, version_id TEXT, items TEXT, loss_bits INTEGER, figures TEXT, actor TEXT,
                prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS entry_items (idx INTEGER NOT NULL, item INTEGER NOT NULL);
            CREATE TABLE IF NOT EXISTS head (id INTEGER PRIMARY KEY CHECK (id = 1), last_index INTEGER NOT NULL, last_hash TEXT NOT NULL);
            INSERT OR IGNORE INTO head (id, last_index, last_hash) VALUES (1, 0, '');
            CREATE INDEX IF NOT EXISTS entries_source ON entries (source);
            CREATE INDEX IF NOT EXISTS entries_version ON entries (version_id);
            CREATE INDEX IF NOT EXISTS entries_sequence ON entries (sequence);
            CREATE INDEX IF NOT EXISTS entries_time ON entries (at_ticks);
            CREATE INDEX IF NOT EXISTS entries_scope ON entries (scope, idx);
            CREATE INDEX IF NOT EXISTS entry_items_item ON entry_items (item);
            """, tx);
        using (SqliteCommand version = Command(_writer, "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema', $v);", tx))
        {
            version.Parameters.AddWithValue("$v", SchemaVersion.ToString(CultureInfo.InvariantCulture));
            version.ExecuteNonQuery();
        }

        string? stored = Scalar(_writer, "SELECT value FROM meta WHERE key = 'schema';", tx) as string;
        if (stored != SchemaVersion.ToString(CultureInfo.InvariantCulture))
        {
            throw new StorageCorruptedException(_path, null, $"ledger schema version '{stored}' is not {SchemaVersion}");
        }

        tx.Commit();
    }

    private void Insert(LedgerEntry e, SqliteTransaction tx)
    {
        using SqliteCommand cmd = Command(_writer, $"INSERT INTO entries ({Columns}) VALUES ($idx, $ticks, $offset, $model, $scope, $event, $message, $sequence, $source, $rule, $version, $items, $loss, $figures, $actor, $prev, $hash);", tx);
        cmd.Parameters.AddWithValue("$idx", e.Index);
        cmd.Parameters.AddWithValue("$ticks", e.At.UtcTicks);
        cmd.Parameters.AddWithValue("$offset", (long)e.At.Offset.TotalMinutes);
        cmd.Parameters.AddWithValue("$model", e.Model);
        cmd.Parameters.AddWithValue("$scope", e.Scope);
        cmd.Parameters.AddWithValue("$event", (int)e.Event);
        cmd.Parameters.AddWithValue("$message", e.Message);
        cmd.Parameters.AddWithValue("$sequence", (object?)e.Sequence ?? DBNull.Value);
        cmd.Parameters.AddWithValue("$source", (object?)e.Source ?? DBNull.Value);
        cmd.Parameters.AddWithValue("$rule", (object?)e.Rule ?? DBNull.Value);
        cmd.Parameters.AddWithValue("$version", (object?)e.VersionId ?? DBNull.Value);
        cmd.Parameters.AddWithValue("$items", e.Items is { } items ? string.Join(',', items.Select(i => i.ToString(CultureInfo.InvariantCulture))) : DBNull.Value);
        cmd.Parameters.AddWithValue("$loss", e.Loss is { } loss ? BitConverter.DoubleToInt64Bits(loss) : DBNull.Value);
        cmd.Parameters.AddWithValue("$figures", e.Figures is { } figures ? FiguresJson(figures) : DBNull.Value);
        cmd.Parameters.AddWithValue("$actor", (object?)e.Actor ?? DBNull.Value);
        cmd.Parameters.AddWithValue("$prev", e.PreviousHash);
        cmd.Parameters.AddWithValue("$hash", e.Hash);
        cmd.ExecuteNonQuery();
        if (e.Items is { Count: > 0 })
        {
            using SqliteCommand item = Command(_writer, "INSERT INTO entry_items (idx, item) VALUES ($idx, $item);", tx);
            SqliteParameter idx = item.Parameters.AddWithValue("$idx", e.Index);
            SqliteParameter value = item.Parameters.Add("$item", SqliteType.Integer);
            foreach (long i in e.Items)
            {
                value.Value = i;
                item.ExecuteNonQuery();
            }
        }
    }

    private static LedgerEntry Read(SqliteDataReader r)
    {
        var at = new DateTimeOffset(r.GetInt64(1), TimeSpan.Zero).ToOffset(TimeSpan.FromMinutes(r.GetInt64(2)));
        return new LedgerEntry(at, r.GetString(3), r.GetString(4), (LedgerEvent)r.GetInt32(5), r.GetString(6))
        {
            Index = r.GetInt64(0),
            Sequence = r.IsDBNull(7) ? null : r.GetInt64(7),
            Source = r.IsDBNull(8) ? null : r.GetString(8),
            Rule = r.IsDBNull(9) ? null : r.GetString(9),
            VersionId = r.IsDBNull(10) ? null : r.GetString(10),
            Items = r.IsDBNull(11) ? null : ParseItems(r.GetString(11)),
            // Stored as the double's bits (an INTEGER column: REAL affinity would convert them), so it comes back exactly.
            Loss = r.IsDBNull(12) ? null : BitConverter.Int64BitsToDouble(r.GetInt64(12)),
            Figures = r.IsDBNull(13) ? null : ParseFigures(r.GetString(13)),
            Actor = r.IsDBNull(14) ? null : r.GetString(14),
            PreviousHash = r.GetString(15),
            Hash = r.GetString(16),
        };
    }

    private static IEnumerable<LedgerEntry> ReadAll(SqliteConnection c, SqliteTransaction tx, CancellationToken cancellationToken)
    {
        using SqliteCommand cmd = Command(c, $"SELECT {Columns} FROM entries ORDER BY idx;", tx);
        using SqliteDataReader reader = cmd.ExecuteReader();
        while (reader.Read())
        {
            cancellationToken.ThrowIfCancellationRequested();
            yield return Read(reader);
        }
    }

    /// <summary>Null when the head matches the newest entry, else what is wrong.</summary>
    private static string? CheckHead(SqliteConnection c, SqliteTransaction? tx = null)
    {
        (long index, string hash) = ReadHead(c, tx);
        using SqliteCommand last = Command(c, "SELECT idx, hash FROM entries ORDER BY idx DESC LIMIT 1;", tx);
        using SqliteDataReader r = last.ExecuteReader();
        (long lastIndex, string lastHash) = r.Read() ? (r.GetInt64(0), r.GetString(1)) : (0L, string.Empty);
        return index == lastIndex && hash == lastHash
            ? null
            : string.Create(CultureInfo.InvariantCulture, $"the chain head says entry {index} is the newest, but the newest stored is {lastIndex}{(index == lastIndex ? " with another hash" : string.Empty)}: entries were deleted, added or edited outside the ledger");
    }

    private static (long Index, string Hash) ReadHead(SqliteConnection c, SqliteTransaction? tx)
    {
        using SqliteCommand cmd = Command(c, "SELECT last_index, last_hash FROM head WHERE id = 1;", tx);
        using SqliteDataReader r = cmd.ExecuteReader();
        return r.Read() ? (r.GetInt64(0), r.GetString(1)) : throw new InvalidDataException("The ledger's head row is missing.");
    }

    private SqliteConnection OpenReader()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var c = new SqliteConnection(_connectionString);
        c.Open();
        return c;
    }

    private static string FiguresJson(IReadOnlyDictionary<string, double> figures)
    {
        using var buffer = new MemoryStream();
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            foreach (KeyValuePair<string, double> f in figures.OrderBy(f => f.Key, StringComparer.Ordinal))
            {
                // The bits, so every value (NaN and infinities too) comes back exactly.
                writer.WriteNumber(f.Key, BitConverter.DoubleToInt64Bits(f.Value));
            }

            writer.WriteEndObject();
        }

        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    private static Dictionary<string, double> ParseFigures(string json)
    {
        using JsonDocument d = JsonDocument.Parse(json);
        return d.RootElement.EnumerateObject().ToDictionary(p => p.Name, p => BitConverter.Int64BitsToDouble(p.Value.GetInt64()), StringComparer.Ordinal);
    }

    private static long[] ParseItems(string text) =>
        text.Length == 0 ? [] : [.. text.Split(',').Select(s => long.Parse(s, CultureInfo.InvariantCulture))];

    private static SqliteCommand Command(SqliteConnection c, string sql, SqliteTransaction? tx)
    {
        SqliteCommand cmd = c.CreateCommand();
        cmd.CommandText = sql;
        cmd.Transaction = tx;
        return cmd;
    }

    private static void Execute(SqliteConnection c, string sql, SqliteTransaction? tx = null)
    {
        using SqliteCommand cmd = Command(c, sql, tx);
        cmd.ExecuteNonQuery();
    }

    private static object? Scalar(SqliteConnection c, string sql, SqliteTransaction? tx = null)
    {
        using SqliteCommand cmd = Command(c, sql, tx);
        return cmd.ExecuteScalar();
    }
}
