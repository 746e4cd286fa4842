namespace Mnemosyne.Engine.Imaging;

/// <summary>Why an image could not be used.</summary>
public enum ImageDecodeFailure
{
    /// <summary>The file has no bytes.</summary>
    Empty,
    /// <summary>The content is not an image in a format the decoder accepts.</summary>
    NotAnImage,
    /// <summary>The declared size (or the file size) is over the decoder's limits.</summary>
    TooLarge,
    /// <summary>The file ends before the image does.</summary>
    Truncated,
    /// <summary>The content is damaged or uses a feature the decoder does not support.</summary>
    Corrupt,
}

/// <summary>
/// An image that could not be decoded safely. The message names the file and says what to do;
/// <see cref="Failure"/> tells callers (e.g. the cmdlets choosing an error category) which case it is.
/// An <see cref="IOException"/> because <see cref="InvalidDataException"/> is sealed.
/// </summary>
public sealed class ImageDecodeException : IOException
{
    public ImageDecodeException(string path, ImageDecodeFailure failure, string message, Exception? inner = null)
        : base($"{path}: {message}", inner)
    {
        FilePath = path;
        Failure = failure;
    }

    /// <summary>The file (or the name the caller gave the bytes).</summary>
    public string FilePath { get; }

    public ImageDecodeFailure Failure { get; }
}
