using System.Management.Automation;
using Mnemosyne.Engine.Sampling;

namespace Mnemosyne.PowerShell;

/// <summary>
/// Binds AUTOMATIC1111's sampler names ('Euler a', 'DPM++ 2M Karras', see <see cref="SamplerNames"/>) to a
/// <see cref="SchedulerKind"/> parameter, beside the enum's own names. Anything else is left to PowerShell's
/// conversion, whose error lists the enum's names.
/// </summary>
[AttributeUsage(AttributeTargets.Property | AttributeTargets.Field)]
public sealed class SchedulerNameAttribute : ArgumentTransformationAttribute
{
    public override object? Transform(EngineIntrinsics engineIntrinsics, object? inputData)
    {
        var value = inputData is PSObject wrapped ? wrapped.BaseObject : inputData;
        return value is string text && !string.IsNullOrWhiteSpace(text) && SamplerNames.FromA1111(text) is { } kind ? kind : inputData;
    }
}
