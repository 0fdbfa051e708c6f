using System.Diagnostics;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace LiveLearning.Tests;

/// <summary>
/// A headless Chromium driven over the DevTools protocol (a WebSocket of JSON commands): enough to load a page and
/// run script in it. Debian's <c>chromium</c>; no browser download.
/// </summary>
internal sealed partial class Cdp : IAsyncDisposable
{
    private readonly Process _browser;
    private readonly ClientWebSocket _socket = new();
    private readonly string _profile;
    private int _id;

    private Cdp(Process browser, string profile)
    {
        _browser = browser;
        _profile = profile;
    }

    /// <summary>The browser executable, or null when none is installed.</summary>
    public static string? FindBrowser() =>
        new[] { Environment.GetEnvironmentVariable("LIVELEARNING_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser" }
            .FirstOrDefault(p => p is not null && File.Exists(p));

    public static async Task<Cdp> LaunchAsync(string executable, CancellationToken cancellationToken)
    {
        string profile = Path.Combine(Path.GetTempPath(), "livelearning-chromium-" + Guid.NewGuid().ToString("N"));
        var start = new ProcessStartInfo(executable) { RedirectStandardError = true, UseShellExecute = false };
        foreach (string arg in new[] { "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--remote-debugging-port=0", "--user-data-dir=" + profile, "about:blank" })
        {
            start.ArgumentList.Add(arg);
        }

        Process browser = Process.Start(start) ?? throw new InvalidOperationException("chromium did not start");
        var cdp = new Cdp(browser, profile);
        try
        {
            // "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/ID" — the port also serves the page targets.
            int port = 0;
            while (port == 0 && await browser.StandardError.ReadLineAsync(cancellationToken) is { } line)
            {
                Match m = Listening().Match(line);
                port = m.Success ? int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) : 0;
            }

            _ = browser.StandardError.ReadToEndAsync(CancellationToken.None);
            using var http = new HttpClient();
            using JsonDocument targets = JsonDocument.Parse(await http.GetStringAsync(new Uri($"http://127.0.0.1:{port}/json/list"), cancellationToken));
            string page = targets.RootElement.EnumerateArray().First(t => t.GetProperty("type").GetString() == "page").GetProperty("webSocketDebuggerUrl").GetString()!;
            await cdp._socket.ConnectAsync(new Uri(page), cancellationToken);
            return cdp;
        }
        catch
        {
            await cdp.DisposeAsync();
            throw;
        }
    }

    public async Task NavigateAsync(Uri url, CancellationToken cancellationToken)
    {
        await SendAsync("Page.navigate", new { url = url.ToString() }, cancellationToken);
        await WaitForAsync("document.readyState === 'complete' && !!document.getElementById('ask')", TimeSpan.FromSeconds(30), cancellationToken);
    }

    /// <summary>Evaluates an expression in the page (promises awaited) and returns its value.</summary>
    public async Task<JsonElement> EvaluateAsync(string expression, CancellationToken cancellationToken)
    {
        JsonElement result = await SendAsync("Runtime.evaluate", new { expression, awaitPromise = true, returnByValue = true }, cancellationToken);
        if (result.TryGetProperty("exceptionDetails", out JsonElement error))
        {
            throw new InvalidOperationException($"page script failed: {error}");
        }

        return result.GetProperty("result").TryGetProperty("value", out JsonElement value) ? value.Clone() : default;
    }

    /// <summary>Polls until a boolean expression holds in the page.</summary>
    public async Task WaitForAsync(string condition, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var watch = Stopwatch.StartNew();
        while (true)
        {
            JsonElement v = await EvaluateAsync(condition, cancellationToken);
            if (v.ValueKind == JsonValueKind.True)
            {
                return;
            }

            if (watch.Elapsed > timeout)
            {
                throw new TimeoutException($"the page never satisfied: {condition}");
            }

            await Task.Delay(100, cancellationToken);
        }
    }

    private async Task<JsonElement> SendAsync(string method, object parameters, CancellationToken cancellationToken)
    {
        int id = ++_id;
        byte[] message = JsonSerializer.SerializeToUtf8Bytes(new { id, method, @params = parameters });
        await _socket.SendAsync(message, WebSocketMessageType.Text, endOfMessage: true, cancellationToken);
        var buffer = new byte[1 << 16];
        while (true)
        {
            using var text = new MemoryStream();
            WebSocketReceiveResult r;
            do
            {
                r = await _socket.ReceiveAsync(buffer, cancellationToken);
                text.Write(buffer, 0, r.Count);
            }
            while (!r.EndOfMessage);

            using JsonDocument doc = JsonDocument.Parse(text.ToArray());
            if (doc.RootElement.TryGetProperty("id", out JsonElement got) && got.GetInt32() == id)
            {
                return doc.RootElement.TryGetProperty("result", out JsonElement result)
                    ? result.Clone()
                    : throw new InvalidOperationException($"{method} failed: {Encoding.UTF8.GetString(text.ToArray())}");
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        _socket.Dispose();
        if (!_browser.HasExited)
        {
            _browser.Kill(entireProcessTree: true);
            await _browser.WaitForExitAsync();
        }

        _browser.Dispose();
        try
        {
            Directory.Delete(_profile, recursive: true);
        }
        catch (IOException)
        {
            // The browser may still hold a lock file for a moment; the temp directory is cleaned by the system.
        }
    }

    [GeneratedRegex(@"DevTools listening on ws://[^:]+:(\d+)/")]
    private static partial Regex Listening();
}
