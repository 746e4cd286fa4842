using Mnemosyne.Engine.Tensors;

namespace Mnemosyne.Engine.Tests.Tensors;

[Trait(TestPaths.ReadsTrait, TestPaths.ReadsShared)]
public class NpyFileTests
{
    [Fact]
    public void RoundTripsAFloatTensor()
    {
        var tensor = new FloatTensor([1.5f, -2f, 3.25f, 0f, float.Epsilon, 7f], [1, 2, 3]);
        using var stream = new MemoryStream();
        NpyFile.Write(stream, tensor);
        Assert.Equal(0, (stream.Length - 6 * 4) % 64);
        stream.Position = 0;
        var back = NpyFile.Read(stream, "memory");
        Assert.Equal(tensor.Shape, back.Shape);
        Assert.Equal(tensor.Data, back.Data);
    }

    [Theory]
    [MemberData(nameof(TinyModel.Names), MemberType = typeof(TinyModel))]
    public void ReadsTheReferenceFixtures(string model)
    {
        var pixels = NpyFile.Read(Path.Combine(TinyModel.Named(model).ReferenceFolder, "reference-pixel-values.npy"));
        Assert.Equal([1, 3, 224, 224], pixels.Shape);
    }

    [Theory]
    [InlineData(new byte[] { 1, 2, 3 }, "bad magic")]
    [InlineData(new byte[] { 0x93, (byte)'N', (byte)'U', (byte)'M', (byte)'P', (byte)'Y', 9, 0, 0, 0 }, "version 9")]
    public void RefusesWhatIsNotAnNpyFile(byte[] bytes, string expected)
    {
        var e = Assert.Throws<InvalidDataException>(() => NpyFile.Read(new MemoryStream(bytes), "x.npy"));
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void RefusesTruncatedData()
    {
        using var stream = new MemoryStream();
        NpyFile.Write(stream, new FloatTensor(new float[16], [16]));
        var cut = stream.ToArray()[..^4];
        var e = Assert.Throws<InvalidDataException>(() => NpyFile.Read(new MemoryStream(cut), "cut.npy"));
        Assert.Contains("truncated", e.Message);
    }
}
