using LiveLearning.World;
using NUnit.Framework;
using WorldAttribute = LiveLearning.World.Attribute;

namespace LiveLearning.Tests;

/// <summary>The synthetic world: deterministic, consistent, and split so that what is held out never leaks into pretraining.</summary>
[TestFixture]
public sealed class SyntheticWorldTests
{
    [Test]
    public void TheSameSeedGivesTheSameWorldAndAnotherSeedAnother()
    {
        SyntheticWorld a = SyntheticWorld.Generate(seed: 3);
        SyntheticWorld b = SyntheticWorld.Generate(seed: 3);
        SyntheticWorld c = SyntheticWorld.Generate(seed: 4);
        Assert.That(Describe(b), Is.EqualTo(Describe(a)));
        Assert.That(Describe(c), Is.Not.EqualTo(Describe(a)));
        Assert.That(Corpus.PretrainingEpoch(b, 3, 5), Is.EqualTo(Corpus.PretrainingEpoch(a, 3, 5)), "and the same documents");
        Assert.That(Corpus.PretrainingEpoch(a, 3, 6), Is.Not.EqualTo(Corpus.PretrainingEpoch(a, 3, 5)), "each epoch draws new phrasings");
    }

    [Test]
    public void PeopleAreUniqueAndTheirFactsConsistent()
    {
        SyntheticWorld world = SyntheticWorld.Generate(seed: 1, worldAPeople: 300, newPeople: 100, changedFacts: 100);
        Person[] everyone = [.. world.WorldA, .. world.NewPeople];
        Assert.That(world.WorldA, Has.Count.EqualTo(300));
        Assert.That(world.NewPeople, Has.Count.EqualTo(100));
        Assert.That(everyone.Select(p => p.Name), Is.Unique);
        foreach (Person p in everyone)
        {
            Organisation employer = world.Organisations.Single(o => o.Name == p[WorldAttribute.Employer]);
            Assert.That(p[WorldAttribute.WorkCity], Is.EqualTo(employer.City), $"{p.Name} works where the employer is");
            Assert.That(p.Facts.Keys, Is.EquivalentTo(Enum.GetValues<WorldAttribute>()));
        }

        Assert.That(world.ChangedFacts, Has.Count.EqualTo(100));
        Assert.That(world.ChangedFacts.Select(f => f.Person), Is.Unique);
        foreach (Fact changed in world.ChangedFacts)
        {
            Person p = world.WorldA.Single(x => x.Name == changed.Person);
            Assert.That(changed.Value, Is.Not.EqualTo(p[changed.Attribute]), "a changed fact contradicts world A");
        }
    }

    [Test]
    public void HeldOutPhrasingsAndNewPeopleNeverAppearInPretraining()
    {
        SyntheticWorld world = SyntheticWorld.Generate(seed: 1, worldAPeople: 40, newPeople: 20, changedFacts: 10);
        foreach (WorldAttribute a in Enum.GetValues<WorldAttribute>())
        {
            Assert.That(Templates.HeldOutQuestions[a].Intersect(Templates.TrainingQuestions[a]), Is.Empty, $"{a}: the sets are disjoint");
        }

        string text = string.Join("\n", Enumerable.Range(0, 5).SelectMany(e => Corpus.PretrainingEpoch(world, 1, e)));
        foreach (Person p in world.NewPeople)
        {
            Assert.That(text, Does.Not.Contain(p.Name), "new people are held out");
        }

        foreach (QuestionItem q in Corpus.Questions(world.WorldA.SelectMany(SyntheticWorld.FactsOf), heldOut: true, perFact: 3))
        {
            string question = q.Prompt["Q: ".Length..^"\nA:".Length];
            Assert.That(text, Does.Not.Contain(question), "held-out phrasings are never trained");
        }

        foreach (Person p in world.WorldA)
        {
            foreach (Fact f in SyntheticWorld.FactsOf(p))
            {
                Assert.That(text, Does.Contain(f.Value), "every world-A fact is in pretraining");
            }
        }
    }

    [Test]
    public void QuestionsAskForTheValueAfterTheAnswerMarker()
    {
        var fact = new Fact("Ada Abend", WorldAttribute.BirthCity, "Lisbon");
        QuestionItem q = Corpus.Question(fact, Templates.TrainingQuestions[WorldAttribute.BirthCity][0]);
        Assert.That(q.Prompt, Is.EqualTo("Q: Where was Ada Abend born?\nA:"));
        Assert.That(q.Answer, Is.EqualTo(" Lisbon"));
        Assert.That(Templates.Say("{1} employs {0}.", new Fact("Ada Abend", WorldAttribute.Employer, "the Ardent Institute")), Is.EqualTo("The Ardent Institute employs Ada Abend."));
    }

    [Test]
    public void InvalidSizesAreRefused()
    {
        Assert.That(() => SyntheticWorld.Generate(worldAPeople: 10, changedFacts: 11), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Message.Contains("changedFacts"));
        Assert.That(() => SyntheticWorld.Generate(worldAPeople: 100_000), Throws.InstanceOf<ArgumentOutOfRangeException>().With.Message.Contains("name lists"));
    }

    private static string Describe(SyntheticWorld w) =>
        string.Join("\n", w.WorldA.Concat(w.NewPeople).Select(p => p.Name + ": " + string.Join(", ", p.Facts.OrderBy(f => f.Key).Select(f => f.Value))))
        + string.Join("\n", w.ChangedFacts);
}
