using System.Text;
using System.Text.RegularExpressions;
using LiveLearning.Tokenization;
using NUnit.Framework;

namespace LiveLearning.Tests.Tokenization;

/// <summary>
/// The code-point split scanners against .NET's regex engine running the exact pattern strings. On BMP-only text
/// the two must agree (outside the BMP .NET sees surrogates, which is why the scanners exist; the goldens cover that).
/// </summary>
[TestFixture]
public sealed class RegexScannerTests
{
    // Letters, digits (incl. non-ASCII), apostrophes, contraction letters, spaces of several kinds, newlines, symbols.
    private const string Alphabet = "aZsStTrReEvVmMlLdD日é\u0301ñ0123456789٣²½ '''''   \t\n\n\r\u00a0\u3000\u2003\u0085.,!?-(<|>)_";

    private static IEnumerable<TestCaseData> Patterns()
    {
        yield return new TestCaseData(RegexScanners.Gpt2Pattern, (Func<string, List<(int, int)>>)RegexScanners.ScanGpt2).SetName("GPT-2 scanner equals its regex");
        yield return new TestCaseData(RegexScanners.Llama3Pattern, (Func<string, List<(int, int)>>)(t => RegexScanners.ScanCl100k(t, 3))).SetName("Llama-3 scanner equals its regex");
        yield return new TestCaseData(RegexScanners.Qwen2Pattern, (Func<string, List<(int, int)>>)(t => RegexScanners.ScanCl100k(t, 1))).SetName("Qwen2 scanner equals its regex");
    }

    [TestCaseSource(nameof(Patterns))]
    public void Scannermatchesdotnetregexonrandombmptext(string pattern, Func<string, List<(int, int)>> scan)
    {
        var regex = new Regex(pattern, RegexOptions.CultureInvariant);
        var rng = new Random(1234);
        string[] units = SplitUnits(Alphabet);
        using (Assert.EnterMultipleScope())
        {
            for (int trial = 0; trial < 3000; trial++)
            {
                var sb = new StringBuilder();
                int length = rng.Next(0, 24);
                for (int i = 0; i < length; i++)
                {
                    sb.Append(units[rng.Next(units.Length)]);
                }

                string text = sb.ToString();
                var expected = regex.Matches(text).Select(m => (m.Index, m.Length)).ToList();
                Assert.That(scan(text), Is.EqualTo(expected), $"text {System.Text.Json.JsonSerializer.Serialize(text)}");
            }
        }
    }

    private static string[] SplitUnits(string s)
    {
        var units = new List<string>();
        for (int i = 0; i < s.Length; i++)
        {
            if (char.IsHighSurrogate(s[i])) { units.Add(s.Substring(i, 2)); i++; }
            else
            {
                units.Add(s[i].ToString());
            }
        }
        return units.ToArray();
    }

    [Test]
    public void Lettersanddigitsoutsidethebmpareclassifiedbycodepoint()
    {
        // U+1D518 MATHEMATICAL FRAKTUR CAPITAL U is a letter; U+1D7D8 MATHEMATICAL DOUBLE-STRUCK DIGIT ZERO is a digit.
        var words = RegexScanners.ScanCl100k("x 𝔘𝔫 𝟘𝟙𝟚𝟛", 3);
        string text = "x 𝔘𝔫 𝟘𝟙𝟚𝟛";
        Assert.That(words.Select(w => text.Substring(w.Item1, w.Item2)), Is.EqualTo(new[] { "x", " 𝔘𝔫", " ", "𝟘𝟙𝟚", "𝟛" }));
    }
}

/// <summary>The BMP stand-ins used to run custom regexes on text with characters outside the BMP.</summary>
[TestFixture]
public sealed class AstralStandInTests
{
    [Test]
    public void Everystandinhasthecategoryitstandsfor()
    {
        using (Assert.EnterMultipleScope())
        {
            foreach (var category in Enum.GetValues<System.Globalization.UnicodeCategory>())
            {
                if (category is System.Globalization.UnicodeCategory.Surrogate or System.Globalization.UnicodeCategory.SpaceSeparator
                    or System.Globalization.UnicodeCategory.LineSeparator or System.Globalization.UnicodeCategory.ParagraphSeparator
                    or System.Globalization.UnicodeCategory.Control or System.Globalization.UnicodeCategory.ConnectorPunctuation
                    or System.Globalization.UnicodeCategory.DashPunctuation or System.Globalization.UnicodeCategory.OpenPunctuation
                    or System.Globalization.UnicodeCategory.ClosePunctuation or System.Globalization.UnicodeCategory.InitialQuotePunctuation
                    or System.Globalization.UnicodeCategory.FinalQuotePunctuation)
                {
                    continue; // none or almost none outside the BMP: mapped to the generic punctuation stand-in
                }
                char standIn = AstralStandIns.StandIn(category);
                Assert.That(System.Globalization.CharUnicodeInfo.GetUnicodeCategory(standIn), Is.EqualTo(category), $"U+{(int)standIn:X4}");
            }
        }
    }

    [Test]
    public void Mappedoffsetspointbackintotheoriginaltext()
    {
        var (mapped, toOriginal) = AstralStandIns.Map("a𝔘b😀");
        using (Assert.EnterMultipleScope())
        {
            Assert.That(mapped, Has.Length.EqualTo(4));
            Assert.That(toOriginal, Is.EqualTo(new[] { 0, 1, 3, 4, 6 }));
        }
    }
}
