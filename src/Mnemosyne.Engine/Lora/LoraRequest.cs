namespace Mnemosyne.Engine.Lora;

/// <summary>A LoRA file to apply to a scene, at <paramref name="Weight"/> (1 as trained; 0 leaves it out; negative reverses it).</summary>
public sealed record LoraRequest(string Path, float Weight = 1)
{
    public const float MaxWeight = 10;

    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(Path)) throw new ArgumentException("A LoRA needs the path of its .safetensors file.", "Lora");
        if (!float.IsFinite(Weight) || Math.Abs(Weight) > MaxWeight)
            throw new ArgumentOutOfRangeException("Lora", Weight, $"LoRA {System.IO.Path.GetFileName(Path)}: its weight must be a number from -{MaxWeight} to {MaxWeight} (1 as trained).");
    }
}

/// <summary>
/// A LoRA a scene was made with, as its settings record it: A1111's name and short hash (<see cref="LoraFile.ShortHash"/>),
/// the weight, and the file's full path (so that a scene's LoRAs can make it again).
/// </summary>
public sealed record AppliedLora(string Name, string Hash, float Weight, string Path);
