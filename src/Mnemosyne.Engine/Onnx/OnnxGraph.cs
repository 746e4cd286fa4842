using System.Globalization;
using System.Runtime.InteropServices;
using Google.Protobuf;
using Mnemosyne.Engine.Conversion;
using Mnemosyne.Engine.Safetensors;
using Onnx;

namespace Mnemosyne.Engine.Onnx;

/// <summary>
/// Builds one ONNX graph in memory. Checkpoint weights are not copied into the protobuf: a weight in
/// <see cref="WeightFolder"/> becomes an external-data initializer that points straight into its
/// safetensors file (ONNX Runtime maps it itself), and a weight from any other file becomes a graph
/// input that <see cref="OnnxModel"/> binds to the checkpoint's data on every run. A weight stored
/// transposed (<see cref="StoredWeight"/>) is read as stored and transposed by a node of the graph. A source
/// that holds linear weights quantised (<see cref="IQuantisedWeightSource"/>) gives them as MatMulNBits inputs.
/// </summary>
public sealed class OnnxGraph
{
    public const int OnnxOpset = 21;
    public const int MicrosoftOpset = 1;

    private readonly ModelProto model;
    private readonly HashSet<string> names = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> weightValues = new(StringComparer.Ordinal);
    private readonly Dictionary<string, QuantisedValues> quantisedValues = new(StringComparer.Ordinal);
    private readonly List<BoundWeight> boundWeights = [];
    private readonly SortedSet<string> externalFiles = new(StringComparer.Ordinal);
    private readonly string? ownWeightsFolder;
    private readonly Func<string, bool>? loraModules;
    private readonly Dictionary<string, LoraBranch> loraBranches = new(StringComparer.Ordinal);
    private readonly HashSet<string> readWeights = new(StringComparer.Ordinal);
    private int counter;

    /// <param name="weightFolder">The folder of the network's own weight files, whose weights become external data.</param>
    /// <param name="loraBranches">The linear and convolution layers that get a LoRA branch (<see cref="LoraBranchFor"/>), by module name; null for none.</param>
    public OnnxGraph(string name, string? weightFolder, Func<string, bool>? loraBranches = null)
    {
        ownWeightsFolder = weightFolder is null ? null : Path.GetFullPath(weightFolder);
        loraModules = loraBranches;
        model = new ModelProto
        {
            IrVersion = 10,
            ProducerName = "Mnemosyne",
            Graph = new GraphProto { Name = name },
        };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = OnnxOpset });
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "com.microsoft", Version = MicrosoftOpset });
    }

    /// <summary>
    /// The folder whose safetensors files ONNX Runtime reads as external data: that of the network's weight
    /// files or, where they are links (a Hugging Face cache snapshot links each file into blobs/), of their
    /// targets, since ONNX Runtime refuses external data that resolves outside its folder. Null until a
    /// weight is stored as external data.
    /// </summary>
    public string? WeightFolder { get; private set; }

    /// <summary>The files in <see cref="WeightFolder"/> that initializers point into, by name.</summary>
    public IReadOnlyCollection<string> ExternalFiles => externalFiles;

    /// <summary>The graph's name (the network it is), as ONNX Runtime sees it.</summary>
    public string Name => model.Graph.Name;

    /// <summary>The name with the inputs and outputs: tells apart graphs of one network over the same weights (a UNet with and without the IP-Adapter).</summary>
    public string Signature => $"{Name}({string.Join(',', model.Graph.Input.Select(i => i.Name))}) -> {string.Join(',', model.Graph.Output.Select(o => o.Name))}";

    /// <summary>Weights from files outside <see cref="WeightFolder"/>, fed as inputs at run time.</summary>
    public IReadOnlyList<BoundWeight> BoundWeights => boundWeights;

    public sealed record BoundWeight(string InputName, SafetensorsFile File, TensorInfo Tensor);

    /// <summary>Whether a node of the graph reads the weight (one only checked, as a layer no output needs, is not read).</summary>
    public bool Reads(string tensorName) => readWeights.Contains(tensorName);

    /// <summary>The layers that have a LoRA branch, in the order the graph reads them; empty for a graph without.</summary>
    public IReadOnlyCollection<LoraBranch> LoraBranches => loraBranches.Values;

    /// <summary>
    /// The low-rank factors of one layer's LoRA branch, graph inputs of a rank each of its own: a linear layer's
    /// <see cref="Down"/> is A [in, rank] and <see cref="Up"/> B [rank, out]; a convolution's are kernels, down
    /// [rank, in, k, k] (the layer's stride and padding) and up [out, rank, 1, 1]. Zero factors leave the layer as it is.
    /// </summary>
    /// <param name="Module">The layer's weight name without ".weight", as the checkpoint names it.</param>
    public sealed record LoraBranch(string Module, string Down, string Up, long In, long Out, int Kernel, bool Convolution);

    /// <summary>The branch inputs of the layer <paramref name="module"/>, added at its first call; null for a layer without a LoRA branch.</summary>
    public LoraBranch? LoraBranchFor(string module, long inFeatures, long outFeatures, int kernel, bool convolution)
    {
        if (loraModules?.Invoke(module) != true) return null;
        if (loraBranches.TryGetValue(module, out var known)) return known;
        var rank = "lora_rank." + module;
        var down = Input("lora_down." + module, TensorProto.Types.DataType.Float,
            convolution ? [rank, inFeatures, (long)kernel, (long)kernel] : [inFeatures, rank]);
        var up = Input("lora_up." + module, TensorProto.Types.DataType.Float, convolution ? [outFeatures, rank, 1L, 1L] : [rank, outFeatures]);
        return loraBranches[module] = new LoraBranch(module, down, up, inFeatures, outFeatures, kernel, convolution);
    }

    /// <summary>A dimension: a fixed size (long/int) or a symbolic name (string).</summary>
    public string Input(string name, TensorProto.Types.DataType type, params object[] dims)
    {
        Claim(name);
        model.Graph.Input.Add(ValueInfo(name, type, dims));
        return name;
    }

    public void Output(string value, string name, TensorProto.Types.DataType type, params object[] dims)
    {
        if (value != name) Node("Identity", [value], outputs: [name]);
        model.Graph.Output.Add(ValueInfo(name, type, dims));
    }

    /// <summary>Adds a node and returns its first output's name.</summary>
    public string Node(string op, string?[] inputs, IReadOnlyDictionary<string, object>? attributes = null, string domain = "", string[]? outputs = null)
        => Nodes(op, inputs, 1, attributes, domain, outputs)[0];

    public string[] Nodes(string op, string?[] inputs, int outputCount, IReadOnlyDictionary<string, object>? attributes = null, string domain = "", string[]? outputs = null)
    {
        // Numbered by position: nodes given their outputs' names (graph outputs) draw no fresh name, yet need unique names too.
        var node = new NodeProto { OpType = op, Domain = domain, Name = $"{op}_{model.Graph.Node.Count}" };
        foreach (var input in inputs) node.Input.Add(input ?? "");
        outputs ??= Enumerable.Range(0, outputCount).Select(i => Fresh(op)).ToArray();
        foreach (var output in outputs)
        {
            Claim(output);
            node.Output.Add(output);
        }
        if (attributes is not null)
            foreach (var (key, value) in attributes) node.Attribute.Add(Attribute(key, value));
        model.Graph.Node.Add(node);
        return outputs;
    }

    /// <summary>
    /// A checkpoint tensor as a float32 value of the graph, checked against the shape the network expects.
    /// </summary>
    public string Weight(IWeightSource source, string tensorName, params long[] shape)
    {
        var stored = source is IStoredWeightSource files ? files.Locate(tensorName, shape) : null;
        var info = stored?.Tensor ?? source.Expect(tensorName, shape);
        // Checked while the graph is built, so that an engine refuses such a file when it opens, not when the network first runs.
        if (stored is not null && info.DType is not (TensorDType.F32 or TensorDType.F16 or TensorDType.BF16 or TensorDType.F64))
            throw new CheckpointException(
                $"{source.Path}: tensor '{info.Name}' is {info.DType}, not a floating-point tensor: the file holds another model than its config.json describes, or is damaged. Download or copy the model again.",
                source.Path, info.Name);
        var key = source.Path + "|" + tensorName;
        if (weightValues.TryGetValue(key, out var existing)) return existing;
        readWeights.Add(tensorName);

        var valueName = Fresh("w." + tensorName);
        if (stored is null)
        {
            // Recording what a network needs: the graph is never run.
            Input(valueName, TensorProto.Types.DataType.Float, info.Shape.Cast<object>().ToArray());
        }
        else if (stored.Transposed)
        {
            if (info.Shape.Length != 2)
                throw new InvalidOperationException($"Only matrices can be stored transposed; '{info.Name}' has shape {info.ShapeText}.");
            // ONNX Runtime folds the transpose of an initializer into one copy when the session is made.
            var asStored = Fresh("w." + tensorName + ".stored");
            StoredValue(stored.File, info, asStored);
            Node("Transpose", [asStored], new Dictionary<string, object> { ["perm"] = new long[] { 1, 0 } }, outputs: [valueName]);
        }
        else StoredValue(stored.File, info, valueName);
        weightValues[key] = valueName;
        return valueName;
    }

    /// <summary>
    /// Defines <paramref name="valueName"/> as <paramref name="info"/>'s values in float32: external data pointing
    /// into the file when it is one of the network's own weight files, else an input bound on every run.
    /// </summary>
    private void StoredValue(SafetensorsFile file, TensorInfo info, string valueName)
    {
        if (info.DType is TensorDType.F32 or TensorDType.F16 or TensorDType.BF16 && ExternalDataLocation(file) is { } location)
        {
            var stored = info.DType == TensorDType.F32 ? valueName : valueName + ".stored";
            ExternalInitializer(location, info, stored);
            if (info.DType != TensorDType.F32)
            {
                Claim(stored);
                Node("Cast", [stored], new Dictionary<string, object> { ["to"] = (long)TensorProto.Types.DataType.Float }, outputs: [valueName]);
            }
            else Claim(valueName);
        }
        else
        {
            Input(valueName, TensorProto.Types.DataType.Float, info.Shape.Cast<object>().ToArray());
            boundWeights.Add(new BoundWeight(valueName, file, info));
        }
    }

    /// <summary>
    /// A linear layer's weight [<paramref name="rows"/>, <paramref name="columns"/>] as MatMulNBits' B and scales
    /// inputs, when <paramref name="source"/> holds it quantised; else null, and the layer reads it in float32.
    /// </summary>
    public QuantisedValues? QuantisedWeight(IWeightSource source, string tensorName, long rows, long columns)
    {
        if (source is not IQuantisedWeightSource quantised) return null;
        var key = source.Path + "|" + tensorName + "|quantised";
        if (quantisedValues.TryGetValue(key, out var existing)) return existing;
        readWeights.Add(tensorName);
        var weight = quantised.LocateQuantised(tensorName, rows, columns);
        if (weight is null) return null;

        // MatMulNBits has no float32 fallback for its inputs, so they must be external data ONNX Runtime maps itself.
        var location = ExternalDataLocation(weight.File)
            ?? throw new InvalidOperationException($"The quantised weight '{tensorName}' lies in {weight.File.Path}, outside the graph's weight folder {ownWeightsFolder ?? "(none)"}.");
        var blocks = Fresh("w." + tensorName + ".blocks");
        var scales = Fresh("w." + tensorName + ".scales");
        Claim(blocks);
        Claim(scales);
        ExternalInitializer(location, weight.Blocks, blocks);
        ExternalInitializer(location, weight.Scales, scales);
        var values = new QuantisedValues(blocks, scales, weight.Bits, weight.BlockSize);
        quantisedValues[key] = values;
        return values;
    }

    /// <summary>The graph values of a quantised weight: MatMulNBits' B and scales, and the attributes that describe them.</summary>
    public sealed record QuantisedValues(string Blocks, string Scales, int Bits, int BlockSize);

    private void ExternalInitializer(string location, TensorInfo info, string name)
    {
        var tensor = new TensorProto { Name = name, DataType = (int)ToOnnx(info.DType), DataLocation = TensorProto.Types.DataLocation.External };
        tensor.Dims.AddRange(info.Shape);
        tensor.ExternalData.Add(new StringStringEntryProto { Key = "location", Value = location });
        externalFiles.Add(location);
        tensor.ExternalData.Add(new StringStringEntryProto { Key = "offset", Value = info.Offset.ToString(CultureInfo.InvariantCulture) });
        tensor.ExternalData.Add(new StringStringEntryProto { Key = "length", Value = info.ByteLength.ToString(CultureInfo.InvariantCulture) });
        model.Graph.Initializer.Add(tensor);
    }

    /// <summary>The file's name as external data, relative to <see cref="WeightFolder"/>; null for a file that is not the network's own.</summary>
    private string? ExternalDataLocation(SafetensorsFile file)
    {
        if (ownWeightsFolder is null || Path.GetDirectoryName(file.Path) != ownWeightsFolder) return null;
        var target = new FileInfo(file.Path).ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? file.Path;
        var folder = Path.GetDirectoryName(target)!;
        WeightFolder ??= folder;
        // Links that lead into different folders cannot share one; such weights are bound instead.
        return folder == WeightFolder ? Path.GetFileName(target) : null;
    }

    /// <summary>A small constant computed by the engine (not a checkpoint weight), stored in the protobuf.</summary>
    public string Constant(ReadOnlySpan<float> values, params long[] dims)
    {
        var name = Fresh("const");
        var tensor = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Float, RawData = ByteString.CopyFrom(MemoryMarshal.AsBytes(values)) };
        tensor.Dims.AddRange(dims);
        model.Graph.Initializer.Add(tensor);
        return name;
    }

    public string Scalar(float value) => Constant([value]);

    public string Int64s(params long[] values)
    {
        var name = Fresh("ints");
        var tensor = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Int64, RawData = ByteString.CopyFrom(MemoryMarshal.AsBytes(values.AsSpan())) };
        tensor.Dims.Add(values.Length);
        model.Graph.Initializer.Add(tensor);
        return name;
    }

    public byte[] ToBytes() => model.ToByteArray();

    private string Fresh(string hint)
    {
        string name;
        do name = $"{hint}_{counter++}"; while (names.Contains(name));
        return name;
    }

    private void Claim(string name)
    {
        if (!names.Add(name)) throw new InvalidOperationException($"Graph value '{name}' is defined twice.");
    }

    private static TensorProto.Types.DataType ToOnnx(TensorDType dtype) => dtype switch
    {
        TensorDType.F32 => TensorProto.Types.DataType.Float,
        TensorDType.F16 => TensorProto.Types.DataType.Float16,
        TensorDType.BF16 => TensorProto.Types.DataType.Bfloat16,
        TensorDType.U8 => TensorProto.Types.DataType.Uint8,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "not a weight type the graph reads"),
    };

    private static ValueInfoProto ValueInfo(string name, TensorProto.Types.DataType type, object[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (var d in dims)
            shape.Dim.Add(d switch
            {
                string symbol => new TensorShapeProto.Types.Dimension { DimParam = symbol },
                long size => new TensorShapeProto.Types.Dimension { DimValue = size },
                int size => new TensorShapeProto.Types.Dimension { DimValue = size },
                _ => throw new ArgumentException($"Bad dimension {d} of {name}."),
            });
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)type, Shape = shape } },
        };
    }

    private static AttributeProto Attribute(string name, object value)
    {
        var a = new AttributeProto { Name = name };
        switch (value)
        {
            case long l: a.Type = AttributeProto.Types.AttributeType.Int; a.I = l; break;
            case int i: a.Type = AttributeProto.Types.AttributeType.Int; a.I = i; break;
            case float f: a.Type = AttributeProto.Types.AttributeType.Float; a.F = f; break;
            case double d: a.Type = AttributeProto.Types.AttributeType.Float; a.F = (float)d; break;
            case string s: a.Type = AttributeProto.Types.AttributeType.String; a.S = ByteString.CopyFromUtf8(s); break;
            case long[] ls: a.Type = AttributeProto.Types.AttributeType.Ints; a.Ints.AddRange(ls); break;
            case int[] ints: a.Type = AttributeProto.Types.AttributeType.Ints; a.Ints.AddRange(ints.Select(x => (long)x)); break;
            case float[] fs: a.Type = AttributeProto.Types.AttributeType.Floats; a.Floats.AddRange(fs); break;
            default: throw new ArgumentException($"Unsupported attribute type {value.GetType()} for {name}.");
        }
        return a;
    }
}
