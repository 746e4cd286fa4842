using System.Collections;
using System.Globalization;
using System.Text;
using Mnemosyne.Engine.Checkpoints;

namespace Mnemosyne.Engine.Networks;

/// <summary>
/// Where in the UNet a reference acts: a weight per cross-attention, given as diffusers' <c>set_ip_adapter_scale</c>
/// takes it. A number weighs every layer; a table names parts ("down", "mid", "up"), blocks ("block_2") and, as a
/// list, each of a block's attentions ("up": {"block_0": [0.0, 1.0, 0.0]}). A table's unnamed layers weigh 0
/// (diffusers expands it with <c>_maybe_expand_lora_scales(..., default_scale=0.0)</c>). The presets are InstantStyle's.
/// </summary>
public sealed class IpAdapterBlockScales
{
    private readonly float? everywhere;
    private readonly IReadOnlyDictionary<string, object> table;

    private IpAdapterBlockScales(string name, float? everywhere, IReadOnlyDictionary<string, object> table)
    {
        Name = name;
        this.everywhere = everywhere;
        this.table = table;
    }

    /// <summary>"All", "Style", "Layout", "StyleAndLayout", or "Table" for one given as a table.</summary>
    public string Name { get; }

    /// <summary>Every cross-attention (the adapter as trained).</summary>
    public static IpAdapterBlockScales All { get; } = new("All", 1f, new Dictionary<string, object>());

    /// <summary>InstantStyle's style-only transfer: up.block_0's attention 1 alone.</summary>
    public static IpAdapterBlockScales Style { get; } = new("Style", null, new Dictionary<string, object>
    {
        ["up"] = new Dictionary<string, float[]> { ["block_0"] = [0f, 1f, 0f] },
    });

    /// <summary>InstantStyle's layout-only transfer: down.block_2's attention 1 alone.</summary>
    public static IpAdapterBlockScales Layout { get; } = new("Layout", null, new Dictionary<string, object>
    {
        ["down"] = new Dictionary<string, float[]> { ["block_2"] = [0f, 1f] },
    });

    /// <summary>Both of InstantStyle's blocks.</summary>
    public static IpAdapterBlockScales StyleAndLayout { get; } = new("StyleAndLayout", null, new Dictionary<string, object>
    {
        ["down"] = new Dictionary<string, float[]> { ["block_2"] = [0f, 1f] },
        ["up"] = new Dictionary<string, float[]> { ["block_0"] = [0f, 1f, 0f] },
    });

    /// <summary>The preset of that name (case-insensitive), or null.</summary>
    public static IpAdapterBlockScales? Preset(string name)
        => new[] { All, Style, Layout, StyleAndLayout }.FirstOrDefault(p => string.Equals(p.Name, name, StringComparison.OrdinalIgnoreCase));

    /// <summary>
    /// A table as diffusers' dict: keys "down", "mid", "up"; "down"/"up" map to a number or to a table of "block_N" keys, each a
    /// number or a list of numbers (one per attention of the block, or one for all); "mid" to a number (or a list of one).
    /// Values are numbers from 0 to 2. Whether the blocks exist is checked against a UNet by <see cref="Expand"/>.
    /// </summary>
    /// <exception cref="ArgumentException">A key or value diffusers would not take.</exception>
    public static IpAdapterBlockScales FromTable(IDictionary source)
    {
        ArgumentNullException.ThrowIfNull(source);
        var table = new Dictionary<string, object>(StringComparer.OrdinalIgnoreCase);
        foreach (DictionaryEntry entry in source)
        {
            var key = entry.Key?.ToString() ?? "";
            switch (key.ToLowerInvariant())
            {
                case "mid":
                    var mid = Numbers(entry.Value, "mid");
                    if (mid.Length != 1) throw Bad($"'mid' takes one number (the mid block has one attention); {mid.Length} were given");
                    table["mid"] = mid[0];
                    break;
                case "down" or "up":
                    var part = key.ToLowerInvariant();
                    if (entry.Value is IDictionary blocks)
                    {
                        var parsed = new Dictionary<string, float[]>(StringComparer.OrdinalIgnoreCase);
                        foreach (DictionaryEntry block in blocks)
                        {
                            var name = block.Key?.ToString() ?? "";
                            if (!name.StartsWith("block_", StringComparison.OrdinalIgnoreCase) || !int.TryParse(name.AsSpan(6), NumberStyles.None, CultureInfo.InvariantCulture, out var index))
                                throw Bad($"'{part}' has the key '{name}'; its keys are blocks: block_0, block_1, …");
                            parsed[$"block_{index}"] = Numbers(block.Value, $"{part}.{name}");
                        }
                        table[part] = parsed;
                    }
                    else
                    {
                        var whole = Numbers(entry.Value, part);
                        if (whole.Length != 1) throw Bad($"'{part}' takes one number or a table of blocks (@{{ block_0 = 0, 1, 0 }}); a list of {whole.Length} was given");
                        table[part] = whole[0];
                    }
                    break;
                default:
                    throw Bad($"the key '{key}' is not a part of the UNet; the keys are down, mid and up");
            }
        }
        return new IpAdapterBlockScales("Table", null, table);
    }

    /// <summary>
    /// The weight of every cross-attention of a UNet of <paramref name="config"/>, in <see cref="IpAdapterAttention.Layers"/>'
    /// order; a block's list weighs its attentions (Transformer2DModels) in turn, each of their transformer blocks alike.
    /// </summary>
    /// <exception cref="ArgumentException">The table names a block without attentions, or a list of the wrong length.</exception>
    public float[] Expand(UnetConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        var layers = IpAdapterAttention.Layers(config);
        if (everywhere is { } all) return layers.Select(_ => all).ToArray();
        foreach (var part in new[] { "down", "up" })
            if (table.TryGetValue(part, out var value) && value is Dictionary<string, float[]> blocks)
                foreach (var (block, list) in blocks)
                {
                    int index = int.Parse(block.AsSpan(6), CultureInfo.InvariantCulture);
                    var attentions = layers.Where(l => l.Part == part && l.Block == index).Select(l => l.Attention).Distinct().Count();
                    if (attentions == 0)
                        throw Bad($"{part}.{block} has no attentions in this UNet; the blocks with attentions are " +
                            string.Join(", ", layers.Where(l => l.Part == part).Select(l => $"{part}.block_{l.Block}").Distinct()));
                    if (list.Length != 1 && list.Length != attentions)
                        throw Bad($"{part}.{block} has {attentions} attentions, so it takes {attentions} numbers (or one for all); {list.Length} were given");
                }
        return layers.Select(Weight).ToArray();

        float Weight(IpAdapterAttention.Layer layer)
        {
            if (!table.TryGetValue(layer.Part, out var value)) return 0f;
            if (value is float whole) return whole;
            var blocks = (Dictionary<string, float[]>)value;
            if (!blocks.TryGetValue($"block_{layer.Block}", out var list)) return 0f;
            return list.Length == 1 ? list[0] : list[layer.Attention];
        }
    }

    /// <summary>The preset's name, or the table in diffusers' dict notation (for a picture's parameters).</summary>
    public override string ToString()
    {
        if (Name != "Table") return Name;
        var text = new StringBuilder("{");
        foreach (var part in new[] { "down", "mid", "up" })
        {
            if (!table.TryGetValue(part, out var value)) continue;
            if (text.Length > 1) text.Append(", ");
            text.Append($"\"{part}\": ");
            if (value is float whole) text.Append(Number(whole));
            else text.Append('{').AppendJoin(", ", ((Dictionary<string, float[]>)value).OrderBy(b => b.Key, StringComparer.Ordinal)
                .Select(b => $"\"{b.Key}\": [{string.Join(", ", b.Value.Select(Number))}]")).Append('}');
        }
        return text.Append('}').ToString();
    }

    private static string Number(float value) => value.ToString("0.0##", CultureInfo.InvariantCulture);

    private static float[] Numbers(object? value, string where)
    {
        var items = value is IEnumerable list and not string ? list.Cast<object?>().ToArray() : [value];
        if (items.Length == 0) throw Bad($"'{where}' holds an empty list");
        return items.Select(item =>
        {
            float number;
            try
            {
                number = Convert.ToSingle(item, CultureInfo.InvariantCulture);
            }
            catch (Exception e) when (e is FormatException or InvalidCastException or OverflowException)
            {
                throw Bad($"'{where}' holds '{item}', which is not a number");
            }
            if (!float.IsFinite(number) || number < 0 || number > 2) throw Bad($"'{where}' holds {item}; weights are from 0 to 2");
            return number;
        }).ToArray();
    }

    private static ArgumentException Bad(string what) => new($"The reference block table is not one diffusers' set_ip_adapter_scale takes: {what}.", "ReferenceBlocks");
}
