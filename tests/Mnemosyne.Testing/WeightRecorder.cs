using Mnemosyne.Engine.Safetensors;

namespace Mnemosyne.Testing;

/// <summary>Records the tensors a network asks for, in order, instead of reading a file.</summary>
public sealed class WeightRecorder(string path) : IWeightSource
{
    private readonly Dictionary<string, long[]> tensors = new(StringComparer.Ordinal);
    private readonly List<string> order = [];

    public string Path { get; } = path;

    public IEnumerable<(string Name, long[] Shape)> Tensors => order.Select(n => (n, tensors[n]));

    public TensorInfo Expect(string name, long[] shape)
    {
        if (tensors.TryGetValue(name, out var existing))
        {
            if (!existing.SequenceEqual(shape))
                throw new InvalidOperationException($"Tensor '{name}' is asked for with two shapes.");
        }
        else
        {
            tensors[name] = shape;
            order.Add(name);
        }
        return new TensorInfo(name, TensorDType.F32, shape, 0, shape.Aggregate(4L, (a, b) => a * b));
    }
}
