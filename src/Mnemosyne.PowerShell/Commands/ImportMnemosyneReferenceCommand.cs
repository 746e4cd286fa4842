using System.Globalization;
using System.Management.Automation;
using Mnemosyne.Engine.Imaging;
using Mnemosyne.Engine.Pipeline;

namespace Mnemosyne.PowerShell.Commands;

/// <summary>
/// Makes a character reference from images of one character (their embeddings averaged), or reads
/// one saved by Export-MnemosyneReference. Every image given in one call, piped or not, goes into
/// the same reference; a picture that cannot be read is reported (a non-terminating error) and left out.
/// </summary>
[Cmdlet(VerbsData.Import, "MnemosyneReference", HelpUri = HelpUris.Readme + "import-mnemosynereference")]
[OutputType(typeof(CharacterReference))]
public sealed class ImportMnemosyneReferenceCommand : MnemosyneCmdlet
{
    private readonly List<ReferencePicture> pictures = [];

    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [Alias("FullName")]
    [ValidateNotNullOrEmpty]
    public string[] Path { get; set; } = null!;

    /// <summary>The character's name, stored with the reference and every scene made with it.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Name { get; set; }

    /// <summary>
    /// How several pictures make one reference: Average (their embeddings averaged: 4 tokens, what the pictures share) or
    /// Concatenate (each picture's tokens side by side in every cross-attention: more detail, 4 tokens per picture).
    /// </summary>
    [Parameter]
    public ReferenceCombination Combine { get; set; }

    /// <summary>A name that cannot be written into a PNG's text (a NUL, say) is refused here, not when each scene made with it is saved.</summary>
    protected override void BeginProcessing()
    {
        if (Name is null) return;
        try
        {
            SceneRequest.CheckText(Name, nameof(Name), "reference name");
        }
        catch (ArgumentException e)
        {
            ThrowTerminatingError(ErrorRecords.From(e, "InvalidReferenceName", Name));
        }
    }

    protected override void ProcessRecord()
    {
        foreach (var path in Path)
        {
            foreach (var file in ResolveInputFiles(path))
            {
                if (IsSavedReference(file)) LoadSaved(file);
                else Decode(file);
            }
        }
    }

    protected override void EndProcessing()
    {
        if (pictures.Count == 0) return;
        using var lease = AcquireEngine();
        if (!lease.Engine.SupportsReferences)
        {
            ThrowTerminatingError(ErrorRecords.Create(
                $"The open engine ({lease.Engine.ModelName}) has no IP-Adapter, so it cannot encode reference images. " + NoIPAdapterAdvice,
                "NoIPAdapter", ErrorCategory.InvalidOperation, pictures.Select(p => p.Path).ToArray()));
        }
        const string activity = "Encoding character reference";
        ReportProgress(ProgressActivityIds.Reference, activity, $"{pictures.Count} image{(pictures.Count == 1 ? "" : "s")}");
        CharacterReference reference;
        try
        {
            reference = RunOnWorker<CharacterReference, ScenePhaseReport>(
                (phases, token) => lease.Engine.EncodeReference(pictures, Name, token, phases, Combine),
                picture => WritePicture(activity, picture));
        }
        catch (Exception e) when (e is not PipelineStoppedException)
        {
            ReportProgress(ProgressActivityIds.Reference, activity, "Failed", completed: true);
            WriteError(ErrorRecords.From(e, "ReferenceImageUnusable", pictures.Count == 1 ? pictures[0].Path : pictures.Select(p => p.Path).ToArray()));
            return;
        }
        ReportProgress(ProgressActivityIds.Reference, activity, "Done", completed: true);
        WriteVerbose(pictures.Count == 1
            ? $"Reference '{reference.Name}': the image embedding of {pictures[0].Path}."
            : $"Reference '{reference.Name}': the average of the image embeddings of {pictures.Count} pictures.");
        WriteEngineWarnings(lease.Engine);
        WriteObject(reference);
    }

    /// <summary>A picture begun is the bar's status; one finished is a verbose line with its time.</summary>
    private void WritePicture(string activity, ScenePhaseReport picture)
    {
        if (picture.Finished)
        {
            WriteVerbose(string.Create(CultureInfo.InvariantCulture,
                $"Image encoding: {picture.Subject} ({picture.Item} of {picture.ItemCount}) in {picture.Elapsed.TotalSeconds:0.00} s."));
            return;
        }
        ReportProgress(ProgressActivityIds.Reference, activity,
            string.Create(CultureInfo.InvariantCulture, $"Picture {picture.Item} of {picture.ItemCount}"),
            100 * (picture.Item - 1) / picture.ItemCount, currentOperation: picture.Subject);
    }

    /// <summary>Decoded as it arrives, so that a damaged picture is reported on its own, before any engine is needed.</summary>
    private void Decode(string file)
    {
        try
        {
            pictures.Add(new ReferencePicture(file, SafeImageDecoder.Default.Decode(file)));
        }
        catch (Exception e)
        {
            WriteError(ErrorRecords.From(e, "ReferenceImageUnusable", file));
        }
    }

    private void LoadSaved(string file)
    {
        CharacterReference reference;
        try
        {
            reference = CharacterReference.Load(file);
        }
        catch (Exception e)
        {
            WriteError(ErrorRecords.From(e, "SavedReferenceUnreadable", file));
            return;
        }
        WriteVerbose($"Read the saved reference '{reference.Name}' from {file}: it holds its encoding, so no picture is encoded.");
        WriteObject(Name is null ? reference : reference with { Name = Name });
    }

    /// <summary>
    /// A saved reference is JSON (a .json file, or content that starts like one, whatever the name); anything
    /// else is taken for an image and left to the image decoder to judge.
    /// </summary>
    private static bool IsSavedReference(string file)
    {
        if (System.IO.Path.GetExtension(file).Equals(".json", StringComparison.OrdinalIgnoreCase)) return true;
        try
        {
            using var stream = File.OpenRead(file);
            Span<byte> head = stackalloc byte[64];
            var read = stream.ReadAtLeast(head, head.Length, throwOnEndOfStream: false);
            var text = head[..read];
            if (text.StartsWith("\uFEFF"u8)) text = text[3..];
            var first = text.TrimStart(" \t\r\n"u8);
            return first.Length > 0 && first[0] == (byte)'{';
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Unreadable now means unreadable for the encoder too; it reports the file properly.
            return false;
        }
    }
}
