using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats;
using SixLabors.ImageSharp.Formats.Bmp;
using SixLabors.ImageSharp.Formats.Gif;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.Formats.Png;
using SixLabors.ImageSharp.Formats.Webp;
using SixLabors.ImageSharp.Memory;
using SixLabors.ImageSharp.Metadata;
using SixLabors.ImageSharp.PixelFormats;
using SixLabors.ImageSharp.Processing;

namespace Mnemosyne.Engine.Imaging;

/// <summary>
/// Decodes untrusted images (PNG, JPEG, WebP, GIF, BMP; the content decides, not the extension)
/// into <see cref="RgbImage"/>, as Pillow's <c>convert('RGB')</c> after <c>exif_transpose</c> would:
/// alpha is dropped (not composited), EXIF orientation is applied, animations give their first
/// frame, 16-bit samples keep their high byte. The declared size is read and checked against
/// <see cref="ImageDecodeLimits"/> before any pixel is decoded, and the decoder's allocations are
/// capped, because ImageSharp 2.1 has had flaws with crafted images. Every failure is an
/// <see cref="ImageDecodeException"/>.
/// Not Pillow's bytes: JPEG pixels (ImageSharp's IDCT and box chroma upsampling against
/// libjpeg-turbo's smooth one: a few levels, up to ~25 at sharp colour edges in 4:2:0 files) and
/// transparent GIF pixels (black here, the palette colour in Pillow).
/// </summary>
public sealed class SafeImageDecoder
{
    private const string Accepted = "PNG, JPEG, WebP, GIF or BMP";

    private readonly Configuration configuration;

    public SafeImageDecoder(ImageDecodeLimits? limits = null)
    {
        Limits = limits ?? ImageDecodeLimits.Default;
        Limits.Validate();
        configuration = new Configuration(
            new PngConfigurationModule(), new JpegConfigurationModule(), new WebpConfigurationModule(),
            new GifConfigurationModule(), new BmpConfigurationModule())
        {
            // No pool: reference images are decoded now and then, and a pool would keep their memory.
            MemoryAllocator = MemoryAllocator.Create(new MemoryAllocatorOptions
            {
                MaximumPoolSizeMegabytes = 0,
                AllocationLimitMegabytes = Limits.AllocationLimitMegabytes,
            }),
        };
        configuration.ImageFormatsManager.SetDecoder(GifFormat.Instance, new GifDecoder { DecodingMode = FrameDecodingMode.First });
    }

    public static SafeImageDecoder Default { get; } = new();

    public ImageDecodeLimits Limits { get; }

    /// <exception cref="FileNotFoundException">There is no such file.</exception>
    /// <exception cref="ImageDecodeException">The file is not a usable image.</exception>
    public RgbImage Decode(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        var fullPath = Path.GetFullPath(path);
        if (!File.Exists(fullPath))
            throw new FileNotFoundException($"Image '{fullPath}' does not exist; check the path.", fullPath);
        byte[] bytes;
        using (var stream = new FileStream(fullPath, FileMode.Open, FileAccess.Read, FileShare.Read))
        {
            if (stream.Length > Limits.MaxFileBytes)
                throw Fail(fullPath, ImageDecodeFailure.TooLarge,
                    $"the file is {stream.Length} bytes, over the limit of {Limits.MaxFileBytes}; use a smaller image.");
            bytes = new byte[stream.Length];
            stream.ReadExactly(bytes);
        }
        return Decode(bytes, fullPath);
    }

    /// <param name="data">The encoded image.</param>
    /// <param name="name">The file name (or a description) used in error messages.</param>
    /// <exception cref="ImageDecodeException">The bytes are not a usable image.</exception>
    public RgbImage Decode(byte[] data, string name)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (data.Length == 0)
            throw Fail(name, ImageDecodeFailure.Empty, $"the file is empty (0 bytes); it is not an image. Choose a {Accepted} file.");
        if (data.LongLength > Limits.MaxFileBytes)
            throw Fail(name, ImageDecodeFailure.TooLarge, $"the image is {data.LongLength} bytes, over the limit of {Limits.MaxFileBytes}; use a smaller image.");

        var format = Image.DetectFormat(configuration, data)
            ?? throw Fail(name, ImageDecodeFailure.NotAnImage,
                $"the content is not a {Accepted} image (whatever its extension says); convert it to PNG or JPEG.");
        try
        {
            if (format == WebpFormat.Instance && ContainerChecks.WebpCanvasSize(data) is var (canvasWidth, canvasHeight))
                CheckSize(canvasWidth, canvasHeight, name);
            if (format == WebpFormat.Instance && AnimatedWebp.IsAnimated(data))
                return DecodeAnimatedWebp(data, name);
            if ((format == PngFormat.Instance && !ContainerChecks.PngReachesEnd(data)) ||
                (format == JpegFormat.Instance && !ContainerChecks.JpegReachesEnd(data)))
                throw Fail(name, ImageDecodeFailure.Truncated,
                    $"the {format.Name} file ends before the image does (an interrupted download or copy?); get a complete copy of it.");
            if (format == PngFormat.Instance && PngChunks.OversizedMetadata(data) is { } oversized)
                throw Fail(name, ImageDecodeFailure.TooLarge,
                    $"the PNG's {oversized} (a decompression bomb?); re-save the image without its metadata.");

            var info = Identify(data, name, format);
            if (format == PngFormat.Instance && PngChunks.PixelDataProblem(data) is var (truncated, problem))
                throw truncated
                    ? Fail(name, ImageDecodeFailure.Truncated, $"the PNG is incomplete: {problem} (an interrupted download or copy?); get a complete copy of it.")
                    : Fail(name, ImageDecodeFailure.Corrupt, $"the PNG is damaged: {problem}; get an undamaged copy, or re-save it as PNG or JPEG.");
            bool sixteenBit = format == PngFormat.Instance && info.Metadata.GetPngMetadata().BitDepth == PngBitDepth.Bit16;
            return sixteenBit ? Load<Rgba64>(data, HighBytes) : Load<Rgb24>(data, Bytes);
        }
        catch (Exception e) when (e is ImageFormatException or InvalidMemoryOperationException or InvalidDataException or NotSupportedException
                                       or ArgumentException or IndexOutOfRangeException or EndOfStreamException or OverflowException)
        {
            // ImageSharp reports damaged data through assorted exception types; all of them mean the same to the user.
            throw Fail(name, ImageDecodeFailure.Corrupt,
                $"the {format.Name} image is damaged or uses a feature the decoder does not support ({e.Message}); re-save it as PNG or JPEG.", e);
        }
    }

    private IImageInfo Identify(byte[] data, string name, IImageFormat format)
    {
        var info = Image.Identify(configuration, data, out _)
            ?? throw Fail(name, ImageDecodeFailure.Corrupt, $"the {format.Name} header could not be read; re-save the image as PNG or JPEG.");
        CheckSize(info.Width, info.Height, name);
        return info;
    }

    private void CheckSize(int width, int height, string name)
    {
        if (width <= 0 || height <= 0)
            throw Fail(name, ImageDecodeFailure.Corrupt, $"the image declares a size of {width}×{height}; re-save it as PNG or JPEG.");
        if (width > Limits.MaxSide || height > Limits.MaxSide || (long)width * height > Limits.MaxPixels)
            throw Fail(name, ImageDecodeFailure.TooLarge,
                $"the image declares {width}×{height} pixels, over the limit of {Limits.MaxSide} per side and {Limits.MaxPixels} in all; scale it down first.");
    }

    private RgbImage Load<TPixel>(byte[] data, RowToRgb<TPixel> toRgb)
        where TPixel : unmanaged, IPixel<TPixel>
    {
        using var image = Image.Load<TPixel>(configuration, data);
        // Pillow opens frames without turning them; diffusers' load_image applies exif_transpose.
        image.Mutate(operations => operations.AutoOrient());
        var rgb = new byte[3L * image.Width * image.Height];
        int rowBytes = 3 * image.Width;
        image.ProcessPixelRows(rows =>
        {
            for (int y = 0; y < rows.Height; y++)
                toRgb(rows.GetRowSpan(y), rgb.AsSpan(y * rowBytes, rowBytes));
        });
        return new RgbImage(image.Width, image.Height, rgb);
    }

    private static void Bytes(ReadOnlySpan<Rgb24> row, Span<byte> rgb) =>
        System.Runtime.InteropServices.MemoryMarshal.AsBytes(row).CopyTo(rgb);

    /// <summary>Pillow reads 16-bit PNG samples as their high byte (truncation, not rounding).</summary>
    private static void HighBytes(ReadOnlySpan<Rgba64> row, Span<byte> rgb)
    {
        for (int x = 0; x < row.Length; x++)
        {
            rgb[3 * x] = (byte)(row[x].R >> 8);
            rgb[3 * x + 1] = (byte)(row[x].G >> 8);
            rgb[3 * x + 2] = (byte)(row[x].B >> 8);
        }
    }

    private RgbImage DecodeAnimatedWebp(byte[] data, string name)
    {
        var frame = AnimatedWebp.ExtractFirstFrame(data);
        CheckSize(frame.CanvasWidth, frame.CanvasHeight, name);
        Identify(frame.StillWebp, name, WebpFormat.Instance);
        using var image = Image.Load<Rgba32>(configuration, frame.StillWebp);
        if (image.Width != frame.Width || image.Height != frame.Height)
            throw Fail(name, ImageDecodeFailure.Corrupt,
                $"the first animation frame is {image.Width}×{image.Height} but declares {frame.Width}×{frame.Height}; re-save it as PNG.");

        // libwebp starts an animation on a transparent black canvas and copies the first frame onto
        // it unblended; dropping alpha then leaves black around the frame and its colours inside.
        var rgb = new byte[3L * frame.CanvasWidth * frame.CanvasHeight];
        image.ProcessPixelRows(rows =>
        {
            for (int y = 0; y < rows.Height; y++)
            {
                var row = rows.GetRowSpan(y);
                var target = rgb.AsSpan(3 * ((frame.Y + y) * frame.CanvasWidth + frame.X), 3 * row.Length);
                for (int x = 0; x < row.Length; x++)
                {
                    target[3 * x] = row[x].R;
                    target[3 * x + 1] = row[x].G;
                    target[3 * x + 2] = row[x].B;
                }
            }
        });
        return new RgbImage(frame.CanvasWidth, frame.CanvasHeight, rgb);
    }

    private delegate void RowToRgb<TPixel>(ReadOnlySpan<TPixel> row, Span<byte> rgb);

    private static ImageDecodeException Fail(string name, ImageDecodeFailure failure, string message, Exception? inner = null) =>
        new(name, failure, message, inner);
}
