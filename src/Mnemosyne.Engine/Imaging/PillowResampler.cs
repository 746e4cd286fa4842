namespace Mnemosyne.Engine.Imaging;

/// <summary>
/// Pillow's 8-bit BICUBIC and LANCZOS resizes (<c>Image.resize(size, BICUBIC)</c>, <c>LANCZOS</c>), reproduced to the
/// bit: a cubic convolution (a = −0.5, support 2) or a 3-lobed Lanczos window (support 3) widened by the shrink factor, applied as two
/// separable passes (horizontal, then vertical) with 22-bit fixed-point weights, a rounding bias
/// and clipping to 0..255 after each pass; a pass is skipped when its axis keeps its size.
/// CLIP preprocessing runs through this, so its output matches transformers' exactly.
/// </summary>
public static class PillowResampler
{
    private const int PrecisionBits = 32 - 8 - 2;
    private const double CubicA = -0.5;
    private const double CubicSupport = 2.0;
    private const double LanczosSupport = 3.0;

    private sealed record Filter(Func<double, double> Weight, double Support);

    private static readonly Filter BicubicFilter = new(Cubic, CubicSupport);
    private static readonly Filter LanczosFilter = new(Lanczos, LanczosSupport);

    public static RgbImage ResizeBicubic(RgbImage image, int width, int height) =>
        ResizeBicubic(image, width, height, 0, 0, width, height);

    /// <summary>Pillow's LANCZOS resize, as diffusers' VaeImageProcessor (resample "lanczos") and the hires fix's Pixel upscale use it.</summary>
    public static RgbImage ResizeLanczos(RgbImage image, int width, int height) =>
        Resize(image, width, height, 0, 0, width, height, LanczosFilter);

    /// <summary>
    /// The window at (<paramref name="left"/>, <paramref name="top"/>) of the image resized to
    /// <paramref name="width"/>×<paramref name="height"/>, computed alone: Pillow's weights for an
    /// output pixel do not depend on the other outputs, so resizing then cropping gives the same
    /// bytes, while the memory and time follow the window (a 16384×1 image resized for CLIP would
    /// otherwise be 3.7 million pixels wide).
    /// </summary>
    public static RgbImage ResizeBicubic(RgbImage image, int width, int height, int left, int top, int windowWidth, int windowHeight) =>
        Resize(image, width, height, left, top, windowWidth, windowHeight, BicubicFilter);

    private static RgbImage Resize(RgbImage image, int width, int height, int left, int top, int windowWidth, int windowHeight, Filter filter)
    {
        ArgumentNullException.ThrowIfNull(image);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(width);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(height);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(windowWidth);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(windowHeight);
        if (left < 0 || top < 0 || (long)left + windowWidth > width || (long)top + windowHeight > height)
            throw new ArgumentOutOfRangeException(nameof(left),
                $"The window {windowWidth}×{windowHeight} at ({left}, {top}) is not inside the {width}×{height} image.");

        var vertical = height != image.Height ? Coefficients(image.Height, height, top, windowHeight, filter) : null;
        // Only the source rows the vertical pass reads are resampled horizontally.
        int firstRow = vertical?.First[0] ?? top;
        int lastRow = vertical is null ? top + windowHeight : vertical.First[^1] + vertical.Count[^1];
        var rows = width != image.Width
            ? ResampleHorizontal(image.Rgb, image.Width, firstRow, lastRow, Coefficients(image.Width, width, left, windowWidth, filter))
            : CopyWindow(image.Rgb, image.Width, left, windowWidth, firstRow, lastRow);
        if (vertical is not null)
        {
            for (int o = 0; o < windowHeight; o++) vertical.First[o] -= firstRow;
            rows = ResampleVertical(rows, windowWidth, vertical);
        }
        return new RgbImage(windowWidth, windowHeight, rows);
    }

    /// <summary>Per output index: the first input index, how many follow, and their fixed-point weights.</summary>
    private sealed record Kernel(int[] First, int[] Count, int[] Weights, int Stride);

    /// <summary>Weights for outputs <paramref name="firstOut"/> .. <paramref name="firstOut"/> + <paramref name="count"/> − 1 of a resize from <paramref name="inSize"/> to <paramref name="outSize"/>.</summary>
    private static Kernel Coefficients(int inSize, int outSize, int firstOut, int count, Filter filter)
    {
        double scale = (double)inSize / outSize;
        double filterScale = Math.Max(scale, 1.0);
        double support = filter.Support * filterScale;
        int stride = (int)Math.Ceiling(support) * 2 + 1;

        var first = new int[count];
        var taps = new int[count];
        var weights = new int[count * stride];
        var window = new double[stride];
        double inverseFilterScale = 1.0 / filterScale;
        for (int o = 0; o < count; o++)
        {
            double center = (firstOut + o + 0.5) * scale;
            // Truncation toward zero, as the C cast does, before clamping to the image.
            int min = Math.Max((int)(center - support + 0.5), 0);
            int max = Math.Min((int)(center + support + 0.5), inSize);
            int n = max - min;
            double sum = 0;
            for (int i = 0; i < n; i++)
            {
                window[i] = filter.Weight((i + min - center + 0.5) * inverseFilterScale);
                sum += window[i];
            }
            for (int i = 0; i < n; i++)
            {
                double w = sum != 0.0 ? window[i] / sum : window[i];
                weights[o * stride + i] = (int)(w < 0 ? -0.5 + w * (1 << PrecisionBits) : 0.5 + w * (1 << PrecisionBits));
            }
            first[o] = min;
            taps[o] = n;
        }
        return new Kernel(first, taps, weights, stride);
    }

    /// <summary>Keys' cubic with a = −0.5, in the operation order Pillow evaluates it.</summary>
    private static double Cubic(double x)
    {
        if (x < 0.0) x = -x;
        if (x < 1.0) return ((CubicA + 2.0) * x - (CubicA + 3.0)) * x * x + 1;
        if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * CubicA;
        return 0.0;
    }

    /// <summary>Pillow's truncated sinc: sinc(x)·sinc(x/3) on [−3, 3).</summary>
    private static double Lanczos(double x) => x >= -3.0 && x < 3.0 ? Sinc(x) * Sinc(x / 3) : 0.0;

    private static double Sinc(double x)
    {
        if (x == 0.0) return 1.0;
        x *= Math.PI;
        return Math.Sin(x) / x;
    }

    private static byte Clip(int accumulator)
    {
        int value = accumulator >> PrecisionBits;
        return value < 0 ? (byte)0 : value > 255 ? (byte)255 : (byte)value;
    }

    private static byte[] ResampleHorizontal(byte[] source, int sourceWidth, int firstRow, int lastRow, Kernel kernel)
    {
        int width = kernel.First.Length;
        var output = new byte[3 * width * (lastRow - firstRow)];
        for (int y = firstRow; y < lastRow; y++)
        {
            int sourceRow = 3 * sourceWidth * y, outputRow = 3 * width * (y - firstRow);
            for (int x = 0; x < width; x++)
            {
                int r = 1 << (PrecisionBits - 1), g = r, b = r;
                int weights = x * kernel.Stride, pixel = sourceRow + 3 * kernel.First[x];
                for (int i = 0; i < kernel.Count[x]; i++, pixel += 3)
                {
                    int w = kernel.Weights[weights + i];
                    r += source[pixel] * w;
                    g += source[pixel + 1] * w;
                    b += source[pixel + 2] * w;
                }
                output[outputRow + 3 * x] = Clip(r);
                output[outputRow + 3 * x + 1] = Clip(g);
                output[outputRow + 3 * x + 2] = Clip(b);
            }
        }
        return output;
    }

    private static byte[] CopyWindow(byte[] source, int sourceWidth, int left, int width, int firstRow, int lastRow)
    {
        var output = new byte[3 * width * (lastRow - firstRow)];
        for (int y = firstRow; y < lastRow; y++)
            source.AsSpan(3 * (y * sourceWidth + left), 3 * width).CopyTo(output.AsSpan(3 * width * (y - firstRow)));
        return output;
    }

    private static byte[] ResampleVertical(byte[] source, int width, Kernel kernel)
    {
        int height = kernel.First.Length, rowBytes = 3 * width;
        var output = new byte[rowBytes * height];
        for (int y = 0; y < height; y++)
        {
            int weights = y * kernel.Stride, top = kernel.First[y] * rowBytes;
            for (int c = 0; c < rowBytes; c++)
            {
                int sum = 1 << (PrecisionBits - 1);
                for (int i = 0, pixel = top + c; i < kernel.Count[y]; i++, pixel += rowBytes)
                    sum += source[pixel] * kernel.Weights[weights + i];
                output[y * rowBytes + c] = Clip(sum);
            }
        }
        return output;
    }
}
