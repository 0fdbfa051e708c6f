using FsCheck;
using FsCheck.Fluent;
using NUnit.Framework;

namespace LiveLearning.Tests.Learning;

[TestFixture]
public sealed class LiveModelOptionsTests
{
    /// <summary>One bad setting and the option path its problem must name.</summary>
    private static IEnumerable<TestCaseData> BadOptions()
    {
        TestCaseData Case(string path, Action<LiveModelOptions> spoil, string what) => new TestCaseData(path, spoil).SetArgDisplayNames($"{path} {what}");

        yield return Case("Name", o => o.Name = "", "empty");
        yield return Case("Name", o => o.Name = "  ", "blank");
        yield return Case("DefaultScope", o => o.DefaultScope = "a//b", "invalid");
        yield return Case("Learner", o => o.Learner = null!, "null");
        yield return Case("Replay", o => o.Replay = null!, "null");
        yield return Case("Objectives", o => o.Objectives = null!, "null");
        yield return Case("Learner.Optimizer", o => o.Learner.Optimizer = null!, "null");
        yield return Case("Learner.Optimizer.Kind", o => o.Learner.Optimizer = o.Learner.Optimizer with { Kind = (OptimizerKind)7 }, "undefined");
        yield return Case("Learner.Optimizer.LearningRate", o => o.Learner.Optimizer = o.Learner.Optimizer with { LearningRate = -1e-4f }, "negative");
        yield return Case("Learner.Optimizer.LearningRate", o => o.Learner.Optimizer = o.Learner.Optimizer with { LearningRate = float.NaN }, "NaN");
        yield return Case("Learner.Optimizer.LearningRate", o => o.Learner.Optimizer = o.Learner.Optimizer with { LearningRate = float.PositiveInfinity }, "infinite");
        yield return Case("Learner.Optimizer.WeightDecay", o => o.Learner.Optimizer = o.Learner.Optimizer with { WeightDecay = -0.1f }, "negative");
        yield return Case("Learner.Optimizer.Epsilon", o => o.Learner.Optimizer = o.Learner.Optimizer with { Epsilon = float.NaN }, "NaN");
        yield return Case("Learner.Optimizer.Beta1", o => o.Learner.Optimizer = o.Learner.Optimizer with { Beta1 = 1f }, "1");
        yield return Case("Learner.Optimizer.Beta2", o => o.Learner.Optimizer = o.Learner.Optimizer with { Beta2 = -0.1f }, "negative");
        yield return Case("Learner.Optimizer.Momentum", o => o.Learner.Optimizer = o.Learner.Optimizer with { Momentum = 1.5f }, "above 1");
        yield return Case("Learner.Optimizer.WarmupSteps", o => o.Learner.Optimizer = o.Learner.Optimizer with { WarmupSteps = -1 }, "negative");
        yield return Case("Learner.Optimizer.MaxGradNorm", o => o.Learner.Optimizer = o.Learner.Optimizer with { MaxGradNorm = 0 }, "0");
        yield return Case("Learner.Optimizer.MaxGradNorm", o => o.Learner.Optimizer = o.Learner.Optimizer with { MaxGradNorm = double.NaN }, "NaN");
        yield return Case("Learner.MaxBatchItems", o => o.Learner.MaxBatchItems = 0, "0");
        yield return Case("Learner.MaxBatchItems", o => o.Learner.MaxBatchItems = 1025, "1025");
        yield return Case("Learner.StepsPerItem", o => o.Learner.StepsPerItem = 0, "0");
        yield return Case("Learner.StepsPerItem", o => o.Learner.StepsPerItem = 1001, "1001");
        yield return Case("Learner.PublishEvery", o => o.Learner.PublishEvery = 0, "0");
        yield return Case("Learner.QueueCapacity", o => o.Learner.QueueCapacity = 0, "0");
        yield return Case("Learner.QueueCapacity", o => o.Learner.QueueCapacity = 1_000_001, "1000001");
        yield return Case("Learner.BackPressure", o => o.Learner.BackPressure = (BackPressure)5, "undefined");
        yield return Case("Learner.Priority", o => o.Learner.Priority = (LearningPriority)9, "undefined");
        yield return Case("Replay.Kind", o => o.Replay.Kind = (ReplayKind)3, "undefined");
        yield return Case("Replay.CapacityItems", o => o.Replay.CapacityItems = -1, "negative");
        yield return Case("Replay.CapacityBytes", o => o.Replay.CapacityBytes = -1, "negative");
        yield return Case("Replay.Ratio", o => o.Replay.Ratio = -0.01, "negative");
        yield return Case("Replay.Ratio", o => o.Replay.Ratio = 16.5, "above 16");
        yield return Case("Replay.Ratio", o => o.Replay.Ratio = double.NaN, "NaN");
        yield return Case("Objectives.DpoBeta", o => o.Objectives = o.Objectives with { DpoBeta = 0 }, "0");
        yield return Case("Objectives.KtoBeta", o => o.Objectives = o.Objectives with { KtoBeta = double.PositiveInfinity }, "infinite");
        yield return Case("Objectives.KtoDesirableWeight", o => o.Objectives = o.Objectives with { KtoDesirableWeight = -1 }, "negative");
        yield return Case("Objectives.KtoUndesirableWeight", o => o.Objectives = o.Objectives with { KtoUndesirableWeight = double.NaN }, "NaN");
        yield return Case("Objectives.KtoReferencePoint", o => o.Objectives = o.Objectives with { KtoReferencePoint = -0.5 }, "negative");
        yield return Case("Objectives.KtoReferenceDecay", o => o.Objectives = o.Objectives with { KtoReferenceDecay = 1 }, "1");
        yield return Case("ResponseCacheCapacity", o => o.ResponseCacheCapacity = -1, "negative");
        yield return Case("VersionHistoryCapacity", o => o.VersionHistoryCapacity = 0, "0");
        yield return Case("MaxPromptTokens", o => o.MaxPromptTokens = -1, "negative");
        yield return Case("MaxCompletionTokens", o => o.MaxCompletionTokens = -1, "negative");
        yield return Case("Shutdown", o => o.Shutdown = (ShutdownMode)2, "undefined");
        yield return Case("DrainTimeout", o => o.DrainTimeout = TimeSpan.Zero, "0");
        yield return Case("DrainTimeout", o => o.DrainTimeout = TimeSpan.FromSeconds(-1), "negative");
        yield return Case("Scopes[0]", o => o.Scopes.Add(null!), "null");
        yield return Case("Scopes[0].Name", o => o.Scopes.Add(new ScopeOptions { Name = "acme corp" }), "invalid");
        yield return Case("Scopes[1].Name", o => AddScopes(o, ("acme", null), ("acme", null)), "twice");
        yield return Case("Scopes[1].Parent", o => AddScopes(o, ("acme", null), ("acme/alice", "acme/bob")), "unknown");
        yield return Case("Scopes[0].Parent", o => AddScopes(o, ("acme/alice", "acme"), ("acme", null)), "listed after");
        yield return Case("Scopes[0].Parent", o => AddScopes(o, ("acme", "acme")), "itself");
        yield return Case("Scopes[1].Optimizer.Beta1", o =>
        {
            AddScopes(o, ("acme", null), ("acme/alice", "acme"));
            o.Scopes[1].Optimizer = new OptimizerOptions { Beta1 = -1 };
        }, "negative");
    }

    [Test]
    public void DefaultOptionsAreValid()
    {
        var options = new LiveModelOptions();
        using (Assert.EnterMultipleScope())
        {
            Assert.That(options.Validate(), Is.Empty);
            Assert.That(() => new OptimizerOptions().Validate(), Throws.Nothing);
            Assert.That(() => new ObjectiveOptions().Validate(), Throws.Nothing);
        }
    }

    [Test]
    public void OptionsAtTheEdgesOfTheirRangesAreValid()
    {
        var options = new LiveModelOptions
        {
            DefaultScope = "acme",
            ResponseCacheCapacity = 0,
            VersionHistoryCapacity = 1,
            DrainTimeout = TimeSpan.FromTicks(1),
            Learner = new LearnerOptions
            {
                MaxBatchItems = 1024,
                StepsPerItem = 1000,
                QueueCapacity = 1_000_000,
                Optimizer = new OptimizerOptions { Kind = OptimizerKind.SgdMomentum, LearningRate = 0, WarmupSteps = 0, Beta1 = 0, Momentum = 0, MaxGradNorm = null },
            },
            Replay = new ReplayOptions { Kind = ReplayKind.None, CapacityItems = 0, CapacityBytes = 0, Ratio = 16 },
            Objectives = new ObjectiveOptions { KtoDesirableWeight = 0, KtoUndesirableWeight = 0, KtoReferenceDecay = 0, DpoBeta = 1e-9 },
        };
        AddScopes(options, ("acme", null), ("acme/alice", "acme"), ("acme/bob", "acme"), ("other", "acme"));
        options.Scopes.Add(new ScopeOptions { Name = "acme/alice/x", Parent = "acme/alice", Optimizer = new OptimizerOptions() });
        Assert.That(options.Validate(), Is.Empty);
    }

    [TestCaseSource(nameof(BadOptions))]
    public void EachBadOptionGivesOneProblemThatNamesItsPath(string path, Action<LiveModelOptions> spoil)
    {
        var options = new LiveModelOptions();
        spoil(options);
        IReadOnlyList<string> problems = options.Validate();
        Assert.That(problems, Has.Count.EqualTo(1));
        Assert.That(problems[0], Does.StartWith(path + " ").Or.StartWith(path + ":"), "the message starts with the option's path");
    }

    [Test]
    public void SeveralBadOptionsGiveOneProblemEach()
    {
        var options = new LiveModelOptions { Name = "", MaxPromptTokens = -3 };
        options.Learner.MaxBatchItems = 0;
        options.Learner.Optimizer = options.Learner.Optimizer with { LearningRate = -1, Beta2 = 1, WarmupSteps = -5 };
        options.Replay.Ratio = 99;
        options.Objectives = options.Objectives with { DpoBeta = -1, KtoReferenceDecay = 2 };
        AddScopes(options, ("acme", null), ("acme/alice", "nobody"));
        options.Scopes[0].Optimizer = new OptimizerOptions { Epsilon = -1, Momentum = 2 };

        string[] expected =
        [
            "Name", "MaxPromptTokens", "Learner.MaxBatchItems", "Learner.Optimizer.LearningRate", "Learner.Optimizer.Beta2",
            "Learner.Optimizer.WarmupSteps", "Replay.Ratio", "Objectives.DpoBeta", "Objectives.KtoReferenceDecay",
            "Scopes[1].Parent", "Scopes[0].Optimizer.Epsilon", "Scopes[0].Optimizer.Momentum",
        ];
        IReadOnlyList<string> problems = options.Validate();
        using (Assert.EnterMultipleScope())
        {
            Assert.That(problems, Has.Count.EqualTo(expected.Length), string.Join("\n", problems));
            foreach (string path in expected)
            {
                Assert.That(problems.Count(p => p.StartsWith(path + " ", StringComparison.Ordinal) || p.StartsWith(path + ":", StringComparison.Ordinal)), Is.EqualTo(1), path);
            }
        }
    }

    [Test]
    public void ProblemCountEqualsTheNumberOfBadOptionsForAnyCombination()
    {
        // Each setting can be spoiled independently; any subset spoiled gives exactly that many problems.
        (string Path, Action<LiveModelOptions> Spoil)[] settings =
        [
            ("Learner.QueueCapacity", o => o.Learner.QueueCapacity = -1),
            ("Learner.Optimizer.LearningRate", o => o.Learner.Optimizer = o.Learner.Optimizer with { LearningRate = float.NaN }),
            ("Learner.Optimizer.Beta1", o => o.Learner.Optimizer = o.Learner.Optimizer with { Beta1 = 2 }),
            ("Learner.Optimizer.MaxGradNorm", o => o.Learner.Optimizer = o.Learner.Optimizer with { MaxGradNorm = -1 }),
            ("Objectives.KtoBeta", o => o.Objectives = o.Objectives with { KtoBeta = 0 }),
            ("Objectives.KtoUndesirableWeight", o => o.Objectives = o.Objectives with { KtoUndesirableWeight = -2 }),
            ("Replay.CapacityItems", o => o.Replay.CapacityItems = -4),
            ("VersionHistoryCapacity", o => o.VersionHistoryCapacity = -1),
        ];
        PropertyRuns.Check(
            Prop.ForAll(Gen.ArrayOf(Gen.Elements(true, false), settings.Length).ToArbitrary(), (bool[] spoiled) =>
            {
                var options = new LiveModelOptions();
                for (int i = 0; i < settings.Length; i++)
                {
                    if (spoiled[i])
                    {
                        settings[i].Spoil(options);
                    }
                }

                IReadOnlyList<string> problems = options.Validate();
                return problems.Count == spoiled.Count(s => s)
                    && settings.Where((_, i) => spoiled[i]).All(s => problems.Any(p => p.StartsWith(s.Path, StringComparison.Ordinal)));
            }),
            seed: 7,
            cases: 100);
    }

    [TestCase("acme")]
    [TestCase("acme/alice")]
    [TestCase("a.b-c_d:e")]
    [TestCase("A9/b.c/d-e_f:g")]
    [TestCase("x")]
    public void ScopeNamesAcceptLettersDigitsAndSeparators(string name)
    {
        Assert.That(ScopeNames.IsValid(name), Is.True);
    }

    [TestCase("", TestName = "ScopeNamesRefuseEmpty")]
    [TestCase(null, TestName = "ScopeNamesRefuseNull")]
    [TestCase("/acme", TestName = "ScopeNamesRefuseLeadingSlash")]
    [TestCase("acme/", TestName = "ScopeNamesRefuseTrailingSlash")]
    [TestCase("/", TestName = "ScopeNamesRefuseASlashAlone")]
    [TestCase("acme//alice", TestName = "ScopeNamesRefuseDoubleSlash")]
    [TestCase("acme/../bob", TestName = "ScopeNamesRefuseDotDot")]
    [TestCase("a..b", TestName = "ScopeNamesRefuseDotDotInAName")]
    [TestCase("acme alice", TestName = "ScopeNamesRefuseSpaces")]
    [TestCase(" acme", TestName = "ScopeNamesRefuseALeadingSpace")]
    [TestCase("alice@acme", TestName = "ScopeNamesRefuseAt")]
    [TestCase("acme#1", TestName = "ScopeNamesRefuseHash")]
    [TestCase("caf\u00e9", TestName = "ScopeNamesRefuseNonAsciiLetters")]
    [TestCase("a\\b", TestName = "ScopeNamesRefuseBackslash")]
    public void ScopeNamesRefuse(string? name)
    {
        Assert.That(ScopeNames.IsValid(name), Is.False);
    }

    [Test]
    public void ScopeNamesAreAtMost200Characters()
    {
        using (Assert.EnterMultipleScope())
        {
            Assert.That(ScopeNames.IsValid(new string('a', 200)), Is.True);
            Assert.That(ScopeNames.IsValid(new string('a', 201)), Is.False);
            Assert.That(ScopeNames.IsValid(string.Concat(Enumerable.Repeat("ab/", 66)) + "ab"), Is.True, "200 characters with separators");
        }
    }

    [Test]
    public void LearningRateRisesLinearlyOverTheWarmUpThenStaysAtThePeak()
    {
        var problems = new List<string>();
        foreach (float peak in new[] { 1e-4f, 3e-3f, 0.7f, 1f })
        {
            foreach (int warmup in new[] { 0, 1, 2, 3, 7, 10, 1000, 4096 })
            {
                var options = new OptimizerOptions { LearningRate = peak, WarmupSteps = warmup };
                float previous = 0;
                for (long step = 1; step <= (2 * warmup) + 5; step++)
                {
                    float lr = options.LearningRateAt(step);
                    bool exact;
                    if (warmup == 0 || step >= warmup)
                    {
                        exact = lr == peak;
                    }
                    else
                    {
                        // LR·s/W correctly rounded to float: lr·W − LR·s is exact in double (24-bit values times small integers).
                        double error = Math.Abs(((double)lr * warmup) - ((double)peak * step)) / warmup;
                        double halfUlp = ((double)MathF.BitIncrement(lr) - lr) / 2;
                        exact = error <= halfUlp * 1.0000001;
                    }

                    if (!exact || lr < previous)
                    {
                        problems.Add($"peak {peak}, warm-up {warmup}, step {step}: {lr:R} (previous {previous:R})");
                    }

                    previous = lr;
                }
            }
        }

        Assert.That(problems, Is.Empty, string.Join("\n", problems.Take(10)));
    }

    [Test]
    public void LearningRateAtKnownSteps()
    {
        var options = new OptimizerOptions { LearningRate = 0.5f, WarmupSteps = 4 };
        using (Assert.EnterMultipleScope())
        {
            Assert.That(options.LearningRateAt(1), Is.EqualTo(0.125f));
            Assert.That(options.LearningRateAt(2), Is.EqualTo(0.25f));
            Assert.That(options.LearningRateAt(3), Is.EqualTo(0.375f));
            Assert.That(options.LearningRateAt(4), Is.EqualTo(0.5f));
            Assert.That(options.LearningRateAt(long.MaxValue), Is.EqualTo(0.5f));
            Assert.That(new OptimizerOptions { LearningRate = 0.5f }.LearningRateAt(1), Is.EqualTo(0.5f), "no warm-up starts at the peak");
        }
    }

    [Test]
    public void LearningRateAtAStepBeforeTheFirstThrows()
    {
        var options = new OptimizerOptions { WarmupSteps = 10 };
        using (Assert.EnterMultipleScope())
        {
            Assert.That(() => options.LearningRateAt(0), Throws.TypeOf<ArgumentOutOfRangeException>());
            Assert.That(() => options.LearningRateAt(-1), Throws.TypeOf<ArgumentOutOfRangeException>());
            Assert.That(() => new OptimizerOptions().LearningRateAt(0), Throws.TypeOf<ArgumentOutOfRangeException>());
        }
    }

    [Test]
    public void NestedValidateThrowsForTheFirstBadSettingAndNamesIt()
    {
        using (Assert.EnterMultipleScope())
        {
            Assert.That(() => new OptimizerOptions { Beta1 = 1, Momentum = -1 }.Validate(), Throws.TypeOf<ArgumentOutOfRangeException>().With.Property(nameof(ArgumentException.ParamName)).EqualTo("Beta1"));
            Assert.That(() => new ObjectiveOptions { KtoBeta = -1 }.Validate(), Throws.TypeOf<ArgumentOutOfRangeException>().With.Property(nameof(ArgumentException.ParamName)).EqualTo("KtoBeta"));
        }
    }

    private static void AddScopes(LiveModelOptions options, params (string Name, string? Parent)[] scopes)
    {
        foreach ((string name, string? parent) in scopes)
        {
            options.Scopes.Add(new ScopeOptions { Name = name, Parent = parent });
        }
    }
}
