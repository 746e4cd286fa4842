using Mnemosyne.Engine.Safetensors;

namespace Mnemosyne.Engine.Conversion;

/// <summary>
/// A file of weights converted for a network (<see cref="ConvertedWeightCache"/>): the matrices of its linear
/// layers block-quantised to 8 bits, everything else in float32, all under the network's own names, so that a
/// graph built over it reads every weight from this one file as external data.
/// </summary>
public sealed class ConvertedWeights : IStoredWeightSource, IQuantisedWeightSource, IDisposable
{
    private const string BlocksSuffix = ".int8_blocks";
    private const string ScalesSuffix = ".int8_scales";

    private ConvertedWeights(SafetensorsFile file) => File = file;

    public SafetensorsFile File { get; }

    public string Path => File.Path;

    internal static ConvertedWeights Open(string path) => new(SafetensorsFile.Open(path));

    /// <summary>The tensors a file must hold for <paramref name="weight"/>, in the order they are written.</summary>
    internal static IEnumerable<SafetensorsWriter.Layout> Layouts(PlannedWeight weight)
    {
        if (!weight.Quantised)
        {
            yield return new SafetensorsWriter.Layout(weight.Name, TensorDType.F32, weight.Shape);
            yield break;
        }
        long rows = weight.Shape[0];
        long blocks = Int8BlockQuantiser.BlockCount(weight.Shape[1]);
        yield return new SafetensorsWriter.Layout(weight.Name + BlocksSuffix, TensorDType.U8, [rows, blocks, Int8BlockQuantiser.BlockSize]);
        yield return new SafetensorsWriter.Layout(weight.Name + ScalesSuffix, TensorDType.F32, [rows, blocks]);
    }

    /// <summary>Whether the file holds every tensor of <paramref name="weights"/>, with its type and shape.</summary>
    internal bool Holds(IEnumerable<PlannedWeight> weights)
        => weights.SelectMany(Layouts).All(layout => File.Tensors.TryGetValue(layout.Name, out var info)
            && info.DType == layout.DType && info.Shape.SequenceEqual(layout.Shape));

    public TensorInfo Expect(string name, long[] shape) => Locate(name, shape).Tensor;

    public StoredWeight Locate(string name, long[] shape)
    {
        if (!File.Contains(name) && File.Contains(name + BlocksSuffix))
            throw new InvalidOperationException($"{Path}: '{name}' is held quantised; read it with {nameof(LocateQuantised)}.");
        return File.Locate(name, shape);
    }

    public QuantisedWeight? LocateQuantised(string name, long rows, long columns)
    {
        if (!File.Contains(name + BlocksSuffix)) return null;
        long blocks = Int8BlockQuantiser.BlockCount(columns);
        return new QuantisedWeight(File,
            File.Expect(name + BlocksSuffix, [rows, blocks, Int8BlockQuantiser.BlockSize]),
            File.Expect(name + ScalesSuffix, [rows, blocks]),
            Int8BlockQuantiser.Bits, Int8BlockQuantiser.BlockSize);
    }

    public void Dispose() => File.Dispose();
}
