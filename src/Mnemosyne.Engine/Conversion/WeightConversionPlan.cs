using Mnemosyne.Engine.Safetensors;

namespace Mnemosyne.Engine.Conversion;

/// <summary>A weight a network reads, by the network's name and shape, and whether it reads it quantised.</summary>
public sealed record PlannedWeight(string Name, long[] Shape, bool Quantised);

/// <summary>
/// Lists what a network reads from <see cref="Source"/>, and which matrices its linear layers would take
/// quantised, while the network's graph is built over it once (that graph is not run). Every request is
/// checked against the source, so a wrong checkpoint is refused before anything is converted.
/// </summary>
public sealed class WeightConversionPlan(IWeightSource source) : IQuantisedWeightSource
{
    private readonly Dictionary<string, long[]> shapes = new(StringComparer.Ordinal);
    private readonly List<string> order = [];
    private readonly HashSet<string> quantised = new(StringComparer.Ordinal);

    public IWeightSource Source { get; } = source;

    public string Path => Source.Path;

    /// <summary>The weights in the order the network first asked for them.</summary>
    public IReadOnlyList<PlannedWeight> Weights => order.Select(n => new PlannedWeight(n, shapes[n], quantised.Contains(n))).ToList();

    public TensorInfo Expect(string name, long[] shape)
    {
        var info = Source.Expect(name, shape);
        if (shapes.TryGetValue(name, out var known))
        {
            if (!known.SequenceEqual(shape))
                throw new InvalidOperationException($"Tensor '{name}' of {Path} is asked for with two shapes.");
        }
        else
        {
            shapes[name] = shape;
            order.Add(name);
        }
        return info;
    }

    /// <summary>Marks the matrix for quantisation and returns null: the graph being recorded reads it in float32.</summary>
    public QuantisedWeight? LocateQuantised(string name, long rows, long columns)
    {
        Expect(name, [rows, columns]);
        quantised.Add(name);
        return null;
    }
}
