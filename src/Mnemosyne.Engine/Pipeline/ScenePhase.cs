namespace Mnemosyne.Engine.Pipeline;

/// <summary>The parts of making a scene (and of encoding a reference), in the order a scene goes through them.</summary>
public enum ScenePhase
{
    /// <summary>The prompt (and negative prompt) through both CLIP text encoders.</summary>
    TextEncoding,

    /// <summary>A reference picture through the image encoder, or a reference's tokens into the IP-Adapter's keys and values.</summary>
    ReferenceEncoding,

    /// <summary>The UNet's steps, each also reported as a <see cref="SceneProgress"/>.</summary>
    Denoising,

    /// <summary>The final latents through the VAE (or the tiny decoder) to pixels.</summary>
    Decoding,
}

/// <summary>
/// A phase begun (<see cref="Finished"/> false) or finished: what it worked on, whether a cache spared the work, and how long
/// it took. Hosts show the phases as progress and write them to their logs; the engine knows nothing of either.
/// </summary>
/// <param name="Subject">What the phase works on: the prompt, the reference's name or picture, the decoder.</param>
public sealed record ScenePhaseReport(ScenePhase Phase, string Subject)
{
    public bool Finished { get; init; }

    /// <summary>Finished at once from the engine's cache (of prompt encodings, of references' keys and values).</summary>
    public bool Cached { get; init; }

    /// <summary>The phase's time, once finished.</summary>
    public TimeSpan Elapsed { get; init; }

    /// <summary>Which of several like items this is (a reference's pictures), from 1, and how many there are; 0 when one.</summary>
    public int Item { get; init; }

    public int ItemCount { get; init; }
}
