using System.Text.Json.Serialization;
using Mnemosyne.Engine.Safetensors;

namespace Mnemosyne.Engine.Checkpoints;

/// <summary>model_index.json of a diffusers pipeline folder.</summary>
public sealed record ModelIndex
{
    [JsonPropertyName("_class_name")] public string? ClassName { get; init; }
    [JsonPropertyName("_diffusers_version")] public string? DiffusersVersion { get; init; }
    public bool ForceZerosForEmptyPrompt { get; init; } = true;
}

/// <summary>One component folder (unet/, vae/, …) with its config and the weights file to use.</summary>
public sealed record ComponentFiles(string Folder, string ConfigPath, string WeightsPath);

/// <summary>
/// A Stable Diffusion XL checkpoint in the Hugging Face diffusers layout: model_index.json, unet/,
/// vae/, text_encoder/, text_encoder_2/, tokenizer/, tokenizer_2/ and scheduler/. Opening checks that
/// every file is there and that it is SDXL (not, say, an SD 1.5 folder) before anything is loaded.
/// </summary>
public sealed record DiffusersCheckpoint
{
    public required string Root { get; init; }
    public required ModelIndex Index { get; init; }
    public required ComponentFiles Unet { get; init; }
    public required ComponentFiles Vae { get; init; }
    public required ComponentFiles TextEncoder { get; init; }
    public required ComponentFiles TextEncoder2 { get; init; }
    public required string Tokenizer { get; init; }
    public required string Tokenizer2 { get; init; }
    public required string SchedulerConfigPath { get; init; }

    /// <summary>
    /// Opens a diffusers folder. <paramref name="variant"/> "fp16" picks the <c>*.fp16.safetensors</c>
    /// files where present (falling back to the full-precision files).
    /// </summary>
    public static DiffusersCheckpoint Open(string root, string? variant = null)
    {
        root = Path.GetFullPath(root);
        if (!Directory.Exists(root))
            throw new DirectoryNotFoundException($"Checkpoint folder not found: {root}");
        var indexPath = Path.Combine(root, "model_index.json");
        if (!File.Exists(indexPath))
            throw new FileNotFoundException(
                $"{root} is not a diffusers checkpoint folder: model_index.json is missing. Give the folder of an SDXL checkpoint in the diffusers layout (the one with model_index.json).",
                indexPath);
        var index = ConfigJson.Read<ModelIndex>(indexPath);
        if (!Directory.Exists(Path.Combine(root, "text_encoder_2")))
            throw new CheckpointException(
                $"{root} is not a Stable Diffusion XL checkpoint: it has no text_encoder_2/ (class {index.ClassName ?? "unknown"}; SD 1.x/2.x folders are not supported). " +
                "Give the folder of an SDXL checkpoint (such as stabilityai/stable-diffusion-xl-base-1.0).",
                indexPath);

        var checkpoint = new DiffusersCheckpoint
        {
            Root = root,
            Index = index,
            Unet = Component(root, "unet", "config.json", "diffusion_pytorch_model", variant),
            Vae = Component(root, "vae", "config.json", "diffusion_pytorch_model", variant),
            TextEncoder = Component(root, "text_encoder", "config.json", "model", variant),
            TextEncoder2 = Component(root, "text_encoder_2", "config.json", "model", variant),
            Tokenizer = TokenizerFolder(root, "tokenizer"),
            Tokenizer2 = TokenizerFolder(root, "tokenizer_2"),
            SchedulerConfigPath = RequireFile(Path.Combine(root, "scheduler", "scheduler_config.json")),
        };
        checkpoint.CheckArchitecture();
        return checkpoint;
    }

    public UnetConfig ReadUnetConfig() => ConfigJson.Read<UnetConfig>(Unet.ConfigPath);

    public VaeConfig ReadVaeConfig() => ConfigJson.Read<VaeConfig>(Vae.ConfigPath);

    public ClipTextConfig ReadTextEncoderConfig() => ConfigJson.Read<ClipTextConfig>(TextEncoder.ConfigPath);

    public ClipTextConfig ReadTextEncoder2Config() => ConfigJson.Read<ClipTextConfig>(TextEncoder2.ConfigPath);

    /// <summary>SDXL's UNet attends to both text encoders' states side by side; anything else is another model.</summary>
    private void CheckArchitecture()
    {
        var unet = ReadUnetConfig();
        var text1 = ReadTextEncoderConfig();
        var text2 = ReadTextEncoder2Config();
        if (unet.AdditionEmbedType != "text_time")
            throw new CheckpointException(
                $"{Unet.ConfigPath}: addition_embed_type is '{unet.AdditionEmbedType ?? "null"}', not 'text_time': this is not an SDXL UNet. " +
                "Give the folder of an SDXL checkpoint (such as stabilityai/stable-diffusion-xl-base-1.0).", Unet.ConfigPath);
        if (unet.CrossAttentionDim != text1.HiddenSize + text2.HiddenSize)
            throw new CheckpointException(
                $"{Unet.ConfigPath}: cross_attention_dim {unet.CrossAttentionDim} is not the two text encoders' widths {text1.HiddenSize} + {text2.HiddenSize}: the folder mixes models. " +
                "Download or copy the whole checkpoint again.",
                Unet.ConfigPath);
    }

    private static ComponentFiles Component(string root, string name, string configName, string weightsStem, string? variant)
    {
        var folder = Path.Combine(root, name);
        if (!Directory.Exists(folder))
            throw new CheckpointException($"{root}: the {name}/ folder is missing; download or copy the whole checkpoint again.", folder);
        var config = RequireFile(Path.Combine(folder, configName));
        var plain = Path.Combine(folder, weightsStem + ".safetensors");
        var variantFile = variant is null ? null : Path.Combine(folder, $"{weightsStem}.{variant}.safetensors");
        // Without a variant asked for, a folder that holds only the fp16 files (as many downloads do) uses them.
        var fp16 = Path.Combine(folder, $"{weightsStem}.fp16.safetensors");
        var weights = variantFile is not null && File.Exists(variantFile) ? variantFile
            : !File.Exists(plain) && variant is null && File.Exists(fp16) ? fp16
            : plain;
        if (!File.Exists(weights))
            throw new CheckpointException(
                $"{folder}: no weights file {Path.GetFileName(weights)} (only .safetensors checkpoints are read; .bin pickles are not). Download the model's .safetensors files.", weights);
        return new ComponentFiles(folder, config, weights);
    }

    private static string TokenizerFolder(string root, string name)
    {
        var folder = Path.Combine(root, name);
        RequireFile(Path.Combine(folder, "vocab.json"));
        RequireFile(Path.Combine(folder, "merges.txt"));
        return folder;
    }

    private static string RequireFile(string path) => File.Exists(path)
        ? path
        : throw new CheckpointException($"Checkpoint file missing: {path}. Download or copy the whole checkpoint folder again.", path);
}
