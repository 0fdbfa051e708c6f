using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using LiveLearning.Backends;

namespace LiveLearning.Storage;

/// <summary>
/// The durable snapshot store: one directory per snapshot under <c>&lt;root&gt;/snapshots</c>, written into a temporary
/// directory, every file flushed to disk, then renamed into place, so a reader sees a whole snapshot or none. Each
/// snapshot directory holds the adapter in PEFT form (<c>adapter_model.safetensors</c>, <c>adapter_config.json</c> when
/// the backend gives one), <c>trainer.safetensors</c> (parameters and optimizer moments), <c>replay.bin</c>,
/// <c>state.json</c> (version, label, journal position, KTO reference, replay credit, metrics, metadata) and
/// <c>manifest.json</c> (the id and the SHA-256 of every other file, checked before anything is parsed on load).
/// </summary>
/// <remarks>
/// <para>Directory names encode the id (every character outside <c>[A-Za-z0-9_-]</c> as <c>%XX</c> UTF-8 bytes, long
/// ids shortened with a hash), so no id reaches outside the store; the manifest holds the real id and is what a load
/// matches. Aliases live in <c>aliases.json</c>, rewritten atomically.</para>
/// <para>With a <see cref="StorageKey"/> every file but the manifest is sealed with AES-256-GCM (the snapshot id and file
/// name as associated data, so files cannot be swapped between snapshots); the manifest then carries only the id, the
/// hashes and the key's fingerprint.</para>
/// </remarks>
public sealed class FileSnapshotStore : ISnapshotStore
{
    private const int FormatVersion = 1;
    private const string Manifest = "manifest.json";
    private const string AdapterFile = PeftFiles.WeightsFile;
    private const string AdapterConfigFile = PeftFiles.ConfigFile;
    private const string TrainerFile = "trainer.safetensors";
    private const string ReplayFile = "replay.bin";
    private const string StateFile = "state.json";

    private static readonly JsonSerializerOptions Json = new() { WriteIndented = true };

    private readonly string _root;
    private readonly string _snapshots;
    private readonly StorageKey? _key;
    private readonly SemaphoreSlim _gate = new(1, 1);

    /// <summary>Opens (or creates) a store in <paramref name="directory"/>.</summary>
    /// <param name="directory">The store's root.</param>
    /// <param name="key">Seals every snapshot with AES-256-GCM; <see langword="null"/> stores plaintext (PEFT-readable).</param>
    public FileSnapshotStore(string directory, StorageKey? key = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        _root = Path.GetFullPath(directory);
        _snapshots = Path.Combine(_root, "snapshots");
        _key = key;
        Directory.CreateDirectory(_snapshots);
        RecoverLeftovers();
    }

    /// <summary>The store's root directory.</summary>
    public string RootDirectory => _root;

    /// <summary>The directory a snapshot id is stored in (whether or not it exists).</summary>
    /// <param name="id">The snapshot id.</param>
    /// <returns>The full path, always inside <see cref="RootDirectory"/>.</returns>
    /// <exception cref="ArgumentException">The id is empty or not valid UTF-16 (a lone surrogate).</exception>
    public string DirectoryOf(string id) => Path.Combine(_snapshots, EncodeName(id));

    /// <inheritdoc />
    public async ValueTask SaveAsync(Snapshot snapshot, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(snapshot);
        string final = DirectoryOf(snapshot.Info.Id);
        (byte[] adapter, string? config) = PeftFiles.Serialize(snapshot.Weights);
        var files = new Dictionary<string, byte[]>(StringComparer.Ordinal)
        {
            [AdapterFile] = adapter,
            [TrainerFile] = SafeTensorsWriter.Serialize(PeftFiles.Entries(snapshot.Trainer.Tensors), TrainerHeader(snapshot.Trainer)),
            [ReplayFile] = snapshot.Replay.ToArray(),
            [StateFile] = Encoding.UTF8.GetBytes(StateJson(snapshot).ToJsonString(Json)),
        };
        if (config is not null)
        {
            files[AdapterConfigFile] = Encoding.UTF8.GetBytes(config);
        }

        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        string temp = Path.Combine(_snapshots, $".tmp-{Guid.NewGuid():N}");
        try
        {
            Directory.CreateDirectory(temp);
            var hashes = new JsonObject();
            foreach ((string name, byte[] plain) in files)
            {
                cancellationToken.ThrowIfCancellationRequested();
                byte[] stored = _key?.Seal(plain, Associated(snapshot.Info.Id, name)) ?? plain;
                await WriteDurableAsync(Path.Combine(temp, name), stored, cancellationToken).ConfigureAwait(false);
                hashes[name] = Convert.ToHexStringLower(SHA256.HashData(stored));
            }

            var manifest = new JsonObject
            {
                ["format"] = FormatVersion,
                ["id"] = snapshot.Info.Id,
                ["encrypted"] = _key is not null,
                ["key_fingerprint"] = _key is null ? null : Convert.ToHexStringLower(_key.Fingerprint.Span),
                ["files"] = hashes,
            };
            await WriteDurableAsync(Path.Combine(temp, Manifest), Encoding.UTF8.GetBytes(manifest.ToJsonString(Json)), cancellationToken).ConfigureAwait(false);
            cancellationToken.ThrowIfCancellationRequested();

            // Replace: the old directory moves aside first, so a crash in between leaves one whole copy.
            string? aside = null;
            if (Directory.Exists(final))
            {
                aside = Path.Combine(_snapshots, $".tmp-old-{Guid.NewGuid():N}");
                Directory.Move(final, aside);
            }

            try
            {
                Directory.Move(temp, final);
            }
            catch when (aside is not null)
            {
                // Put the old copy back so a failed replace loses nothing.
                Directory.Move(aside, final);
                throw;
            }

            if (aside is not null)
            {
                DeleteBestEffort(aside);
            }
        }
        catch
        {
            if (Directory.Exists(temp))
            {
                Directory.Delete(temp, recursive: true);
            }

            throw;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <inheritdoc />
    /// <exception cref="StorageCorruptedException">A file of the snapshot is missing, altered or malformed (named).</exception>
    /// <exception cref="StorageKeyMismatchException">The snapshot was sealed under another key, or the key presence differs.</exception>
    public async ValueTask<Snapshot?> LoadAsync(string id, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(id);
        string dir = DirectoryOf(id);

        // Under the gate, so a load never sees a snapshot half-way through being replaced or deleted.
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (!File.Exists(Path.Combine(dir, Manifest)))
            {
                return null;
            }

            Dictionary<string, byte[]> files = await ReadVerifiedAsync(dir, id, cancellationToken).ConfigureAwait(false);
            return Parse(dir, files);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <inheritdoc />
    public async ValueTask<IReadOnlyList<SnapshotInfo>> ListAsync(string? scope, CancellationToken cancellationToken)
    {
        var infos = new List<SnapshotInfo>();
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            foreach (string dir in SnapshotDirectories())
            {
                cancellationToken.ThrowIfCancellationRequested();
                try
                {
                    byte[] state = (await ReadVerifiedAsync(dir, expectedId: null, cancellationToken, only: StateFile).ConfigureAwait(false))[StateFile];
                    SnapshotInfo info = ParseState(Path.Combine(dir, StateFile), state).Info;
                    if (scope is null || info.Scope == scope)
                    {
                        infos.Add(info);
                    }
                }
                catch (IOException ex) when (ex is not StorageKeyMismatchException)
                {
                    // A snapshot whose manifest or state is damaged is not listed (VerifyAsync reports it); listing checks
                    // only those two files, a load checks every file. A wrong key is not damage: it is thrown, so a
                    // restart with the wrong key fails loudly instead of starting from nothing.
                }
            }
        }
        finally
        {
            _gate.Release();
        }

        return [.. infos.OrderBy(i => i.CreatedAt).ThenBy(i => i.Id, StringComparer.Ordinal)];
    }

    /// <summary>Loads and checks every stored snapshot fully.</summary>
    /// <param name="cancellationToken">Cancels the check.</param>
    /// <returns>The problems found: the snapshot directory and what is wrong (empty when all are sound).</returns>
    public async ValueTask<IReadOnlyList<(string Directory, string Problem)>> VerifyAsync(CancellationToken cancellationToken)
    {
        var problems = new List<(string, string)>();
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            foreach (string dir in SnapshotDirectories())
            {
                cancellationToken.ThrowIfCancellationRequested();
                try
                {
                    Parse(dir, await ReadVerifiedAsync(dir, expectedId: null, cancellationToken).ConfigureAwait(false));
                }
                catch (IOException ex)
                {
                    problems.Add((dir, ex.Message));
                }
            }
        }
        finally
        {
            _gate.Release();
        }

        return problems;
    }

    /// <inheritdoc />
    public async ValueTask<bool> DeleteAsync(string id, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrEmpty(id);
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            Dictionary<string, string> aliases = ReadAliases();
            if (aliases.Where(a => a.Value == id).Select(a => a.Key).ToList() is { Count: > 0 } pointing)
            {
                foreach (string alias in pointing)
                {
                    aliases.Remove(alias);
                }

                WriteAliases(aliases);
            }

            string dir = DirectoryOf(id);
            if (!Directory.Exists(dir))
            {
                return false;
            }

            string aside = Path.Combine(_snapshots, $".tmp-del-{Guid.NewGuid():N}");
            Directory.Move(dir, aside);
            DeleteBestEffort(aside);
            return true;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <inheritdoc />
    public async ValueTask SetAliasAsync(string alias, string id, CancellationToken cancellationToken)
    {
        SnapshotAliases.Validate(alias);
        ArgumentException.ThrowIfNullOrEmpty(id);
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (!File.Exists(Path.Combine(DirectoryOf(id), Manifest)))
            {
                throw new KeyNotFoundException($"No snapshot '{SnapshotAliases.Printable(id)}' to alias as '{alias}'.");
            }

            Dictionary<string, string> aliases = ReadAliases();
            aliases[alias] = id;
            WriteAliases(aliases);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <inheritdoc />
    public async ValueTask<bool> RemoveAliasAsync(string alias, CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            Dictionary<string, string> aliases = ReadAliases();
            if (!aliases.Remove(alias))
            {
                return false;
            }

            WriteAliases(aliases);
            return true;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <inheritdoc />
    public async ValueTask<IReadOnlyDictionary<string, string>> ListAliasesAsync(CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            return ReadAliases();
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>The directory name of an id: <c>[A-Za-z0-9_-]</c> kept, every other character as <c>%XX</c> UTF-8 bytes.</summary>
    internal static string EncodeName(string id)
    {
        ArgumentException.ThrowIfNullOrEmpty(id);
        byte[] utf8;
        try
        {
            utf8 = new UTF8Encoding(false, throwOnInvalidBytes: true).GetBytes(id);
        }
        catch (EncoderFallbackException)
        {
            throw new ArgumentException($"Snapshot id '{SnapshotAliases.Printable(id)}' is not valid UTF-16 (a lone surrogate).", nameof(id));
        }

        var b = new StringBuilder(utf8.Length);
        foreach (byte c in utf8)
        {
            if (c < 0x80 && (char.IsAsciiLetterOrDigit((char)c) || c is (byte)'_' or (byte)'-'))
            {
                b.Append((char)c);
            }
            else
            {
                b.Append(CultureInfo.InvariantCulture, $"%{c:X2}");
            }
        }

        string name = b.ToString();
        return name.Length <= 200 ? name : string.Concat(name.AsSpan(0, 150), "~", Convert.ToHexStringLower(SHA256.HashData(utf8)).AsSpan(0, 32));
    }

    /// <summary>
    /// Cleans up after a crash: a snapshot moved aside for a replacement that never arrived (<c>.tmp-old-</c>) is moved
    /// back, an interrupted deletion (<c>.tmp-del-</c>) is finished. An unfinished save (<c>.tmp-</c>) is left alone (it
    /// may be another instance's, in progress); no listing or load ever sees it.
    /// </summary>
    private void RecoverLeftovers()
    {
        foreach (string dir in Directory.GetDirectories(_snapshots, ".tmp-*"))
        {
            string name = Path.GetFileName(dir);
            if (name.StartsWith(".tmp-del-", StringComparison.Ordinal))
            {
                DeleteBestEffort(dir);
                continue;
            }

            if (!name.StartsWith(".tmp-old-", StringComparison.Ordinal))
            {
                continue;
            }

            try
            {
                if (JsonNode.Parse(File.ReadAllBytes(Path.Combine(dir, Manifest)))?["id"]?.GetValue<string>() is { Length: > 0 } id
                    && DirectoryOf(id) is { } final)
                {
                    if (Directory.Exists(final))
                    {
                        DeleteBestEffort(dir);
                    }
                    else
                    {
                        Directory.Move(dir, final);
                    }
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or JsonException or InvalidOperationException or ArgumentException)
            {
                // Not recoverable: left as it is, out of sight.
            }
        }
    }

    /// <summary>Removes a directory already moved aside (a <c>.tmp-</c> name no listing or load sees); a failure leaves only litter.</summary>
    private static void DeleteBestEffort(string directory)
    {
        try
        {
            Directory.Delete(directory, recursive: true);
        }
        catch (IOException)
        {
            // The snapshot is already out of sight; the leftover is harmless.
        }
        catch (UnauthorizedAccessException)
        {
            // Same as above.
        }
    }

    /// <summary>The trainer file's <c>__metadata__</c>: the trainer metadata and the step (for readers of the file alone; state.json is what a load reads).</summary>
    private static Dictionary<string, string> TrainerHeader(TrainerState trainer)
        => new(trainer.Metadata, StringComparer.Ordinal) { ["step"] = trainer.Step.ToString(CultureInfo.InvariantCulture) };

    /// <summary>The stored snapshots' directories (temporary and aside directories, which start with '.', excluded).</summary>
    private IEnumerable<string> SnapshotDirectories() => Directory.GetDirectories(_snapshots).Where(d => !Path.GetFileName(d).StartsWith('.'));

    private static byte[] Associated(string id, string file) => Encoding.UTF8.GetBytes(id + "/" + file);

    private static JsonObject StateJson(Snapshot s)
    {
        var metrics = new JsonObject();
        foreach ((string k, double v) in s.Metrics)
        {
            metrics[k] = double.IsFinite(v) ? v : null;
        }

        return new JsonObject
        {
            ["format"] = FormatVersion,
            ["id"] = s.Info.Id,
            ["model"] = s.Info.Model,
            ["scope"] = s.Info.Scope,
            ["label"] = s.Info.Label,
            ["created_at"] = s.Info.CreatedAt.ToString("O", CultureInfo.InvariantCulture),
            ["version"] = JsonSerializer.SerializeToNode(s.Info.Version, StorageJsonContext.Default.AdapterVersion),
            ["kto_reference_point"] = s.KtoReferencePoint,
            ["replay_credit"] = s.ReplayCredit,
            ["journal_position"] = s.JournalPosition,
            ["trainer_step"] = s.Trainer.Step,
            ["metrics"] = metrics,
            ["weights_metadata"] = JsonSerializer.SerializeToNode(new Dictionary<string, string>(s.Weights.Metadata), StorageJsonContext.Default.DictionaryStringString),
            ["trainer_metadata"] = JsonSerializer.SerializeToNode(new Dictionary<string, string>(s.Trainer.Metadata), StorageJsonContext.Default.DictionaryStringString),
            ["weights_order"] = new JsonArray([.. s.Weights.Tensors.Select(t => (JsonNode?)t.Name)]),
            ["trainer_order"] = new JsonArray([.. s.Trainer.Tensors.Select(t => (JsonNode?)t.Name)]),
        };
    }

    private static async Task WriteDurableAsync(string path, byte[] bytes, CancellationToken cancellationToken)
    {
        var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, FileOptions.Asynchronous);
        await using (stream.ConfigureAwait(false))
        {
            await stream.WriteAsync(bytes, cancellationToken).ConfigureAwait(false);
            stream.Flush(flushToDisk: true);
        }
    }

    /// <summary>Reads the manifest and the files it lists, checks each hash (and the key), and opens sealed files.</summary>
    private async Task<Dictionary<string, byte[]>> ReadVerifiedAsync(string dir, string? expectedId, CancellationToken cancellationToken, string? only = null)
    {
        string manifestPath = Path.Combine(dir, Manifest);
        JsonNode manifest;
        try
        {
            manifest = JsonNode.Parse(await File.ReadAllBytesAsync(manifestPath, cancellationToken).ConfigureAwait(false))
                ?? throw new StorageCorruptedException(manifestPath, null, "the manifest is empty");
        }
        catch (JsonException ex)
        {
            throw new StorageCorruptedException(manifestPath, null, $"the manifest is not valid JSON ({ex.Message})");
        }
        catch (FileNotFoundException)
        {
            throw new StorageCorruptedException(manifestPath, null, "the manifest is missing");
        }

        string id;
        bool encrypted;
        JsonObject hashes;
        try
        {
            if ((int?)manifest["format"] != FormatVersion)
            {
                throw new StorageCorruptedException(manifestPath, null, $"manifest format {manifest["format"]?.ToJsonString() ?? "(none)"} is not supported (expected {FormatVersion})");
            }

            id = (string?)manifest["id"] ?? throw new StorageCorruptedException(manifestPath, null, "the manifest has no id");
            encrypted = (bool?)manifest["encrypted"] ?? false;
            hashes = manifest["files"] as JsonObject ?? throw new StorageCorruptedException(manifestPath, null, "the manifest lists no files");
        }
        catch (Exception ex) when (ex is InvalidOperationException or FormatException)
        {
            throw new StorageCorruptedException(manifestPath, null, $"a manifest field has the wrong type ({ex.Message})");
        }

        if (expectedId is not null && id != expectedId)
        {
            throw new StorageCorruptedException(manifestPath, null, $"the manifest is of snapshot '{SnapshotAliases.Printable(id)}', not '{SnapshotAliases.Printable(expectedId)}'");
        }

        if (encrypted != (_key is not null))
        {
            throw new StorageKeyMismatchException(manifestPath, encrypted ? "the snapshot is encrypted and the store has no key" : "the snapshot is not encrypted but the store has a key");
        }

        if (_key is not null && !_key.Matches(Convert.FromHexString((string?)manifest["key_fingerprint"] ?? string.Empty)))
        {
            throw new StorageKeyMismatchException(manifestPath, "the snapshot was sealed under a different key");
        }

        foreach (string required in new[] { AdapterFile, TrainerFile, ReplayFile, StateFile })
        {
            if (!hashes.ContainsKey(required))
            {
                throw new StorageCorruptedException(manifestPath, null, $"the manifest does not list {required}");
            }
        }

        var files = new Dictionary<string, byte[]>(StringComparer.Ordinal);
        foreach ((string name, JsonNode? hashNode) in hashes)
        {
            if (only is not null && name != only)
            {
                continue;
            }

            string path = Path.Combine(dir, Path.GetFileName(name));
            if (Path.GetFileName(name) != name || !File.Exists(path))
            {
                throw new StorageCorruptedException(path, null, "a file the manifest lists is missing");
            }

            byte[] stored = await File.ReadAllBytesAsync(path, cancellationToken).ConfigureAwait(false);
            if (Convert.ToHexStringLower(SHA256.HashData(stored)) != (string?)hashNode)
            {
                throw new StorageCorruptedException(path, null, "the file's SHA-256 does not match the manifest");
            }

            files[name] = _key is null
                ? stored
                : _key.TryOpen(stored, Associated(id, name)) ?? throw new StorageCorruptedException(path, null, "the sealed file fails its authentication tag");
        }

        return files;
    }

    private static Snapshot Parse(string dir, Dictionary<string, byte[]> files)
    {
        string statePath = Path.Combine(dir, StateFile);
        (SnapshotInfo info, JsonNode state) = ParseState(statePath, files[StateFile]);
        try
        {
            var weightsMetadata = state["weights_metadata"].Deserialize(StorageJsonContext.Default.DictionaryStringString) ?? [];
            if (files.TryGetValue(AdapterConfigFile, out byte[]? config))
            {
                weightsMetadata[AdapterConfigFile] = Encoding.UTF8.GetString(config);
            }

            var trainerMetadata = state["trainer_metadata"].Deserialize(StorageJsonContext.Default.DictionaryStringString) ?? [];
            var metrics = new Dictionary<string, double>(StringComparer.Ordinal);
            foreach ((string k, JsonNode? v) in state["metrics"]?.AsObject() ?? [])
            {
                metrics[k] = v is null ? double.NaN : (double)v;
            }

            IReadOnlyList<NamedTensor> weights = Tensors(Path.Combine(dir, AdapterFile), files[AdapterFile], state["weights_order"]);
            IReadOnlyList<NamedTensor> trainer = Tensors(Path.Combine(dir, TrainerFile), files[TrainerFile], state["trainer_order"]);
            return new Snapshot(info, new AdapterWeightsData(weights, weightsMetadata), new TrainerState((long?)state["trainer_step"] ?? 0, trainer, trainerMetadata), files[ReplayFile], (double?)state["kto_reference_point"] ?? 0)
            {
                JournalPosition = (long?)state["journal_position"] ?? 0,
                ReplayCredit = (double?)state["replay_credit"] ?? 0,
                Metrics = metrics,
            };
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException or FormatException or KeyNotFoundException)
        {
            throw new StorageCorruptedException(statePath, null, $"the snapshot state is malformed ({ex.Message})");
        }
    }

    private static (SnapshotInfo Info, JsonNode State) ParseState(string path, byte[] bytes)
    {
        try
        {
            JsonNode state = JsonNode.Parse(bytes) ?? throw new StorageCorruptedException(path, null, "the state is empty");
            AdapterVersion version = state["version"].Deserialize(StorageJsonContext.Default.AdapterVersion) ?? throw new StorageCorruptedException(path, null, "the state has no version");
            var info = new SnapshotInfo(
                (string?)state["id"] ?? throw new StorageCorruptedException(path, null, "the state has no id"),
                (string?)state["scope"] ?? throw new StorageCorruptedException(path, null, "the state has no scope"),
                (string?)state["label"],
                version,
                DateTimeOffset.Parse((string?)state["created_at"] ?? string.Empty, CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind))
            {
                Model = (string?)state["model"] ?? string.Empty,
            };
            return (info, state);
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException or FormatException)
        {
            throw new StorageCorruptedException(path, null, $"the snapshot state is malformed ({ex.Message})");
        }
    }

    private static List<NamedTensor> Tensors(string path, byte[] bytes, JsonNode? order)
    {
        try
        {
            using SafeTensorsFile file = SafeTensorsFile.Load(bytes, path);
            string[] names = order?.Deserialize(StorageJsonContext.Default.StringArray) ?? [.. file.Names];
            if (names.Length != file.Count)
            {
                throw new StorageCorruptedException(path, null, $"the file holds {file.Count} tensors but the state lists {names.Length}");
            }

            return [.. names.Select(n => new NamedTensor(n, [.. file.GetInfo(n).Shape.Select(d => checked((int)d))], file.ReadAsFloat32(n)))];
        }
        catch (SafeTensorsFormatException ex)
        {
            throw new StorageCorruptedException(path, null, ex.Message);
        }
        catch (KeyNotFoundException ex)
        {
            throw new StorageCorruptedException(path, null, ex.Message);
        }
    }

    private Dictionary<string, string> ReadAliases()
    {
        string path = Path.Combine(_root, "aliases.json");
        if (!File.Exists(path))
        {
            return new Dictionary<string, string>(StringComparer.Ordinal);
        }

        try
        {
            Dictionary<string, string> read = JsonSerializer.Deserialize(File.ReadAllBytes(path), StorageJsonContext.Default.DictionaryStringString) ?? [];
            return new Dictionary<string, string>(read, StringComparer.Ordinal);
        }
        catch (JsonException ex)
        {
            throw new StorageCorruptedException(path, null, $"the alias file is not valid JSON ({ex.Message})");
        }
    }

    private void WriteAliases(Dictionary<string, string> aliases)
        => AtomicFile.Write(Path.Combine(_root, "aliases.json"), s => JsonSerializer.Serialize(s, aliases, StorageJsonContext.Default.DictionaryStringString));
}
