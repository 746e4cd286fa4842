using Mnemosyne.Engine.Checkpoints;
using Mnemosyne.Engine.Conversion;
using Mnemosyne.Engine.Networks;
using Mnemosyne.Engine.Onnx;
using Mnemosyne.Engine.Safetensors;
using Mnemosyne.Engine.Tensors;
using Xunit.Abstractions;

namespace Mnemosyne.Engine.Tests.Networks;

/// <summary>
/// The UNet with 8-bit linear weights (<see cref="WeightPrecision.Int8"/>): which weights it quantises, how far its
/// output lies from float32 and from diffusers on the tiny models (reported, and bounded loosely enough
/// for honest quantisation error but not for a broken quantiser), and its cache of converted weights.
/// </summary>
[Trait(TestPaths.ReadsTrait, TestPaths.ReadsShared)]
public sealed class UnetInt8Tests(ITestOutputHelper output, TinyModelUnets float32Unets, TinyModelInt8Unets int8Unets, TinyUnetCheckpoint tiny)
    : IClassFixture<TinyModelUnets>, IClassFixture<TinyModelInt8Unets>, IClassFixture<TinyUnetCheckpoint>, IDisposable
{
    private readonly string cache = Directory.CreateTempSubdirectory("mnemosyne-int8-tiny-").FullName;

    public void Dispose() => Directory.Delete(cache, recursive: true);

    private SessionSettings Int8 => new() { Precision = WeightPrecision.Int8, ConvertedWeightsRoot = cache };

    /// <summary>
    /// Bound on max-abs(int8 − reference) / max-abs(reference output) for one UNet forward. Weight and activation
    /// rounding give about 1% here; a wrong scale, layout or zero point gives errors of the output's own size.
    /// </summary>
    private const float RelativeBound = 0.05f;

    /// <summary>Every linear layer of SDXL base and its adapter's key/value projections is quantised (the matrices), nothing else.</summary>
    [Fact]
    public void QuantisesEveryLinearMatrixOfSdxlAndNothingElse()
    {
        var (unetRecorder, adapterRecorder) = (new WeightRecorder("unet"), new WeightRecorder("adapter"));
        var (unet, adapter) = (new WeightConversionPlan(unetRecorder), new WeightConversionPlan(adapterRecorder));
        Unet.BuildGraph(new UnetConfig(), unet, withIpAdapter: true, null);
        IpAdapterKeys.BuildGraph(new UnetConfig(), adapter, null);

        var quantised = unet.Weights.Where(w => w.Quantised).ToList();
        Assert.Equal(743, quantised.Count);
        Assert.All(quantised, w => Assert.Equal(2, w.Shape.Length));
        Assert.Equal(unet.Weights.Where(w => w.Shape.Length == 2).Select(w => w.Name), quantised.Select(w => w.Name));
        Assert.Equal(2_232_647_680L, quantised.Sum(w => w.Shape[0] * w.Shape[1]));
        Assert.Contains(quantised, w => w.Name == "down_blocks.2.attentions.1.transformer_blocks.9.ff.net.0.proj.weight");
        Assert.Contains(quantised, w => w.Name == "add_embedding.linear_1.weight");
        Assert.DoesNotContain(unet.Weights, w => w.Quantised && (w.Name.Contains("conv") || w.Name.Contains("norm")));
        Assert.Equal(140, adapter.Weights.Count(w => w.Quantised));
        // The plan asks for what the float32 graph asks for, no more.
        Assert.Equal(unetRecorder.Tensors.Select(t => t.Name), unet.Weights.Select(w => w.Name));
    }

    [Fact]
    public void TheSecondLoadReadsTheConvertedWeightsWithoutConverting()
    {
        var sample = TinyUnetCheckpoint.Random([2, 4, 6, 4], seed: 8);
        FloatTensor Run()
        {
            using var unet = Unet.Load(tiny.UnetFolder, tiny.Adapter, Int8);
            using var keys = IpAdapterKeys.Load(tiny.Adapter.AdapterPath, TinyUnetCheckpoint.Config, Int8);
            var output = unet.Run(sample, 400f, tiny.Conditioning(2) with { IpKeyValues = keys.Run(tiny.IpTokens(2)), IpScale = 0.5f });
            // Scale 0 is still exactly the UNet without an adapter.
            using var plain = Unet.Load(tiny.UnetFolder, null, Int8);
            Assert.Equal(plain.Run(sample, 400f, tiny.Conditioning(2)).Data,
                unet.Run(sample, 400f, tiny.Conditioning(2) with { IpKeyValues = keys.Run(tiny.IpTokens(2)), IpScale = 0 }).Data);
            return output;
        }

        var first = Run();
        var files = Directory.GetFiles(cache, "*.safetensors", SearchOption.AllDirectories).Order().ToArray();
        // A folder per source file, each holding every weight its session reads (ONNX Runtime takes external data from one folder).
        Assert.Collection(files.Select(Path.GetFileName).Order(),
            name => Assert.StartsWith("ip-adapter-keys-", name),
            name => Assert.StartsWith("unet-", name));
        Assert.Equal(2, files.Select(Path.GetDirectoryName).Distinct().Count());
        var written = files.Select(File.GetLastWriteTimeUtc).ToArray();

        Assert.Equal(first.Data, Run().Data);
        Assert.Equal(files, Directory.GetFiles(cache, "*.safetensors", SearchOption.AllDirectories).Order());
        Assert.Equal(written, files.Select(File.GetLastWriteTimeUtc));
    }

    [Fact]
    public void RefusesABadCheckpointBeforeConvertingAnything()
    {
        const string missing = "up_blocks.0.attentions.1.transformer_blocks.0.attn2.to_v.weight";
        var folder = tiny.WriteUnetFolder(tensors => tensors.Where(t => t.Name != missing));
        var e = Assert.Throws<CheckpointException>(() => Unet.Load(folder, null, Int8));
        Assert.Equal(missing, e.TensorName);
        Assert.Empty(Directory.GetFileSystemEntries(cache));

        var extra = tiny.WriteAdapter(tensors => tensors.Append(new TinyUnetCheckpoint.Tensor("ip_adapter.41.to_k_ip.weight", [16, 12])));
        Assert.Equal("ip_adapter.41.to_k_ip.weight", Assert.Throws<CheckpointException>(() => Unet.Load(tiny.UnetFolder, extra, Int8)).TensorName);
        Assert.Equal("ip_adapter.41.to_k_ip.weight",
            Assert.Throws<CheckpointException>(() => IpAdapterKeys.Load(extra.AdapterPath, TinyUnetCheckpoint.Config, Int8)).TensorName);
        Assert.Empty(Directory.GetFileSystemEntries(cache));
    }

    [Theory]
    [MemberData(nameof(UnetTests.FixtureCases), MemberType = typeof(UnetTests))]
    public void StaysCloseToFloat32AndToDiffusers(string model, string caseName, string scale)
    {
        var tinyModel = TinyModel.Named(model);
        var (sample, timestep, conditioning, expected) = NetworkFixtures.ReadUnetCase(tinyModel.NetworkCases, caseName, scale, float32Unets.AdapterKeys(tinyModel));
        var float32 = float32Unets.WithAdapter(tinyModel).Run(sample, timestep, conditioning);
        var (_, _, int8Conditioning, _) = NetworkFixtures.ReadUnetCase(tinyModel.NetworkCases, caseName, scale, int8Unets.AdapterKeys(tinyModel));
        var int8 = int8Unets.WithAdapter(tinyModel).Run(sample, timestep, int8Conditioning);

        float peak = expected.Data.Max(Math.Abs);
        float fromDiffusers = NetworkFixtures.MaxAbsError(expected, int8);
        float fromFloat32 = NetworkFixtures.MaxAbsError(float32, int8);
        output.WriteLine($"config {model} {caseName} at scale {scale}: int8 max-abs error {fromDiffusers:g3} against diffusers, {fromFloat32:g3} against float32 " +
                         $"(outputs up to {peak:g3}: {fromDiffusers / peak:P2})");
        Assert.True(fromDiffusers <= RelativeBound * peak, $"int8 is {fromDiffusers:g3} from diffusers, over {RelativeBound:P0} of {peak:g3}");
        Assert.True(fromFloat32 <= RelativeBound * peak, $"int8 is {fromFloat32:g3} from float32, over {RelativeBound:P0} of {peak:g3}");
    }
}
