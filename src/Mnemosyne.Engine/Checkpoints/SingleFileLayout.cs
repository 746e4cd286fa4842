using System.Globalization;

namespace Mnemosyne.Engine.Checkpoints;

/// <summary>How a single-file tensor holds the values of the diffusers tensor it is mapped from.</summary>
internal enum StoredAs
{
    /// <summary>The same values in the same shape.</summary>
    Same,

    /// <summary>A linear layer's matrix kept as a 1×1 convolution kernel [out, in, 1, 1]: the same bytes.</summary>
    OneByOneKernel,

    /// <summary>Part <see cref="SingleFileKey.Part"/> (q 0, k 1, v 2) of rows of OpenCLIP's fused in_proj.</summary>
    FusedQkvRows,

    /// <summary>A matrix stored transposed ([in, out], as OpenCLIP multiplies x·P).</summary>
    Transposed,
}

/// <summary>A diffusers tensor's key in a single-file checkpoint, and how it is stored there.</summary>
internal sealed record SingleFileKey(string Key, StoredAs Layout = StoredAs.Same, int Part = 0)
{
    public const int FusedParts = 3;

    /// <summary>The shape the single file holds for a diffusers tensor of <paramref name="shape"/> (the whole fused tensor for q/k/v).</summary>
    public long[] StoredShape(long[] shape) => Layout switch
    {
        StoredAs.OneByOneKernel => [.. shape, 1, 1],
        StoredAs.FusedQkvRows => [FusedParts * shape[0], .. shape[1..]],
        StoredAs.Transposed => [shape[1], shape[0]],
        _ => shape,
    };
}

/// <summary>
/// The original Stability AI (ldm / "sgm") layout of an SDXL checkpoint in one file, as ComfyUI and
/// A1111 load it, against the diffusers names the engine's networks ask for: the mapping diffusers
/// v0.30.0 applies in loaders/single_file_utils.py (convert_ldm_unet_checkpoint,
/// convert_ldm_vae_checkpoint, convert_ldm_clip_checkpoint, convert_open_clip_checkpoint), run the
/// other way. Each method answers null for a name that has no counterpart.
/// </summary>
internal static class SingleFileLayout
{
    public const string UnetPrefix = "model.diffusion_model.";
    public const string VaePrefix = "first_stage_model.";
    public const string TextEncoderPrefix = "conditioner.embedders.0.transformer.";
    public const string TextEncoder2Prefix = "conditioner.embedders.1.model.";

    /// <summary>
    /// UNet: ldm numbers its blocks flat. input_blocks.0 is conv_in; then each level has one block per
    /// resnet (its attention beside it as .1) and, below the last level, one for the downsampler (.0.op).
    /// output_blocks have one block per up-block resnet, the upsampler sitting after the level's last
    /// resnet (.1.conv, or .2.conv where an attention is .1). middle_block is resnet, attention, resnet.
    /// </summary>
    public static SingleFileKey? Unet(string name, UnetConfig config)
    {
        var parts = name.Split('.');
        string Rest(int from) => string.Join('.', parts[from..]);
        SingleFileKey Key(string key, StoredAs layout = StoredAs.Same) => new(UnetPrefix + key, layout);
        int levels = config.BlockOutChannels.Count;

        switch (parts[0])
        {
            case "time_embedding" or "add_embedding" when parts.Length == 3:
                var stem = parts[0] == "time_embedding" ? "time_embed" : "label_emb.0";
                return parts[1] switch
                {
                    "linear_1" => Key($"{stem}.0.{parts[2]}"),
                    "linear_2" => Key($"{stem}.2.{parts[2]}"),
                    _ => null,
                };
            case "conv_in" when parts.Length == 2:
                return Key("input_blocks.0.0." + parts[1]);
            case "conv_norm_out" when parts.Length == 2:
                return Key("out.0." + parts[1]);
            case "conv_out" when parts.Length == 2:
                return Key("out.2." + parts[1]);
            case "mid_block" when parts.Length >= 4 && Index(parts[2]) is { } i:
                return parts[1] switch
                {
                    "resnets" when i < 2 => Key($"middle_block.{2 * i}.{UnetResnet(Rest(3))}"),
                    "attentions" when i == 0 => Key($"middle_block.1.{Rest(3)}"),
                    _ => null,
                };
            case "down_blocks" when parts.Length >= 5 && Index(parts[1]) is { } level && level < levels && Index(parts[3]) is { } j:
            {
                int layers = config.LayersPerBlock[level];
                int first = 1 + Enumerable.Range(0, level).Sum(k => config.LayersPerBlock[k] + 1);
                return parts[2] switch
                {
                    "resnets" when j < layers => Key($"input_blocks.{first + j}.0.{UnetResnet(Rest(4))}"),
                    "attentions" when j < layers => Key($"input_blocks.{first + j}.1.{Rest(4)}"),
                    "downsamplers" when j == 0 && parts[4] == "conv" && parts.Length == 6 => Key($"input_blocks.{first + layers}.0.op.{parts[5]}"),
                    _ => null,
                };
            }
            case "up_blocks" when parts.Length >= 5 && Index(parts[1]) is { } block && block < levels && Index(parts[3]) is { } j:
            {
                int LayersAt(int upBlock) => config.LayersPerBlock[levels - 1 - upBlock] + 1;
                int layers = LayersAt(block);
                int first = Enumerable.Range(0, block).Sum(LayersAt);
                bool attends = config.UpBlockTypes[block] == Networks.Unet.CrossAttnUpBlock;
                return parts[2] switch
                {
                    "resnets" when j < layers => Key($"output_blocks.{first + j}.0.{UnetResnet(Rest(4))}"),
                    "attentions" when j < layers => Key($"output_blocks.{first + j}.1.{Rest(4)}"),
                    "upsamplers" when j == 0 && parts[4] == "conv" && parts.Length == 6 => Key($"output_blocks.{first + layers - 1}.{(attends ? 2 : 1)}.conv.{parts[5]}"),
                    _ => null,
                };
            }
            default:
                return null;
        }
    }

    /// <summary>ldm's ResBlock names its layers by position in small Sequentials.</summary>
    private static string UnetResnet(string rest)
    {
        var dot = rest.IndexOf('.');
        var layer = dot < 0 ? rest : rest[..dot];
        var renamed = layer switch
        {
            "norm1" => "in_layers.0",
            "conv1" => "in_layers.2",
            "norm2" => "out_layers.0",
            "conv2" => "out_layers.3",
            "time_emb_proj" => "emb_layers.1",
            "conv_shortcut" => "skip_connection",
            _ => layer,
        };
        return renamed + (dot < 0 ? "" : rest[dot..]);
    }

    /// <summary>
    /// VAE: ldm counts the decoder's up blocks from the bottom (up.{n−1−i} is diffusers' up_blocks.{i}) and the
    /// encoder's down blocks from the top (down.{i}), names resnets block.{j} with nin_shortcut, the mid blocks
    /// block_1 / attn_1 / block_2, and keeps the mid attentions' q, k, v and proj_out as 1×1 convolutions.
    /// </summary>
    public static SingleFileKey? Vae(string name, VaeConfig config)
    {
        var parts = name.Split('.');
        string Rest(int from) => string.Join('.', parts[from..]);
        SingleFileKey Key(string key, StoredAs layout = StoredAs.Same) => new(VaePrefix + key, layout);
        int blocks = config.BlockOutChannels.Count;

        if (parts[0] is "post_quant_conv" or "quant_conv" && parts.Length == 2) return Key(name);
        if (parts[0] is not ("decoder" or "encoder") || parts.Length < 3) return null;
        var half = parts[0];
        switch (parts[1])
        {
            case "conv_in" or "conv_out" when parts.Length == 3:
                return Key(name);
            case "conv_norm_out" when parts.Length == 3:
                return Key($"{half}.norm_out.{parts[2]}");
            case "mid_block" when parts.Length >= 5 && Index(parts[3]) is { } i:
                if (parts[2] == "resnets" && i < 2) return Key($"{half}.mid.block_{i + 1}.{VaeResnet(Rest(4))}");
                if (parts[2] != "attentions" || i != 0) return null;
                var attention = Rest(4);
                var (layer, parameter) = (attention[..attention.LastIndexOf('.')], attention[(attention.LastIndexOf('.') + 1)..]);
                var renamed = layer switch
                {
                    "group_norm" => "norm",
                    "to_q" => "q",
                    "to_k" => "k",
                    "to_v" => "v",
                    "to_out.0" => "proj_out",
                    _ => null,
                };
                if (renamed is null) return null;
                return Key($"{half}.mid.attn_1.{renamed}.{parameter}",
                    renamed != "norm" && parameter == "weight" ? StoredAs.OneByOneKernel : StoredAs.Same);
            // The encoder's down blocks keep diffusers' order: down.{i}.
            case "down_blocks" when half == "encoder" && parts.Length >= 6 && Index(parts[2]) is { } down && down < blocks && Index(parts[4]) is { } k:
                return parts[3] switch
                {
                    "resnets" => Key($"encoder.down.{down}.block.{k}.{VaeResnet(Rest(5))}"),
                    "downsamplers" when k == 0 && parts[5] == "conv" && parts.Length == 7 => Key($"encoder.down.{down}.downsample.conv.{parts[6]}"),
                    _ => null,
                };
            case "up_blocks" when half == "decoder" && parts.Length >= 6 && Index(parts[2]) is { } block && block < blocks && Index(parts[4]) is { } j:
                int ldmBlock = blocks - 1 - block;
                return parts[3] switch
                {
                    "resnets" => Key($"decoder.up.{ldmBlock}.block.{j}.{VaeResnet(Rest(5))}"),
                    "upsamplers" when j == 0 && parts[5] == "conv" && parts.Length == 7 => Key($"decoder.up.{ldmBlock}.upsample.conv.{parts[6]}"),
                    _ => null,
                };
            default:
                return null;
        }
    }

    private static string VaeResnet(string rest)
        => rest.StartsWith("conv_shortcut.", StringComparison.Ordinal) ? "nin_shortcut" + rest["conv_shortcut".Length..] : rest;

    /// <summary>CLIP ViT-L (text_encoder): the transformers state dict under a prefix, names unchanged.</summary>
    public static SingleFileKey TextEncoder(string name) => new(TextEncoderPrefix + name);

    /// <summary>
    /// OpenCLIP ViT-bigG (text_encoder_2): resblocks with ln_1/ln_2, one fused in_proj for q, k and v
    /// (rows in that order), mlp.c_fc/c_proj, and a text_projection applied as x·P, i.e. stored transposed.
    /// </summary>
    public static SingleFileKey? TextEncoder2(string name)
    {
        SingleFileKey Key(string key, StoredAs layout = StoredAs.Same, int part = 0) => new(TextEncoder2Prefix + key, layout, part);
        switch (name)
        {
            case "text_model.embeddings.token_embedding.weight": return Key("token_embedding.weight");
            case "text_model.embeddings.position_embedding.weight": return Key("positional_embedding");
            case "text_model.final_layer_norm.weight": return Key("ln_final.weight");
            case "text_model.final_layer_norm.bias": return Key("ln_final.bias");
            case "text_projection.weight": return Key("text_projection", StoredAs.Transposed);
        }

        const string LayerPrefix = "text_model.encoder.layers.";
        if (!name.StartsWith(LayerPrefix, StringComparison.Ordinal)) return null;
        var parts = name[LayerPrefix.Length..].Split('.');
        if (parts.Length is not (3 or 4) || Index(parts[0]) is not { } layer) return null;
        var block = $"transformer.resblocks.{layer}.";
        var parameter = parts[^1];
        if (parameter is not ("weight" or "bias")) return null;
        return (parts.Length, parts[1], parts[2]) switch
        {
            (3, "layer_norm1", _) => Key($"{block}ln_1.{parameter}"),
            (3, "layer_norm2", _) => Key($"{block}ln_2.{parameter}"),
            (4, "self_attn", "q_proj") => Key($"{block}attn.in_proj_{parameter}", StoredAs.FusedQkvRows, 0),
            (4, "self_attn", "k_proj") => Key($"{block}attn.in_proj_{parameter}", StoredAs.FusedQkvRows, 1),
            (4, "self_attn", "v_proj") => Key($"{block}attn.in_proj_{parameter}", StoredAs.FusedQkvRows, 2),
            (4, "self_attn", "out_proj") => Key($"{block}attn.out_proj.{parameter}"),
            (4, "mlp", "fc1") => Key($"{block}mlp.c_fc.{parameter}"),
            (4, "mlp", "fc2") => Key($"{block}mlp.c_proj.{parameter}"),
            _ => null,
        };
    }

    private static int? Index(string text)
        => int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value) ? value : null;
}
