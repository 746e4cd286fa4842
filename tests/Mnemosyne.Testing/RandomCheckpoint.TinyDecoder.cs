using Mnemosyne.Engine.Checkpoints;
using Mnemosyne.Engine.Networks;
using Mnemosyne.Engine.Safetensors;

namespace Mnemosyne.Testing;

/// <summary>The tiny autoencoder (madebyollin/taesdxl's layout) beside a random checkpoint.</summary>
public static partial class RandomCheckpoint
{
    /// <summary>
    /// The output layer's weights at this fraction of the usual scale, with a bias of 0.5: random layers alone put
    /// the picture far outside [0, 1] (all black or white after clamping); a trained decoder's output lies inside.
    /// </summary>
    private const float TinyDecoderOutputScale = 0.3f;

    /// <summary>TAESDXL's stages and blocks at a quarter of its width: moments to write and run.</summary>
    public static TinyAutoencoderConfig TinyDecoderShape { get; } = new()
    {
        EncoderBlockOutChannels = new[] { 16, 16, 16, 16 },
        DecoderBlockOutChannels = new[] { 16, 16, 16, 16 },
    };

    /// <summary>
    /// Writes a tiny autoencoder in diffusers' layout (config.json + diffusion_pytorch_model.safetensors) with values
    /// drawn from <paramref name="seed"/>. Only the decoder's tensors are written: the encoder is never run.
    /// </summary>
    public static void WriteTinyDecoder(string folder, TinyAutoencoderConfig config, ulong seed)
    {
        Directory.CreateDirectory(folder);
        var path = Path.Combine(folder, TinyAutoencoderDecoder.WeightsFileName);
        var tensors = Record(w => TinyAutoencoderDecoder.BuildGraph(config, w, null), path).Tensors.ToList();
        // The graph asks for the output convolution last: its weight, then its bias.
        var (outputWeight, outputBias) = (tensors[^2].Name, tensors[^1].Name);
        ConfigJson.Write(Path.Combine(folder, TinyAutoencoderDecoder.ConfigFileName), config);
        SafetensorsWriter.Write(path, tensors.Select(t => new SafetensorsWriter.Entry(t.Name, t.Shape, () =>
        {
            var values = RandomValues(seed, t.Name, t.Shape);
            if (t.Name == outputWeight) for (int i = 0; i < values.Length; i++) values[i] *= TinyDecoderOutputScale;
            if (t.Name == outputBias) Array.Fill(values, 0.5f);
            return values;
        })).ToList(), TensorDType.F32);
    }
}
