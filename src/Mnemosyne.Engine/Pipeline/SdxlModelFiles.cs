using Mnemosyne.Engine.Checkpoints;
using Mnemosyne.Engine.Safetensors;

namespace Mnemosyne.Engine.Pipeline;

/// <summary>
/// An SDXL model as the engine loads it, whichever layout it came in: each generating network's config
/// and weights, the tokenizers and the scheduler config. Keeps the weight files open until disposed:
/// the engine loads its encoders from them whenever a new prompt or reference needs them.
/// </summary>
internal sealed record SdxlModelFiles : IDisposable
{
    /// <summary>A short name for the model, stored with every scene.</summary>
    public required string Name { get; init; }
    public required bool ForceZerosForEmptyPrompt { get; init; }
    public required string Tokenizer { get; init; }
    public required string Tokenizer2 { get; init; }
    public required string SchedulerConfigPath { get; init; }
    public required SdxlConfigs Configs { get; init; }
    public required IWeightSource Unet { get; init; }
    public required IWeightSource Vae { get; init; }
    public required IWeightSource TextEncoder { get; init; }
    public required IWeightSource TextEncoder2 { get; init; }
    public required IReadOnlyList<IDisposable> OpenFiles { get; init; }

    public static SdxlModelFiles Open(EngineOptions options)
    {
        var files = new List<IDisposable>();
        try
        {
            var path = Path.GetFullPath(options.CheckpointPath);
            SdxlModelFiles model;
            if (File.Exists(path)) model = FromSingleFile(path, options.BaseModelPath, files);
            else if (Directory.Exists(path) || !path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase)) model = FromFolder(path, options.Variant, files);
            else throw new FileNotFoundException($"Checkpoint file not found: {path}", path);
            if (options.ModelName is { } name) model = model with { Name = name };
            return options.UnetWeightsPath is { } unet ? WithUnet(model, unet, files) : model;
        }
        catch
        {
            foreach (var file in files) file.Dispose();
            throw;
        }
    }

    private static SdxlModelFiles FromFolder(string root, string? variant, List<IDisposable> files)
    {
        var checkpoint = DiffusersCheckpoint.Open(root, variant);
        return new SdxlModelFiles
        {
            Name = Path.GetFileName(Path.TrimEndingDirectorySeparator(checkpoint.Root)),
            ForceZerosForEmptyPrompt = checkpoint.Index.ForceZerosForEmptyPrompt,
            Tokenizer = checkpoint.Tokenizer,
            Tokenizer2 = checkpoint.Tokenizer2,
            SchedulerConfigPath = checkpoint.SchedulerConfigPath,
            Configs = new SdxlConfigs(checkpoint.ReadUnetConfig(), checkpoint.ReadVaeConfig(), checkpoint.ReadTextEncoderConfig(), checkpoint.ReadTextEncoder2Config()),
            Unet = Track(files, SafetensorsFile.Open(checkpoint.Unet.WeightsPath)),
            Vae = Track(files, SafetensorsFile.Open(checkpoint.Vae.WeightsPath)),
            TextEncoder = Track(files, SafetensorsFile.Open(checkpoint.TextEncoder.WeightsPath)),
            TextEncoder2 = Track(files, SafetensorsFile.Open(checkpoint.TextEncoder2.WeightsPath)),
            OpenFiles = files,
        };
    }

    private static SdxlModelFiles FromSingleFile(string path, string? baseModelPath, List<IDisposable> files)
    {
        if (!path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
            throw new ArgumentException(
                $"{path}: only .safetensors single-file checkpoints are read (.ckpt and other pickles can run code when loaded; convert them to safetensors first).",
                nameof(EngineOptions.CheckpointPath));
        if (baseModelPath is null)
            throw new ArgumentException(
                $"{path} is a single-file checkpoint, which has no tokenizer or scheduler files: set BaseModelPath to a folder in the diffusers SDXL layout " +
                "(stabilityai/stable-diffusion-xl-base-1.0; its tokenizer/, tokenizer_2/ and scheduler/ are enough).",
                nameof(EngineOptions.BaseModelPath));
        var root = Path.GetFullPath(baseModelPath);
        if (!Directory.Exists(root))
            throw new DirectoryNotFoundException($"BaseModelPath not found: {root} (a folder in the diffusers SDXL layout with tokenizer/, tokenizer_2/ and scheduler/).");

        string Require(params string[] parts)
        {
            var file = Path.Combine([root, .. parts]);
            return File.Exists(file)
                ? file
                : throw new FileNotFoundException(
                    $"BaseModelPath {root} lacks {Path.Combine(parts)}: it must be a folder in the diffusers SDXL layout (stabilityai/stable-diffusion-xl-base-1.0) with tokenizer/, tokenizer_2/ and scheduler/.",
                    file);
        }
        T ConfigOr<T>(string component, T sdxlBase)
        {
            var file = Path.Combine(root, component, "config.json");
            return File.Exists(file) ? ConfigJson.Read<T>(file) : sdxlBase;
        }

        Require("tokenizer", "vocab.json");
        Require("tokenizer", "merges.txt");
        Require("tokenizer_2", "vocab.json");
        Require("tokenizer_2", "merges.txt");
        var scheduler = Require("scheduler", "scheduler_config.json");
        var index = Path.Combine(root, "model_index.json");
        var sdxl = SdxlConfigs.Base;
        var configs = new SdxlConfigs(
            ConfigOr("unet", sdxl.Unet), ConfigOr("vae", sdxl.Vae), ConfigOr("text_encoder", sdxl.TextEncoder), ConfigOr("text_encoder_2", sdxl.TextEncoder2));
        var checkpoint = Track(files, SingleFileCheckpoint.Open(path, configs));
        return new SdxlModelFiles
        {
            Name = Path.GetFileNameWithoutExtension(path),
            ForceZerosForEmptyPrompt = !File.Exists(index) || ConfigJson.Read<ModelIndex>(index).ForceZerosForEmptyPrompt,
            Tokenizer = Path.Combine(root, "tokenizer"),
            Tokenizer2 = Path.Combine(root, "tokenizer_2"),
            SchedulerConfigPath = scheduler,
            Configs = configs,
            Unet = checkpoint.Unet,
            Vae = checkpoint.Vae,
            TextEncoder = checkpoint.TextEncoder,
            TextEncoder2 = checkpoint.TextEncoder2,
            OpenFiles = files,
        };
    }

    /// <summary>A UNet state dict in diffusers names takes the place of the model's UNet weights.</summary>
    private static SdxlModelFiles WithUnet(SdxlModelFiles model, string path, List<IDisposable> files)
    {
        var file = Track(files, SafetensorsFile.Open(path));
        bool Any(Func<string, bool> test) => file.Tensors.Keys.Any(test);
        if (Any(k => k.StartsWith(SingleFileLayout.UnetPrefix, StringComparison.Ordinal)))
            throw new CheckpointException(
                $"{file.Path} is a whole single-file checkpoint, not a UNet in diffusers names: open it as the checkpoint instead of as replacement UNet weights.", file.Path);
        if (Any(k => k.Contains("lora", StringComparison.OrdinalIgnoreCase)))
            throw new CheckpointException(
                $"{file.Path} holds LoRA weights, which the engine does not apply: give the full UNet file instead (for SDXL-Lightning, sdxl_lightning_4step_unet.safetensors).", file.Path);
        return model with { Unet = file, Name = model.Name + "+" + Path.GetFileNameWithoutExtension(file.Path) };
    }

    private static T Track<T>(List<IDisposable> files, T file) where T : IDisposable
    {
        files.Add(file);
        return file;
    }

    public void Dispose()
    {
        foreach (var file in OpenFiles) file.Dispose();
    }
}
