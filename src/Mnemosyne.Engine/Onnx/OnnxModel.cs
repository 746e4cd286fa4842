using Microsoft.ML.OnnxRuntime;
using Mnemosyne.Engine.Tensors;

namespace Mnemosyne.Engine.Onnx;

/// <summary>How networks are built and their ONNX Runtime sessions made: threads, optimisation, weight precision.</summary>
public sealed record SessionSettings
{
    /// <summary>Threads inside an operator; 0 means one per core.</summary>
    public int Threads { get; init; }

    public GraphOptimizationLevel OptimizationLevel { get; init; } = GraphOptimizationLevel.ORT_ENABLE_ALL;

    /// <summary>The precision of the linear layers' weights in the networks that offer a choice (the UNet and the CLIP encoders); the others ignore it.</summary>
    public WeightPrecision Precision { get; init; }

    /// <summary>
    /// Where weights converted for <see cref="Precision"/> are cached, a folder per source checkpoint; null uses
    /// <see cref="Conversion.ConvertedWeightCache.DefaultRoot"/>.
    /// </summary>
    public string? ConvertedWeightsRoot { get; init; }

    /// <summary>
    /// When set, ONNX Runtime records every run (each node's time and input shapes) and writes
    /// <c>&lt;prefix&gt;_&lt;date&gt;_&lt;time&gt;.json</c> when the session is disposed; for benchmarks.
    /// </summary>
    public string? ProfilePathPrefix { get; init; }

    /// <summary>
    /// ONNX Runtime's CPU memory arena keeps the largest run's buffers for the next run. Off, the
    /// buffers go back after each run: worth it for networks run once per scene on big activations.
    /// </summary>
    public bool MemoryArena { get; init; } = true;

    /// <summary>
    /// ONNX Runtime copies every constant MatMul weight into its kernel's layout when the session is made:
    /// faster products, at the cost of that copy. Off, the weights are read where they lie: worth it for
    /// networks that multiply a few rows once.
    /// </summary>
    public bool PrePackWeights { get; init; } = true;

    /// <summary>
    /// Where sessions are kept once optimised, with their pre-packed weights, for later opens to map instead of
    /// optimising and packing again (<see cref="Onnx.SessionCache"/>); null optimises every session from its graph.
    /// </summary>
    public SessionCache? SessionCache { get; init; }

    /// <summary>
    /// Where the networks run: <see cref="ExecutionProvider.Cpu"/>, or <see cref="ExecutionProvider.Cuda"/> (checked first with
    /// <see cref="CudaProvider.EnsureAvailable"/>). The graphs are the same either way.
    /// </summary>
    public ExecutionProvider ExecutionProvider { get; init; }

    public static SessionSettings Default { get; } = new();
}

/// <summary>One value fed to a model: float32 or int64 data with its shape.</summary>
public sealed class ModelInput
{
    private ModelInput(string name, Func<OrtValue> create)
    {
        Name = name;
        Create = create;
    }

    public string Name { get; }

    internal Func<OrtValue> Create { get; }

    public static ModelInput Float(string name, FloatTensor tensor)
        => new(name, () => OrtValue.CreateTensorValueFromMemory(tensor.Data, tensor.Shape.Select(d => (long)d).ToArray()));

    public static ModelInput Int64(string name, long[] data, params long[] shape)
        => new(name, () => OrtValue.CreateTensorValueFromMemory(data, shape));
}

/// <summary>An ONNX Runtime session over a graph built by <see cref="OnnxGraph"/>.</summary>
public sealed class OnnxModel : IDisposable
{
    private readonly InferenceSession session;
    private readonly List<OrtValue> boundValues;
    private readonly string[] boundNames;

    private OnnxModel(InferenceSession session, List<OrtValue> boundValues, string[] boundNames)
    {
        this.session = session;
        this.boundValues = boundValues;
        this.boundNames = boundNames;
    }

    /// <summary>How many models this thread has created: shows that a scene made no new session (only inputs changed).</summary>
    [ThreadStatic]
    internal static int CreatedOnThisThread;

    public static OnnxModel Create(OnnxGraph graph, SessionSettings settings)
    {
        OnnxRuntimeNative.Register();
        CreatedOnThisThread++;
        // Weights from other files: read once as float32 and fed with every run (no copy per run).
        var values = new List<OrtValue>();
        try
        {
            foreach (var bound in graph.BoundWeights)
            {
                var data = new float[bound.Tensor.ElementCount];
                bound.File.ReadFloat32(bound.Tensor, data);
                values.Add(OrtValue.CreateTensorValueFromMemory(data, bound.Tensor.Shape));
            }
            // Only a graph over its own weight files is worth keeping: its optimised form and packed weights are what an open costs.
            var session = settings.SessionCache is { } cache && graph.WeightFolder is not null
                ? cache.CreateSession(graph, settings)
                : FromGraph(graph.ToBytes(), graph.WeightFolder, settings);
            return new OnnxModel(session, values, graph.BoundWeights.Select(b => b.InputName).ToArray());
        }
        catch
        {
            foreach (var v in values) v.Dispose();
            throw;
        }
    }

    /// <summary>The options of a session made with <paramref name="settings"/>, at <paramref name="level"/>; the caller disposes them.</summary>
    internal static SessionOptions Options(SessionSettings settings, GraphOptimizationLevel level)
    {
        var options = new SessionOptions
        {
            GraphOptimizationLevel = level,
            ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
            IntraOpNumThreads = settings.Threads,
            InterOpNumThreads = 1,
            EnableCpuMemArena = settings.MemoryArena,
        };
        if (settings.ProfilePathPrefix is not null)
        {
            // The prefix is read when profiling is switched on, so it is set first.
            options.ProfileOutputPathPrefix = settings.ProfilePathPrefix;
            options.EnableProfiling = true;
        }
        if (!settings.PrePackWeights) options.AddSessionConfigEntry("session.disable_prepacking", "1");
        if (settings.ExecutionProvider == ExecutionProvider.Cuda) CudaProvider.Append(options);
        return options;
    }

    /// <summary>A session optimised from the graph's bytes as <paramref name="settings"/> say.</summary>
    internal static InferenceSession FromGraph(byte[] graph, string? weightFolder, SessionSettings settings)
    {
        using var options = Options(settings, settings.OptimizationLevel);
        return FromGraph(graph, weightFolder, options);
    }

    /// <summary>A session from the graph's bytes, whose external data ONNX Runtime reads from <paramref name="weightFolder"/>.</summary>
    internal static InferenceSession FromGraph(byte[] graph, string? weightFolder, SessionOptions options)
    {
        if (weightFolder is not null) options.AddSessionConfigEntry("session.model_external_initializers_file_folder_path", weightFolder);
        return new InferenceSession(graph, options);
    }

    /// <summary>The graph's inputs, weights fed at run time included.</summary>
    public IReadOnlySet<string> InputNames => session.InputMetadata.Keys.ToHashSet(StringComparer.Ordinal);

    /// <summary>Runs the graph; cancellation stops ONNX Runtime inside the run, not only between runs.</summary>
    public FloatTensor[] Run(IReadOnlyList<ModelInput> inputs, IReadOnlyList<string> outputs, CancellationToken cancellation = default)
    {
        cancellation.ThrowIfCancellationRequested();
        var inputValues = new List<OrtValue>(inputs.Count);
        try
        {
            foreach (var input in inputs) inputValues.Add(input.Create());
            var names = inputs.Select(i => i.Name).Concat(boundNames).ToArray();
            var values = inputValues.Concat(boundValues).ToArray();
            using var runOptions = new RunOptions();
            using var registration = cancellation.Register(() => runOptions.Terminate = true);
            IDisposableReadOnlyCollection<OrtValue> results;
            try
            {
                results = session.Run(runOptions, names, values, outputs.ToArray());
            }
            catch (OnnxRuntimeException e) when (cancellation.IsCancellationRequested)
            {
                // ONNX Runtime's own error stays inside: it shows the run was stopped part-way, not before it began.
                throw new OperationCanceledException("The ONNX Runtime run was stopped part-way because the operation was cancelled.", e, cancellation);
            }
            using (results)
            {
                return results.Select(r =>
                {
                    var shape = r.GetTensorTypeAndShape().Shape.Select(d => (int)d).ToArray();
                    return new FloatTensor(r.GetTensorDataAsSpan<float>().ToArray(), shape);
                }).ToArray();
            }
        }
        finally
        {
            foreach (var v in inputValues) v.Dispose();
        }
    }

    public void Dispose()
    {
        session.Dispose();
        foreach (var v in boundValues) v.Dispose();
        boundValues.Clear();
    }
}
