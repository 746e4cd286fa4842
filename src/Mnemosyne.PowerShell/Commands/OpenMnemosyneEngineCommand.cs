using System.Management.Automation;
using Mnemosyne.Engine.Models;
using Mnemosyne.Engine.Onnx;

namespace Mnemosyne.PowerShell.Commands;

/// <summary>
/// Opens an SDXL checkpoint (and its IP-Adapter) as the module's engine: a diffusers folder or a
/// single-file checkpoint by path, or a known model by name from the Hugging Face cache.
/// </summary>
[Cmdlet(VerbsCommon.Open, "MnemosyneEngine", DefaultParameterSetName = PathSet, HelpUri = HelpUris.Readme + "open-mnemosyneengine")]
[OutputType(typeof(MnemosyneEngineInfo))]
public sealed class OpenMnemosyneEngineCommand : MnemosyneCmdlet
{
    private const string PathSet = "Path";
    private const string ModelSet = "Model";

    [Parameter(Mandatory = true, Position = 0, ValueFromPipelineByPropertyName = true, ParameterSetName = PathSet)]
    [Alias("CheckpointPath", "FullName")]
    [ValidateNotNullOrEmpty]
    public string Path { get; set; } = null!;

    /// <summary>A known pipeline model (Get-MnemosyneModel lists them), opened from the Hugging Face cache.</summary>
    [Parameter(Mandatory = true, ParameterSetName = ModelSet)]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(PipelineModelCompleter))]
    public string Model { get; set; } = null!;

    /// <summary>For a single-file checkpoint: the diffusers SDXL folder its tokenizers, scheduler and configs come from.</summary>
    [Parameter(ParameterSetName = PathSet)]
    [ValidateNotNullOrEmpty]
    public string? BaseModelPath { get; set; }

    [Parameter(Position = 1)]
    [ValidateNotNullOrEmpty]
    public string? IPAdapterPath { get; set; }

    [Parameter(Position = 2)]
    [ValidateNotNullOrEmpty]
    public string? ImageEncoderPath { get; set; }

    /// <summary>
    /// A known IP-Adapter from the Hugging Face cache instead of -IPAdapterPath: ip-adapter-sdxl-vit-h, ip-adapter-plus-sdxl-vit-h or
    /// ip-adapter-plus-face-sdxl-vit-h, with the cached image encoder unless -ImageEncoderPath names one.
    /// </summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(IpAdapterModelCompleter))]
    public string? IPAdapterModel { get; set; }

    /// <summary>A known replacement UNet (SDXL-Lightning's 2-, 4- or 8-step UNet), from the Hugging Face cache; -Quality Fast then samples as its manifest says.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(UnetModelCompleter))]
    public string? UnetModel { get; set; }

    /// <summary>A replacement UNet weights file in diffusers names.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? UnetPath { get; set; }

    /// <summary>
    /// The tiny decoder for -Decoder Tiny and live previews: madebyollin/taesdxl's folder (or its weights file).
    /// Left out, the cached taesdxl is taken when it is complete.
    /// </summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? TinyDecoderPath { get; set; }

    /// <summary>The hub cache to look in; by default the one huggingface_hub uses.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? CachePath { get; set; }

    /// <summary>ONNX Runtime threads; 0 uses every core.</summary>
    [Parameter]
    [ValidateRange(0, 1024)]
    public int Threads { get; set; }

    /// <summary>Release the UNet while the VAE decodes (lower peak memory, a UNet reload per scene).</summary>
    [Parameter]
    public SwitchParameter LowMemory { get; set; }

    /// <summary>
    /// Float32 (the default) or Int8: the linear layers of the UNet, the text and image encoders and the IP-Adapter's
    /// keys and values with 8-bit weights, faster and smaller at a small numeric deviation; the first use of each
    /// network converts its weights once into a cache folder.
    /// </summary>
    [Parameter]
    public WeightPrecision Precision { get; set; }

    /// <summary>Where each network's optimised session is kept for later opens to map; by default beside the converted weights.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? SessionCachePath { get; set; }

    /// <summary>Optimise every network at this open and keep nothing on disk.</summary>
    [Parameter]
    public SwitchParameter NoSessionCache { get; set; }

    /// <summary>Cpu (the default) or Cuda: an NVIDIA GPU through ONNX Runtime's CUDA build, which must be installed beside the module.</summary>
    [Parameter]
    public ExecutionProvider ExecutionProvider { get; set; }

    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
    {
        if (UnetModel is not null && UnetPath is not null)
        {
            ThrowTerminatingError(ErrorRecords.Create(
                $"Give -UnetModel ({UnetModel}) or -UnetPath ({UnetPath}), not both: each names the UNet that replaces the checkpoint's.",
                "UnetModelAndPath", ErrorCategory.InvalidArgument, UnetPath));
        }

        if (IPAdapterModel is not null && IPAdapterPath is not null)
        {
            ThrowTerminatingError(ErrorRecords.Create(
                $"Give -IPAdapterModel ({IPAdapterModel}) or -IPAdapterPath ({IPAdapterPath}), not both: each names the IP-Adapter the engine opens.",
                "IPAdapterModelAndPath", ErrorCategory.InvalidArgument, IPAdapterPath));
        }

        var request = new ModelRequest
        {
            CheckpointPath = ParameterSetName == PathSet ? FileSystemPath(Path) : null,
            CheckpointSource = "-Path",
            Model = ParameterSetName == ModelSet ? Model : null,
            BaseModelPath = OptionalPath(BaseModelPath),
            IpAdapterPath = OptionalPath(IPAdapterPath),
            ImageEncoderPath = OptionalPath(ImageEncoderPath),
            IpAdapterModel = IPAdapterModel,
            UnetModel = UnetModel,
            UnetPath = OptionalPath(UnetPath),
            TinyDecoderPath = OptionalPath(TinyDecoderPath),
        };
        var options = ResolveEngineOptions(request, CachePath) with
        {
            Threads = Threads,
            LowMemory = LowMemory.IsPresent,
            Precision = Precision,
            SessionCachePath = OptionalPath(SessionCachePath),
            DisableSessionCache = NoSessionCache.IsPresent,
            ExecutionProvider = ExecutionProvider,
        };

        using var lease = OpenEngine(options);
        if (!lease.Engine.SupportsReferences)
            WriteVerbose($"The engine ({lease.Engine.ModelName}) has no IP-Adapter: scenes can be made, but without character references.");
        if (PassThru) WriteObject(lease.Info);
    }
}
