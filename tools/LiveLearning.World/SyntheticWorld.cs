namespace LiveLearning.World;

/// <summary>The six facts every person of the world has.</summary>
public enum Attribute
{
    /// <summary>Day, month and year of birth, e.g. "14 March 1991".</summary>
    BirthDate,

    /// <summary>The city the person was born in.</summary>
    BirthCity,

    /// <summary>The university the person studied at.</summary>
    University,

    /// <summary>What the person studied.</summary>
    Field,

    /// <summary>The organisation the person works for.</summary>
    Employer,

    /// <summary>The city the person works in (where the employer is based).</summary>
    WorkCity,
}

/// <summary>An organisation: its name, what it does and the city it is based in.</summary>
/// <param name="Name">The name, e.g. "Nordwind Labs".</param>
/// <param name="Industry">What it does, e.g. "shipping".</param>
/// <param name="City">Where it is based.</param>
public sealed record Organisation(string Name, string Industry, string City);

/// <summary>One person and their facts.</summary>
/// <param name="Name">Full name, unique in the world.</param>
/// <param name="Facts">The value of each attribute.</param>
public sealed record Person(string Name, IReadOnlyDictionary<Attribute, string> Facts)
{
    /// <summary>The value of one attribute.</summary>
    /// <param name="attribute">The attribute.</param>
    public string this[Attribute attribute] => Facts[attribute];
}

/// <summary>A fact about a person: subject, attribute and value.</summary>
/// <param name="Person">The person's name.</param>
/// <param name="Attribute">The attribute.</param>
/// <param name="Value">The value.</param>
public readonly record struct Fact(string Person, Attribute Attribute, string Value);

/// <summary>
/// A deterministic synthetic world of people, places and organisations: world A (what the base model learns in
/// pretraining), new people (never seen in pretraining, for teaching later) and changed facts (world-A facts given a
/// new value that contradicts what the base learned). The same seed always gives the same world.
/// </summary>
public sealed class SyntheticWorld
{
    private SyntheticWorld(IReadOnlyList<Person> worldA, IReadOnlyList<Person> newPeople, IReadOnlyList<Fact> changed, IReadOnlyList<Organisation> organisations)
    {
        WorldA = worldA;
        NewPeople = newPeople;
        ChangedFacts = changed;
        Organisations = organisations;
    }

    /// <summary>The people the base model learns.</summary>
    public IReadOnlyList<Person> WorldA { get; }

    /// <summary>People held out of pretraining: their facts are new to the base.</summary>
    public IReadOnlyList<Person> NewPeople { get; }

    /// <summary>World-A facts with a different value (one per listed person): corrections that contradict the base.</summary>
    public IReadOnlyList<Fact> ChangedFacts { get; }

    /// <summary>Every organisation (each person's employer is one of them, and their work city is its city).</summary>
    public IReadOnlyList<Organisation> Organisations { get; }

    /// <summary>Generates a world.</summary>
    /// <param name="seed">Random seed.</param>
    /// <param name="worldAPeople">People in world A.</param>
    /// <param name="newPeople">People held out of pretraining.</param>
    /// <param name="changedFacts">World-A people that get one changed fact.</param>
    /// <returns>The world.</returns>
    public static SyntheticWorld Generate(int seed = 1, int worldAPeople = 300, int newPeople = 100, int changedFacts = 100)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(worldAPeople);
        ArgumentOutOfRangeException.ThrowIfNegative(newPeople);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(changedFacts, worldAPeople);
        int total = worldAPeople + newPeople;
        if (total > Vocabulary.FirstNames.Length * Vocabulary.Surnames.Length / 2)
        {
            throw new ArgumentOutOfRangeException(nameof(worldAPeople), total, "Too many people for the name lists.");
        }

        var rng = new Random(seed);
        Organisation[] organisations = [.. Vocabulary.Organisations.Select((o, i) => new Organisation(o.Name, o.Industry, Vocabulary.Cities[(i * 7 + 3) % Vocabulary.Cities.Length]))];
        var names = new HashSet<string>(StringComparer.Ordinal);
        var people = new List<Person>(total);
        while (people.Count < total)
        {
            string name = $"{Pick(rng, Vocabulary.FirstNames)} {Pick(rng, Vocabulary.Surnames)}";
            if (!names.Add(name))
            {
                continue;
            }

            Organisation employer = Pick(rng, organisations);
            var facts = new Dictionary<Attribute, string>
            {
                [Attribute.BirthDate] = $"{rng.Next(1, 29)} {Vocabulary.Months[rng.Next(12)]} {rng.Next(1950, 2004)}",
                [Attribute.BirthCity] = Pick(rng, Vocabulary.Cities),
                [Attribute.University] = Pick(rng, Vocabulary.Universities),
                [Attribute.Field] = Pick(rng, Vocabulary.Fields),
                [Attribute.Employer] = employer.Name,
                [Attribute.WorkCity] = employer.City,
            };
            people.Add(new Person(name, facts));
        }

        List<Person> worldA = people[..worldAPeople];
        List<Person> held = people[worldAPeople..];

        // Changed facts: distinct world-A people, each with one attribute given another value (a move to another
        // employer changes the employer; a correction of a birth city, university or field changes that fact).
        Attribute[] changeable = [Attribute.Employer, Attribute.BirthCity, Attribute.University, Attribute.Field];
        var changed = new List<Fact>(changedFacts);
        foreach (int index in Enumerable.Range(0, worldAPeople).OrderBy(_ => rng.Next()).Take(changedFacts).Order())
        {
            Person p = worldA[index];
            Attribute a = changeable[changed.Count % changeable.Length];
            string[] pool = a switch
            {
                Attribute.Employer => [.. organisations.Select(o => o.Name)],
                Attribute.BirthCity => Vocabulary.Cities,
                Attribute.University => Vocabulary.Universities,
                _ => Vocabulary.Fields,
            };
            string value;
            do
            {
                value = Pick(rng, pool);
            }
            while (value == p[a]);
            changed.Add(new Fact(p.Name, a, value));
        }

        return new SyntheticWorld(worldA, held, changed, organisations);
    }

    /// <summary>Every fact of a person.</summary>
    /// <param name="person">The person.</param>
    /// <returns>Six facts.</returns>
    public static IEnumerable<Fact> FactsOf(Person person) =>
        Enum.GetValues<Attribute>().Select(a => new Fact(person.Name, a, person[a]));

    private static T Pick<T>(Random rng, IReadOnlyList<T> items) => items[rng.Next(items.Count)];
}
