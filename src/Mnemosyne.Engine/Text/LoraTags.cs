using System.Globalization;
using System.Text.RegularExpressions;

namespace Mnemosyne.Engine.Text;

/// <summary>A <c>&lt;lora:name:weight&gt;</c> tag as written in a prompt, its name and weight (1 when left out).</summary>
public readonly record struct LoraTag(string Text, string Name, float Weight);

/// <summary>A <c>&lt;lora:…&gt;</c> tag that names no LoRA or whose weight is not a number.</summary>
public sealed class LoraTagException(string tag, string message) : ArgumentException(message)
{
    public string Tag { get; } = tag;
}

/// <summary>
/// AUTOMATIC1111's LoRA tags in a prompt, read as its extra_networks.parse_prompt reads them: a tag
/// <c>&lt;lora:name&gt;</c> or <c>&lt;lora:name:weight&gt;</c> is taken out of the text (replaced by nothing, the
/// spaces around it kept, as A1111 does) before the prompt is encoded.
/// </summary>
/// <remarks>
/// A1111 reads these tags in the prompt only: in the negative prompt they are text, so read only the prompt with this.
/// Tags of other extra networks (<c>&lt;hypernet:…&gt;</c>) are left as text: the engine has none. Where this is
/// stricter than A1111: a weight that is no number (A1111 stops with a Python error) and A1111's separate
/// text-encoder/UNet weights (<c>&lt;lora:name:0.8:0.5&gt;</c>, <c>te=</c>, <c>unet=</c>) are refused with one error
/// that names the tag.
/// </remarks>
public static class LoraTags
{
    // A1111's re_extra_net, <(\w+):([^>]+)>, kept to the lora kind.
    private static readonly Regex Tag = new(@"<lora:([^>]+)>", RegexOptions.CultureInvariant);

    /// <summary>The prompt with its LoRA tags taken out, and the tags in the order written.</summary>
    public static (string Prompt, IReadOnlyList<LoraTag> Tags) Extract(string prompt)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        var tags = new List<LoraTag>();
        var text = Tag.Replace(prompt, match =>
        {
            tags.Add(Read(match.Value, match.Groups[1].Value.Split(':')));
            return "";
        });
        return (text, tags);
    }

    /// <summary>
    /// The file a LoRA name means in a folder of LoRAs, as A1111 names them: &lt;folder&gt;/&lt;name&gt;.safetensors, the name
    /// holding subfolders perhaps; null for a name that would leave the folder. The file need not exist.
    /// </summary>
    public static string? FileIn(string folder, string name)
    {
        ArgumentNullException.ThrowIfNull(folder);
        ArgumentNullException.ThrowIfNull(name);
        var root = Path.TrimEndingDirectorySeparator(Path.GetFullPath(folder));
        var file = Path.GetFullPath(Path.Combine(root, name + ".safetensors"));
        return file.StartsWith(root + Path.DirectorySeparatorChar, StringComparison.Ordinal) ? file : null;
    }

    private static LoraTag Read(string tag, string[] items)
    {
        var name = items[0].Trim();
        if (name.Length == 0) throw new LoraTagException(tag, $"{tag} names no LoRA; write <lora:name> or <lora:name:weight>, e.g. <lora:kira:0.8>.");
        if (items.Length > 2)
            throw new LoraTagException(tag, $"{tag}: separate text-encoder and UNet weights are not supported; give one weight, e.g. <lora:{name}:0.8>.");
        if (items.Length == 1) return new LoraTag(tag, name, 1);
        if (!float.TryParse(items[1].Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var weight) || !float.IsFinite(weight))
            throw new LoraTagException(tag, $"{tag}: the weight '{items[1]}' is not a number; write e.g. <lora:{name}:0.8>.");
        return new LoraTag(tag, name, weight);
    }
}
