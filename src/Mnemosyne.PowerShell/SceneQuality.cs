using Mnemosyne.Engine.Pipeline;

namespace Mnemosyne.PowerShell;

/// <summary>A shorthand for the sampling settings. Draft, Standard and Best are step counts (the value is the count).</summary>
public enum SceneQuality
{
    /// <summary>
    /// What the open few-step UNet was distilled for, as its model manifest says (SDXL-Lightning: 2, 4 or 8 Euler
    /// steps at trailing timesteps, no guidance; 4 steps for a UNet given by path), see <see cref="SceneRequest.ForFewStepUnet"/>.
    /// </summary>
    Fast = SceneRequest.FewStepUnetSteps,
    Draft = 10,
    Standard = 20,
    Best = 30,
}
