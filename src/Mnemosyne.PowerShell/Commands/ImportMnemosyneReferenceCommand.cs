using System.Management.Automation;
using Mnemosyne.Engine.Pipeline;

namespace Mnemosyne.PowerShell.Commands;

/// <summary>
/// Makes a character reference from images of one character (their embeddings averaged), or reads
/// one saved by Export-MnemosyneReference. Every image given in one call, piped or not, goes into
/// the same reference.
/// </summary>
[Cmdlet(VerbsData.Import, "MnemosyneReference")]
[OutputType(typeof(CharacterReference))]
public sealed class ImportMnemosyneReferenceCommand : MnemosyneCmdlet
{
    private readonly List<string> images = [];

    [Parameter(Mandatory = true, Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [Alias("FullName")]
    [ValidateNotNullOrEmpty]
    public string[] Path { get; set; } = null!;

    /// <summary>The character's name, stored with the reference and every scene made with it.</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? Name { get; set; }

    protected override void ProcessRecord()
    {
        foreach (var path in Path)
        {
            foreach (var file in ResolveInputFiles(path))
            {
                if (IsSavedReference(file)) LoadSaved(file);
                else images.Add(file);
            }
        }
    }

    protected override void EndProcessing()
    {
        if (images.Count == 0) return;
        using var lease = AcquireEngine();
        if (!lease.Engine.SupportsReferences)
        {
            ThrowTerminatingError(ErrorRecords.Create(
                $"The open engine ({lease.Engine.ModelName}) has no IP-Adapter, so it cannot encode reference images. " + NoIPAdapterAdvice,
                "NoIPAdapter", ErrorCategory.InvalidOperation, images.ToArray()));
        }
        const string activity = "Encoding character reference";
        ReportProgress(ProgressActivityIds.Reference, activity, $"{images.Count} image{(images.Count == 1 ? "" : "s")}");
        CharacterReference reference;
        try
        {
            reference = RunOnWorker(token => lease.Engine.EncodeReference(images, Name, token));
        }
        catch (Exception e) when (e is not PipelineStoppedException)
        {
            ReportProgress(ProgressActivityIds.Reference, activity, "Failed", completed: true);
            WriteError(ErrorRecords.From(e, "ReferenceImageUnusable", images.Count == 1 ? images[0] : images.ToArray()));
            return;
        }
        ReportProgress(ProgressActivityIds.Reference, activity, "Done", completed: true);
        WriteObject(reference);
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
        WriteObject(Name is null ? reference : reference with { Name = Name });
    }

    /// <summary>A saved reference is JSON; anything else is taken for an image and left to the image decoder to judge.</summary>
    private bool IsSavedReference(string file)
    {
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
