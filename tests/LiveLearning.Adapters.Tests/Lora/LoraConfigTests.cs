using LiveLearning.Lora;
using LiveLearning.Models;
using NUnit.Framework;

namespace LiveLearning.Tests.Lora;

/// <summary>LoraConfig: validation names the field; target-module and pattern matching follow PEFT's rules; scaling is α/r or α/√r.</summary>
[TestFixture]
public sealed class LoraConfigTests
{
    public static IEnumerable<TestCaseData> BadConfigs()
    {
        yield return new TestCaseData(new LoraConfig { Rank = 0 }, nameof(LoraConfig.Rank)).SetName("Rank0");
        yield return new TestCaseData(new LoraConfig { Rank = 129 }, nameof(LoraConfig.Rank)).SetName("Rank129");
        yield return new TestCaseData(new LoraConfig { Alpha = 0 }, nameof(LoraConfig.Alpha)).SetName("Alpha0");
        yield return new TestCaseData(new LoraConfig { Alpha = double.NaN }, nameof(LoraConfig.Alpha)).SetName("AlphaNaN");
        yield return new TestCaseData(new LoraConfig { Dropout = 1 }, nameof(LoraConfig.Dropout)).SetName("Dropout1");
        yield return new TestCaseData(new LoraConfig { Dropout = -0.1 }, nameof(LoraConfig.Dropout)).SetName("DropoutNegative");
        yield return new TestCaseData(new LoraConfig { LoraPlusRatio = 0 }, nameof(LoraConfig.LoraPlusRatio)).SetName("LoraPlus0");
        yield return new TestCaseData(new LoraConfig { TargetModules = [] }, nameof(LoraConfig.TargetModules)).SetName("NoTargets");
        yield return new TestCaseData(new LoraConfig { TargetModules = ["q_proj", " "] }, nameof(LoraConfig.TargetModules)).SetName("BlankTarget");
        yield return new TestCaseData(new LoraConfig { TargetModules = ["all-linear", "q_proj"] }, nameof(LoraConfig.TargetModules)).SetName("AllLinearNotAlone");
        yield return new TestCaseData(new LoraConfig { TargetModulesRegex = "(" }, nameof(LoraConfig.TargetModulesRegex)).SetName("BadRegex");
        yield return new TestCaseData(new LoraConfig { RankPattern = new Dictionary<string, int> { ["q_proj"] = 0 } }, nameof(LoraConfig.RankPattern)).SetName("RankPattern0");
        yield return new TestCaseData(new LoraConfig { AlphaPattern = new Dictionary<string, double> { ["q_proj"] = -1 } }, nameof(LoraConfig.AlphaPattern)).SetName("AlphaPatternNegative");
        yield return new TestCaseData(new LoraConfig { AlphaPattern = new Dictionary<string, double> { ["[x"] = 1 } }, nameof(LoraConfig.AlphaPattern)).SetName("AlphaPatternBadRegex");
    }

    [TestCaseSource(nameof(BadConfigs))]
    public void InvalidConfigsThrowArgumentExceptionNamingTheField(LoraConfig config, string field)
    {
        Assert.That(config.Validate, Throws.InstanceOf<ArgumentException>().With.Property(nameof(ArgumentException.ParamName)).EqualTo(field));
    }

    [Test]
    public void DefaultsArePeftDefaults()
    {
        var c = new LoraConfig();
        c.Validate();
        Assert.That((c.Rank, c.Alpha, c.Dropout, c.UseRsLora), Is.EqualTo((8, 8.0, 0.0, false)));
        Assert.That(c.TargetModules, Is.EqualTo(new[] { "q_proj", "v_proj" }));
    }

    [Test]
    public void NamesMatchWholeModulePathsOrDottedSuffixes()
    {
        var c = new LoraConfig { TargetModules = ["q_proj", "mlp.up_proj", "model.layers.1.mlp.down_proj"] };
        Assert.That(c.Targets(0, Projection.QProj), Is.True);
        Assert.That(c.Targets(1, Projection.QProj), Is.True);
        Assert.That(c.Targets(0, Projection.UpProj), Is.True);
        Assert.That(c.Targets(0, Projection.DownProj), Is.False);
        Assert.That(c.Targets(1, Projection.DownProj), Is.True);
        Assert.That(c.Targets(0, Projection.KProj), Is.False);
        Assert.That(c.Targets("model.layers.0.self_attn.xq_proj"), Is.False, "a suffix must start at a dot");
    }

    [Test]
    public void RegexTargetsMustMatchTheWholePathAndAllLinearTakesEveryProjection()
    {
        var regex = new LoraConfig { TargetModulesRegex = @".*layers\.1\..*_proj" };
        Assert.That(regex.Targets(1, Projection.OProj), Is.True);
        Assert.That(regex.Targets(0, Projection.OProj), Is.False);
        Assert.That(new LoraConfig { TargetModulesRegex = "q_proj" }.Targets(0, Projection.QProj), Is.False, "fullmatch, not search");
        var all = new LoraConfig { TargetModules = [LoraConfig.AllLinear] };
        Assert.That(ProjectionNames.All.All(p => all.Targets(3, p)), Is.True);
        Assert.That(all.Targets("lm_head"), Is.False);
        Assert.That(all.Targets("model.embed_tokens"), Is.False);
    }

    [Test]
    public void RankAndAlphaPatternsPreferExactPathsThenSortedSuffixRegexes()
    {
        var c = new LoraConfig
        {
            Rank = 8,
            Alpha = 16,
            RankPattern = new Dictionary<string, int> { ["q_proj"] = 2, ["model.layers.1.self_attn.q_proj"] = 6, ["layers\\.[0-9]\\.mlp\\..*"] = 3 },
            AlphaPattern = new Dictionary<string, double> { ["v_proj"] = 4 },
        };
        Assert.That(c.RankFor(ProjectionNames.ModulePath(0, Projection.QProj)), Is.EqualTo(2));
        Assert.That(c.RankFor(ProjectionNames.ModulePath(1, Projection.QProj)), Is.EqualTo(6));
        Assert.That(c.RankFor(ProjectionNames.ModulePath(0, Projection.UpProj)), Is.EqualTo(3));
        Assert.That(c.RankFor(ProjectionNames.ModulePath(0, Projection.KProj)), Is.EqualTo(8));
        Assert.That(c.RankFor("model.layers.0.self_attn.xq_proj"), Is.EqualTo(8), "a pattern matches after a dot only");
        Assert.That(c.AlphaFor(ProjectionNames.ModulePath(0, Projection.VProj)), Is.EqualTo(4));
        Assert.That(c.AlphaFor(ProjectionNames.ModulePath(0, Projection.QProj)), Is.EqualTo(16));
    }

    [Test]
    public void ScaleIsAlphaOverRankOrOverSquareRootOfRankWithRsLora()
    {
        var c = new LoraConfig { Rank = 16, Alpha = 8, RankPattern = new Dictionary<string, int> { ["v_proj"] = 4 }, AlphaPattern = new Dictionary<string, double> { ["v_proj"] = 12 } };
        string q = ProjectionNames.ModulePath(0, Projection.QProj);
        string v = ProjectionNames.ModulePath(0, Projection.VProj);
        Assert.That(c.ScaleFor(q), Is.EqualTo(8.0 / 16));
        Assert.That(c.ScaleFor(v), Is.EqualTo(12.0 / 4));
        LoraConfig rs = c with { UseRsLora = true };
        Assert.That(rs.ScaleFor(q), Is.EqualTo(8.0 / 4));
        Assert.That(rs.ScaleFor(v), Is.EqualTo(12.0 / 2));
    }

    [Test]
    public void LayersCarryTheScaleTheirConfigSpecifies()
    {
        using var model = LoraTestKit.LoadModel();
        var c = new LoraConfig
        {
            Rank = 4,
            Alpha = 8,
            UseRsLora = true,
            TargetModules = [LoraConfig.AllLinear],
            RankPattern = new Dictionary<string, int> { ["down_proj"] = 9 },
            AlphaPattern = new Dictionary<string, double> { ["o_proj"] = 3 },
        };
        LoraAdapter adapter = LoraAdapter.CreateFresh(c, model);
        Assert.That(adapter.ModuleCount, Is.EqualTo(14));
        foreach ((int l, Projection p, LoraLayer lora) in adapter.Entries())
        {
            string path = ProjectionNames.ModulePath(l, p);
            Assert.That(lora.Rank, Is.EqualTo(p == Projection.DownProj ? 9 : 4), path);
            Assert.That(lora.Scale, Is.EqualTo((float)((p == Projection.OProj ? 3.0 : 8.0) / Math.Sqrt(lora.Rank))), path);
        }
    }
}
