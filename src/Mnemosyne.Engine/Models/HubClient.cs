using System.Net;
using System.Net.Http.Headers;

namespace Mnemosyne.Engine.Models;

/// <summary>What the hub says of one file: the commit it resolved to, its ETag, its size and where the bytes are.</summary>
internal sealed record HubFileMetadata(string Commit, string Etag, long Size, Uri DownloadUri)
{
    /// <summary>LFS files are named by the SHA-256 of their content; the others by their git blob hash.</summary>
    public bool EtagIsSha256 => HubNames.IsSha256(Etag);
}

/// <summary>A 5xx, a 429 or a broken connection: worth another try.</summary>
internal sealed class TransientHubException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// The hub's resolve endpoint, spoken as huggingface_hub speaks it: a HEAD to
/// <c>{endpoint}/{repo}/resolve/{revision}/{path}</c> answers with X-Repo-Commit, X-Linked-Etag (or
/// ETag) and X-Linked-Size and, for LFS files, a redirect to a CDN; the GET that follows may resume
/// with Range. Redirects are followed by hand so that the token goes to the endpoint's host only.
/// </summary>
internal sealed class HubClient : IDisposable
{
    private const int MaxRedirects = 10;
    private readonly HttpClient http;
    private readonly HubOptions options;

    public HubClient(HubOptions options)
    {
        this.options = options;
        http = new HttpClient(new SocketsHttpHandler
        {
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            UseCookies = false,
            ConnectTimeout = options.ConnectTimeout,
        })
        {
            Timeout = Timeout.InfiniteTimeSpan,
        };
        http.DefaultRequestHeaders.UserAgent.ParseAdd("Mnemosyne/0.1");
        // Sizes must be the files' own, not those of a compressed transfer.
        http.DefaultRequestHeaders.AcceptEncoding.ParseAdd("identity");
    }

    public Uri ResolveUri(string repository, string revision, string path) =>
        new($"{options.Endpoint.AbsoluteUri.TrimEnd('/')}/{repository}/resolve/{Uri.EscapeDataString(revision)}/"
            + string.Join('/', path.Split('/').Select(Uri.EscapeDataString)));

    /// <summary>HEAD on the resolve URL; retried on transient failures.</summary>
    public Task<HubFileMetadata> ResolveAsync(string repository, string revision, string path, CancellationToken cancellation) =>
        WithRetriesAsync($"Asking {options.Endpoint.Host} about {repository}/{path}", async () =>
        {
            var uri = ResolveUri(repository, revision, path);
            for (var hop = 0; hop <= MaxRedirects; hop++)
            {
                using var response = await SendAsync(HttpMethod.Head, uri, 0, cancellation).ConfigureAwait(false);
                CheckStatus(response, repository, revision, path);
                var commit = Header(response, "X-Repo-Commit");
                var etag = Header(response, "X-Linked-Etag") ?? Header(response, "ETag");
                var redirect = IsRedirect(response.StatusCode) ? RedirectTarget(response, uri) : null;
                // A redirect without the file's headers is the hub moving a renamed repository: follow it.
                if (redirect is not null && commit is null && etag is null)
                {
                    uri = redirect;
                    continue;
                }
                return Metadata(response, commit, HubNames.NormalizeEtag(etag), redirect ?? uri, repository, path);
            }
            throw new HubRequestException($"{repository}/{path}: more than {MaxRedirects} redirects from {options.Endpoint.Host}.");
        }, cancellation);

    /// <summary>
    /// GET from <paramref name="offset"/> on (a Range request when it is not 0), following redirects.
    /// The caller reads and disposes the response: 200 (whole file), 206 (the range) or 416.
    /// </summary>
    public async Task<HttpResponseMessage> GetAsync(Uri uri, long offset, string repository, string revision, string path, CancellationToken cancellation)
    {
        for (var hop = 0; hop <= MaxRedirects; hop++)
        {
            var response = await SendAsync(HttpMethod.Get, uri, offset, cancellation).ConfigureAwait(false);
            if (IsRedirect(response.StatusCode))
            {
                uri = RedirectTarget(response, uri);
                response.Dispose();
                continue;
            }
            if (response.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable) return response;
            try
            {
                CheckStatus(response, repository, revision, path);
            }
            catch
            {
                response.Dispose();
                throw;
            }
            return response;
        }
        throw new HubRequestException($"{repository}/{path}: more than {MaxRedirects} redirects.");
    }

    /// <summary>
    /// Runs <paramref name="attempt"/> until it succeeds, waiting RetryDelay, 2×, 4×… after each
    /// transient failure, up to MaxAttempts tries. Cancellation is never retried.
    /// </summary>
    public async Task<T> WithRetriesAsync<T>(string what, Func<Task<T>> attempt, CancellationToken cancellation)
    {
        for (var number = 1; ; number++)
        {
            try
            {
                return await attempt().ConfigureAwait(false);
            }
            catch (Exception e) when (IsTransient(e, cancellation))
            {
                if (number >= options.MaxAttempts)
                    throw new HubRequestException(Redact($"{what} failed {number} times; the last error: {e.Message} Run the install again to resume."), e);
                await Task.Delay(options.RetryDelay * Math.Pow(2, number - 1), cancellation).ConfigureAwait(false);
            }
        }
    }

    public Task WithRetriesAsync(string what, Func<Task> attempt, CancellationToken cancellation) =>
        WithRetriesAsync(what, async () =>
        {
            await attempt().ConfigureAwait(false);
            return true;
        }, cancellation);

    /// <summary>Takes the token out of any text that came from a server or the network stack, in case it echoes it.</summary>
    public string Redact(string text) =>
        options.Token is { Length: > 0 } token ? text.Replace(token, "***", StringComparison.Ordinal) : text;

    public void Dispose() => http.Dispose();

    private static bool IsTransient(Exception e, CancellationToken cancellation) => e switch
    {
        TransientHubException or HttpRequestException or TimeoutException => true,
        OperationCanceledException => !cancellation.IsCancellationRequested,
        HubRequestException or ModelIntegrityException or FileNotFoundException => false,
        IOException => true,
        _ => false,
    };

    private async Task<HttpResponseMessage> SendAsync(HttpMethod method, Uri uri, long offset, CancellationToken cancellation)
    {
        using var request = new HttpRequestMessage(method, uri);
        if (offset > 0) request.Headers.Range = new RangeHeaderValue(offset, null);
        // Only the endpoint itself gets the token; a CDN it redirects to must not.
        if (options.Token is { Length: > 0 } token && SameOrigin(uri, options.Endpoint))
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        // A server that accepts and then says nothing would otherwise hold the install for ever.
        using var silence = CancellationTokenSource.CreateLinkedTokenSource(cancellation);
        silence.CancelAfter(options.ReadTimeout);
        try
        {
            return await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, silence.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellation.IsCancellationRequested)
        {
            throw new TimeoutException($"{uri.Host} did not answer within {options.ReadTimeout.TotalSeconds:0.###} s.");
        }
    }

    private static bool SameOrigin(Uri a, Uri b) =>
        string.Equals(a.Scheme, b.Scheme, StringComparison.OrdinalIgnoreCase)
        && string.Equals(a.IdnHost, b.IdnHost, StringComparison.OrdinalIgnoreCase)
        && a.Port == b.Port;

    private static bool IsRedirect(HttpStatusCode status) => (int)status is >= 300 and < 400 and not 304;

    private Uri RedirectTarget(HttpResponseMessage response, Uri from)
    {
        var location = response.Headers.Location
            ?? throw new HubRequestException($"{from.Host} answered {(int)response.StatusCode} without a Location header.");
        var target = location.IsAbsoluteUri ? location : new Uri(from, location);
        if (target.Scheme is not ("http" or "https"))
            throw new HubRequestException($"{from.Host} redirected to a {target.Scheme} URL; only http(s) is followed.");
        return target;
    }

    private void CheckStatus(HttpResponseMessage response, string repository, string revision, string path)
    {
        var status = (int)response.StatusCode;
        if (status is >= 200 and < 400) return;
        var serverSays = Header(response, "X-Error-Message") is { } message ? $" The hub says: {Redact(message)}" : "";
        var where = $"{repository}@{revision}: {path}";
        switch (status)
        {
            case 401 or 403:
                var token = options.Token is null
                    ? "No token was sent: set HF_TOKEN to a Hugging Face access token (or log in with `hf auth login`), after accepting the model's licence on its page."
                    : "A token was sent but not accepted for this repository: check that HF_TOKEN is valid and that its account has accepted the model's licence.";
                throw new HubAccessDeniedException(
                    $"{where}: {options.Endpoint.Host} answered {status} ({response.ReasonPhrase}): the repository is gated or private, or needs a token. {token}{serverSays}",
                    status);
            case 404:
                throw new HubFileNotFoundException(
                    $"{where}: {options.Endpoint.Host} has no such file (404). Check the repository, revision and file path in the model's manifest, and HF_ENDPOINT.{serverSays}",
                    path);
            case 429 or >= 500:
                throw new TransientHubException($"{where}: {options.Endpoint.Host} answered {status} ({response.ReasonPhrase}).{serverSays}");
            default:
                throw new HubRequestException($"{where}: {options.Endpoint.Host} answered {status} ({response.ReasonPhrase}).{serverSays}");
        }
    }

    private HubFileMetadata Metadata(HttpResponseMessage response, string? commit, string? etag, Uri downloadUri, string repository, string path)
    {
        var where = $"{repository}/{path}";
        if (commit is null || !HubNames.IsCommitHash(commit))
            throw new HubRequestException(
                $"{where}: {options.Endpoint.Host} sent no usable X-Repo-Commit header. Is HF_ENDPOINT ({options.Endpoint}) a Hugging Face hub or mirror?");
        if (etag is null)
            throw new HubRequestException($"{where}: {options.Endpoint.Host} sent no usable ETag or X-Linked-Etag, so the file cannot be named or checked.");
        var linkedSize = Header(response, "X-Linked-Size");
        long size;
        if (linkedSize is not null)
        {
            if (!long.TryParse(linkedSize, out size) || size < 0)
                throw new HubRequestException($"{where}: X-Linked-Size '{Redact(linkedSize)}' is not a size.");
        }
        else if (!IsRedirect(response.StatusCode) && response.Content.Headers.ContentLength is { } length)
        {
            size = length;
        }
        else
        {
            throw new HubRequestException($"{where}: {options.Endpoint.Host} declared no size (X-Linked-Size or Content-Length).");
        }
        return new HubFileMetadata(commit, etag, size, downloadUri);
    }

    private static string? Header(HttpResponseMessage response, string name) =>
        response.Headers.NonValidated.TryGetValues(name, out var values) ? values.FirstOrDefault()
        : response.Content.Headers.NonValidated.TryGetValues(name, out var contentValues) ? contentValues.FirstOrDefault()
        : null;
}
