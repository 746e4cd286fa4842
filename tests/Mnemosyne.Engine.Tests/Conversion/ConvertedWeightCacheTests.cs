using System.Runtime.InteropServices;
using Mnemosyne.Engine.Conversion;
using Mnemosyne.Engine.Onnx;
using Mnemosyne.Engine.Safetensors;

namespace Mnemosyne.Engine.Tests.Conversion;

public sealed class ConvertedWeightCacheTests : IDisposable
{
    private const int Rows = 4, Columns = 40;
    private readonly string dir = Directory.CreateTempSubdirectory("mnemosyne-converted-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    private string Folder => Path.Combine(dir, "cache", "model");

    private static float[] Matrix(float offset)
        => Enumerable.Range(0, Rows * Columns).Select(i => (i % 13 - 6) / 8f + offset).ToArray();

    private string WriteSource(float offset, TensorDType dtype = TensorDType.F32)
    {
        var path = Path.Combine(dir, "model.safetensors");
        SafetensorsWriter.Write(path, [
            new("fc.weight", [Rows, Columns], () => Matrix(offset)),
            new("fc.bias", [Rows], () => [0.5f, -0.25f, 1f, offset]),
            new("conv.weight", [2, 1, 1, 2], () => [1f, 2f, 3f, offset]),
        ], dtype);
        return path;
    }

    /// <summary>What a network built over the source would ask for: a linear layer and a convolution.</summary>
    private static WeightConversionPlan Plan(IWeightSource source)
    {
        var plan = new WeightConversionPlan(source);
        Assert.Null(plan.LocateQuantised("fc.weight", Rows, Columns));
        plan.Expect("fc.weight", [Rows, Columns]);
        plan.Expect("fc.bias", [Rows]);
        plan.Expect("conv.weight", [2, 1, 1, 2]);
        return plan;
    }

    private static (byte[] Blocks, float[] Scales) Quantised(float[] matrix)
    {
        var blocks = new byte[Rows * 2 * Int8BlockQuantiser.BlockSize];
        var scales = new float[Rows * 2];
        Int8BlockQuantiser.Quantise(matrix, Rows, Columns, blocks, scales, "fc.weight");
        return (blocks, scales);
    }

    private static void AssertHolds(ConvertedWeights converted, float offset)
    {
        Assert.Equal([0.5f, -0.25f, 1f, offset], converted.File.ReadFloat32("fc.bias"));
        Assert.Equal([1f, 2f, 3f, offset], converted.File.ReadFloat32(converted.Expect("conv.weight", [2, 1, 1, 2]).Name));
        var q = converted.LocateQuantised("fc.weight", Rows, Columns)!;
        var (blocks, scales) = Quantised(Matrix(offset));
        Assert.Equal(blocks, converted.File.RawBytes(q.Blocks).ToArray());
        Assert.Equal(scales, MemoryMarshal.Cast<byte, float>(converted.File.RawBytes(q.Scales)).ToArray());
        Assert.Equal((8, 32), (q.Bits, q.BlockSize));
        Assert.Throws<InvalidOperationException>(() => converted.Locate("fc.weight", [Rows, Columns]));
    }

    [Fact]
    public void ConvertsOnceAndReusesTheFile()
    {
        using var source = SafetensorsFile.Open(WriteSource(0.125f, TensorDType.F16));
        string path;
        using (var converted = ConvertedWeightCache.Open(Folder, "unet", Plan(source)))
        {
            path = converted.Path;
            Assert.Equal(Folder, Path.GetDirectoryName(path));
            Assert.Equal(TensorDType.F32, converted.File["fc.bias"].DType); // widened from F16
            AssertHolds(converted, 0.125f);
        }
        var written = new DateTime(2001, 1, 1, 0, 0, 0, DateTimeKind.Utc);
        File.SetLastWriteTimeUtc(path, written);

        using (var again = ConvertedWeightCache.Open(Folder, "unet", Plan(source)))
        {
            Assert.Equal(path, again.Path);
            AssertHolds(again, 0.125f);
        }
        Assert.Equal(written, File.GetLastWriteTimeUtc(path));
        Assert.Single(Directory.GetFiles(Folder, "*.safetensors"));
    }

    [Fact]
    public void AChangedSourceIsConvertedAgainAndTheStaleFileDeleted()
    {
        string first;
        using (var source = SafetensorsFile.Open(WriteSource(0.125f)))
        using (var converted = ConvertedWeightCache.Open(Folder, "unet", Plan(source)))
            first = converted.Path;

        var changed = WriteSource(0.75f);
        File.SetLastWriteTimeUtc(changed, DateTime.UtcNow.AddMinutes(1));
        using (var source = SafetensorsFile.Open(changed))
        using (var converted = ConvertedWeightCache.Open(Folder, "unet", Plan(source)))
        {
            Assert.NotEqual(first, converted.Path);
            AssertHolds(converted, 0.75f);
        }
        Assert.False(File.Exists(first));
        Assert.Single(Directory.GetFiles(Folder, "*.safetensors"));
    }

    [Fact]
    public void ADamagedFileIsConvertedAgain()
    {
        using var source = SafetensorsFile.Open(WriteSource(0.125f));
        string path;
        using (var converted = ConvertedWeightCache.Open(Folder, "unet", Plan(source))) path = converted.Path;
        using (var stream = new FileStream(path, FileMode.Open)) stream.SetLength(stream.Length / 2);

        using var again = ConvertedWeightCache.Open(Folder, "unet", Plan(source));
        Assert.Equal(path, again.Path);
        AssertHolds(again, 0.125f);
    }

    [Fact]
    public void AFileOverwrittenInPlace_FailsItsChecksum_AndIsConvertedAgainWithAWarning()
    {
        using var source = SafetensorsFile.Open(WriteSource(0.125f));
        string path;
        using (var converted = ConvertedWeightCache.Open(Folder, "unet", Plan(source))) path = converted.Path;
        // Zeroes over the quantised blocks: the header still reads, the size and the modification time of the source are unchanged.
        var length = new FileInfo(path).Length;
        using (var stream = new FileStream(path, FileMode.Open))
        {
            stream.Position = length - 200;
            stream.Write(new byte[100]);
        }

        var warnings = new List<string>();
        using var again = ConvertedWeightCache.Open(Folder, "unet", Plan(source), warnings.Add);

        Assert.Equal(path, again.Path);
        AssertHolds(again, 0.125f);
        var warning = Assert.Single(warnings);
        Assert.Contains(path, warning);
        Assert.Contains("does not match its checksum", warning);
        Assert.Contains("converted again", warning);
    }

    [Fact]
    public void AFileWithoutItsChecksum_IsConvertedAgainWithAWarning()
    {
        using var source = SafetensorsFile.Open(WriteSource(0.125f));
        string path;
        using (var converted = ConvertedWeightCache.Open(Folder, "unet", Plan(source))) path = converted.Path;
        File.Delete(Assert.Single(Directory.GetFiles(Folder, "*.checksum")));

        var warnings = new List<string>();
        using (var again = ConvertedWeightCache.Open(Folder, "unet", Plan(source), warnings.Add)) AssertHolds(again, 0.125f);
        using (ConvertedWeightCache.Open(Folder, "unet", Plan(source), warnings.Add)) { }

        Assert.Contains("its checksum is missing", Assert.Single(warnings));
        Assert.Equal([path + ".checksum"], Directory.GetFiles(Folder, "*.checksum"));
    }

    [Fact]
    public void AWeightStoredTransposedIsQuantisedInTheNetworksLayout()
    {
        var path = Path.Combine(dir, "transposed.safetensors");
        var matrix = Matrix(0.125f);
        var transposed = new float[matrix.Length];
        for (int r = 0; r < Rows; r++)
            for (int c = 0; c < Columns; c++) transposed[c * Rows + r] = matrix[r * Columns + c];
        SafetensorsWriter.Write(path, [new("fc.weight", [Columns, Rows], () => transposed)]);
        using var file = SafetensorsFile.Open(path);
        var plan = new WeightConversionPlan(new TransposedSource(file));
        plan.LocateQuantised("fc.weight", Rows, Columns);

        using var converted = ConvertedWeightCache.Open(Folder, "text", plan);
        var q = converted.LocateQuantised("fc.weight", Rows, Columns)!;
        Assert.Equal(Quantised(matrix).Blocks, converted.File.RawBytes(q.Blocks).ToArray());
    }

    [Fact]
    public void AnUnwritableFolderIsAClearError()
    {
        using var source = SafetensorsFile.Open(WriteSource(0.125f));
        var blocked = Path.Combine(dir, "not-a-folder");
        File.WriteAllText(blocked, "a file where the cache folder should be");
        var e = Assert.Throws<IOException>(() => ConvertedWeightCache.Open(Path.Combine(blocked, "model"), "unet", Plan(source)));
        Assert.Contains($"{blocked} is a file, not a folder: move it, or choose another folder", e.Message);
        Assert.DoesNotContain("disk space", e.Message);
        Assert.Contains("ConvertedWeightsPath", e.Message);
    }

    [Fact]
    public void EachSourceAndPrecisionHasItsOwnFolderUnderTheRoot()
    {
        var root = Path.Combine(dir, "root");
        var a = ConvertedWeightCache.FolderFor("/models/a/unet/diffusion_pytorch_model.safetensors", WeightPrecision.Int8, root);
        var b = ConvertedWeightCache.FolderFor("/models/b/unet/diffusion_pytorch_model.safetensors", WeightPrecision.Int8, root);
        Assert.Equal(root, Path.GetDirectoryName(a));
        Assert.StartsWith("diffusion_pytorch_model-", Path.GetFileName(a));
        Assert.EndsWith("-int8", a);
        Assert.NotEqual(a, b);
        Assert.NotEqual(a, ConvertedWeightCache.FolderFor("/models/a/unet/diffusion_pytorch_model.safetensors", WeightPrecision.Float32, root));
        Assert.Equal(a, ConvertedWeightCache.FolderFor("/models/a/unet/../unet/diffusion_pytorch_model.safetensors", WeightPrecision.Int8, root));
    }

    /// <summary>A source whose matrices are stored [in, out], as some single-file checkpoints keep projections.</summary>
    private sealed class TransposedSource(SafetensorsFile file) : IStoredWeightSource
    {
        public string Path => file.Path;

        public TensorInfo Expect(string name, long[] shape) => Locate(name, shape).Tensor;

        public StoredWeight Locate(string name, long[] shape) => new(file, file.Expect(name, [shape[1], shape[0]]), Transposed: true);
    }
}
