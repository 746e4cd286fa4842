using Mnemosyne.Engine.Checkpoints;
using Mnemosyne.Engine.Networks;
using Mnemosyne.Engine.Onnx;
using Mnemosyne.Engine.Safetensors;
using Xunit.Abstractions;

namespace Mnemosyne.Engine.Tests.Checkpoints;

/// <summary>
/// The single-file (Stability AI / ldm) layout of SDXL. The expected keys come from reading diffusers
/// v0.30.0's loaders/single_file_utils.py (convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint,
/// convert_ldm_clip_checkpoint, convert_open_clip_checkpoint) for the SDXL base config.
/// </summary>
public sealed class SingleFileCheckpointTests(ITestOutputHelper output) : IDisposable
{
    private const ulong Seed = 17;
    private readonly string root = Directory.CreateTempSubdirectory("mnemosyne-single-").FullName;

    public void Dispose() => Directory.Delete(root, recursive: true);

    [Theory]
    [InlineData("conv_in.weight", "model.diffusion_model.input_blocks.0.0.weight")]
    [InlineData("time_embedding.linear_2.bias", "model.diffusion_model.time_embed.2.bias")]
    [InlineData("add_embedding.linear_1.weight", "model.diffusion_model.label_emb.0.0.weight")]
    [InlineData("down_blocks.0.resnets.1.conv2.weight", "model.diffusion_model.input_blocks.2.0.out_layers.3.weight")]
    [InlineData("down_blocks.0.downsamplers.0.conv.weight", "model.diffusion_model.input_blocks.3.0.op.weight")]
    [InlineData("down_blocks.1.resnets.0.conv_shortcut.bias", "model.diffusion_model.input_blocks.4.0.skip_connection.bias")]
    [InlineData("down_blocks.1.attentions.1.transformer_blocks.1.attn2.to_k.weight", "model.diffusion_model.input_blocks.5.1.transformer_blocks.1.attn2.to_k.weight")]
    [InlineData("down_blocks.1.downsamplers.0.conv.bias", "model.diffusion_model.input_blocks.6.0.op.bias")]
    [InlineData("down_blocks.2.attentions.0.proj_in.weight", "model.diffusion_model.input_blocks.7.1.proj_in.weight")]
    [InlineData("down_blocks.2.resnets.1.time_emb_proj.weight", "model.diffusion_model.input_blocks.8.0.emb_layers.1.weight")]
    [InlineData("mid_block.resnets.0.norm2.weight", "model.diffusion_model.middle_block.0.out_layers.0.weight")]
    [InlineData("mid_block.attentions.0.transformer_blocks.9.ff.net.0.proj.weight", "model.diffusion_model.middle_block.1.transformer_blocks.9.ff.net.0.proj.weight")]
    [InlineData("mid_block.resnets.1.time_emb_proj.bias", "model.diffusion_model.middle_block.2.emb_layers.1.bias")]
    [InlineData("up_blocks.0.resnets.2.norm1.weight", "model.diffusion_model.output_blocks.2.0.in_layers.0.weight")]
    [InlineData("up_blocks.0.attentions.2.proj_out.bias", "model.diffusion_model.output_blocks.2.1.proj_out.bias")]
    [InlineData("up_blocks.0.upsamplers.0.conv.weight", "model.diffusion_model.output_blocks.2.2.conv.weight")]
    [InlineData("up_blocks.1.attentions.0.norm.weight", "model.diffusion_model.output_blocks.3.1.norm.weight")]
    [InlineData("up_blocks.1.upsamplers.0.conv.bias", "model.diffusion_model.output_blocks.5.2.conv.bias")]
    [InlineData("up_blocks.2.resnets.0.conv_shortcut.weight", "model.diffusion_model.output_blocks.6.0.skip_connection.weight")]
    [InlineData("up_blocks.2.resnets.2.conv1.bias", "model.diffusion_model.output_blocks.8.0.in_layers.2.bias")]
    [InlineData("conv_norm_out.weight", "model.diffusion_model.out.0.weight")]
    [InlineData("conv_out.bias", "model.diffusion_model.out.2.bias")]
    public void MapsUnetNamesAsDiffusersConvertsThem(string diffusers, string single)
    {
        var key = SingleFileLayout.Unet(diffusers, SdxlConfigs.Base.Unet);
        Assert.Equal(new SingleFileKey(single), key);
    }

    [Theory]
    [InlineData("post_quant_conv.weight", "first_stage_model.post_quant_conv.weight", "Same")]
    [InlineData("decoder.conv_in.bias", "first_stage_model.decoder.conv_in.bias", "Same")]
    [InlineData("decoder.mid_block.resnets.1.conv2.bias", "first_stage_model.decoder.mid.block_2.conv2.bias", "Same")]
    [InlineData("decoder.mid_block.attentions.0.group_norm.weight", "first_stage_model.decoder.mid.attn_1.norm.weight", "Same")]
    [InlineData("decoder.mid_block.attentions.0.to_q.weight", "first_stage_model.decoder.mid.attn_1.q.weight", "OneByOneKernel")]
    [InlineData("decoder.mid_block.attentions.0.to_v.bias", "first_stage_model.decoder.mid.attn_1.v.bias", "Same")]
    [InlineData("decoder.mid_block.attentions.0.to_out.0.weight", "first_stage_model.decoder.mid.attn_1.proj_out.weight", "OneByOneKernel")]
    [InlineData("decoder.up_blocks.0.resnets.0.norm1.weight", "first_stage_model.decoder.up.3.block.0.norm1.weight", "Same")]
    [InlineData("decoder.up_blocks.0.upsamplers.0.conv.weight", "first_stage_model.decoder.up.3.upsample.conv.weight", "Same")]
    [InlineData("decoder.up_blocks.2.resnets.0.conv_shortcut.weight", "first_stage_model.decoder.up.1.block.0.nin_shortcut.weight", "Same")]
    [InlineData("decoder.up_blocks.3.resnets.2.conv2.weight", "first_stage_model.decoder.up.0.block.2.conv2.weight", "Same")]
    [InlineData("decoder.conv_norm_out.bias", "first_stage_model.decoder.norm_out.bias", "Same")]
    public void MapsVaeNamesAsDiffusersConvertsThem(string diffusers, string single, string layout)
        => Assert.Equal(new SingleFileKey(single, Enum.Parse<StoredAs>(layout)), SingleFileLayout.Vae(diffusers, SdxlConfigs.Base.Vae));

    [Theory]
    [InlineData("text_model.embeddings.token_embedding.weight", "token_embedding.weight", "Same", 0)]
    [InlineData("text_model.embeddings.position_embedding.weight", "positional_embedding", "Same", 0)]
    [InlineData("text_model.encoder.layers.0.layer_norm1.weight", "transformer.resblocks.0.ln_1.weight", "Same", 0)]
    [InlineData("text_model.encoder.layers.7.layer_norm2.bias", "transformer.resblocks.7.ln_2.bias", "Same", 0)]
    [InlineData("text_model.encoder.layers.31.self_attn.q_proj.weight", "transformer.resblocks.31.attn.in_proj_weight", "FusedQkvRows", 0)]
    [InlineData("text_model.encoder.layers.31.self_attn.k_proj.bias", "transformer.resblocks.31.attn.in_proj_bias", "FusedQkvRows", 1)]
    [InlineData("text_model.encoder.layers.2.self_attn.v_proj.weight", "transformer.resblocks.2.attn.in_proj_weight", "FusedQkvRows", 2)]
    [InlineData("text_model.encoder.layers.2.self_attn.out_proj.weight", "transformer.resblocks.2.attn.out_proj.weight", "Same", 0)]
    [InlineData("text_model.encoder.layers.4.mlp.fc1.bias", "transformer.resblocks.4.mlp.c_fc.bias", "Same", 0)]
    [InlineData("text_model.encoder.layers.4.mlp.fc2.weight", "transformer.resblocks.4.mlp.c_proj.weight", "Same", 0)]
    [InlineData("text_model.final_layer_norm.weight", "ln_final.weight", "Same", 0)]
    [InlineData("text_projection.weight", "text_projection", "Transposed", 0)]
    public void MapsOpenClipNamesAsDiffusersConvertsThem(string diffusers, string single, string layout, int part)
        => Assert.Equal(new SingleFileKey("conditioner.embedders.1.model." + single, Enum.Parse<StoredAs>(layout), part), SingleFileLayout.TextEncoder2(diffusers));

    [Fact]
    public void MapsClipLNamesUnderTheirPrefix()
        => Assert.Equal(new SingleFileKey("conditioner.embedders.0.transformer.text_model.encoder.layers.11.mlp.fc2.bias"),
            SingleFileLayout.TextEncoder("text_model.encoder.layers.11.mlp.fc2.bias"));

    [Theory]
    [InlineData("unet", "down_blocks.3.resnets.0.norm1.weight")]
    [InlineData("unet", "down_blocks.0.downsamplers.1.conv.weight")]
    [InlineData("unet", "mid_block.resnets.2.norm1.weight")]
    [InlineData("unet", "encoder_hid_proj.weight")]
    [InlineData("vae", "encoder.up_blocks.0.resnets.0.norm1.weight")]
    [InlineData("vae", "decoder.down_blocks.0.resnets.0.norm1.weight")]
    [InlineData("vae", "decoder.mid_block.attentions.0.to_x.weight")]
    [InlineData("clip-g", "text_model.encoder.layers.x.mlp.fc1.weight")]
    [InlineData("clip-g", "logit_scale")]
    public void KnowsNoKeyForNamesOutsideTheLayout(string component, string diffusers)
        => Assert.Null(component switch
        {
            "unet" => SingleFileLayout.Unet(diffusers, SdxlConfigs.Base.Unet),
            "vae" => SingleFileLayout.Vae(diffusers, SdxlConfigs.Base.Vae),
            _ => SingleFileLayout.TextEncoder2(diffusers),
        });

    /// <summary>
    /// At SDXL base size every tensor the networks ask for has its own key (q, k, v three to one), and the
    /// key counts are those of sd_xl_base_1.0.safetensors' UNet, CLIP-L and OpenCLIP sections (1680,
    /// 196 without position_ids, 389 without logit_scale) and its VAE decoder with post_quant_conv (140).
    /// </summary>
    [Fact]
    public void GivesEveryTensorOfSdxlBaseItsOwnKey()
    {
        var configs = SdxlConfigs.Base;
        var components = new (Action<WeightRecorder> Build, Func<string, SingleFileKey?> Map, int Keys)[]
        {
            (w => Unet.BuildGraph(configs.Unet, w, withIpAdapter: false, null), n => SingleFileLayout.Unet(n, configs.Unet), 1680),
            (w => VaeDecoder.BuildGraph(configs.Vae, w, null), n => SingleFileLayout.Vae(n, configs.Vae), 140),
            (w => ClipTextEncoder.BuildGraph(configs.TextEncoder, w, null), SingleFileLayout.TextEncoder, 196),
            (w => ClipTextEncoder.BuildGraph(configs.TextEncoder2, w, null), SingleFileLayout.TextEncoder2, 389),
        };
        var everyKey = new HashSet<string>();
        foreach (var (build, map, keys) in components)
        {
            var recorder = new WeightRecorder("sdxl");
            build(recorder);
            var stored = recorder.Tensors.Select(t => (t.Name, t.Shape, Key: map(t.Name))).ToList();
            Assert.All(stored, t => Assert.NotNull(t.Key));
            var groups = stored.GroupBy(t => t.Key!.Key).ToList();
            Assert.Equal(keys, groups.Count);
            foreach (var group in groups)
            {
                Assert.True(everyKey.Add(group.Key), $"{group.Key} is claimed twice");
                var parts = group.Select(t => t.Key!).ToList();
                if (parts[0].Layout == StoredAs.FusedQkvRows) Assert.Equal([0, 1, 2], parts.Select(p => p.Part).Order());
                else Assert.Single(parts);
                // Fused parts agree on the shape of the whole.
                Assert.Single(group.Select(t => string.Join(",", t.Key!.StoredShape(t.Shape))).Distinct());
            }
        }
    }

    private (string Diffusers, string Single) WriteBoth(TensorDType dtype)
    {
        var diffusers = Path.Combine(root, "diffusers");
        if (!Directory.Exists(diffusers)) RandomCheckpoint.Write(diffusers, CheckpointShape.Tiny, Seed);
        var single = Path.Combine(root, $"tiny-{dtype}.safetensors");
        RandomCheckpoint.WriteSingleFile(single, CheckpointShape.Tiny, Seed, dtype);
        return (diffusers, single);
    }

    private static SdxlConfigs TinyConfigs => new(
        CheckpointShape.Tiny.Unet, CheckpointShape.Tiny.Vae, CheckpointShape.Tiny.TextEncoder, CheckpointShape.Tiny.TextEncoder2);

    /// <summary>Every tensor read through the single file's name map equals the diffusers file's (F16: its rounding).</summary>
    [Theory]
    [InlineData(TensorDType.F32)]
    [InlineData(TensorDType.F16)]
    public void ReadsBackTheDiffusersTensorsFromTheSingleFile(TensorDType dtype)
    {
        var (diffusers, singlePath) = WriteBoth(dtype);
        using var single = SingleFileCheckpoint.Open(singlePath, TinyConfigs);
        var pairs = new (string File, IStoredWeightSource Source)[]
        {
            ("unet/diffusion_pytorch_model.safetensors", single.Unet),
            ("vae/diffusion_pytorch_model.safetensors", single.Vae),
            ("text_encoder/model.safetensors", single.TextEncoder),
            ("text_encoder_2/model.safetensors", single.TextEncoder2),
        };
        int compared = 0, transposed = 0, sliced = 0;
        foreach (var (file, source) in pairs)
        {
            using var expected = SafetensorsFile.Open(Path.Combine(diffusers, file));
            foreach (var tensor in expected.Tensors.Values)
            {
                var stored = source.Locate(tensor.Name, tensor.Shape);
                Assert.Equal(dtype, stored.Tensor.DType);
                var values = new float[tensor.ElementCount];
                single.File.ReadFloat32(stored.Tensor, values);
                if (stored.Transposed)
                {
                    values = Transpose(values, stored.Tensor.Shape);
                    transposed++;
                }
                if (stored.Tensor.Name.EndsWith(']')) sliced++;
                var want = expected.ReadFloat32(tensor.Name);
                if (dtype == TensorDType.F16) want = want.Select(v => (float)(Half)v).ToArray();
                Assert.True(want.AsSpan().SequenceEqual(values), $"{tensor.Name} differs");
                compared++;
            }
        }
        // The VAE: 140 decoder tensors and 108 encoder ones.
        Assert.Equal(618 + 140 + 108 + 52 + 53, compared);
        Assert.Equal(1, transposed);
        Assert.Equal(3 * 2 * CheckpointShape.Tiny.TextEncoder2.NumHiddenLayers, sliced);
    }

    private static float[] Transpose(float[] values, long[] storedShape)
    {
        long rows = storedShape[0], columns = storedShape[1];
        var result = new float[values.Length];
        for (long r = 0; r < rows; r++)
            for (long c = 0; c < columns; c++)
                result[c * rows + r] = values[r * columns + c];
        return result;
    }

    /// <summary>
    /// Through ONNX Runtime: q/k/v sliced out of an F16 fused tensor (external data at an offset, then a
    /// cast) and the transposed projection give what the F32 diffusers encoder gives, up to F16 rounding.
    /// </summary>
    [Fact]
    public void AnF16SingleFileEncodesTextAsItsF32Twin()
    {
        var (diffusers, singlePath) = WriteBoth(TensorDType.F16);
        using var single = SingleFileCheckpoint.Open(singlePath, TinyConfigs);
        using var fromSingle = ClipTextEncoder.Load(TinyConfigs.TextEncoder2, single.TextEncoder2, SessionSettings.Default);
        using var fromFolder = ClipTextEncoder.Load(Path.Combine(diffusers, "text_encoder_2"), SessionSettings.Default);
        var ids = new long[77];
        for (int i = 0; i < ids.Length; i++) ids[i] = i switch { 0 => SyntheticVocabulary.Bos, < 9 => 40 + 7 * i, 9 => SyntheticVocabulary.Eos, _ => 0 };

        var expected = fromFolder.Run([ids]);
        var actual = fromSingle.Run([ids]);

        double hiddenError = MaxAbs(expected.PenultimateHiddenStates.Data, actual.PenultimateHiddenStates.Data);
        double pooledError = MaxAbs(expected.TextEmbeds!.Data, actual.TextEmbeds!.Data);
        output.WriteLine($"F16 single file vs F32 folder: hidden states max-abs {hiddenError:E2}, text embeds {pooledError:E2}");
        Assert.InRange(hiddenError, 0, 1e-2);
        Assert.InRange(pooledError, 0, 1e-2);
    }

    private static double MaxAbs(float[] a, float[] b) => a.Zip(b, (x, y) => Math.Abs((double)x - y)).Max();

    [Fact]
    public void NamesTheKeyAndTheDiffusersTensorWhenTheConfigDoesNotFit()
    {
        var (_, single) = WriteBoth(TensorDType.F32);
        using var checkpoint = SingleFileCheckpoint.Open(single);
        var e = Assert.Throws<CheckpointException>(() => Unet.BuildGraph(checkpoint.Configs.Unet, checkpoint.Unet, withIpAdapter: false, null));
        Assert.Contains("model.diffusion_model.", e.Message);
        Assert.Contains("the UNet's '", e.Message);
        Assert.Contains("checkpoint and config do not match", e.Message);
        Assert.StartsWith("model.diffusion_model.", e.TensorName);
    }

    [Fact]
    public void NamesAMissingKey()
    {
        var path = Path.Combine(root, "partial.safetensors");
        SafetensorsWriter.Write(path, [
            new("model.diffusion_model.input_blocks.0.0.weight", [1], () => [0f]),
            new("conditioner.embedders.0.transformer.text_model.embeddings.position_embedding.weight", [1], () => [0f]),
            new("conditioner.embedders.1.model.positional_embedding", [1], () => [0f]),
        ]);
        using var checkpoint = SingleFileCheckpoint.Open(path);
        var e = Assert.Throws<CheckpointException>(() => checkpoint.Vae.Locate("decoder.conv_in.weight", [512, 4, 3, 3]));
        Assert.Contains("'first_stage_model.decoder.conv_in.weight' (the VAE's 'decoder.conv_in.weight') is missing", e.Message);
    }

    [Theory]
    [InlineData("cond_stage_model.transformer.text_model.embeddings.position_embedding.weight", "Stable Diffusion 1.x/2.x")]
    [InlineData("conditioner.embedders.0.model.text_projection", "SDXL refiner")]
    [InlineData("conv_in.weight", "replacement UNet")]
    [InlineData("lora_unet_down_blocks_0.alpha", "LoRA")]
    public void RefusesFilesOfOtherLayouts(string key, string expected)
    {
        var path = Path.Combine(root, "other.safetensors");
        var tensors = new List<SafetensorsWriter.Entry> { new(key, [1], () => [0f]) };
        if (key == "conv_in.weight") tensors.Add(new("down_blocks.0.resnets.0.norm1.weight", [1], () => [0f]));
        if (key.StartsWith("conditioner", StringComparison.Ordinal)) tensors.Add(new("model.diffusion_model.out.2.bias", [1], () => [0f]));
        SafetensorsWriter.Write(path, tensors);
        var e = Assert.Throws<CheckpointException>(() => SingleFileCheckpoint.Open(path));
        Assert.Contains(expected, e.Message);
        Assert.Contains(path, e.Message);
    }
}
