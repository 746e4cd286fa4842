using System.Management.Automation;
using Mnemosyne.Engine.Imaging;
using Mnemosyne.Engine.Pipeline;

namespace Mnemosyne.PowerShell.Commands;

/// <summary>Saves a character reference (its embedding and where it came from) to a small file for Import-MnemosyneReference.</summary>
[Cmdlet(VerbsData.Export, "MnemosyneReference", SupportsShouldProcess = true, HelpUri = HelpUris.Readme + "export-mnemosynereference")]
[OutputType(typeof(FileInfo))]
public sealed class ExportMnemosyneReferenceCommand : MnemosyneCmdlet
{
    [Parameter(Mandatory = true, ValueFromPipeline = true)]
    [ValidateNotNull]
    public CharacterReference Reference { get; set; } = null!;

    [Parameter(Mandatory = true, Position = 0)]
    [ValidateNotNullOrEmpty]
    public string Path { get; set; } = null!;

    [Parameter]
    public SwitchParameter Force { get; set; }

    [Parameter]
    public SwitchParameter PassThru { get; set; }

    protected override void ProcessRecord()
    {
        var path = FileSystemPath(Path);
        if (!ShouldProcess(path, $"Save character reference '{Reference.Name}'")) return;
        if (OutputFiles.CheckWritable(path, Force, InvokeProvider) is { } problem)
        {
            WriteError(problem);
            return;
        }
        try
        {
            AtomicFile.Write(path, Reference.Save, Force);
        }
        catch (ArgumentException e) when (e.ParamName == nameof(CharacterReference.Embedding))
        {
            // The reference itself cannot be saved (a non-finite value); nothing was written.
            WriteError(ErrorRecords.From(e, "ReferenceDamaged", Reference));
            return;
        }
        catch (Exception e)
        {
            WriteError(OutputFiles.WriteFailure(e, path, Force));
            return;
        }
        // Through the provider, so that the FileInfo carries PSPath and formats as Get-Item's does.
        if (PassThru) WriteObject(InvokeProvider.Item.Get([path], force: true, literalPath: true), enumerateCollection: true);
    }
}
