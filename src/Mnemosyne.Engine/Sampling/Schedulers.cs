namespace Mnemosyne.Engine.Sampling;

/// <summary>Builds a scheduler of a chosen kind from a checkpoint's scheduler config, as diffusers' <c>from_config</c> does.</summary>
public static class Schedulers
{
    /// <param name="config">The checkpoint's scheduler_config.json; keys it lacks take the chosen class's defaults.</param>
    /// <param name="steps">Inference steps, 1 to num_train_timesteps.</param>
    /// <param name="spacing">Overrides timestep_spacing; <see cref="TimestepSpacing.Trailing"/> is what
    /// SDXL-Lightning and SDXL-Turbo class few-step UNets need.</param>
    public static IScheduler Create(SchedulerKind kind, SchedulerConfig config, int steps, TimestepSpacing? spacing = null) => kind switch
    {
        SchedulerKind.Euler => new EulerDiscreteScheduler(config, steps, spacing),
        SchedulerKind.EulerAncestral => new EulerAncestralScheduler(config, steps, spacing),
        SchedulerKind.DpmPlusPlus2M => new DpmSolverMultistepScheduler(config, steps, karras: false, spacing),
        SchedulerKind.DpmPlusPlus2MKarras => new DpmSolverMultistepScheduler(config, steps, karras: true, spacing),
        SchedulerKind.Ddim => new DdimScheduler(config, steps, spacing),
        // LCM picks its timesteps from its distillation schedule, whatever the spacing.
        SchedulerKind.Lcm => new LcmScheduler(config, steps),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "Unknown scheduler kind."),
    };
}
