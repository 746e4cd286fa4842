using System.Management.Automation;

namespace Mnemosyne.PowerShell.Commands;

/// <summary>Opens an SDXL checkpoint (and its IP-Adapter) as the module's engine.</summary>
[Cmdlet(VerbsCommon.Open, "MnemosyneEngine")]
[OutputType(typeof(MnemosyneEngineInfo))]
public sealed class OpenMnemosyneEngineCommand : MnemosyneCmdlet
{
    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true)]
    [Alias("CheckpointPath", "FullName")]
    [ValidateNotNullOrEmpty]
    public string Path { get; set; } = null!;

    [Parameter(Position = 1)]
    [ValidateNotNullOrEmpty]
    public string? IPAdapterPath { get; set; }

    [Parameter(Position = 2)]
    [ValidateNotNullOrEmpty]
    public string? ImageEncoderPath { get; set; }

    /// <summary>ONNX Runtime threads; 0 uses every core.</summary>
    [Parameter]
    [ValidateRange(0, 1024)]
    public int Threads { get; set; }

    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
    {
        var options = ResolveEngineOptions(Path, IPAdapterPath, ImageEncoderPath, Threads, "-Path");
        using var lease = OpenEngine(options);
        if (!lease.Engine.SupportsReferences)
        {
            WriteVerbose($"No IP-Adapter given or found in {System.IO.Path.Combine(options.CheckpointPath, IPAdapterLayout.ConventionalFolder)}: scenes can be made, but without character references.");
        }
        if (PassThru) WriteObject(lease.Info);
    }
}
