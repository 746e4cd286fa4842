using Mnemosyne.Engine.Pipeline;

namespace Mnemosyne.PowerShell;

/// <summary>What Get-MnemosyneEngine shows: the open checkpoint and what it can do.</summary>
public sealed class MnemosyneEngineInfo
{
    internal MnemosyneEngineInfo(SceneEngine engine, DateTimeOffset openedAt)
    {
        Model = engine.ModelName;
        Path = engine.Options.CheckpointPath;
        IPAdapterPath = engine.Options.IpAdapterPath;
        ImageEncoderPath = engine.Options.ImageEncoderPath;
        Threads = engine.Options.Threads;
        SupportsReferences = engine.SupportsReferences;
        OpenedAt = openedAt;
    }

    public string Model { get; }
    public string Path { get; }
    public string? IPAdapterPath { get; }
    public string? ImageEncoderPath { get; }
    /// <summary>ONNX Runtime threads; 0 means every core.</summary>
    public int Threads { get; }
    public bool SupportsReferences { get; }
    public DateTimeOffset OpenedAt { get; }
}
