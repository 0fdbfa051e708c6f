using Microsoft.Extensions.Logging;

namespace LiveLearning.Tests.Live;

/// <summary>A logger provider that keeps every event (level, id, message, exception) for assertions.</summary>
internal sealed class CapturingLoggerProvider : ILoggerProvider, ILoggerFactory
{
    private readonly List<(LogLevel Level, EventId Id, string Message, Exception? Exception)> _events = [];

    public IReadOnlyList<(LogLevel Level, EventId Id, string Message, Exception? Exception)> Events
    {
        get
        {
            lock (_events)
            {
                return [.. _events];
            }
        }
    }

    public ILogger CreateLogger(string categoryName) => new Logger(this);

    public void AddProvider(ILoggerProvider provider)
    {
    }

    public void Dispose()
    {
    }

    private sealed class Logger(CapturingLoggerProvider owner) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            string message = formatter(state, exception);
            lock (owner._events)
            {
                owner._events.Add((logLevel, eventId, message, exception));
            }

            if (logLevel >= LogLevel.Warning)
            {
                NUnit.Framework.TestContext.Progress.WriteLine($"[{logLevel} {eventId.Id}] {message} {exception}");
            }
        }
    }
}
