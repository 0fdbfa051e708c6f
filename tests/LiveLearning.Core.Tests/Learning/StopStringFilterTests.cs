using System.Text;
using FsCheck;
using FsCheck.Fluent;
using NUnit.Framework;

namespace LiveLearning.Tests.Learning;

[TestFixture]
public sealed class StopStringFilterTests
{
    /// <summary>
    /// A text, stop strings and the cut points that chunk the text. The alphabet is tiny so stop strings occur, overlap
    /// ("aba" in "ababa"), share prefixes ("ab" and "abc") and straddle chunk boundaries often.
    /// </summary>
    public sealed record Case(string Text, string[] Stops, int[] Cuts)
    {
        public override string ToString() => $"Text=\"{Text}\" Stops=[{string.Join(", ", Stops.Select(s => $"\"{s}\""))}] Cuts=[{string.Join(", ", Cuts)}]";
    }

    [Test]
    public void EveryChunkingEmitsTheTextUpToTheEarliestStopString()
    {
        PropertyRuns.Check(Prop.ForAll(Cases().ToArbitrary(), Holds), seed: 20240611, cases: 3000);
    }

    [Test]
    public void EmittedTextIsNeverHeldBackLongerThanTheLongestStopStringMinusOne()
    {
        PropertyRuns.Check(Prop.ForAll(Cases().ToArbitrary(), IsPrompt), seed: 77, cases: 1000);
    }

    [Test]
    public void StopStringStraddlingChunkBoundariesIsCut()
    {
        var filter = new StopStringFilter(["<|end|>", "<|eot|>"]);
        var output = new StringBuilder();
        foreach (string chunk in new[] { "Hel", "lo <|", "e", "nd|", "> wor", "ld" })
        {
            output.Append(filter.Append(chunk));
        }

        output.Append(filter.Flush());
        using (Assert.EnterMultipleScope())
        {
            Assert.That(output.ToString(), Is.EqualTo("Hello "));
            Assert.That(filter.Stopped, Is.True);
            Assert.That(filter.Append("more"), Is.Empty);
            Assert.That(filter.Flush(), Is.Empty);
        }
    }

    [Test]
    public void EarliestOccurrenceWinsOverTheFirstListedStopString()
    {
        // "b" is listed first but "ab" starts earlier: the cut is before "ab".
        var filter = new StopStringFilter(["b", "xab"]);
        string output = filter.Append("cxabd") + filter.Flush();
        using (Assert.EnterMultipleScope())
        {
            Assert.That(output, Is.EqualTo("c"));
            Assert.That(filter.Stopped, Is.True);
        }
    }

    [Test]
    public void ShorterStopStringInsideALongerOneThatStartedEarlierDoesNotCutEarly()
    {
        // "acc" starts at 0 and completes only in the second chunk; "c" completes at 1 already in the first. The
        // earliest occurrence is "acc"'s, so nothing comes out, whatever the chunking.
        foreach (string[] chunks in new[] { new[] { "accbc" }, ["ac", "cbc"], ["a", "c", "c", "bc"] })
        {
            var filter = new StopStringFilter(["c", "acc"]);
            string output = string.Concat(chunks.Select(filter.Append)) + filter.Flush();
            using (Assert.EnterMultipleScope())
            {
                Assert.That(output, Is.Empty, string.Join("|", chunks));
                Assert.That(filter.Stopped, Is.True);
            }
        }

        // When the longer one does not complete, the shorter one cuts where it is.
        var other = new StopStringFilter(["c", "acc"]);
        string cut = other.Append("xac") + other.Append("b") + other.Flush();
        Assert.That(cut, Is.EqualTo("xa"));
    }

    [Test]
    public void HeldBackTailComesOutOnFlushWhenNoStopStringOccurs()
    {
        var filter = new StopStringFilter(["</s>"]);
        string first = filter.Append("one </");
        string rest = filter.Flush();
        using (Assert.EnterMultipleScope())
        {
            Assert.That(first, Is.EqualTo("one"), "the last three characters (the longest stop string minus one) are held back");
            Assert.That(rest, Is.EqualTo(" </"));
            Assert.That(filter.Stopped, Is.False);
        }
    }

    [Test]
    public void WithoutStopStringsTextPassesThroughUnchangedAndImmediately()
    {
        var filter = new StopStringFilter([]);
        using (Assert.EnterMultipleScope())
        {
            foreach (string chunk in new[] { "a", "", "</s>", "  x\n", "\u00e9\ud83d\ude00" })
            {
                Assert.That(filter.Append(chunk), Is.EqualTo(chunk));
            }

            Assert.That(filter.Flush(), Is.Empty);
            Assert.That(filter.Stopped, Is.False);
        }
    }

    [Test]
    public void EmptyOrNullStopStringsAreRefused()
    {
        using (Assert.EnterMultipleScope())
        {
            Assert.That(() => new StopStringFilter([""]), Throws.ArgumentException);
            Assert.That(() => new StopStringFilter(["stop", ""]), Throws.ArgumentException);
            Assert.That(() => new StopStringFilter(["stop", null!]), Throws.ArgumentException);
            Assert.That(() => new StopStringFilter(null!), Throws.ArgumentNullException);
            Assert.That(() => new StopStringFilter(["stop"]).Append(null!), Throws.ArgumentNullException);
        }
    }

    private static bool Holds(Case c)
    {
        (string expected, bool stops) = Reference(c.Text, c.Stops);
        var filter = new StopStringFilter(c.Stops);
        var output = new StringBuilder();
        foreach (string chunk in Chunks(c.Text, c.Cuts))
        {
            output.Append(filter.Append(chunk));
        }

        output.Append(filter.Flush());
        return output.ToString() == expected && filter.Stopped == stops;
    }

    private static bool IsPrompt(Case c)
    {
        (string expected, bool _) = Reference(c.Text, c.Stops);
        int holdBack = c.Stops.Length == 0 ? 0 : c.Stops.Max(s => s.Length) - 1;
        var filter = new StopStringFilter(c.Stops);
        var output = new StringBuilder();
        int fed = 0;
        foreach (string chunk in Chunks(c.Text, c.Cuts))
        {
            output.Append(filter.Append(chunk));
            fed += chunk.Length;
            string soFar = output.ToString();
            if (!expected.StartsWith(soFar, StringComparison.Ordinal))
            {
                return false;
            }

            // Until a stop string is found, all but the held-back tail has come out.
            if (!filter.Stopped && soFar.Length < fed - holdBack)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>The text before the earliest occurrence of any stop string, and whether one occurs.</summary>
    private static (string Text, bool Stopped) Reference(string text, string[] stops)
    {
        int earliest = -1;
        for (int i = 0; i < text.Length && earliest < 0; i++)
        {
            if (stops.Any(s => text.AsSpan(i).StartsWith(s, StringComparison.Ordinal)))
            {
                earliest = i;
            }
        }

        return earliest < 0 ? (text, false) : (text[..earliest], true);
    }

    private static IEnumerable<string> Chunks(string text, int[] cuts)
    {
        int start = 0;
        foreach (int cut in cuts.Select(c => Math.Min(c, text.Length)).Order())
        {
            yield return text[start..cut];
            start = cut;
        }

        yield return text[start..];
    }

    private static Gen<Case> Cases()
    {
        Gen<char> letter = Gen.Elements('a', 'b', 'c');
        Gen<string> text = Gen.Sized(size => Gen.Choose(0, Math.Min(40, size + 2)))
            .SelectMany(n => Gen.ArrayOf(letter, n))
            .Select(chars => new string(chars));
        return text.SelectMany(t => Stops(t, letter).SelectMany(stops => Gen.ArrayOf(Gen.Choose(0, t.Length)).Select(cuts => new Case(t, stops, cuts))));
    }

    /// <summary>Up to four stop strings: random ones, pieces of the text, and prefixes or extensions of those.</summary>
    private static Gen<string[]> Stops(string text, Gen<char> letter)
    {
        Gen<string> random = Gen.Choose(1, 4).SelectMany(n => Gen.ArrayOf(letter, n)).Select(chars => new string(chars));
        Gen<string> piece = text.Length == 0
            ? random
            : Gen.Choose(0, text.Length - 1).SelectMany(start => Gen.Choose(1, Math.Min(5, text.Length - start)).Select(length => text.Substring(start, length)));
        Gen<string> one = Gen.Frequency((2, random), (3, piece));
        return Gen.Choose(0, 4)
            .SelectMany(n => Gen.ArrayOf(one, n))
            .SelectMany(stops => stops.Length == 0
                ? Gen.Constant(stops)
                : Gen.Elements(stops).SelectMany(s => Gen.OneOf(
                    Gen.Constant(stops),
                    Gen.Constant<string[]>([.. stops, s.Length > 1 ? s[..^1] : s + "a"]),
                    letter.Select(l => (string[])[.. stops, s + l]))));
    }
}
