using System.Text.Json;
using Mnemosyne.Engine.Networks;
using Mnemosyne.Engine.Safetensors;
using Mnemosyne.Engine.Tensors;

namespace Mnemosyne.Engine.Tests.Networks;

/// <summary>Reference data and checkpoint surgery shared by the network equivalence tests.</summary>
internal static class NetworkFixtures
{
    /// <summary>fp32 equivalence bound against diffusers on the tiny reference models.</summary>
    public const float Tolerance = 1e-4f;

    public static FloatTensor ReadNpy(string path) => NpyFile.Read(path);

    /// <summary>The largest absolute difference, after checking that the shapes agree.</summary>
    public static float MaxAbsError(FloatTensor expected, FloatTensor actual)
    {
        Assert.Equal(expected.Shape, actual.Shape);
        float max = 0;
        for (int i = 0; i < expected.Data.Length; i++)
        {
            var error = Math.Abs(expected.Data[i] - actual.Data[i]);
            if (!(error <= max)) max = error; // NaN propagates as a failure
        }
        return max;
    }

    /// <summary>Rows [start, start + count) of a tensor, along its first axis.</summary>
    public static FloatTensor Rows(FloatTensor tensor, int start, int count)
    {
        int rowLength = tensor.Data.Length / tensor.Shape[0];
        return new FloatTensor(tensor.Data.AsSpan(start * rowLength, count * rowLength).ToArray(), [count, .. tensor.Shape[1..]]);
    }

    /// <summary>The last-axis slice [start, start + width) of every row.</summary>
    public static FloatTensor LastAxis(FloatTensor tensor, int start, int width)
    {
        int full = tensor.Shape[^1];
        int rows = tensor.Data.Length / full;
        var data = new float[rows * width];
        for (int r = 0; r < rows; r++) tensor.Data.AsSpan(r * full + start, width).CopyTo(data.AsSpan(r * width));
        return new FloatTensor(data, [.. tensor.Shape[..^1], width]);
    }

    /// <summary>
    /// The ids both tokenizers give a prompt, as recorded with transformers (the fidelity tokenizer
    /// cases and the networks-a prompts); null where the prompt is in neither.
    /// </summary>
    public static (long[] Tokenizer, long[] Tokenizer2)? RecordedIds(string prompt)
    {
        foreach (var (file, promptsAreObjects) in new[]
                 {
                     (Path.Combine(TestPaths.Fidelity, "tokenizer-cases.json"), true),
                     (TinyModel.A.NetworkCase("text-ids.json"), false),
                 })
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(file));
            var prompts = doc.RootElement.GetProperty("prompts");
            for (int i = 0; i < prompts.GetArrayLength(); i++)
            {
                if (promptsAreObjects)
                {
                    var entry = prompts[i];
                    if (entry.GetProperty("prompt").GetString() == prompt)
                        return (Ids(entry.GetProperty("tokenizer")), Ids(entry.GetProperty("tokenizer_2")));
                }
                else if (prompts[i].GetString() == prompt)
                    return (Ids(doc.RootElement.GetProperty("tokenizer")[i]), Ids(doc.RootElement.GetProperty("tokenizer_2")[i]));
            }
        }
        return null;
    }

    private static long[] Ids(JsonElement array) => array.EnumerateArray().Select(e => e.GetInt64()).ToArray();

    /// <summary>The id rows a fixture file (text-ids.json, unet-text-ids.json) holds for one tokenizer, in order.</summary>
    public static long[][] IdRows(string idsFile, string tokenizer)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(idsFile));
        return doc.RootElement.GetProperty(tokenizer).EnumerateArray().Select(Ids).ToArray();
    }

    /// <summary>
    /// One UNet case of a networks-* folder's manifest: its inputs and diffusers' output at one IP-Adapter scale ("0.6" or "0").
    /// The case's ip tokens go through <paramref name="adapterKeys"/> to the keys and values the UNet takes.
    /// </summary>
    public static (FloatTensor Sample, float Timestep, UnetConditioning Conditioning, FloatTensor Expected) ReadUnetCase(
        string fixtures, string caseName, string scale, IpAdapterKeys adapterKeys)
    {
        FloatTensor Fixture(string name) => ReadNpy(Path.Combine(fixtures, name));
        using var manifest = JsonDocument.Parse(File.ReadAllText(Path.Combine(fixtures, "manifest.json")));
        var entry = manifest.RootElement.GetProperty("unet").GetProperty("cases").EnumerateArray()
            .Single(c => c.GetProperty("name").GetString() == caseName);
        var conditioning = new UnetConditioning(Fixture("unet-encoder-hidden-states.npy"), Fixture("unet-text-embeds.npy"), Fixture(entry.GetProperty("time_ids").GetString()!))
        {
            IpKeyValues = adapterKeys.Run(Fixture("unet-ip-tokens.npy")),
            IpScale = float.Parse(scale, System.Globalization.CultureInfo.InvariantCulture),
        };
        return (Fixture(entry.GetProperty("sample").GetString()!), entry.GetProperty("timestep").GetSingle(), conditioning,
            Fixture(entry.GetProperty("out").GetProperty(scale).GetString()!));
    }

    /// <summary>
    /// Copies a component folder (config.json and the safetensors file, F32) into <paramref name="destination"/>,
    /// letting <paramref name="edit"/> drop a tensor (return null) or change its shape (same element count).
    /// </summary>
    public static string CopyComponent(string sourceFolder, string weightsName, string destination, Func<string, long[], long[]?> edit)
    {
        Directory.CreateDirectory(destination);
        var configPath = Path.Combine(sourceFolder, "config.json");
        if (File.Exists(configPath)) File.Copy(configPath, Path.Combine(destination, "config.json"), overwrite: true);
        var copy = Path.Combine(destination, weightsName);
        using (var source = SafetensorsFile.Open(Path.Combine(sourceFolder, weightsName)))
        {
            var entries = new List<SafetensorsWriter.Entry>();
            foreach (var info in source.Tensors.Values.OrderBy(t => t.Offset))
            {
                var shape = edit(info.Name, info.Shape);
                if (shape is null) continue;
                var name = info.Name;
                entries.Add(new SafetensorsWriter.Entry(name, shape, () => source.ReadFloat32(name)));
            }
            SafetensorsWriter.Write(copy, entries);
        }
        return copy;
    }

    /// <summary>Every tensor of a checkpoint file with its shape.</summary>
    public static SortedDictionary<string, string> KeySet(string weightsPath, params string[] ignored)
    {
        using var file = SafetensorsFile.Open(weightsPath);
        return new SortedDictionary<string, string>(
            file.Tensors.Values.Where(t => !ignored.Contains(t.Name)).ToDictionary(t => t.Name, t => t.ShapeText), StringComparer.Ordinal);
    }

    /// <summary>What a network asked a <see cref="WeightRecorder"/> for, with shapes.</summary>
    public static SortedDictionary<string, string> KeySet(WeightRecorder recorder)
        => new(recorder.Tensors.ToDictionary(t => t.Name, t => "[" + string.Join(", ", t.Shape) + "]"), StringComparer.Ordinal);
}
