using System.Management.Automation;
using Mnemosyne.Engine.Imaging;
using Mnemosyne.Engine.Pipeline;

namespace Mnemosyne.PowerShell.Commands;

/// <summary>Measures how consistently a character appears: CLIP-I of a scene or a saved picture against the reference.</summary>
[Cmdlet(VerbsDiagnostic.Measure, "MnemosyneConsistency", DefaultParameterSetName = SceneSet, HelpUri = HelpUris.Readme + "measure-mnemosyneconsistency")]
[OutputType(typeof(ConsistencyResult))]
public sealed class MeasureMnemosyneConsistencyCommand : MnemosyneCmdlet
{
    private const string SceneSet = "Scene";
    private const string PathSet = "Path";

    [Parameter(Mandatory = true, Position = 0)]
    [ValidateNotNull]
    public CharacterReference Reference { get; set; } = null!;

    [Parameter(Mandatory = true, ValueFromPipeline = true, ParameterSetName = SceneSet)]
    [ValidateNotNull]
    public Scene Scene { get; set; } = null!;

    [Parameter(Mandatory = true, Position = 1, ValueFromPipelineByPropertyName = true, ParameterSetName = PathSet)]
    [Alias("FullName")]
    [ValidateNotNullOrEmpty]
    public string[] Path { get; set; } = null!;

    protected override void ProcessRecord()
    {
        if (ParameterSetName == SceneSet)
        {
            Measure(Scene.Image, null, Scene.Prompt, Scene.Seed);
            return;
        }
        foreach (var path in Path)
        {
            foreach (var file in ResolveInputFiles(path))
            {
                RgbImage image;
                try
                {
                    image = SafeImageDecoder.Default.Decode(file);
                }
                catch (Exception e)
                {
                    WriteError(ErrorRecords.From(e, "ImageUnreadable", file));
                    continue;
                }
                Measure(image, file, null, null);
            }
        }
    }

    private void Measure(RgbImage image, string? path, string? prompt, long? seed)
    {
        using var lease = AcquireEngine();
        var engine = lease.Engine;
        if (!engine.SupportsReferences)
        {
            ThrowTerminatingError(ErrorRecords.Create(
                $"The open engine ({engine.ModelName}) has no image encoder, which measuring needs. " +
                "Open it again with Open-MnemosyneEngine -IPAdapterPath <ip-adapter_sdxl_vit-h.safetensors> -ImageEncoderPath <image encoder folder>.",
                "NoImageEncoder", ErrorCategory.InvalidOperation, engine.ModelName));
        }
        if (Reference.Encoder != engine.ImageEncoderIdentity)
        {
            // Embeddings of different encoders can have the same length and still mean nothing to each other.
            ThrowTerminatingError(ErrorRecords.Create(
                $"The reference '{Reference.Name}' was encoded with '{Reference.Encoder}', but the open engine's image encoder is " +
                $"'{engine.ImageEncoderIdentity}'. Import the reference pictures again with this engine (Import-MnemosyneReference).",
                "ReferenceFromOtherEncoder", ErrorCategory.InvalidArgument, Reference));
        }
        if (Reference.Embedding.Length != engine.ReferenceEmbeddingLength)
        {
            ThrowTerminatingError(ErrorRecords.Create(
                $"The reference '{Reference.Name}' holds {Reference.Embedding.Length} values, but the open engine's image encoder makes " +
                $"{engine.ReferenceEmbeddingLength}: the saved reference is damaged. Import the reference pictures again (Import-MnemosyneReference).",
                "ReferenceDamaged", ErrorCategory.InvalidArgument, Reference));
        }
        double similarity;
        try
        {
            var embedding = RunOnWorker(token => engine.EmbedImage(image, token));
            similarity = Consistency.CosineSimilarity(Reference.Embedding, embedding);
        }
        catch (Exception e) when (e is not PipelineStoppedException)
        {
            WriteError(ErrorRecords.From(e, "MeasureFailed", (object?)path ?? prompt));
            return;
        }
        WriteEngineWarnings(engine);
        WriteObject(new ConsistencyResult(Reference.Name, similarity, path, prompt, seed));
    }
}
