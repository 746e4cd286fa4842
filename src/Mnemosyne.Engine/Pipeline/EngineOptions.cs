namespace Mnemosyne.Engine.Pipeline;

/// <summary>What to open: an SDXL diffusers folder, and the IP-Adapter that gives it a memory.</summary>
public sealed record EngineOptions
{
    /// <summary>A Stable Diffusion XL checkpoint in the diffusers folder layout.</summary>
    public required string CheckpointPath { get; init; }

    /// <summary>ip-adapter_sdxl_vit-h.safetensors; null opens the engine without references.</summary>
    public string? IpAdapterPath { get; init; }

    /// <summary>The CLIP ViT-H image encoder folder (config.json + model.safetensors).</summary>
    public string? ImageEncoderPath { get; init; }

    /// <summary>Threads for ONNX Runtime; 0 uses every core.</summary>
    public int Threads { get; init; }

    /// <summary>"fp16" reads the *.fp16.safetensors files where present.</summary>
    public string? Variant { get; init; }
}
