namespace Mnemosyne.Engine.Tests.Sampling;

/// <summary>A test that needs ../shared/reference/torch-randn; skipped, with a message, where it is absent.</summary>
public sealed class TorchRandnFactAttribute : FactAttribute
{
    public TorchRandnFactAttribute()
    {
        if (!Directory.Exists(TestPaths.TorchRandn))
            Skip = $"{TestPaths.TorchRandn} is absent: the torch.randn reference files live in ../shared beside the checkout.";
    }
}
