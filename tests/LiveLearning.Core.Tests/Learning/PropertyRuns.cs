using FsCheck;
using FsCheck.Fluent;
using Microsoft.FSharp.Core;

namespace LiveLearning.Tests.Learning;

/// <summary>Runs FsCheck properties from a fixed seed, so a property test draws the same cases on every run.</summary>
internal static class PropertyRuns
{
    /// <summary>Checks <paramref name="property"/> on <paramref name="cases"/> cases drawn from <paramref name="seed"/>; throws (failing the NUnit test) with the shrunk counter-example.</summary>
    public static void Check(Property property, ulong seed, int cases)
    {
        // The gamma of FsCheck's SplitMix generator must be odd.
        var replay = new Replay(new Rnd(seed, 0x9E3779B97F4A7C15UL), FSharpOption<int>.None);
        Config config = Config.QuickThrowOnFailure.WithMaxTest(cases).WithReplay(FSharpOption<Replay>.Some(replay));
        property.Check(config);
    }
}
