namespace Mnemosyne.Engine.Sampling;

/// <summary>The samplers a user can pick (the -Scheduler values), each a diffusers v0.30.0 scheduler.</summary>
public enum SchedulerKind
{
    /// <summary>EulerDiscreteScheduler, SDXL's default.</summary>
    Euler,

    /// <summary>EulerAncestralDiscreteScheduler: fresh noise from the generator at every step.</summary>
    EulerAncestral,

    /// <summary>DPMSolverMultistepScheduler, dpmsolver++, second order, midpoint.</summary>
    DpmPlusPlus2M,

    /// <summary>DpmPlusPlus2M on Karras sigmas (use_karras_sigmas).</summary>
    DpmPlusPlus2MKarras,

    /// <summary>DDIMScheduler, eta 0.</summary>
    Ddim,

    /// <summary>LCMScheduler: latent consistency sampling (LCM-LoRA), fresh noise from the generator between steps; ignores the spacing.</summary>
    Lcm,
}

/// <summary>How the inference timesteps are spread over the training range (diffusers' timestep_spacing).</summary>
public enum TimestepSpacing
{
    /// <summary>Evenly from 0 to the last training step, endpoints included.</summary>
    Linspace,

    /// <summary>Multiples of num_train_timesteps // steps plus steps_offset (SDXL base).</summary>
    Leading,

    /// <summary>Counted down from the last training step (SDXL-Lightning, SDXL-Turbo and other few-step UNets).</summary>
    Trailing,
}
