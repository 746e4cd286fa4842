using System.Management.Automation;
using Mnemosyne.Engine.Models;

namespace Mnemosyne.PowerShell.Commands;

/// <summary>
/// Lists the models Mnemosyne knows, with where each was found in the Hugging Face hub cache and
/// whether every file is there.
/// </summary>
[Cmdlet(VerbsCommon.Get, "MnemosyneModel", HelpUri = HelpUris.Readme + "get-mnemosynemodel")]
[OutputType(typeof(ModelStatus))]
public sealed class GetMnemosyneModelCommand : MnemosyneCmdlet
{
    private ModelCatalog? catalog;

    /// <summary>Model names; wildcards allowed. All models when omitted.</summary>
    [Parameter(Position = 0, ValueFromPipeline = true, ValueFromPipelineByPropertyName = true)]
    [SupportsWildcards]
    [ValidateNotNullOrEmpty]
    [ArgumentCompleter(typeof(KnownModelCompleter))]
    public string[]? Name { get; set; }

    /// <summary>The hub cache to look in; by default the one huggingface_hub uses (HF_HUB_CACHE, HF_HOME, ~/.cache/huggingface/hub).</summary>
    [Parameter]
    [ValidateNotNullOrEmpty]
    public string? CachePath { get; set; }

    protected override void BeginProcessing() => catalog = OpenModelCatalog(CachePath);

    protected override void ProcessRecord()
    {
        if (Name is null)
        {
            foreach (var status in catalog!.List()) WriteObject(status);
            return;
        }
        foreach (var name in Name)
        {
            if (WildcardPattern.ContainsWildcardCharacters(name))
            {
                var pattern = new WildcardPattern(name, WildcardOptions.IgnoreCase);
                foreach (var manifest in catalog!.Manifests.Where(m => pattern.IsMatch(m.Name))) WriteObject(catalog.Inspect(manifest));
                continue;
            }
            try
            {
                WriteObject(catalog!.Inspect(name));
            }
            catch (UnknownModelException e)
            {
                WriteError(ErrorRecords.From(e, "UnknownModel", name));
            }
        }
    }
}
