using Mnemosyne.Engine.Tensors;

namespace Mnemosyne.Engine.Imaging;

/// <summary>
/// CLIP image preprocessing as diffusers sets it up for IP-Adapter (transformers'
/// CLIPImageProcessor with size 224, crop 224): resize the short side to 224 with Pillow's
/// bicubic, centre-crop 224×224, rescale by 1/255 in double then float, normalise with CLIP's
/// mean and std in float, channels first. Gives pixel_values [1, 3, 224, 224].
/// </summary>
public static class ClipImagePreprocessor
{
    public const int Size = 224;

    private static readonly float[] Mean = [0.48145466f, 0.4578275f, 0.40821073f];
    private static readonly float[] Std = [0.26862954f, 0.26130258f, 0.27577711f];

    public static FloatTensor Preprocess(RgbImage image)
    {
        ArgumentNullException.ThrowIfNull(image);
        var (width, height) = ShortSideTo(image.Width, image.Height, Size);
        // Only the centre crop of the resized image is computed; it is the same bytes as resizing, then cropping.
        var cropped = PillowResampler.ResizeBicubic(image, width, height, (width - Size) / 2, (height - Size) / 2, Size, Size);

        var values = new float[3 * Size * Size];
        for (int y = 0; y < Size; y++)
        {
            for (int x = 0; x < Size; x++)
            {
                int pixel = 3 * (y * Size + x);
                for (int c = 0; c < 3; c++)
                {
                    var rescaled = (float)(cropped.Rgb[pixel + c] * (1.0 / 255.0));
                    values[(c * Size + y) * Size + x] = (rescaled - Mean[c]) / Std[c];
                }
            }
        }
        return new FloatTensor(values, [1, 3, Size, Size]);
    }

    /// <summary>transformers' shortest-edge rule: the short side becomes <paramref name="size"/>, the long side int(size·long/short).</summary>
    internal static (int Width, int Height) ShortSideTo(int width, int height, int size)
    {
        bool portrait = width <= height;
        int shortSide = portrait ? width : height, longSide = portrait ? height : width;
        int newLong = (int)(size * (double)longSide / shortSide);
        return portrait ? (size, newLong) : (newLong, size);
    }
}
