using System.Globalization;
using Mnemosyne.Engine.Imaging;
using Mnemosyne.Engine.Tensors;

namespace Mnemosyne.Engine.Pipeline;

/// <summary>How the hires fix enlarges the base scene before refining it.</summary>
public enum HiresUpscale
{
    /// <summary>
    /// The base scene's final latents (scaled, before the VAE), resized bilinearly as torch's
    /// interpolate(mode="bilinear", align_corners=False, antialias=False) does (A1111's "Latent"), and given to img2img
    /// as its latents: no VAE encoder, and the refine pass has more to redraw (strength 0.5 or more).
    /// </summary>
    Latent,

    /// <summary>The base scene's 8-bit picture, resized with Pillow's LANCZOS (A1111's "Lanczos"), and encoded by the VAE for img2img.</summary>
    Pixel,
}

/// <summary>
/// The hires fix: a scene made at its request's size (text to image), enlarged by <see cref="Scale"/>
/// (<see cref="Upscale"/>), then refined by img2img at the larger size with the same prompts, reference, seed, steps,
/// sampler and guidance, at <see cref="Strength"/>. As diffusers' StableDiffusionXLPipeline then
/// StableDiffusionXLImg2ImgPipeline (image = the upscaled latents or picture) make it, each with a generator seeded
/// with the seed. The larger size must be a multiple of 8 on both sides: it is refused otherwise, not rounded.
/// </summary>
public sealed record HiresFix
{
    public const double MinScale = 1;
    public const double MaxScale = 4;
    public const double DefaultStrength = 0.5;

    /// <summary>How much larger the refined scene is than the base one, more than 1 and at most 4.</summary>
    public required double Scale { get; init; }

    /// <summary>The refine pass's img2img strength, from 0 to 1 (<see cref="SceneRequest.Strength"/>).</summary>
    public double Strength { get; init; } = DefaultStrength;

    public HiresUpscale Upscale { get; init; }

    /// <summary>The refined scene's size for a base scene of <paramref name="width"/> × <paramref name="height"/>.</summary>
    public (int Width, int Height) SizeFor(int width, int height) => (Scaled(width, "Width"), Scaled(height, "Height"));

    /// <summary>Checks these settings against the base request; the message says what is wrong and what is allowed.</summary>
    public void Validate(SceneRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        if (!double.IsFinite(Scale) || Scale <= MinScale || Scale > MaxScale)
            throw new ArgumentOutOfRangeException(nameof(Scale), Scale, $"HiresScale must be more than {MinScale} and at most {MaxScale}: how much larger the refined scene is.");
        if (!double.IsFinite(Strength) || Strength < 0 || Strength > 1)
            throw new ArgumentOutOfRangeException(nameof(Strength), Strength, "HiresStrength must be from 0 to 1: how far the refine pass may go from the upscaled scene.");
        if (!Enum.IsDefined(Upscale))
            throw new ArgumentOutOfRangeException(nameof(Upscale), Upscale, $"HiresUpscale must be one of {string.Join(", ", Enum.GetNames<HiresUpscale>())}.");
        if (request.InitImage is not null || request.InitLatents is not null)
            throw new ArgumentException("The hires fix refines a scene made from text: give no starting picture (InitImage) with it.", nameof(request));
        var (width, height) = SizeFor(request.Width, request.Height);
        if (ImageToImage.StepsRun(request.Steps, Strength) < 1)
            throw new ArgumentOutOfRangeException(nameof(Strength), Strength,
                $"HiresStrength {Strength.ToString(CultureInfo.InvariantCulture)} of {request.Steps} steps runs none (⌊Steps × HiresStrength⌋ = 0): raise HiresStrength or Steps.");
        RefineRequest(request, width, height, null).Validate();
    }

    /// <summary>The base scene, then the refined one, which it returns with these settings and the base size recorded.</summary>
    public Scene Generate(SceneEngine engine, SceneRequest request, IProgress<SceneProgress>? progress = null, CancellationToken cancellation = default,
        PreviewSettings? preview = null, IProgress<ScenePhaseReport>? phases = null)
    {
        ArgumentNullException.ThrowIfNull(engine);
        Validate(request);
        var (width, height) = SizeFor(request.Width, request.Height);
        var first = engine.Generate(request, progress, cancellation, preview, phases);
        var refined = engine.Generate(RefineRequest(request, width, height, first), progress, cancellation, preview, phases);
        return refined with
        {
            Hires = this,
            BaseWidth = request.Width,
            BaseHeight = request.Height,
            Elapsed = first.Elapsed + refined.Elapsed,
            Warnings = [.. first.Warnings, .. refined.Warnings.Except(first.Warnings)],
        };
    }

    /// <summary>The refine pass's request; the base scene's upscaled result as its start (a placeholder of the right size while validating).</summary>
    private SceneRequest RefineRequest(SceneRequest request, int width, int height, Scene? first)
    {
        // The references' regions, enlarged with the scene.
        var refine = request with
        {
            Width = width, Height = height, Strength = Strength,
            References = request.References?.Select(r => r with { Mask = r.Mask?.Enlarged(width, height) }).ToList(),
        };
        return Upscale == HiresUpscale.Latent
            ? refine with { InitLatents = first is null ? FloatTensorOps.Zeros(1, 4, height / 8, width / 8) : UpscaleLatents(first.FinalLatents, height / 8, width / 8) }
            : refine with { InitImage = first is null ? new RgbImage(width, height, new byte[3 * width * height]) : PillowResampler.ResizeLanczos(first.Image, width, height) };
    }

    private int Scaled(int side, string name)
    {
        double scaled = side * Scale;
        int rounded = (int)Math.Round(scaled);
        if (Math.Abs(scaled - rounded) > 1e-9 || rounded % 8 != 0)
            throw new ArgumentException(
                $"{name} {side} × HiresScale {Scale.ToString(CultureInfo.InvariantCulture)} = {scaled.ToString(CultureInfo.InvariantCulture)}, " +
                "which is not a multiple of 8: choose a scale that makes both sides multiples of 8 (1.5 of a multiple of 16, 2 of any).", nameof(Scale));
        if (rounded > SceneRequest.MaxSide)
            throw new ArgumentOutOfRangeException(nameof(Scale), Scale,
                $"{name} {side} × HiresScale {Scale.ToString(CultureInfo.InvariantCulture)} = {rounded}, more than the largest side, {SceneRequest.MaxSide}.");
        return rounded;
    }

    /// <summary>
    /// torch.nn.functional.interpolate(latents, size, mode="bilinear", align_corners=False, antialias=False): each output
    /// point samples the input at (o + 0.5)·in/out − 0.5 (clamped at 0), between its two nearest inputs on each axis, in float32.
    /// </summary>
    public static FloatTensor UpscaleLatents(FloatTensor latents, int height, int width)
    {
        ArgumentNullException.ThrowIfNull(latents);
        int planes = latents.Shape[0] * latents.Shape[1], inHeight = latents.Shape[2], inWidth = latents.Shape[3];
        var rows = Taps(inHeight, height);
        var columns = Taps(inWidth, width);
        var output = new float[planes * height * width];
        for (int p = 0; p < planes; p++)
        {
            int plane = p * inHeight * inWidth;
            for (int y = 0; y < height; y++)
            {
                var (y0, y1, ly) = rows[y];
                for (int x = 0; x < width; x++)
                {
                    var (x0, x1, lx) = columns[x];
                    float top = (1 - lx) * latents.Data[plane + y0 * inWidth + x0] + lx * latents.Data[plane + y0 * inWidth + x1];
                    float bottom = (1 - lx) * latents.Data[plane + y1 * inWidth + x0] + lx * latents.Data[plane + y1 * inWidth + x1];
                    output[(p * height + y) * width + x] = (1 - ly) * top + ly * bottom;
                }
            }
        }
        return new FloatTensor(output, [latents.Shape[0], latents.Shape[1], height, width]);
    }

    /// <summary>Per output index: the two input indices it reads and the second's weight.</summary>
    private static (int First, int Second, float Weight)[] Taps(int inSize, int outSize)
    {
        float scale = (float)inSize / outSize;
        var taps = new (int, int, float)[outSize];
        for (int o = 0; o < outSize; o++)
        {
            float source = Math.Max(scale * (o + 0.5f) - 0.5f, 0f);
            int first = (int)source;
            taps[o] = (first, first < inSize - 1 ? first + 1 : first, source - first);
        }
        return taps;
    }
}
