using Mnemosyne.Engine.Onnx;

namespace Mnemosyne.Engine.Pipeline;

/// <summary>
/// A network loaded when it is needed and, unless kept, released right after: the encoders run once
/// per new prompt or reference, and releasing them keeps their weights out of memory while the UNet
/// and the VAE work. Not thread-safe: the engine uses it under its own lock.
/// </summary>
internal sealed class OnDemandNetwork<T>(Func<T> load, bool keepLoaded) : IDisposable where T : class, IDisposable
{
    private T? loaded;

    /// <summary>Loads the network now (to fail early, or to have it ready).</summary>
    public void Load() => loaded ??= load();

    /// <summary>Releases a kept network and its memory; the next use loads it again.</summary>
    public void Release()
    {
        if (loaded is null) return;
        loaded.Dispose();
        loaded = null;
        NativeHeap.Trim();
    }

    public TResult Use<TResult>(Func<T, TResult> use)
    {
        var network = loaded ?? load();
        try
        {
            return use(network);
        }
        finally
        {
            if (keepLoaded) loaded = network;
            else
            {
                network.Dispose();
                NativeHeap.Trim();
            }
        }
    }

    public void Dispose() => Release();
}
