namespace Mnemosyne.Engine.Sampling;

/// <summary>The samplers a scene can use; the names are the values users type for -Scheduler.</summary>
public enum SchedulerKind
{
    Euler,
    EulerAncestral,
    DpmPlusPlus2M,
    DpmPlusPlus2MKarras,
    Ddim,
}
