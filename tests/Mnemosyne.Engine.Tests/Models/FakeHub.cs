using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace Mnemosyne.Engine.Tests.Models;

/// <summary>One request as the fake hub saw it.</summary>
public sealed record RecordedRequest(string Method, string Path, string Host, string? Authorization, string? Range);

/// <summary>A file the fake hub serves.</summary>
public sealed class HostedFile(byte[] content, bool lfs)
{
    public byte[] Content { get; } = content;

    /// <summary>LFS files redirect to the CDN path and are named by their SHA-256; others are served in place.</summary>
    public bool Lfs { get; } = lfs;

    public string Sha256 { get; } = Convert.ToHexString(SHA256.HashData(content)).ToLowerInvariant();

    /// <summary>The git blob hash the hub uses as the ETag of a non-LFS file.</summary>
    public string GitSha1 { get; } = Convert.ToHexString(SHA1.HashData(
        [.. Encoding.ASCII.GetBytes($"blob {content.Length}\0"), .. content])).ToLowerInvariant();

    /// <summary>What the hub declares as the ETag; a wrong value makes a hash-mismatch case.</summary>
    public string? DeclaredEtag { get; set; }

    public string Etag => DeclaredEtag ?? (Lfs ? Sha256 : GitSha1);
}

/// <summary>
/// A loopback HTTP/1.1 server (127.0.0.1, ephemeral port) that answers like the Hugging Face hub's
/// resolve endpoint: HEAD/GET <c>/{org}/{name}/resolve/{revision}/{path}</c> with X-Repo-Commit,
/// ETag/X-Linked-Etag and X-Linked-Size; LFS files redirect to <c>/cdn/{sha}</c> on another host
/// name (localhost) as the hub redirects to its CDN; the CDN honours Range with 206. Faults can be
/// scripted: status codes, connections cut mid-body, bodies held until released, requests never answered.
/// </summary>
public sealed class FakeHub : IAsyncDisposable
{
    public const string Commit = "0123456789abcdef0123456789abcdef01234567";
    private readonly TcpListener listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource stopping = new();
    private readonly Dictionary<(string Repository, string Path), HostedFile> files = new();
    private readonly ConcurrentDictionary<string, ConcurrentQueue<int>> failures = new();
    private readonly ConcurrentDictionary<string, int> cuts = new();
    private readonly ConcurrentDictionary<string, int> stalls = new();
    private readonly Task acceptLoop;

    public FakeHub()
    {
        listener.Start();
        Port = ((IPEndPoint)listener.LocalEndpoint).Port;
        acceptLoop = AcceptAsync();
    }

    public int Port { get; }

    public Uri Endpoint => new($"http://127.0.0.1:{Port}");

    public ConcurrentQueue<RecordedRequest> Requests { get; } = new();

    /// <summary>When set, resolve requests without "Bearer {token}" get 401.</summary>
    public string? RequiredToken { get; set; }

    /// <summary>A hostile server: it puts the Authorization header it received into its error message.</summary>
    public bool EchoAuthorizationInErrors { get; set; }

    /// <summary>When set, a CDN body sends this many bytes, signals <see cref="BodyHeld"/>, and waits for <see cref="ReleaseBody"/>.</summary>
    public int? HoldBodyAfter { get; set; }

    public TaskCompletionSource BodyHeld { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public TaskCompletionSource ReleaseBody { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public HostedFile Add(string repository, string path, byte[] content, bool lfs)
    {
        var file = new HostedFile(content, lfs);
        files[(repository, path)] = file;
        return file;
    }

    /// <summary>The next <paramref name="times"/> requests whose path starts with <paramref name="pathPrefix"/> get <paramref name="status"/>.</summary>
    public void FailNext(string pathPrefix, int status, int times)
    {
        var queue = failures.GetOrAdd(pathPrefix, _ => new ConcurrentQueue<int>());
        for (var i = 0; i < times; i++) queue.Enqueue(status);
    }

    /// <summary>The next <paramref name="times"/> requests whose path starts with <paramref name="pathPrefix"/> are read and never answered.</summary>
    public void StallNext(string pathPrefix, int times) => stalls.AddOrUpdate(pathPrefix, times, (_, left) => left + times);

    /// <summary>The next CDN GET of this content sends <paramref name="bytes"/> bytes of the body and then closes the connection.</summary>
    public void CutNextBody(HostedFile file, int bytes) => cuts[file.Sha256] = bytes;

    public IEnumerable<RecordedRequest> CdnGets => Requests.Where(r => r.Method == "GET" && r.Path.StartsWith("/cdn/", StringComparison.Ordinal));

    public async ValueTask DisposeAsync()
    {
        ReleaseBody.TrySetResult();
        await stopping.CancelAsync();
        listener.Stop();
        try
        {
            await acceptLoop;
        }
        catch (OperationCanceledException)
        {
        }
        stopping.Dispose();
    }

    private async Task AcceptAsync()
    {
        while (!stopping.IsCancellationRequested)
        {
            TcpClient connection;
            try
            {
                connection = await listener.AcceptTcpClientAsync(stopping.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }
            _ = Task.Run(() => ServeAsync(connection));
        }
    }

    private async Task ServeAsync(TcpClient connection)
    {
        using (connection)
        {
            try
            {
                var stream = connection.GetStream();
                var head = await ReadHeadAsync(stream);
                if (head is null) return;
                await RespondAsync(stream, head.Value.Method, head.Value.Target, head.Value.Headers);
            }
            catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
            {
                // The client went away (cancelled, or gave up): nothing to answer.
            }
        }
    }

    private static async Task<(string Method, string Target, Dictionary<string, string> Headers)?> ReadHeadAsync(NetworkStream stream)
    {
        var bytes = new List<byte>();
        var one = new byte[1];
        while (bytes.Count < 16384)
        {
            if (await stream.ReadAsync(one) == 0) return null;
            bytes.Add(one[0]);
            if (bytes.Count >= 4 && bytes[^4] == '\r' && bytes[^3] == '\n' && bytes[^2] == '\r' && bytes[^1] == '\n') break;
        }
        var lines = Encoding.ASCII.GetString(bytes.ToArray()).Split("\r\n");
        var requestLine = lines[0].Split(' ');
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var line in lines.Skip(1).Where(l => l.Contains(':')))
        {
            var colon = line.IndexOf(':');
            headers[line[..colon].Trim()] = line[(colon + 1)..].Trim();
        }
        return (requestLine[0], requestLine[1], headers);
    }

    private async Task RespondAsync(NetworkStream stream, string method, string target, Dictionary<string, string> headers)
    {
        var path = target.Split('?')[0];
        headers.TryGetValue("Authorization", out var authorization);
        headers.TryGetValue("Range", out var range);
        Requests.Enqueue(new RecordedRequest(method, path, headers.GetValueOrDefault("Host", ""), authorization, range));

        foreach (var prefix in stalls.Keys)
            if (path.StartsWith(prefix, StringComparison.Ordinal) && TakeOne(stalls, prefix))
            {
                await Task.Delay(Timeout.Infinite, stopping.Token);
                return;
            }

        foreach (var (prefix, queue) in failures)
            if (path.StartsWith(prefix, StringComparison.Ordinal) && queue.TryDequeue(out var status))
            {
                await WriteHeadAsync(stream, status, new() { ["Content-Length"] = "0" });
                return;
            }

        if (path.StartsWith("/cdn/", StringComparison.Ordinal))
        {
            var sha = path["/cdn/".Length..];
            var file = files.Values.FirstOrDefault(f => f.Sha256 == sha);
            if (file is null)
                await WriteHeadAsync(stream, 404, new() { ["Content-Length"] = "0" });
            else
                await ServeContentAsync(stream, method, file, range);
            return;
        }

        // /{org}/{name}/resolve/{revision}/{path...}
        var segments = path.TrimStart('/').Split('/').Select(Uri.UnescapeDataString).ToArray();
        if (segments.Length < 5 || segments[2] != "resolve")
        {
            await WriteHeadAsync(stream, 404, new() { ["Content-Length"] = "0" });
            return;
        }
        if (RequiredToken is not null && authorization != "Bearer " + RequiredToken)
        {
            var error = new Dictionary<string, string> { ["Content-Length"] = "0", ["X-Error-Code"] = "GatedRepo" };
            error["X-Error-Message"] = EchoAuthorizationInErrors ? $"Access denied for credentials '{authorization}'" : "Access to this model is restricted.";
            await WriteHeadAsync(stream, 401, error);
            return;
        }
        var repository = segments[0] + "/" + segments[1];
        var revision = segments[3];
        var repositoryPath = string.Join('/', segments.Skip(4));
        if (revision is not ("main" or Commit) || !files.TryGetValue((repository, repositoryPath), out var hosted))
        {
            await WriteHeadAsync(stream, 404, new()
            {
                ["Content-Length"] = "0",
                ["X-Error-Code"] = "EntryNotFound",
                ["X-Error-Message"] = EchoAuthorizationInErrors ? $"Entry not found (credentials '{authorization}')" : "Entry not found",
            });
            return;
        }
        var fileHeaders = new Dictionary<string, string> { ["X-Repo-Commit"] = Commit, ["ETag"] = $"\"{hosted.Etag}\"" };
        if (hosted.Lfs)
        {
            fileHeaders["X-Linked-Etag"] = $"\"{hosted.Etag}\"";
            fileHeaders["X-Linked-Size"] = hosted.Content.Length.ToString();
            fileHeaders["Location"] = $"http://localhost:{Port}/cdn/{hosted.Sha256}";
            fileHeaders["Content-Length"] = "0";
            await WriteHeadAsync(stream, 302, fileHeaders);
            return;
        }
        await ServeContentAsync(stream, method, hosted, range, fileHeaders);
    }

    private async Task ServeContentAsync(NetworkStream stream, string method, HostedFile file, string? range, Dictionary<string, string>? extra = null)
    {
        var headers = extra ?? new Dictionary<string, string>();
        var start = 0;
        var status = 200;
        if (range is not null && range.StartsWith("bytes=", StringComparison.Ordinal) && range.EndsWith('-'))
        {
            start = int.Parse(range["bytes=".Length..^1]);
            if (start >= file.Content.Length)
            {
                headers["Content-Range"] = $"bytes */{file.Content.Length}";
                headers["Content-Length"] = "0";
                await WriteHeadAsync(stream, 416, headers);
                return;
            }
            status = 206;
            headers["Content-Range"] = $"bytes {start}-{file.Content.Length - 1}/{file.Content.Length}";
        }
        headers["Content-Length"] = (file.Content.Length - start).ToString();
        headers["Accept-Ranges"] = "bytes";
        await WriteHeadAsync(stream, status, headers);
        if (method == "HEAD") return;

        var body = file.Content.AsMemory(start);
        if (cuts.TryRemove(file.Sha256, out var cutAfter))
        {
            await stream.WriteAsync(body[..Math.Min(cutAfter, body.Length)]);
            await stream.FlushAsync();
            CutConnection(stream);
            return;
        }
        if (HoldBodyAfter is { } hold && hold < body.Length)
        {
            await stream.WriteAsync(body[..hold]);
            await stream.FlushAsync();
            BodyHeld.TrySetResult();
            await ReleaseBody.Task.WaitAsync(stopping.Token);
            body = body[hold..];
        }
        await stream.WriteAsync(body);
    }

    private static bool TakeOne(ConcurrentDictionary<string, int> counts, string key)
    {
        while (counts.TryGetValue(key, out var left) && left > 0)
            if (counts.TryUpdate(key, left - 1, left)) return true;
        return false;
    }

    /// <summary>Ends the connection with the declared length unsent, as a dropped connection does (after what was sent arrives).</summary>
    private static void CutConnection(NetworkStream stream)
    {
        stream.Socket.Shutdown(SocketShutdown.Send);
        stream.Socket.Close();
    }

    private static async Task WriteHeadAsync(NetworkStream stream, int status, Dictionary<string, string> headers)
    {
        var text = new StringBuilder($"HTTP/1.1 {status} {ReasonPhrase(status)}\r\n");
        foreach (var (name, value) in headers) text.Append(name).Append(": ").Append(value).Append("\r\n");
        text.Append("Connection: close\r\n\r\n");
        await stream.WriteAsync(Encoding.ASCII.GetBytes(text.ToString()));
    }

    private static string ReasonPhrase(int status) => status switch
    {
        200 => "OK",
        206 => "Partial Content",
        302 => "Found",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        416 => "Range Not Satisfiable",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    };
}
