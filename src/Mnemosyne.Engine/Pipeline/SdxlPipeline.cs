using System.Diagnostics;
using Mnemosyne.Engine.Imaging;
using Mnemosyne.Engine.Networks;
using Mnemosyne.Engine.Sampling;
using Mnemosyne.Engine.Tensors;

namespace Mnemosyne.Engine.Pipeline;

/// <summary>A prompt as SDXL's UNet sees it: both encoders' penultimate states side by side, and the pooled text.</summary>
internal sealed record PromptEmbedding(FloatTensor Embeds, FloatTensor Pooled);

/// <summary>
/// Stable Diffusion XL with IP-Adapter, as diffusers' StableDiffusionXLPipeline runs it: encode the
/// prompts, draw the seed's noise, denoise with classifier-free guidance while the reference's image
/// tokens (as the adapter's keys and values) steer every cross-attention, then decode the latents to pixels.
/// </summary>
internal static class SdxlPipeline
{
    /// <param name="References">The references that act, with their keys and values; empty for none.</param>
    /// <param name="UnconditionalIpKeyValues">Those of the unconditional branch's tokens for one picture; needed with a reference and guidance.</param>
    public sealed record Conditioning(PromptEmbedding Positive, PromptEmbedding? Negative, IReadOnlyList<ReferenceKeyValues> References, IpAdapterKeyValues? UnconditionalIpKeyValues);

    /// <summary>A reference of the scene and its keys and values: <paramref name="Pictures"/> pictures' tokens side by side.</summary>
    public sealed record ReferenceKeyValues(SceneReference Use, IpAdapterKeyValues KeyValues, int Pictures);

    /// <summary>
    /// From the seed's noise (or, with <paramref name="start"/>, from part-way down the schedule) to the final latents
    /// (still scaled), step by step; <paramref name="observer"/> sees each step's denoised estimate.
    /// </summary>
    public static FloatTensor Denoise(
        SceneRequest request, Conditioning conditioning, Unet unet, SchedulerConfig schedulerConfig,
        IProgress<SceneProgress>? progress, CancellationToken cancellation, IDenoisingObserver? observer = null, IDenoisingStart? start = null)
    {
        var scheduler = Schedulers.Create(request.Scheduler, schedulerConfig, request.Steps, request.Spacing);
        var generator = new TorchGenerator((ulong)request.Seed);
        int[] latentShape = [1, 4, request.Height / 8, request.Width / 8];
        start ??= new NoiseStart(request.InitialNoise);
        var (firstStep, latents) = start.Begin(scheduler, generator, latentShape);
        var timesteps = scheduler.Timesteps;
        int stepsRun = timesteps.Count - firstStep;

        // Classifier-free guidance runs the UNet on [unconditional, conditional] as one batch of two; after the
        // guidance cutoff the conditional branch runs alone, the reference's tokens with it. Entered part-way, the
        // cutoff counts the steps run, as diffusers' callback counts the pipeline's timesteps.
        int guidedSteps = firstStep == 0 ? request.GuidedSteps : request.GuidedStepsOf(stepsRun);
        var guidedInputs = guidedSteps > 0 ? UnetInputs(request, conditioning, unet, latentShape, guided: true) : null;
        var conditionalInputs = guidedSteps < stepsRun ? UnetInputs(request, conditioning, unet, latentShape, guided: false) : null;
        var referenceScales = ReferenceScales(request, conditioning, unet);

        var deepCache = new DeepCache(request.DeepCacheInterval);
        var clock = Stopwatch.StartNew();
        for (int run = 0; run < stepsRun; run++)
        {
            cancellation.ThrowIfCancellationRequested();
            int step = firstStep + run;
            bool guided = run < guidedSteps;
            var input = new float[latents.Length * (guided ? 2 : 1)];
            latents.CopyTo(input, 0);
            if (guided) latents.CopyTo(input, latents.Length);
            scheduler.ScaleModelInput(input, step);

            var stepInputs = guided ? guidedInputs! : conditionalInputs!;
            if (referenceScales is { } scales) stepInputs = stepInputs with { IpScales = ReferencesAct(request, run, stepsRun) ? scales : new float[scales.Length] };
            var prediction = deepCache.Predict(unet, new FloatTensor(input, [guided ? 2 : 1, .. latentShape[1..]]), run, timesteps[step],
                stepInputs, cancellation).Data;
            var noisePrediction = guided ? Guide(prediction, request.GuidanceScale) : prediction;
            // Later steps only carry on what the first one made: one check finds damaged weights or configs.
            if (run == 0) NonFiniteOutput.Check(prediction, "The UNet", unet.WeightsPath, "its first noise prediction");
            scheduler.Step(noisePrediction, step, latents, generator);
            if (run == 0) NonFiniteOutput.Check(latents, "The scheduler", schedulerConfig.Source, "the latents after the first step");
            start.StepTaken(scheduler, step, latents);

            var elapsed = clock.Elapsed;
            var report = new SceneProgress(request.Prompt, run + 1, stepsRun, elapsed,
                elapsed / (run + 1) * (stepsRun - run - 1)) { Timestep = timesteps[step] };
            if (observer is not null) report = observer.StepTaken(report, new FloatTensor(scheduler.PredictedOriginal.ToArray(), latentShape), cancellation);
            progress?.Report(report);
        }

        return new FloatTensor(latents, latentShape);
    }

    /// <summary>The decoder's picture of the latents, clamped and rounded to 8 bits as diffusers does.</summary>
    public static RgbImage Decode(ILatentDecoder decoder, FloatTensor latents, CancellationToken cancellation)
    {
        cancellation.ThrowIfCancellationRequested();
        var pixels = decoder.Run(latents, cancellation);
        NonFiniteOutput.Check(pixels.Data, "The decoder", decoder.Source, "its picture");
        return DecoderOutputConverter.ToRgbImage(pixels);
    }

    /// <summary>ε = ε_u + g·(ε_c − ε_u), on a batch of [unconditional, conditional].</summary>
    private static float[] Guide(float[] prediction, float scale)
    {
        int half = prediction.Length / 2;
        var guidedPrediction = new float[half];
        for (int i = 0; i < half; i++)
            guidedPrediction[i] = prediction[i] + scale * (prediction[half + i] - prediction[i]);
        return guidedPrediction;
    }

    /// <summary>
    /// Whether the references act in step <paramref name="run"/> of <paramref name="stepsRun"/>: not when run/n &lt; start or
    /// (run+1)/n &gt; end, the rule of diffusers' controlnet_guidance_start/end (the same as setting the IP-Adapter's scale
    /// from callback_on_step_end).
    /// </summary>
    internal static bool ReferencesAct(SceneRequest request, int run, int stepsRun)
        => !((double)run / stepsRun < request.ReferenceStart || (double)(run + 1) / stepsRun > request.ReferenceEnd);

    /// <summary>Each reference's weight in each cross-attention [layers × references]: its weight times its layer's block weight; null without references.</summary>
    private static float[]? ReferenceScales(SceneRequest request, Conditioning c, Unet unet)
    {
        if (c.References.Count == 0) return null;
        var blocks = request.ReferenceBlocks.Expand(unet.Config);
        var scales = new float[blocks.Length * c.References.Count];
        for (int layer = 0; layer < blocks.Length; layer++)
            for (int r = 0; r < c.References.Count; r++)
                scales[layer * c.References.Count + r] = blocks[layer] * c.References[r].Use.Weight;
        return scales;
    }

    private static UnetConditioning UnetInputs(SceneRequest request, Conditioning c, Unet unet, int[] latentShape, bool guided)
    {
        // Micro-conditioning: original size, crop top-left, target size, each (height, width).
        float[] timeIds = [request.Height, request.Width, 0, 0, request.Height, request.Width];
        var oneTimeIds = new FloatTensor(timeIds, [1, Unet.TimeIdCount]);
        var negative = c.Negative ?? new PromptEmbedding(
            FloatTensorOps.Zeros(c.Positive.Embeds.Shape), FloatTensorOps.Zeros(c.Positive.Pooled.Shape));

        var inputs = guided
            ? new UnetConditioning(
                FloatTensorOps.ConcatBatch(negative.Embeds, c.Positive.Embeds),
                FloatTensorOps.ConcatBatch(negative.Pooled, c.Positive.Pooled),
                FloatTensorOps.ConcatBatch(oneTimeIds, oneTimeIds))
            : new UnetConditioning(c.Positive.Embeds, c.Positive.Pooled, oneTimeIds);
        // Without a reference the UNet's adapter branch (if any) gets zeros at weight 0.
        if (c.References.Count == 0) return inputs;

        // The references' tokens side by side; the unconditional branch has the zero picture's tokens once per picture.
        var conditional = IpAdapterKeyValues.ConcatTokens(c.References.Select(r => r.KeyValues));
        var keyValues = guided
            ? IpAdapterKeyValues.ConcatBatch(IpAdapterKeyValues.ConcatTokens(c.References.Select(r => c.UnconditionalIpKeyValues!.RepeatTokens(r.Pictures))), conditional)
            : conditional;
        var masks = c.References.Any(r => r.Use.Mask is not null) ? RegionMasks(c.References, unet, latentShape) : null;
        return inputs with { IpKeyValues = keyValues, IpTokenCounts = c.References.Select(r => r.KeyValues.Layers[0].Key.Shape[1]).ToArray(), IpMasks = masks };
    }

    /// <summary>Each level's masks [references, queries], a reference without a mask everywhere (diffusers' masks of the scene's size, downsampled per attention).</summary>
    private static Dictionary<int, FloatTensor> RegionMasks(IReadOnlyList<ReferenceKeyValues> references, Unet unet, int[] latentShape)
    {
        var masks = new Dictionary<int, FloatTensor>();
        foreach (var level in unet.AttentionLevels)
        {
            int queries = Unet.QueriesAt(level, latentShape[2], latentShape[3]);
            var values = new float[references.Count * queries];
            for (int r = 0; r < references.Count; r++)
            {
                if (references[r].Use.Mask is { } mask) mask.Downsample(queries).CopyTo(values, r * queries);
                else Array.Fill(values, 1f, r * queries, queries);
            }
            masks[level] = new FloatTensor(values, [references.Count, queries]);
        }
        return masks;
    }
}
