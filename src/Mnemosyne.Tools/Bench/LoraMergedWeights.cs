using Mnemosyne.Engine.Lora;
using Mnemosyne.Engine.Safetensors;

namespace Mnemosyne.Tools.Bench;

/// <summary>
/// A network's weights with LoRAs merged in: the layers they change are served from a file of merged weights,
/// W + Σ weight · (alpha / rank) · up · down (sd-scripts' merge), written when the set of LoRAs is chosen; every
/// other weight is served where it lies in the checkpoint. The merged file lies in the temporary folder (outside
/// the network's weight folder, so a graph binds its weights as inputs) and is deleted on dispose.
/// </summary>
internal sealed class LoraMergedWeights : IStoredWeightSource, IDisposable
{
    private readonly IStoredWeightSource checkpoint;
    private readonly SafetensorsFile merged;

    private LoraMergedWeights(IStoredWeightSource checkpoint, SafetensorsFile merged)
    {
        this.checkpoint = checkpoint;
        this.merged = merged;
    }

    /// <summary>The checkpoint's path: the graph's own weight folder stays the checkpoint's.</summary>
    public string Path => checkpoint.Path;

    public TensorInfo Expect(string name, long[] shape) => Locate(name, shape).Tensor;

    public StoredWeight Locate(string name, long[] shape)
        => merged.Contains(name) ? merged.Locate(name, shape) : checkpoint.Locate(name, shape);

    /// <summary>Merges <paramref name="layers"/> (all of one network) into the weights of <paramref name="checkpoint"/>.</summary>
    public static LoraMergedWeights Create(IStoredWeightSource checkpoint, IReadOnlyList<MatchedLoraLayer> layers)
    {
        var entries = layers.GroupBy(l => l.Module, StringComparer.Ordinal)
            .Select(group => new SafetensorsWriter.Entry(group.Key + ".weight", group.First().Shape, () => Merge(checkpoint, group.Key + ".weight", group.ToList())))
            .ToList();
        var path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"mnemosyne-lora-{Guid.NewGuid():N}.safetensors");
        try
        {
            SafetensorsWriter.Write(path, entries);
            return new LoraMergedWeights(checkpoint, SafetensorsFile.Open(path));
        }
        catch
        {
            File.Delete(path);
            File.Delete(path + ".tmp");
            throw;
        }
    }

    private static float[] Merge(IStoredWeightSource checkpoint, string name, IReadOnlyList<MatchedLoraLayer> layers)
    {
        var shape = layers[0].Shape;
        var stored = checkpoint.Locate(name, shape);
        var values = new float[stored.Tensor.ElementCount];
        stored.File.ReadFloat32(stored.Tensor, values);
        if (stored.Transposed) values = Transpose(values, (int)stored.Tensor.Shape[0], (int)stored.Tensor.Shape[1]);
        int rows = (int)shape[0], columns = (int)(values.Length / rows);
        foreach (var matched in layers)
        {
            int rank = (int)matched.Layer.Rank;
            var (down, up, scale) = matched.ReadFactors();
            // W[o, c] += scale · Σ_r up[o, r] · down[r, c], with the kernel's taps flattened into c.
            var product = new float[columns];
            for (int o = 0; o < rows; o++)
            {
                Array.Clear(product);
                for (int r = 0; r < rank; r++)
                {
                    float u = up[o * rank + r];
                    var downRow = down.AsSpan(r * columns, columns);
                    for (int c = 0; c < columns; c++) product[c] += u * downRow[c];
                }
                var row = values.AsSpan(o * columns, columns);
                for (int c = 0; c < columns; c++) row[c] += scale * product[c];
            }
        }
        return values;
    }

    private static float[] Transpose(float[] values, int rows, int columns)
    {
        var result = new float[values.Length];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < columns; c++) result[c * rows + r] = values[r * columns + c];
        return result;
    }

    public void Dispose()
    {
        merged.Dispose();
        try
        {
            File.Delete(merged.Path);
        }
        catch (IOException)
        {
            // Still mapped by another reader (Windows): the temporary folder's cleaning removes it later.
        }
    }
}
