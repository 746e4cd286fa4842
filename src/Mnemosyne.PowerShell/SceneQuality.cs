namespace Mnemosyne.PowerShell;

/// <summary>A shorthand for the number of denoising steps: the value is the step count.</summary>
public enum SceneQuality
{
    Draft = 10,
    Standard = 20,
    Best = 30,
}
