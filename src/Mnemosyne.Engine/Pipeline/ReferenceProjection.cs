using Mnemosyne.Engine.Checkpoints;
using Mnemosyne.Engine.Networks;
using Mnemosyne.Engine.Onnx;
using Mnemosyne.Engine.Tensors;

namespace Mnemosyne.Engine.Pipeline;

/// <summary>
/// The image side of an engine's IP-Adapter, by the kind its file carries (<see cref="IpAdapterKind"/>): what a
/// reference keeps of the image encoder's output, and the tokens the adapter's keys and values are made from. As
/// diffusers' encode_image does, the base adapter projects image_embeds and takes zero embeds for the unconditional
/// branch; Plus resamples the penultimate hidden states and takes those of an all-zero pixel tensor.
/// </summary>
internal sealed class ReferenceProjection : IDisposable
{
    private readonly ImageProjection? baseProjection;
    private readonly IpAdapterPlusImageProjection? resampler;
    private readonly ClipVisionConfig encoderConfig;

    private ReferenceProjection(ImageProjection? baseProjection, IpAdapterPlusImageProjection? resampler, ClipVisionConfig encoderConfig)
    {
        this.baseProjection = baseProjection;
        this.resampler = resampler;
        this.encoderConfig = encoderConfig;
    }

    public IpAdapterKind Kind => resampler is null ? IpAdapterKind.Base : IpAdapterKind.Plus;

    /// <summary>How many values a reference's embedding holds: the encoder's projection_dim, whatever the kind.</summary>
    public int EmbeddingLength => encoderConfig.ProjectionDim;

    /// <summary>The shape of the hidden states a reference of this kind holds, [patches + 1, hidden]; null for the base kind.</summary>
    public int[]? HiddenStatesShape => Kind == IpAdapterKind.Plus
        ? [(encoderConfig.ImageSize / encoderConfig.PatchSize) * (encoderConfig.ImageSize / encoderConfig.PatchSize) + 1, encoderConfig.HiddenSize]
        : null;

    public static ReferenceProjection Load(IpAdapterFiles files, ClipVisionConfig encoderConfig, UnetConfig unet, SessionSettings settings)
        => files.ReadKind() == IpAdapterKind.Plus
            ? new(null, IpAdapterPlusImageProjection.Load(files.AdapterPath, encoderConfig, unet, settings), encoderConfig)
            : new(ImageProjection.Load(files.AdapterPath, ImageProjectionConfig.For(encoderConfig, unet), settings), null, encoderConfig);

    /// <summary>What a reference of this kind keeps of one picture's encoding besides image_embeds: Plus's hidden states [tokens, hidden].</summary>
    public FloatTensor? KeptHiddenStates(ClipVisionOutput encoded)
        => Kind == IpAdapterKind.Plus ? encoded.PenultimateHiddenStates with { Shape = encoded.PenultimateHiddenStates.Shape[1..] } : null;

    /// <summary>
    /// The reference's tokens [1, tokens, cross_attention_dim]; for pictures combined by concatenation, each picture's
    /// tokens side by side as one sequence.
    /// </summary>
    public FloatTensor Tokens(CharacterReference reference, CancellationToken cancellation)
    {
        if (resampler is null)
        {
            var embeddings = reference.PictureEmbeddings ?? [reference.Embedding];
            var tokens = baseProjection!.Run(new FloatTensor(embeddings.SelectMany(e => e).ToArray(), [embeddings.Length, reference.Embedding.Length]), cancellation);
            return new FloatTensor(tokens.Data, [1, tokens.Shape[0] * tokens.Shape[1], tokens.Shape[2]]);
        }
        var states = reference.HiddenStates!;
        return resampler.Run(states with { Shape = [1, .. states.Shape] }, cancellation);
    }

    /// <summary>The unconditional branch's tokens [1, tokens, cross_attention_dim]; Plus runs the image encoder once for them.</summary>
    public FloatTensor UnconditionalTokens(OnDemandNetwork<ClipVisionEncoder> imageEncoder, CancellationToken cancellation)
    {
        if (resampler is null) return baseProjection!.UnconditionalTokens(cancellation);
        // torch.zeros_like of the preprocessed picture: zeros after CLIP's normalisation, not a black picture.
        var zeros = FloatTensorOps.Zeros(1, encoderConfig.NumChannels, encoderConfig.ImageSize, encoderConfig.ImageSize);
        var states = imageEncoder.Use(network => network.Encode(zeros, cancellation).PenultimateHiddenStates);
        return resampler.Run(states, cancellation);
    }

    public void Dispose()
    {
        baseProjection?.Dispose();
        resampler?.Dispose();
    }
}
