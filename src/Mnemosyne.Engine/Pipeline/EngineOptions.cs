using Mnemosyne.Engine.Checkpoints;
using Mnemosyne.Engine.Conversion;
using Mnemosyne.Engine.Models;
using Mnemosyne.Engine.Onnx;

namespace Mnemosyne.Engine.Pipeline;

/// <summary>What to open: an SDXL checkpoint, and the IP-Adapter that gives it a memory.</summary>
public sealed record EngineOptions
{
    /// <summary>
    /// A Stable Diffusion XL checkpoint: a folder in the diffusers layout, or one .safetensors file in the
    /// original Stability AI layout (ComfyUI / A1111 checkpoints; then <see cref="BaseModelPath"/> is needed).
    /// </summary>
    public required string CheckpointPath { get; init; }

    /// <summary>
    /// For a single-file checkpoint, which carries no tokenizer, scheduler or configs: a folder in the
    /// diffusers SDXL layout (stabilityai/stable-diffusion-xl-base-1.0, e.g. its snapshot in the Hugging
    /// Face cache) whose tokenizer/, tokenizer_2/ and scheduler/ are used, and whose unet/, vae/,
    /// text_encoder/ and text_encoder_2/ config.json files replace SDXL base's where present. Its weights
    /// are not read. Ignored for a diffusers folder.
    /// </summary>
    public string? BaseModelPath { get; init; }

    /// <summary>
    /// A UNet weights file in diffusers names that replaces the checkpoint's UNet weights (the config
    /// stays), e.g. ByteDance/SDXL-Lightning's sdxl_lightning_4step_unet.safetensors; such few-step
    /// UNets want <see cref="SceneRequest.ForFewStepUnet"/>.
    /// </summary>
    public string? UnetWeightsPath { get; init; }

    /// <summary>
    /// The sampling <see cref="UnetWeightsPath"/> was distilled for, from its model manifest (e.g. 2 trailing Euler
    /// steps for sdxl-lightning-2step-unet), which <see cref="SceneRequest.ForFewStepUnet"/> takes; null when unknown.
    /// </summary>
    public SchedulerSettings? UnetSampling { get; init; }

    /// <summary>ip-adapter_sdxl_vit-h.safetensors; null opens the engine without references.</summary>
    public string? IpAdapterPath { get; init; }

    /// <summary>
    /// The CLIP ViT-H image encoder folder (config.json + model.safetensors); null takes the one beside the adapter
    /// in the h94/IP-Adapter layout (<see cref="IpAdapterFiles.ImageEncoderBeside"/>).
    /// </summary>
    public string? ImageEncoderPath { get; init; }

    /// <summary>
    /// A tiny autoencoder folder in the diffusers layout (madebyollin/taesdxl: config.json +
    /// diffusion_pytorch_model.safetensors), or its weights file: loaded at open (a few MB), it decodes scenes that ask
    /// for <see cref="SceneDecoder.Tiny"/> and draws live previews. Null: the engine offers neither.
    /// </summary>
    public string? TinyDecoderPath { get; init; }

    /// <summary>
    /// The name stored with every scene (e.g. "sdxl-base-1.0" for a model opened from the Hugging Face cache,
    /// whose snapshot folder is named by a commit hash); null takes the checkpoint's folder or file name.
    /// </summary>
    public string? ModelName { get; init; }

    /// <summary>Threads for ONNX Runtime; 0 uses every core.</summary>
    public int Threads { get; init; }

    /// <summary>
    /// Keep the text and image encoders (and the VAE encoder, once a scene from a picture has used it) loaded between
    /// scenes (faster for many different prompts); by default they are loaded when a new prompt, reference or starting
    /// picture needs them and released after, so their 5 GB (SDXL + ViT-H) are not held while the UNet runs.
    /// </summary>
    public bool KeepEncodersLoaded { get; init; }

    /// <summary>
    /// Release the UNet while the VAE decodes, and load it again for the next scene: a 1024² scene then
    /// peaks at the UNet's size instead of the UNet's plus the decoder's, at the cost of reloading the
    /// UNet (about 20 s from a warm page cache) per scene. Without it the UNet is released only when
    /// the system has too little memory left for the decode.
    /// </summary>
    public bool LowMemory { get; init; }

    /// <summary>"fp16" reads a diffusers folder's *.fp16.safetensors files where present.</summary>
    public string? Variant { get; init; }

    /// <summary>
    /// Float32 (the default) runs the checkpoint as it is; Int8 runs the linear layers of the UNet and the CLIP
    /// encoders with 8-bit weights (<see cref="WeightPrecision.Int8"/>): faster and smaller, with a small deviation
    /// from Float32. The first use of each network in Int8 converts its weights once into <see cref="ConvertedWeightsPath"/>.
    /// </summary>
    public WeightPrecision Precision { get; init; }

    /// <summary>Where weights converted for <see cref="Precision"/> are kept; null uses <see cref="ConvertedWeightCache.DefaultRoot"/>.</summary>
    public string? ConvertedWeightsPath { get; init; }

    /// <summary>
    /// Where each network's session is kept once ONNX Runtime has optimised it and pre-packed its weights, so that later
    /// opens map it instead of doing that work again (<see cref="SessionCache"/>); null uses <see cref="SessionCache.DefaultRoot"/>.
    /// </summary>
    public string? SessionCachePath { get; init; }

    /// <summary>Optimise every network's session at every open, and keep nothing in <see cref="SessionCachePath"/>.</summary>
    public bool DisableSessionCache { get; init; }

    /// <summary>
    /// Where the networks run: the CPU (the default), or an NVIDIA GPU through ONNX Runtime's CUDA provider, which the open
    /// checks first (<see cref="CudaProvider.EnsureAvailable"/>: an <see cref="ExecutionProviderUnavailableException"/> names
    /// what is missing). On CUDA no session is saved or loaded (<see cref="SessionCachePath"/>): a saved session holds
    /// the CPU kernels' packed weights.
    /// </summary>
    public ExecutionProvider ExecutionProvider { get; init; }
}
