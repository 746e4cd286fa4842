using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Language;
using Mnemosyne.Engine.Models;

namespace Mnemosyne.PowerShell;

/// <summary>Tab completion of the known models (of one role, or all), from the manifests (the cache is not looked at, so it stays quick).</summary>
public abstract class ModelNameCompleter(ModelRole? role) : IArgumentCompleter
{
    public IEnumerable<CompletionResult> CompleteArgument(
        string commandName, string parameterName, string wordToComplete, CommandAst commandAst, IDictionary fakeBoundParameters)
    {
        IReadOnlyList<ModelManifest> manifests;
        try
        {
            manifests = ModelManifest.LoadFolder(ModelCatalog.DefaultManifestFolder);
        }
        catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
        {
            // Completion has no place to report a broken manifest folder; the command itself will.
            return [];
        }
        var prefix = wordToComplete.Trim('\'', '"');
        return manifests
            .Where(m => (role is null || m.Role == role) && m.Name.StartsWith(prefix, StringComparison.OrdinalIgnoreCase))
            .Select(m => new CompletionResult(m.Name, m.Name, CompletionResultType.ParameterValue, m.Description));
    }
}

public sealed class PipelineModelCompleter() : ModelNameCompleter(ModelRole.Pipeline);

public sealed class UnetModelCompleter() : ModelNameCompleter(ModelRole.Unet);

/// <summary>Completes the names of the known IP-Adapters.</summary>
public sealed class IpAdapterModelCompleter() : ModelNameCompleter(ModelRole.IpAdapter);

/// <summary>Every known model, for the commands that find and install them.</summary>
public sealed class KnownModelCompleter() : ModelNameCompleter(null);
