namespace Mnemosyne.Engine.Pipeline;

/// <summary>
/// A network loaded when it is needed and, unless kept, released right after: the encoders run once
/// per new prompt or reference, and releasing them keeps their weights out of memory while the UNet
/// and the VAE work. Not thread-safe: the engine uses it under its own lock.
/// </summary>
internal sealed class OnDemandNetwork<T>(Func<T> load, bool keepLoaded) : IDisposable where T : class, IDisposable
{
    private T? loaded;

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
            else network.Dispose();
        }
    }

    public void Dispose()
    {
        loaded?.Dispose();
        loaded = null;
    }
}
