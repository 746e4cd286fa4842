using Mnemosyne.Engine.Networks;
using Mnemosyne.Engine.Tensors;

namespace Mnemosyne.Engine.Pipeline;

/// <summary>
/// DeepCache (Ma et al., CVPR 2024), uniform, branch 0, as horseee/DeepCache's DeepCacheSDHelper runs it: every
/// <see cref="Interval"/>-th step (counting from the first) runs the whole UNet and keeps the feature entering its
/// last up layer; the steps between run only the shallow UNet on that feature and their own conv_in. Interval 1 is
/// the plain UNet. Pictures change (the skipped blocks see an older step), which is the trade. With a guidance
/// cutoff, the unguided steps read the conditional half of a feature kept at a guided step.
/// </summary>
internal sealed class DeepCache(int interval)
{
    private FloatTensor? feature;

    public int Interval { get; } = interval;

    /// <summary>The noise prediction for step <paramref name="step"/> (0-based) of a scene.</summary>
    public FloatTensor Predict(Unet unet, FloatTensor sample, int step, float timestep, UnetConditioning conditioning, CancellationToken cancellation)
    {
        if (Interval <= 1) return unet.Run(sample, timestep, conditioning, cancellation);
        if (step % Interval == 0 || feature is null)
        {
            (var prediction, feature) = unet.RunKeepingFeature(sample, timestep, conditioning, cancellation);
            return prediction;
        }
        return unet.RunFromFeature(sample, timestep, conditioning, ForBatch(feature, sample.Shape[0]), cancellation);
    }

    /// <summary>
    /// After a guidance cutoff the UNet runs the conditional branch alone; a feature kept from a guided step is
    /// [unconditional, conditional], and that branch reads its conditional half.
    /// </summary>
    private static FloatTensor ForBatch(FloatTensor kept, int batch)
    {
        return kept.Shape[0] == batch ? kept : FloatTensorOps.BatchItem(kept, 1);
    }
}
