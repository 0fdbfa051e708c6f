using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace LiveLearning;

/// <summary>
/// The live model's instruments, on a <see cref="Meter"/> named <c>LiveLearning</c> (from the host's
/// <see cref="IMeterFactory"/> when there is one). Every measurement is tagged with the model and the scope.
/// </summary>
internal sealed class LiveLearningMetrics : IDisposable
{
    public const string MeterName = "LiveLearning";

    private readonly Meter _meter;
    private readonly bool _ownsMeter;
    private readonly Counter<long> _received;
    private readonly Counter<long> _accepted;
    private readonly Counter<long> _rejected;
    private readonly Counter<long> _steps;
    private readonly Counter<long> _skippedSteps;
    private readonly Counter<long> _driftAlarms;
    private readonly Counter<long> _published;
    private readonly Counter<long> _responses;
    private readonly Histogram<double> _stepDuration;
    private readonly Histogram<double> _loss;
    private readonly Histogram<double> _progressiveLoss;
    private readonly Histogram<double> _preferenceMargin;
    private readonly Histogram<double> _ratingLogRatio;
    private Func<IEnumerable<LiveScope>>? _scopes;
    private readonly string _model;

    public LiveLearningMetrics(string model, IMeterFactory? factory, Func<IEnumerable<LiveScope>> scopes)
    {
        _model = model;
        _scopes = scopes;
        _ownsMeter = factory is null;
        _meter = factory?.Create(MeterName) ?? new Meter(MeterName);
        _received = _meter.CreateCounter<long>("livelearning.feedback.received", "{item}", "Feedback items received.");
        _accepted = _meter.CreateCounter<long>("livelearning.feedback.accepted", "{item}", "Feedback items accepted (journaled and queued).");
        _rejected = _meter.CreateCounter<long>("livelearning.feedback.rejected", "{item}", "Feedback items not accepted, by reason.");
        _steps = _meter.CreateCounter<long>("livelearning.learner.steps", "{step}", "Optimizer steps taken.");
        _skippedSteps = _meter.CreateCounter<long>("livelearning.learner.skipped_steps", "{step}", "Steps skipped for a non-finite loss or gradient.");
        _driftAlarms = _meter.CreateCounter<long>("livelearning.learner.drift_alarms", "{alarm}", "Drift alarms on the progressive loss.");
        _published = _meter.CreateCounter<long>("livelearning.versions.published", "{version}", "Adapter versions published.");
        _responses = _meter.CreateCounter<long>("livelearning.responses", "{response}", "Completions served.");
        _stepDuration = _meter.CreateHistogram<double>("livelearning.learner.step.duration", "ms", "Wall time of a learning step.");
        _loss = _meter.CreateHistogram<double>("livelearning.learner.loss", null, "Objective value of each step.");
        _progressiveLoss = _meter.CreateHistogram<double>("livelearning.progressive.loss", "nat", "Per-token loss of each demonstration, scored before it is learned.");
        _preferenceMargin = _meter.CreateHistogram<double>("livelearning.progressive.preference_margin", "nat", "DPO reward margin of each preference, scored before it is learned.");
        _ratingLogRatio = _meter.CreateHistogram<double>("livelearning.progressive.rating_log_ratio", "nat", "log pi/pi_ref of each rated completion, scored before it is learned (tagged desirable or not).");

        // The gauges read the scopes through a field cleared at disposal, so a host's meter does not keep a stopped model alive.
        _meter.CreateObservableGauge("livelearning.queue.depth", () => (_scopes?.Invoke() ?? []).Select(s => new Measurement<int>(s.QueueDepth, Tags(s.Name))), "{item}", "Items waiting to be learned.");
        _meter.CreateObservableGauge("livelearning.version", () => (_scopes?.Invoke() ?? []).Select(s => new Measurement<long>(s.Current.Info.Number, Tags(s.Name))), "{version}", "Number of the current version.");
    }

    public void Received(string scope) => _received.Add(1, Tags(scope));

    public void Accepted(string scope) => _accepted.Add(1, Tags(scope));

    public void Rejected(string scope, RejectionReason reason) => _rejected.Add(1, new TagList { { "livelearning.model", _model }, { "livelearning.scope", scope }, { "livelearning.reason", reason.ToString() } });

    public void Step(string scope, double milliseconds, double loss)
    {
        _steps.Add(1, Tags(scope));
        _stepDuration.Record(milliseconds, Tags(scope));
        _loss.Record(loss, Tags(scope));
    }

    public void SkippedStep(string scope) => _skippedSteps.Add(1, Tags(scope));

    public void DriftAlarm(string scope) => _driftAlarms.Add(1, Tags(scope));

    public void Published(string scope) => _published.Add(1, Tags(scope));

    public void Served(string scope) => _responses.Add(1, Tags(scope));

    public void ProgressiveLoss(string scope, double lossPerToken) => _progressiveLoss.Record(lossPerToken, Tags(scope));

    public void PreferenceMargin(string scope, double margin) => _preferenceMargin.Record(margin, Tags(scope));

    public void RatingLogRatio(string scope, bool desirable, double ratio) =>
        _ratingLogRatio.Record(ratio, new TagList { { "livelearning.model", _model }, { "livelearning.scope", scope }, { "livelearning.desirable", desirable } });

    public void Dispose()
    {
        _scopes = null;
        if (_ownsMeter)
        {
            _meter.Dispose();
        }
    }

    private TagList Tags(string scope) => new() { { "livelearning.model", _model }, { "livelearning.scope", scope } };
}
