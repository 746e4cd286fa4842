using System.Buffers.Binary;
using System.Text;
using Mnemosyne.Engine.Safetensors;

namespace Mnemosyne.Engine.Tests.Safetensors;

[Trait(TestPaths.ReadsTrait, TestPaths.ReadsShared)]
public sealed class SafetensorsFileTests : IDisposable
{
    private readonly string dir = Directory.CreateTempSubdirectory("mnemosyne-st-").FullName;

    public void Dispose() => Directory.Delete(dir, recursive: true);

    private string Raw(string header, int dataBytes, ulong? declaredLength = null)
    {
        var path = Path.Combine(dir, Guid.NewGuid().ToString("n") + ".safetensors");
        var json = Encoding.UTF8.GetBytes(header);
        var bytes = new byte[8 + json.Length + dataBytes];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, declaredLength ?? (ulong)json.Length);
        json.CopyTo(bytes, 8);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    [Theory]
    [InlineData(TensorDType.F32)]
    [InlineData(TensorDType.F16)]
    public void RoundTripsTensorsWrittenByTheWriter(TensorDType dtype)
    {
        var path = Path.Combine(dir, "w.safetensors");
        float[] a = [1f, -2.5f, 0.125f, 3f, 4f, 5f];
        float[] b = [7f];
        SafetensorsWriter.Write(path, [new("a.weight", [2, 3], () => a), new("b", [1], () => b)], dtype);
        using var file = SafetensorsFile.Open(path);
        Assert.Equal(dtype, file["a.weight"].DType);
        Assert.Equal([2L, 3L], file["a.weight"].Shape);
        Assert.Equal(a, file.ReadFloat32("a.weight"));
        Assert.Equal(b, file.ReadFloat32("b"));
        Assert.Equal(0, file.DataStart % 8);
    }

    [Fact]
    public void WidensBf16()
    {
        // 1.5 in bfloat16 is 0x3FC0; -2 is 0xC000.
        var path = Raw("{\"x\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4);
        var bytes = File.ReadAllBytes(path);
        BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(bytes.Length - 4), 0x3FC0);
        BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(bytes.Length - 2), 0xC000);
        File.WriteAllBytes(path, bytes);
        using var file = SafetensorsFile.Open(path);
        Assert.Equal([1.5f, -2f], file.ReadFloat32("x"));
    }

    [Theory]
    [InlineData("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 4, null, "outside the data section")]
    [InlineData("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]}}", 8, null, "needs 8")]
    [InlineData("{\"x\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, null, "unknown dtype 'Q4'")]
    [InlineData("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"y\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, null, "overlaps")]
    [InlineData("{\"x\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, null, "bad dimension")]
    [InlineData("not json at all", 0, null, "not valid JSON")]
    [InlineData("{}", 0, 1UL << 40, "bad safetensors header length")]
    [InlineData("{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, null, "tensor 'x' is named twice")]
    public void RefusesDefectsNamingTheFile(string header, int dataBytes, ulong? declared, string expected)
    {
        var path = Raw(header, dataBytes, declared);
        var e = Assert.Throws<CheckpointException>(() => SafetensorsFile.Open(path));
        Assert.Contains(expected, e.Message);
        Assert.Contains(path, e.Message);
        Assert.Equal(path, e.FilePath);
    }

    [Fact]
    public void RefusesAHeaderThatIsNotUtf8_NamingTheFile()
    {
        var path = Raw("{\"x?\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4);
        var bytes = File.ReadAllBytes(path);
        bytes[Array.IndexOf(bytes, (byte)'?')] = 0xFF;
        File.WriteAllBytes(path, bytes);

        var e = Assert.Throws<CheckpointException>(() => SafetensorsFile.Open(path));
        Assert.Contains("not valid UTF-8", e.Message);
        Assert.Equal(path, e.FilePath);
    }

    [Fact]
    public void RefusesAHeaderOverTheCap_SayingSoRatherThanTruncated()
    {
        var path = Raw("{}", 0, 300UL << 20);
        using (var stream = new FileStream(path, FileMode.Open)) stream.SetLength(8 + (301L << 20)); // sparse

        var e = Assert.Throws<CheckpointException>(() => SafetensorsFile.Open(path));
        Assert.Contains($"declares {300L << 20} bytes, over the 100 MB", e.Message);
        Assert.DoesNotContain("truncated", e.Message);
    }

    [Fact]
    public void NamesTheMissingTensor()
    {
        var path = Path.Combine(dir, "m.safetensors");
        SafetensorsWriter.Write(path, [new("present", [1], () => [1f])]);
        using var file = SafetensorsFile.Open(path);
        var e = Assert.Throws<CheckpointException>(() => file["absent.weight"]);
        Assert.Equal("absent.weight", e.TensorName);
        Assert.Contains("missing", e.Message);
    }

    [Fact]
    public void RefusesAFileTooShortForAHeader()
    {
        var path = Path.Combine(dir, "short.safetensors");
        File.WriteAllBytes(path, [1, 2, 3]);
        Assert.Throws<CheckpointException>(() => SafetensorsFile.Open(path));
    }

    [Theory]
    [MemberData(nameof(TinyModel.Names), MemberType = typeof(TinyModel))]
    public void ReadsATinyModelsUnet(string model)
    {
        using var file = SafetensorsFile.Open(Path.Combine(TinyModel.Named(model).Unet, "diffusion_pytorch_model.safetensors"));
        Assert.Equal([32L, 4L, 3L, 3L], file["conv_in.weight"].Shape);
        Assert.All(file.ReadFloat32("conv_in.weight"), v => Assert.True(float.IsFinite(v)));
    }
}
