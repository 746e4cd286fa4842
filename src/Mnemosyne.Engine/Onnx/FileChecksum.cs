using System.Security.Cryptography;

namespace Mnemosyne.Engine.Onnx;

/// <summary>
/// SHA-256 of a cached file, whole when it is small, else of samples spread over it: a truncated, cut or overwritten
/// file is caught without reading gigabytes at every open (a change far from every sample is not).
/// </summary>
internal static class FileChecksum
{
    /// <summary>A file up to this size is checksummed whole; a larger one in <see cref="Samples"/> samples of <see cref="SampleBytes"/>.</summary>
    private const long WholeChecksumLimit = 64L << 20;
    private const int Samples = 64;
    private const int SampleBytes = 1 << 20;

    public static string Of(string path, long length)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1);
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[SampleBytes];
        if (length <= WholeChecksumLimit)
        {
            int read;
            while ((read = stream.Read(buffer)) > 0) hash.AppendData(buffer, 0, read);
        }
        else
        {
            for (int i = 0; i < Samples; i++)
            {
                stream.Position = (length - SampleBytes) * i / (Samples - 1);
                stream.ReadExactly(buffer);
                hash.AppendData(buffer);
            }
        }
        return Convert.ToHexString(hash.GetHashAndReset()).ToLowerInvariant();
    }
}
