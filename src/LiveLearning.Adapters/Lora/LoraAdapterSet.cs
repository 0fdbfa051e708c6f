using System.Collections.Immutable;
using LiveLearning.Models;

namespace LiveLearning.Lora;

/// <summary>
/// The adapters resident for one model, by name: load, add, remove, enable/disable, set scale, publish new versions.
/// </summary>
/// <remarks>
/// The whole set is one immutable snapshot behind a single reference; every change builds a new snapshot and swaps it
/// in with a compare-exchange. A reader takes an adapter (<see cref="Get"/>, <see cref="Active"/>, <see cref="Resolve"/>)
/// once per pass and keeps that immutable version for the whole pass, whatever is published meanwhile: no torn reads,
/// no lock on the read path.
/// </remarks>
public sealed class LoraAdapterSet
{
    private readonly int _numLayers;
    private readonly Func<Projection, (int OutFeatures, int InFeatures)> _shape;
    private ImmutableSortedDictionary<string, Entry> _entries = ImmutableSortedDictionary.Create<string, Entry>(StringComparer.Ordinal);

    /// <summary>Creates an empty set for <paramref name="model"/>.</summary>
    /// <param name="model">The base model.</param>
    public LoraAdapterSet(LlamaModel model)
    {
        ArgumentNullException.ThrowIfNull(model);
        _numLayers = model.Config.NumLayers;
        _shape = model.ProjectionShape;
    }

    /// <summary>Names of resident adapters, ordinal order.</summary>
    public IReadOnlyList<string> Names => [.. Volatile.Read(ref _entries).Keys];

    /// <summary>Loads a PEFT adapter directory under <paramref name="name"/> (enabled, scale 1).</summary>
    /// <param name="name">Adapter name (new).</param>
    /// <param name="directory">PEFT adapter directory.</param>
    /// <returns>The loaded version.</returns>
    public LoraAdapter Load(string name, string directory)
    {
        LoraAdapter adapter = LoraAdapter.LoadPeft(directory, _numLayers, _shape);
        Add(name, adapter);
        return adapter;
    }

    /// <summary>Adds <paramref name="adapter"/> under a new <paramref name="name"/> (enabled, scale 1).</summary>
    /// <param name="name">Adapter name.</param>
    /// <param name="adapter">The adapter; must fit the model.</param>
    /// <exception cref="ArgumentException">The name exists, or the adapter does not fit the model (first mismatching module named).</exception>
    public void Add(string name, LoraAdapter adapter)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        CheckFits(adapter);
        Update(e => e.ContainsKey(name) ? throw new ArgumentException($"An adapter named '{name}' is already resident.", nameof(name)) : e.Add(name, new Entry(adapter, true, 1f)));
    }

    /// <summary>Removes an adapter; passes already using it keep their reference.</summary>
    /// <param name="name">Adapter name.</param>
    /// <returns>Whether it was resident.</returns>
    public bool Remove(string name)
    {
        bool removed = false;
        Update(e =>
        {
            removed = e.ContainsKey(name);
            return e.Remove(name);
        });
        return removed;
    }

    /// <summary>Publishes a new version of <paramref name="name"/> (a reference swap; enabled flag and scale are kept).</summary>
    /// <param name="name">Adapter name.</param>
    /// <param name="version">The new version.</param>
    /// <returns>The version it replaced.</returns>
    public LoraAdapter Publish(string name, LoraAdapter version)
    {
        CheckFits(version);
        LoraAdapter? previous = null;
        Update(e =>
        {
            Entry entry = Find(e, name);
            previous = entry.Adapter;
            return e.SetItem(name, entry with { Adapter = version });
        });
        return previous!;
    }

    /// <summary>Enables or disables an adapter in <see cref="Active"/>.</summary>
    /// <param name="name">Adapter name.</param>
    /// <param name="enabled">Enabled.</param>
    public void SetEnabled(string name, bool enabled) => Update(e => e.SetItem(name, Find(e, name) with { Enabled = enabled }));

    /// <summary>Sets the runtime scale multiplier of an adapter (PEFT <c>set_scale</c>; 1 = as trained).</summary>
    /// <param name="name">Adapter name.</param>
    /// <param name="scale">Finite multiplier.</param>
    public void SetScale(string name, float scale)
    {
        if (!float.IsFinite(scale))
        {
            throw new ArgumentOutOfRangeException(nameof(scale), scale, "The scale must be finite.");
        }

        Update(e => e.SetItem(name, Find(e, name) with { Scale = scale }));
    }

    /// <summary>The current version of <paramref name="name"/> as trained (scale 1).</summary>
    /// <param name="name">Adapter name.</param>
    /// <returns>The version.</returns>
    public LoraAdapter Get(string name) => Find(Volatile.Read(ref _entries), name).Adapter;

    /// <summary>Whether <paramref name="name"/> is enabled.</summary>
    /// <param name="name">Adapter name.</param>
    /// <returns>Enabled.</returns>
    public bool IsEnabled(string name) => Find(Volatile.Read(ref _entries), name).Enabled;

    /// <summary>The scale multiplier of <paramref name="name"/>.</summary>
    /// <param name="name">Adapter name.</param>
    /// <returns>The multiplier.</returns>
    public float GetScale(string name) => Find(Volatile.Read(ref _entries), name).Scale;

    /// <summary>
    /// Every enabled adapter with its scale, stacked (deltas add), from one snapshot of the set; null when none is
    /// enabled. Use it for a whole pass.
    /// </summary>
    /// <returns>The combined adapter or null.</returns>
    public IModelAdapter? Active()
    {
        ImmutableSortedDictionary<string, Entry> e = Volatile.Read(ref _entries);
        IModelAdapter[] enabled = e.Values.Where(x => x.Enabled).Select(Scaled).ToArray();
        return enabled.Length switch
        {
            0 => null,
            1 => enabled[0],
            _ => new StackedAdapter(_numLayers, enabled),
        };
    }

    /// <summary>
    /// The named adapters (with their scales, regardless of the enabled flag), stacked, from one snapshot: a per-request
    /// choice to put in <see cref="ForwardSequence.Adapter"/>. No names gives null (the base model).
    /// </summary>
    /// <param name="names">Adapter names, bottom first.</param>
    /// <returns>The adapter or null.</returns>
    public IModelAdapter? Resolve(params string[] names)
    {
        ArgumentNullException.ThrowIfNull(names);
        ImmutableSortedDictionary<string, Entry> e = Volatile.Read(ref _entries);
        IModelAdapter[] chosen = names.Select(n => Scaled(Find(e, n))).ToArray();
        return chosen.Length switch
        {
            0 => null,
            1 => chosen[0],
            _ => new StackedAdapter(_numLayers, chosen),
        };
    }

    /// <summary>The named adapters frozen (with their scales) for stacking under a trainable one, from one snapshot.</summary>
    /// <param name="names">Adapter names, bottom first.</param>
    /// <returns>The frozen adapters (pass to <see cref="LoraTrainingState.ComputeGradients(LlamaModel, IReadOnlyList{TrainingSequence}, IReadOnlyList{IModelAdapter}?)"/>).</returns>
    public IReadOnlyList<IModelAdapter> Frozen(params string[] names)
    {
        ArgumentNullException.ThrowIfNull(names);
        ImmutableSortedDictionary<string, Entry> e = Volatile.Read(ref _entries);
        return names.Select(n => Scaled(Find(e, n))).ToArray();
    }

    private static IModelAdapter Scaled(Entry entry) => entry.Scale == 1f ? entry.Adapter : entry.Adapter.WithScale(entry.Scale);

    private static Entry Find(ImmutableSortedDictionary<string, Entry> e, string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return e.TryGetValue(name, out Entry? entry) ? entry : throw new ArgumentException($"No adapter named '{name}' is resident (resident: {string.Join(", ", e.Keys)}).", nameof(name));
    }

    private void Update(Func<ImmutableSortedDictionary<string, Entry>, ImmutableSortedDictionary<string, Entry>> change)
    {
        while (true)
        {
            ImmutableSortedDictionary<string, Entry> current = Volatile.Read(ref _entries);
            ImmutableSortedDictionary<string, Entry> next = change(current);
            if (ReferenceEquals(Interlocked.CompareExchange(ref _entries, next, current), current))
            {
                return;
            }
        }
    }

    private void CheckFits(LoraAdapter adapter)
    {
        ArgumentNullException.ThrowIfNull(adapter);
        if (adapter.NumLayers != _numLayers)
        {
            throw new ArgumentException($"The adapter was made for {adapter.NumLayers} layers; the model has {_numLayers}.", nameof(adapter));
        }

        foreach ((int l, Projection p, LoraLayer lora) in adapter.Entries())
        {
            (int outF, int inF) = _shape(p);
            if (lora.InFeatures != inF || lora.OutFeatures != outF)
            {
                throw new ArgumentException($"{ProjectionNames.ModulePath(l, p)}: the adapter layer is [{lora.OutFeatures}, {lora.InFeatures}] but the projection is [{outF}, {inF}].", nameof(adapter));
            }
        }
    }

    private sealed record Entry(LoraAdapter Adapter, bool Enabled, float Scale);
}
