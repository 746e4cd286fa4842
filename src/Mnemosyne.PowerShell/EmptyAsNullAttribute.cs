using System.Management.Automation;

namespace Mnemosyne.PowerShell;

/// <summary>
/// Binds an empty or blank string as "not given". Import-Csv yields "" for an empty cell, which
/// PowerShell would otherwise convert to 0 (seed 0, width 0) instead of leaving the default.
/// </summary>
[AttributeUsage(AttributeTargets.Property | AttributeTargets.Field)]
public sealed class EmptyAsNullAttribute : ArgumentTransformationAttribute
{
    public override object? Transform(EngineIntrinsics engineIntrinsics, object? inputData)
    {
        var value = inputData is PSObject wrapped ? wrapped.BaseObject : inputData;
        return value is string text && string.IsNullOrWhiteSpace(text) ? null : inputData;
    }
}
