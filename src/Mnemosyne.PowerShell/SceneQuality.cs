using Mnemosyne.Engine.Pipeline;

namespace Mnemosyne.PowerShell;

/// <summary>A shorthand for the sampling settings. Draft, Standard and Best are step counts (the value is the count).</summary>
public enum SceneQuality
{
    /// <summary>
    /// What a few-step UNet such as SDXL-Lightning's was distilled for: 4 Euler steps at trailing timesteps,
    /// no guidance (<see cref="SceneRequest.ForFewStepUnet"/>).
    /// </summary>
    Fast = SceneRequest.FewStepUnetSteps,
    Draft = 10,
    Standard = 20,
    Best = 30,
}
