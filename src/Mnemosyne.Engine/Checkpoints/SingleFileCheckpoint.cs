using Mnemosyne.Engine.Safetensors;

namespace Mnemosyne.Engine.Checkpoints;

/// <summary>
/// An SDXL checkpoint in the original Stability AI single-file layout, the one ComfyUI and A1111 use:
/// model.diffusion_model.* (UNet), conditioner.embedders.0.transformer.* (CLIP ViT-L),
/// conditioner.embedders.1.model.* (OpenCLIP ViT-bigG, attention fused) and first_stage_model.* (VAE).
/// Each network reads it through a weight source that answers diffusers names; renamed, reshaped and
/// sliced tensors stay in the file as external data, so nothing is converted or copied. The file has
/// no configs: the networks' sizes come from <see cref="Configs"/>.
/// </summary>
public sealed class SingleFileCheckpoint : IDisposable
{
    private SingleFileCheckpoint(SafetensorsFile file, SdxlConfigs configs)
    {
        File = file;
        Configs = configs;
        Unet = new Component(file, "UNet", name => SingleFileLayout.Unet(name, configs.Unet));
        Vae = new Component(file, "VAE", name => SingleFileLayout.Vae(name, configs.Vae));
        TextEncoder = new Component(file, "text encoder (CLIP ViT-L)", SingleFileLayout.TextEncoder);
        TextEncoder2 = new Component(file, "text encoder 2 (OpenCLIP ViT-bigG)", SingleFileLayout.TextEncoder2);
    }

    public string Path => File.Path;

    public SafetensorsFile File { get; }

    public SdxlConfigs Configs { get; }

    public IStoredWeightSource Unet { get; }

    public IStoredWeightSource Vae { get; }

    public IStoredWeightSource TextEncoder { get; }

    public IStoredWeightSource TextEncoder2 { get; }

    /// <summary>
    /// Opens a single-file checkpoint and checks that it is SDXL base-class (not SD 1.x/2.x, the SDXL
    /// refiner or a diffusers-named UNet) before any network is built. <paramref name="configs"/>
    /// defaults to <see cref="SdxlConfigs.Base"/>.
    /// </summary>
    public static SingleFileCheckpoint Open(string path, SdxlConfigs? configs = null)
    {
        var file = SafetensorsFile.Open(path);
        try
        {
            CheckLayout(file);
            return new SingleFileCheckpoint(file, configs ?? SdxlConfigs.Base);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    private static void CheckLayout(SafetensorsFile file)
    {
        bool Has(string prefix) => file.Tensors.Keys.Any(k => k.StartsWith(prefix, StringComparison.Ordinal));
        var path = file.Path;
        if (Has(SingleFileLayout.UnetPrefix) && Has(SingleFileLayout.TextEncoder2Prefix) && Has(SingleFileLayout.TextEncoderPrefix))
            return;
        string why =
            Has("cond_stage_model.") ? "it is a Stable Diffusion 1.x/2.x checkpoint (cond_stage_model.*); only SDXL is supported" :
            Has("conditioner.embedders.0.model.") ? "it is an SDXL refiner checkpoint (one OpenCLIP encoder); use an SDXL base-class checkpoint" :
            file.Contains("conv_in.weight") && file.Contains("down_blocks.0.resnets.0.norm1.weight") ? "it is a UNet alone in diffusers names (like SDXL-Lightning's UNet files); give it as the replacement UNet weights of a full model" :
            file.Tensors.Keys.Any(k => k.Contains("lora", StringComparison.OrdinalIgnoreCase)) ? "it holds LoRA weights, not a model" :
            $"it lacks {string.Join(", ", new[] { SingleFileLayout.UnetPrefix, SingleFileLayout.TextEncoderPrefix, SingleFileLayout.TextEncoder2Prefix }.Where(p => !Has(p)).Select(p => p + "*"))}";
        throw new CheckpointException(
            $"{path} is not an SDXL checkpoint in the single-file layout (model.diffusion_model.*, conditioner.embedders.0/1.*, first_stage_model.*): {why}.", path);
    }

    public void Dispose() => File.Dispose();

    /// <summary>One network's view of the file, under diffusers names.</summary>
    private sealed class Component(SafetensorsFile file, string what, Func<string, SingleFileKey?> map) : IStoredWeightSource
    {
        public string Path => file.Path;

        public TensorInfo Expect(string name, long[] shape) => Locate(name, shape).Tensor;

        public StoredWeight Locate(string name, long[] shape)
        {
            var key = map(name) ?? throw new InvalidOperationException($"The single-file layout has no counterpart for the {what} tensor '{name}'.");
            if (!file.Contains(key.Key))
                throw new CheckpointException(
                    $"{Path}: tensor '{key.Key}' (the {what}'s '{name}') is missing: the checkpoint is incomplete or not SDXL.", Path, key.Key);
            var stored = file[key.Key];
            var storedShape = key.StoredShape(shape);
            // diffusers accepts a VAE attention matrix as a 1×1 kernel or already flattened; the bytes are the same.
            bool fits = stored.Shape.SequenceEqual(storedShape) || (key.Layout == StoredAs.OneByOneKernel && stored.Shape.SequenceEqual(shape));
            if (!fits)
                throw new CheckpointException(
                    $"{Path}: tensor '{key.Key}' (the {what}'s '{name}') has shape {stored.ShapeText} but the config needs [{string.Join(", ", storedShape)}] (checkpoint and config do not match).",
                    Path, key.Key);
            return key.Layout switch
            {
                StoredAs.Transposed => new StoredWeight(file, stored, Transposed: true),
                StoredAs.FusedQkvRows => new StoredWeight(file, Rows(stored, key.Part, name, shape)),
                _ => new StoredWeight(file, stored with { Shape = shape }),
            };
        }

        /// <summary>Part <paramref name="part"/> of three equal runs of rows: contiguous, so a view into the file.</summary>
        private static TensorInfo Rows(TensorInfo fused, int part, string name, long[] shape)
        {
            long bytes = fused.ByteLength / SingleFileKey.FusedParts;
            return new TensorInfo($"{fused.Name}[{name}]", fused.DType, shape, fused.Offset + part * bytes, bytes);
        }
    }
}
