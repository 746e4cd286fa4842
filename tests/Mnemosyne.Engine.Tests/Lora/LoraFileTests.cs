using Mnemosyne.Engine.Lora;
using Mnemosyne.Engine.Safetensors;

namespace Mnemosyne.Engine.Tests.Lora;

/// <summary>What LoraFile reads from each layout, and the kinds of file it refuses, naming what they are.</summary>
public sealed class LoraFileTests : IDisposable
{
    private readonly string folder = Directory.CreateTempSubdirectory("mnemosyne-lora-files-").FullName;

    private string Write(params (string Name, long[] Shape)[] tensors)
    {
        var path = Path.Combine(folder, $"lora-{Guid.NewGuid():N}.safetensors");
        SafetensorsWriter.Write(path, tensors.Select(t => new SafetensorsWriter.Entry(t.Name, t.Shape,
            () => Enumerable.Repeat(2f, (int)t.Shape.Aggregate(1L, (a, b) => a * b)).ToArray())).ToList());
        return path;
    }

    [Fact]
    public void ReadsKohyaLayersWithTheirAlpha_IncludingConvolutions()
    {
        var path = Write(
            ("lora_unet_down_blocks_1_attentions_0_proj_in.lora_down.weight", [4, 64]),
            ("lora_unet_down_blocks_1_attentions_0_proj_in.lora_up.weight", [64, 4]),
            ("lora_unet_down_blocks_1_attentions_0_proj_in.alpha", []),
            ("lora_unet_conv_in.lora_down.weight", [3, 4, 3, 3]),
            ("lora_unet_conv_in.lora_up.weight", [32, 3, 1, 1]),
            ("lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_down.weight", [2, 32]),
            ("lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_up.weight", [37, 2]));
        using var lora = LoraFile.Open(path);

        var proj = lora.Layers.Single(l => l.Module == "down_blocks_1_attentions_0_proj_in");
        Assert.Equal((LoraTarget.Unet, true, 4L, 0.5f), (proj.Target, proj.KohyaName, proj.Rank, proj.Scale));
        var conv = lora.Layers.Single(l => l.Module == "conv_in");
        Assert.Equal([3L, 4, 3, 3], conv.Down.Shape);
        Assert.Equal(1f, conv.Scale);
        Assert.Equal(LoraTarget.TextEncoder2, lora.Layers.Single(l => l.Module == "text_model_encoder_layers_0_mlp_fc1").Target);
        Assert.Matches("^[0-9a-f]{12}$", lora.ShortHash());
    }

    [Theory]
    [InlineData(".lora_A.weight", ".lora_B.weight")]
    [InlineData(".lora.down.weight", ".lora.up.weight")]
    public void ReadsDiffusersLayersByTheirModulePath(string down, string up)
    {
        var path = Write(
            ("unet.mid_block.attentions.0.transformer_blocks.0.attn2.to_k" + down, [2, 64]),
            ("unet.mid_block.attentions.0.transformer_blocks.0.attn2.to_k" + up, [64, 2]),
            ("text_encoder.text_model.encoder.layers.1.self_attn.q_proj" + down, [2, 32]),
            ("text_encoder.text_model.encoder.layers.1.self_attn.q_proj" + up, [32, 2]));
        using var lora = LoraFile.Open(path);

        Assert.Equal(
            [(LoraTarget.Unet, "mid_block.attentions.0.transformer_blocks.0.attn2.to_k"), (LoraTarget.TextEncoder, "text_model.encoder.layers.1.self_attn.q_proj")],
            lora.Layers.Select(l => (l.Target, l.Module)).OrderBy(l => l.Target));
        Assert.All(lora.Layers, l => Assert.Equal((false, 1f), (l.KohyaName, l.Scale)));
    }

    [Theory]
    [InlineData("lora_unet_conv_in.hada_w1_a", "LyCORIS LoHa")]
    [InlineData("lora_unet_conv_in.lokr_w1", "LyCORIS LoKr")]
    [InlineData("lora_unet_conv_in.dora_scale", "DoRA")]
    [InlineData("lora_unet_conv_in.lora_mid.weight", "lora_mid")]
    [InlineData("lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight", "Stable Diffusion 1.x/2.x")]
    [InlineData("model.diffusion_model.conv_in.weight", "something other than an SDXL LoRA")]
    [InlineData("lora_unet_conv_in.diff", "another kind of network")]
    public void RefusesOtherKindsOfFile_NamingWhatTheyAre(string key, string what)
    {
        var path = Write((key, [2, 4]));
        var error = Assert.Throws<CheckpointException>(() => LoraFile.Open(path));
        Assert.Contains(what, error.Message);
        Assert.Contains(key, error.Message);
        Assert.Equal(path, error.FilePath);
    }

    [Fact]
    public void RefusesALayerWithoutItsUpMatrix_OrWithFactorsThatDoNotMultiply()
    {
        var half = Write(("lora_unet_conv_in.lora_down.weight", [2, 4]));
        Assert.Contains("no up (B) matrix", Assert.Throws<CheckpointException>(() => LoraFile.Open(half)).Message);
        var misfit = Write(("lora_unet_conv_in.lora_down.weight", [2, 4]), ("lora_unet_conv_in.lora_up.weight", [32, 3]));
        Assert.Contains("do not make a LoRA's low-rank product", Assert.Throws<CheckpointException>(() => LoraFile.Open(misfit)).Message);
    }

    [Theory]
    [InlineData(new long[] { 4, 64 }, new long[] { 32, 4 }, new long[] { 32, 64 }, true)]
    [InlineData(new long[] { 4, 64, 1, 1 }, new long[] { 32, 4, 1, 1 }, new long[] { 32, 64 }, true)]
    [InlineData(new long[] { 4, 64, 3, 3 }, new long[] { 32, 4, 1, 1 }, new long[] { 32, 64, 3, 3 }, true)]
    [InlineData(new long[] { 4, 64 }, new long[] { 32, 4 }, new long[] { 32, 64, 1, 1 }, true)]
    [InlineData(new long[] { 4, 64 }, new long[] { 32, 4 }, new long[] { 32, 64, 3, 3 }, false)]
    [InlineData(new long[] { 4, 64, 3, 3 }, new long[] { 32, 4, 1, 1 }, new long[] { 32, 64 }, false)]
    [InlineData(new long[] { 4, 768 }, new long[] { 32, 4 }, new long[] { 32, 64 }, false)]
    [InlineData(new long[] { 4, 64 }, new long[] { 320, 4 }, new long[] { 32, 64 }, false)]
    public void AProductFitsOnlyAWeightOfItsShape(long[] down, long[] up, long[] weight, bool fits)
    {
        var layer = new LoraLayer(LoraTarget.Unet, "m", true,
            new TensorInfo("d", TensorDType.F32, down, 0, 0), new TensorInfo("u", TensorDType.F32, up, 0, 0), null);
        Assert.Equal(fits, LoraSet.Fits(layer, weight));
    }

    public void Dispose() => Directory.Delete(folder, recursive: true);
}
