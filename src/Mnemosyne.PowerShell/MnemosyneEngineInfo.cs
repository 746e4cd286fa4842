using Mnemosyne.Engine.Checkpoints;
using Mnemosyne.Engine.Onnx;
using Mnemosyne.Engine.Pipeline;

namespace Mnemosyne.PowerShell;

/// <summary>What Get-MnemosyneEngine shows: the open checkpoint and what it can do.</summary>
public sealed class MnemosyneEngineInfo
{
    private readonly Lazy<string> modelHash;

    internal MnemosyneEngineInfo(SceneEngine engine, DateTimeOffset openedAt, Lazy<string> modelHash)
    {
        this.modelHash = modelHash;
        Model = engine.ModelName;
        Path = engine.Options.CheckpointPath;
        BaseModelPath = engine.Options.BaseModelPath;
        UnetPath = engine.Options.UnetWeightsPath;
        IPAdapterPath = engine.Options.IpAdapterPath;
        IPAdapterKind = engine.AdapterKind;
        ImageEncoderPath = engine.Options.ImageEncoderPath;
        Threads = engine.Options.Threads;
        LowMemory = engine.Options.LowMemory;
        Precision = engine.Options.Precision;
        ExecutionProvider = engine.Options.ExecutionProvider;
        SessionCachePath = engine.SessionCache?.Root;
        SupportsReferences = engine.SupportsReferences;
        TinyDecoderPath = engine.Options.TinyDecoderPath;
        SupportsTinyDecoder = engine.SupportsTinyDecoder;
        OpenedAt = openedAt;
    }

    public string Model { get; }
    /// <summary>A diffusers folder, or a single-file checkpoint.</summary>
    public string Path { get; }
    /// <summary>For a single-file checkpoint: where its tokenizers, scheduler and configs come from.</summary>
    public string? BaseModelPath { get; }
    /// <summary>The UNet weights that replace the checkpoint's (a few-step UNet such as SDXL-Lightning's); null for its own.</summary>
    public string? UnetPath { get; }
    public string? IPAdapterPath { get; }
    /// <summary>Base or Plus (Plus and Plus-Face), told by the adapter file's keys; references of another kind are refused. Null without an adapter.</summary>
    public IpAdapterKind? IPAdapterKind { get; }
    public string? ImageEncoderPath { get; }
    /// <summary>ONNX Runtime threads; 0 means every core.</summary>
    public int Threads { get; }
    /// <summary>Whether the UNet is released while the VAE decodes (Open-MnemosyneEngine -LowMemory).</summary>
    public bool LowMemory { get; }
    /// <summary>Float32, or Int8 for 8-bit weights in the UNet's linear layers.</summary>
    public WeightPrecision Precision { get; }
    /// <summary>Where the networks run: Cpu, or Cuda (Open-MnemosyneEngine -ExecutionProvider).</summary>
    public ExecutionProvider ExecutionProvider { get; }
    /// <summary>Where the networks' optimised sessions are kept; null when opened with -NoSessionCache.</summary>
    public string? SessionCachePath { get; }
    public bool SupportsReferences { get; }
    /// <summary>The tiny decoder (TAESDXL) for -Decoder Tiny and live previews; null when the engine has none.</summary>
    public string? TinyDecoderPath { get; }
    public bool SupportsTinyDecoder { get; }
    public DateTimeOffset OpenedAt { get; }

    /// <summary>
    /// The engine's <see cref="ModelFingerprint"/>: equal on two machines when their engines make the same pictures from the same
    /// settings (Invoke-MnemosyneBatch refuses a host whose engine's differs). Computed when first read.
    /// </summary>
    public string ModelHash => modelHash.Value;
}
