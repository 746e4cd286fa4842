using Mnemosyne.Engine.Networks;
using Mnemosyne.Engine.Tensors;

namespace Mnemosyne.Engine.Pipeline;

/// <summary>
/// DeepCache (Ma et al., CVPR 2024), uniform, branch 0, as horseee/DeepCache's DeepCacheSDHelper runs it: every
/// <see cref="Interval"/>-th step (counting from the first) runs the whole UNet and keeps the feature entering its
/// last up layer; the steps between run only the shallow UNet on that feature and their own conv_in. Interval 1 is
/// the plain UNet. Pictures change (the skipped blocks see an older step), which is the trade.
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
        return unet.RunFromFeature(sample, timestep, conditioning, feature, cancellation);
    }
}
