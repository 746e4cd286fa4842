using System.Globalization;
using System.Management.Automation;
using System.Text.RegularExpressions;
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
            Measure(Scene.Image, Scene, (reference, similarity) => new ConsistencyResult(reference, similarity, Scene));
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
                var (prompt, seed, weight) = SavedSettings(file);
                Measure(image, file, (reference, similarity) => new ConsistencyResult(reference, similarity, file, prompt, seed, weight));
            }
        }
    }

    /// <summary>
    /// The prompt, seed and reference weight in a PNG's 'parameters' text, A1111's layout that
    /// Save-MnemosyneImage writes (the prompt, an optional 'Negative prompt:' line, then one line of
    /// 'Key: value' settings), or nulls for a picture without it.
    /// </summary>
    private static (string? Prompt, long? Seed, float? ReferenceWeight) SavedSettings(string file)
    {
        string? text;
        try
        {
            text = PngFile.ReadText(file).LastOrDefault(entry => entry.Keyword == PngTextEntry.ParametersKeyword)?.Text;
        }
        catch (Exception e) when (e is InvalidDataException or IOException)
        {
            return (null, null, null);  // not a PNG (JPEG and WebP pictures carry no such text), or gone since it was measured
        }
        if (text is null) return (null, null, null);
        int settingsAt = text.LastIndexOf("\nSteps: ", StringComparison.Ordinal);
        if (settingsAt < 0) return (null, null, null);
        var settings = text[(settingsAt + 1)..];
        int negativeAt = text.IndexOf("\nNegative prompt: ", StringComparison.Ordinal);
        var prompt = text[..(negativeAt >= 0 && negativeAt < settingsAt ? negativeAt : settingsAt)];
        var seed = Regex.Match(settings, @"(?:^|, )Seed: (-?\d+)(?:,|$)");
        var weight = Regex.Match(settings, @", Reference weight: (-?[0-9.]+)(?:,|$)");
        return (prompt,
            seed.Success && long.TryParse(seed.Groups[1].Value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var s) ? s : null,
            weight.Success && float.TryParse(weight.Groups[1].Value, NumberStyles.Float, CultureInfo.InvariantCulture, out var w) ? w : null);
    }

    private void Measure(RgbImage image, object target, Func<string, double, ConsistencyResult> result)
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
            WriteError(ErrorRecords.From(e, "MeasureFailed", target));
            return;
        }
        WriteEngineWarnings(engine);
        WriteObject(result(Reference.Name, similarity));
    }
}
