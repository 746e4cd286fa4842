using System.Text.Json;
using System.Text.Json.Nodes;
using Mnemosyne.Engine.Checkpoints;
using Mnemosyne.Engine.Networks;
using Mnemosyne.Engine.Safetensors;

namespace Mnemosyne.Testing;

/// <summary>
/// Writes a random-weight checkpoint in exactly the diffusers layout (model_index.json, unet/, vae/,
/// text_encoder*/, tokenizer*/, scheduler/) plus the IP-Adapter and IP-Adapter Plus in h94/IP-Adapter's layout; the same
/// weights as one single file (<see cref="WriteSingleFile"/>); or a UNet alone (<see cref="WriteUnet"/>).
/// The tensors are whatever the engine's networks ask for, so the generator never drifts from the
/// engine. Weights are a deterministic function of the seed and the tensor's (diffusers) name.
/// </summary>
public static partial class RandomCheckpoint
{
    /// <summary>Where the checkpoint folder holds its IP-Adapter: where the engine looks for one when none is given.</summary>
    public const string IpAdapterFolder = IpAdapterFiles.CheckpointFolder;

    /// <summary>The IP-Adapter Plus file beside the base adapter in <see cref="IpAdapterFolder"/>/sdxl_models.</summary>
    public const string PlusAdapterFileName = "ip-adapter-plus_sdxl_vit-h.safetensors";

    public static void Write(string root, CheckpointShape shape, ulong seed, IProgress<string>? log = null)
    {
        Directory.CreateDirectory(root);
        WriteJson(Path.Combine(root, "model_index.json"), new JsonObject
        {
            ["_class_name"] = "StableDiffusionXLPipeline",
            ["_diffusers_version"] = "0.30.0",
            ["force_zeros_for_empty_prompt"] = true,
            ["scheduler"] = Pair("diffusers", "EulerDiscreteScheduler"),
            ["text_encoder"] = Pair("transformers", "CLIPTextModel"),
            ["text_encoder_2"] = Pair("transformers", "CLIPTextModelWithProjection"),
            ["tokenizer"] = Pair("transformers", "CLIPTokenizer"),
            ["tokenizer_2"] = Pair("transformers", "CLIPTokenizer"),
            ["unet"] = Pair("diffusers", "UNet2DConditionModel"),
            ["vae"] = Pair("diffusers", "AutoencoderKL"),
            ["mnemosyne_random_checkpoint"] = new JsonObject { ["shape"] = shape.Name, ["seed"] = seed },
        });
        WriteJson(Path.Combine(Dir(root, "scheduler"), "scheduler_config.json"), SdxlSchedulerConfig());
        SyntheticVocabulary.Write(Dir(root, "tokenizer"), padToken: "<|endoftext|>");
        SyntheticVocabulary.Write(Dir(root, "tokenizer_2"), padToken: "!");

        var unetFile = Path.Combine(Dir(root, "unet"), "diffusion_pytorch_model.safetensors");
        var adapterFile = Path.Combine(Dir(root, IpAdapterFolder, "sdxl_models"), "ip-adapter_sdxl_vit-h.safetensors");
        var unet = new WeightRecorder(unetFile);
        var adapter = new WeightRecorder(adapterFile);
        Unet.BuildGraph(shape.Unet, unet, withIpAdapter: false, null);
        IpAdapterKeys.BuildGraph(shape.Unet, adapter, null);
        ImageProjection.BuildGraph(ImageProjectionConfig.For(shape.ImageEncoder, shape.Unet), adapter, null);

        Component(log, seed, unetFile, "unet", shape.Unet, unet);
        Component(log, seed, Path.Combine(Dir(root, "vae"), "diffusion_pytorch_model.safetensors"), "vae", shape.Vae,
            Record(w => RecordVae(shape.Vae, w), Path.Combine(root, "vae", "diffusion_pytorch_model.safetensors")));
        Component(log, seed, Path.Combine(Dir(root, "text_encoder"), "model.safetensors"), "text_encoder", shape.TextEncoder,
            Record(w => ClipTextEncoder.BuildGraph(shape.TextEncoder, w, null), Path.Combine(root, "text_encoder", "model.safetensors")));
        Component(log, seed, Path.Combine(Dir(root, "text_encoder_2"), "model.safetensors"), "text_encoder_2", shape.TextEncoder2,
            Record(w => ClipTextEncoder.BuildGraph(shape.TextEncoder2, w, null), Path.Combine(root, "text_encoder_2", "model.safetensors")));

        var encoderFolder = Dir(root, IpAdapterFolder, "models", "image_encoder");
        Component(log, seed, Path.Combine(encoderFolder, "model.safetensors"), "image_encoder", shape.ImageEncoder,
            Record(w => ClipVisionEncoder.BuildGraph(shape.ImageEncoder, w, null), Path.Combine(encoderFolder, "model.safetensors")));
        WriteJson(Path.Combine(encoderFolder, "preprocessor_config.json"), new JsonObject
        {
            ["crop_size"] = 224, ["do_center_crop"] = true, ["do_normalize"] = true, ["do_resize"] = true,
            ["image_mean"] = new JsonArray(0.48145466, 0.4578275, 0.40821073),
            ["image_std"] = new JsonArray(0.26862954, 0.26130258, 0.27577711),
            ["resample"] = 3, ["size"] = 224,
        });
        log?.Report("ip-adapter");
        Weights(seed, adapterFile, adapter);
        WritePlusAdapter(root, shape, seed);
    }

    /// <summary>
    /// The IP-Adapter Plus file of a checkpoint <see cref="Write"/> wrote (<see cref="PlusAdapterFileName"/> beside the
    /// base adapter): the same keys and values, as in the real files, and its own resampler.
    /// </summary>
    public static void WritePlusAdapter(string root, CheckpointShape shape, ulong seed)
    {
        var plusFile = Path.Combine(Dir(root, IpAdapterFolder, "sdxl_models"), PlusAdapterFileName);
        var plus = new WeightRecorder(plusFile);
        IpAdapterKeys.BuildGraph(shape.Unet, plus, null);
        IpAdapterPlusImageProjection.BuildGraph(shape.IpAdapterPlus, plus, null);
        Weights(seed, plusFile, plus);
    }

    /// <summary>
    /// Writes the UNet, VAE and text encoders of the checkpoint <see cref="Write"/> makes for the same
    /// shape and seed, with the same values, as one file in the original Stability AI layout
    /// (model.diffusion_model.*, conditioner.embedders.0/1.*, first_stage_model.*): what ComfyUI and
    /// A1111 load. The OpenCLIP encoder's q/k/v are fused and its projection transposed, as in the real files.
    /// F16 rounds every value, as the fp16 files most fine-tunes are shared as do.
    /// </summary>
    public static void WriteSingleFile(string path, CheckpointShape shape, ulong seed, TensorDType dtype = TensorDType.F32)
    {
        var components = new (WeightRecorder Tensors, Func<string, SingleFileKey?> Map)[]
        {
            (Record(w => Unet.BuildGraph(shape.Unet, w, withIpAdapter: false, null), path), name => SingleFileLayout.Unet(name, shape.Unet)),
            (Record(w => RecordVae(shape.Vae, w), path), name => SingleFileLayout.Vae(name, shape.Vae)),
            (Record(w => ClipTextEncoder.BuildGraph(shape.TextEncoder, w, null), path), SingleFileLayout.TextEncoder),
            (Record(w => ClipTextEncoder.BuildGraph(shape.TextEncoder2, w, null), path), SingleFileLayout.TextEncoder2),
        };

        var entries = new List<SafetensorsWriter.Entry>();
        foreach (var (tensors, map) in components)
        {
            var stored = tensors.Tensors.Select(t => (t.Name, t.Shape, Key: map(t.Name)
                ?? throw new InvalidOperationException($"No single-file key for '{t.Name}'.")));
            foreach (var group in stored.GroupBy(t => t.Key.Key))
            {
                var parts = group.OrderBy(t => t.Key.Part).ToArray();
                var first = parts[0];
                if (first.Key.Layout == StoredAs.FusedQkvRows && parts.Length != SingleFileKey.FusedParts)
                    throw new InvalidOperationException($"'{group.Key}' fuses q, k and v but the network asked for {parts.Length} of them.");
                entries.Add(new SafetensorsWriter.Entry(group.Key, first.Key.StoredShape(first.Shape), () => first.Key.Layout switch
                {
                    StoredAs.FusedQkvRows => parts.SelectMany(p => RandomValues(seed, p.Name, p.Shape)).ToArray(),
                    StoredAs.Transposed => Transpose(RandomValues(seed, first.Name, first.Shape), first.Shape),
                    _ => RandomValues(seed, first.Name, first.Shape),
                }));
            }
        }
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        SafetensorsWriter.Write(path, entries, dtype);
    }

    /// <summary>
    /// A UNet weights file alone, in diffusers names, with values drawn from <paramref name="seed"/>: what a
    /// replacement UNet such as SDXL-Lightning's sdxl_lightning_4step_unet.safetensors looks like.
    /// </summary>
    public static void WriteUnet(string path, UnetConfig config, ulong seed, TensorDType dtype = TensorDType.F32)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        Weights(seed, path, Record(w => Unet.BuildGraph(config, w, withIpAdapter: false, null), path), dtype);
    }

    private static float[] Transpose(float[] values, long[] shape)
    {
        long rows = shape[0], columns = shape[1];
        var transposed = new float[values.Length];
        for (long r = 0; r < rows; r++)
            for (long c = 0; c < columns; c++)
                transposed[c * rows + r] = values[r * columns + c];
        return transposed;
    }

    /// <summary>Both halves of the VAE: the decoder every scene uses, the encoder img2img and inpainting use.</summary>
    private static void RecordVae(VaeConfig config, WeightRecorder weights)
    {
        VaeDecoder.BuildGraph(config, weights, null);
        VaeEncoder.BuildGraph(config, weights, null);
    }

    private static WeightRecorder Record(Action<WeightRecorder> build, string path)
    {
        var recorder = new WeightRecorder(path);
        build(recorder);
        return recorder;
    }

    private static void Component<TConfig>(IProgress<string>? log, ulong seed, string weightsPath, string name, TConfig config, WeightRecorder tensors)
    {
        log?.Report(name);
        ConfigJson.Write(Path.Combine(Path.GetDirectoryName(weightsPath)!, "config.json"), config);
        Weights(seed, weightsPath, tensors);
    }

    private static void Weights(ulong seed, string path, WeightRecorder tensors, TensorDType dtype = TensorDType.F32)
        => SafetensorsWriter.Write(path, tensors.Tensors
            .Select(t => new SafetensorsWriter.Entry(t.Name, t.Shape, () => RandomValues(seed, t.Name, t.Shape)))
            .ToList(), dtype);

    /// <summary>
    /// Values with the scale of a trained network, so activations stay finite at any depth: norm
    /// gains near 1, biases and embeddings small, matrices with variance 1/fan-in.
    /// </summary>
    private static float[] RandomValues(ulong seed, string name, long[] shape)
    {
        var count = shape.Aggregate(1L, (a, b) => a * b);
        var values = new float[count];
        var random = new SplitMix(seed ^ Fnv1a(name));
        bool isNormGain = shape.Length == 1 && name.EndsWith(".weight", StringComparison.Ordinal);
        double scale = shape.Length switch
        {
            <= 1 => 0.02,
            _ when name.Contains("embedding", StringComparison.Ordinal) => 0.02,
            _ => 1.0 / Math.Sqrt(shape.Skip(1).Aggregate(1L, (a, b) => a * b)),
        };
        for (long i = 0; i < count; i++)
            values[i] = (float)((isNormGain ? 1.0 : 0.0) + scale * random.NextGaussian());
        return values;
    }

    private static ulong Fnv1a(string text)
    {
        ulong hash = 14695981039346656037UL;
        foreach (var c in text) hash = (hash ^ c) * 1099511628211UL;
        return hash;
    }

    /// <summary>SplitMix64 with Box–Muller: small, fast and the same on every machine and .NET version.</summary>
    private sealed class SplitMix(ulong state)
    {
        private ulong state = state;
        private double spare = double.NaN;

        private ulong Next()
        {
            ulong z = state += 0x9E3779B97F4A7C15UL;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
            return z ^ (z >> 31);
        }

        public double NextGaussian()
        {
            if (!double.IsNaN(spare))
            {
                var result = spare;
                spare = double.NaN;
                return result;
            }
            double u1 = ((Next() >> 11) + 1) * (1.0 / (1UL << 53));
            double u2 = (Next() >> 11) * (1.0 / (1UL << 53));
            double radius = Math.Sqrt(-2.0 * Math.Log(u1));
            spare = radius * Math.Sin(2 * Math.PI * u2);
            return radius * Math.Cos(2 * Math.PI * u2);
        }
    }

    private static JsonObject SdxlSchedulerConfig() => new()
    {
        ["_class_name"] = "EulerDiscreteScheduler",
        ["_diffusers_version"] = "0.19.0.dev0",
        ["beta_end"] = 0.012,
        ["beta_schedule"] = "scaled_linear",
        ["beta_start"] = 0.00085,
        ["clip_sample"] = false,
        ["interpolation_type"] = "linear",
        ["num_train_timesteps"] = 1000,
        ["prediction_type"] = "epsilon",
        ["sample_max_value"] = 1.0,
        ["set_alpha_to_one"] = false,
        ["skip_prk_steps"] = true,
        ["steps_offset"] = 1,
        ["timestep_spacing"] = "leading",
        ["trained_betas"] = null,
        ["use_karras_sigmas"] = false,
    };

    private static JsonArray Pair(string library, string type) => new(library, type);

    private static string Dir(string root, params string[] parts)
    {
        var path = Path.Combine([root, .. parts]);
        Directory.CreateDirectory(path);
        return path;
    }

    private static void WriteJson(string path, JsonNode node)
        => File.WriteAllText(path, node.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
}
