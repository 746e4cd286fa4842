using System.Management.Automation;
using Mnemosyne.Engine.Pipeline;

namespace Mnemosyne.PowerShell;

/// <summary>A picture's size: shown as 1024x768, sorted by its pixel count (then width).</summary>
public readonly record struct PictureSize(int Width, int Height) : IComparable<PictureSize>, IComparable
{
    public long Pixels => (long)Width * Height;

    public int CompareTo(PictureSize other)
    {
        int byPixels = Pixels.CompareTo(other.Pixels);
        return byPixels != 0 ? byPixels : Width.CompareTo(other.Width);
    }

    public int CompareTo(object? other) => other switch
    {
        null => 1,
        PictureSize size => CompareTo(size),
        _ => throw new ArgumentException($"A PictureSize compares only with another, not with {other.GetType()}.", nameof(other)),
    };

    public override string ToString() => $"{Width}x{Height}";

    /// <summary>The Size property of a scene (Mnemosyne.types.ps1xml).</summary>
    public static PictureSize OfScene(PSObject scene)
    {
        var value = (Scene)scene.BaseObject;
        return new PictureSize(value.Width, value.Height);
    }
}
