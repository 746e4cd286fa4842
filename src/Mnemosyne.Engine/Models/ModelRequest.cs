namespace Mnemosyne.Engine.Models;

/// <summary>
/// What a user names to open an engine: a checkpoint path or a known model, and the pieces that go with it.
/// Paths are file-system paths (made absolute by the caller where relative ones mean something else); a
/// blank one counts as not given. <see cref="ModelResolver.Resolve"/> turns it into engine options.
/// </summary>
public sealed record ModelRequest
{
    /// <summary>A diffusers folder or a single-file .safetensors checkpoint; null when <see cref="Model"/> names one.</summary>
    public string? CheckpointPath { get; init; }

    /// <summary>Where <see cref="CheckpointPath"/> came from (a parameter, a variable), for the messages about it.</summary>
    public string CheckpointSource { get; init; } = "the checkpoint path";

    /// <summary>A known pipeline model, opened from the Hugging Face cache.</summary>
    public string? Model { get; init; }

    /// <summary>For a single-file checkpoint: the diffusers SDXL folder its tokenizers, scheduler and configs come from.</summary>
    public string? BaseModelPath { get; init; }

    /// <summary>The adapter file, or the h94/IP-Adapter folder that holds it.</summary>
    public string? IpAdapterPath { get; init; }

    /// <summary>A known IP-Adapter (ip-adapter-plus-sdxl-vit-h, say), from the Hugging Face cache with its image encoder; instead of <see cref="IpAdapterPath"/>.</summary>
    public string? IpAdapterModel { get; init; }

    /// <summary>The image encoder folder; by default the one beside the adapter in the h94/IP-Adapter layout.</summary>
    public string? ImageEncoderPath { get; init; }

    /// <summary>A known replacement UNet, from the Hugging Face cache.</summary>
    public string? UnetModel { get; init; }

    /// <summary>A replacement UNet weights file in diffusers names.</summary>
    public string? UnetPath { get; init; }

    /// <summary>The tiny decoder: madebyollin/taesdxl's folder, or its weights file.</summary>
    public string? TinyDecoderPath { get; init; }
}
