using System.Collections;
using System.Management.Automation;
using System.Management.Automation.Language;
using Mnemosyne.Engine.Sampling;

namespace Mnemosyne.PowerShell;

/// <summary>
/// Tab completion of an enum's names. The parameters that use it are nullable (unset means the
/// engine's default), and PowerShell completes only plain enum parameters by itself.
/// </summary>
public abstract class EnumNameCompleter<TEnum> : IArgumentCompleter where TEnum : struct, Enum
{
    public IEnumerable<CompletionResult> CompleteArgument(
        string commandName, string parameterName, string wordToComplete, CommandAst commandAst, IDictionary fakeBoundParameters)
    {
        var prefix = wordToComplete.Trim('\'', '"');
        return Enum.GetNames<TEnum>()
            .Where(name => name.StartsWith(prefix, StringComparison.OrdinalIgnoreCase))
            .Select(name => new CompletionResult(name, name, CompletionResultType.ParameterValue, name));
    }
}

public sealed class SchedulerCompleter : EnumNameCompleter<SchedulerKind>;

public sealed class QualityCompleter : EnumNameCompleter<SceneQuality>;

public sealed class SpacingCompleter : EnumNameCompleter<TimestepSpacing>;

public sealed class DecoderCompleter : EnumNameCompleter<Mnemosyne.Engine.Pipeline.SceneDecoder>;
