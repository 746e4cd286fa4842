using Mnemosyne.Engine.Checkpoints;
using Mnemosyne.Engine.Conversion;
using Mnemosyne.Engine.Networks;
using Mnemosyne.Engine.Onnx;
using Mnemosyne.Engine.Pipeline;
using Mnemosyne.Engine.Safetensors;
using Mnemosyne.Engine.Tensors;

namespace Mnemosyne.Engine.Lora;

/// <summary>
/// The UNet and text encoders of an engine that has applied LoRAs: every linear and convolution layer has a low-rank
/// branch, y = x·W + (x·A)·B, whose factors are inputs (<see cref="LoraFeed"/>). One session per network serves every
/// set of LoRAs and weights: choosing another set (<see cref="Use"/>) reads its files and changes the inputs only.
/// Several LoRAs on one layer are one branch, their factors side by side along the rank, each B scaled by its
/// LoRA's weight · alpha / rank; a layer no LoRA changes gets zeros. The branches stay float32 beside whatever the
/// engine's precision makes of W, so Int8 engines take LoRAs too.
/// </summary>
internal sealed class LoraNetworks : IDisposable
{
    private readonly IReadOnlyDictionary<LoraTarget, LoraKeyMap> maps;
    private readonly IReadOnlyDictionary<LoraTarget, Branches> branches;
    /// <summary>The networks the LoRAs applied now change.</summary>
    private IReadOnlySet<LoraTarget> changed = new HashSet<LoraTarget>();

    private LoraNetworks(IReadOnlyDictionary<LoraTarget, LoraKeyMap> maps, IReadOnlyDictionary<LoraTarget, Branches> branches,
        OnDemandNetwork<Unet> unet, OnDemandNetwork<ClipTextEncoder> textEncoder, OnDemandNetwork<ClipTextEncoder> textEncoder2)
    {
        this.maps = maps;
        this.branches = branches;
        Unet = unet;
        TextEncoder = textEncoder;
        TextEncoder2 = textEncoder2;
    }

    /// <summary>The LoRAs and weights the networks apply now.</summary>
    public IReadOnlyList<LoraRequest> Requests { get; private set; } = [];

    public IReadOnlyList<AppliedLora> Applied { get; private set; } = [];

    public OnDemandNetwork<Unet> Unet { get; }

    public OnDemandNetwork<ClipTextEncoder> TextEncoder { get; }

    public OnDemandNetwork<ClipTextEncoder> TextEncoder2 { get; }

    /// <summary>What a network's branches are fed now.</summary>
    public LoraFeed Feed(LoraTarget target) => branches[target].Feed;

    /// <summary>How many UNet sessions these networks have made: one, whatever the LoRAs, unless the engine released it for memory.</summary>
    public int UnetLoads { get; private set; }

    /// <summary>
    /// The networks of <paramref name="model"/> with LoRA branches, applying none yet; they load when first used. Only the
    /// weights' headers are read here (to know every layer a LoRA may change).
    /// </summary>
    /// <param name="modules">The layers that get a branch, by module name; null for every linear and convolution layer.</param>
    public static LoraNetworks Create(SdxlModelFiles model, IpAdapterFiles? adapter, SessionSettings settings, bool keepEncodersLoaded,
        Func<string, bool>? modules = null)
    {
        modules ??= _ => true;
        var configs = model.Configs;
        var maps = new Dictionary<LoraTarget, LoraKeyMap>();
        var branches = new Dictionary<LoraTarget, Branches>();
        void Record(LoraTarget target, Func<IWeightSource, OnnxGraph> build, IWeightSource source, Func<string, string?>? alternativeNames = null)
        {
            var plan = new WeightConversionPlan(source);
            var graph = build(plan);
            maps[target] = new LoraKeyMap(target, plan.Weights.Select(w => (w.Name, w.Shape)), alternativeNames);
            branches[target] = new Branches(graph, modules);
        }
        Record(LoraTarget.Unet, plan => Networks.Unet.BuildGraph(configs.Unet, plan, false, null, modules), model.Unet, name => LdmModule(name, configs.Unet));
        Record(LoraTarget.TextEncoder, plan => ClipTextEncoder.BuildGraph(configs.TextEncoder, plan, null, modules), model.TextEncoder);
        Record(LoraTarget.TextEncoder2, plan => ClipTextEncoder.BuildGraph(configs.TextEncoder2, plan, null, modules), model.TextEncoder2);

        LoraNetworks? networks = null;
        var unet = new OnDemandNetwork<Unet>(() =>
        {
            networks!.UnetLoads++;
            return Networks.Unet.Load(configs.Unet, model.Unet, adapter, settings, branches[LoraTarget.Unet].Feed);
        }, keepLoaded: true);
        var te1 = new OnDemandNetwork<ClipTextEncoder>(() => ClipTextEncoder.Load(configs.TextEncoder, model.TextEncoder, settings, branches[LoraTarget.TextEncoder].Feed), keepEncodersLoaded);
        var te2 = new OnDemandNetwork<ClipTextEncoder>(() => ClipTextEncoder.Load(configs.TextEncoder2, model.TextEncoder2, settings, branches[LoraTarget.TextEncoder2].Feed), keepEncodersLoaded);
        networks = new LoraNetworks(maps, branches, unet, te1, te2);
        return networks;
    }

    /// <summary>
    /// Applies <paramref name="requests"/> from the next run on: every LoRA is read and checked first, and a refused one
    /// leaves the networks as they were. The files are closed once their factors are read. Returns whether the text
    /// encoders' output changes (prompts must be encoded again).
    /// </summary>
    public bool Use(IReadOnlyList<LoraRequest> requests)
    {
        if (Serve(requests)) return false;
        using var next = requests.Count == 0 ? null : LoraSet.Open(requests, maps);
        var feeds = branches.ToDictionary(b => b.Key, b => b.Value.Inputs(next?.Layers.GetValueOrDefault(b.Key) ?? []));
        var targets = next?.Layers.Keys.ToHashSet() ?? [];
        bool encodersChange = new[] { LoraTarget.TextEncoder, LoraTarget.TextEncoder2 }.Any(t => changed.Contains(t) || targets.Contains(t));
        foreach (var (target, inputs) in feeds) branches[target].Feed.Inputs = inputs;
        changed = targets;
        Applied = next?.Applied ?? [];
        Requests = requests.ToList();
        return encodersChange;
    }

    /// <summary>Whether the networks apply <paramref name="requests"/> now: the same files at the same weights, in the same order.</summary>
    private bool Serve(IReadOnlyList<LoraRequest> requests)
        => requests.Count == Requests.Count && requests.Zip(Requests).All(p => Path.GetFullPath(p.First.Path) == Path.GetFullPath(p.Second.Path) && p.First.Weight == p.Second.Weight);

    /// <summary>A UNet module's ldm ("sgm") name, which sd-scripts' SDXL LoRAs use (lora_unet_input_blocks_4_1_…).</summary>
    private static string? LdmModule(string name, UnetConfig config)
        => SingleFileLayout.Unet(name, config) is { Layout: StoredAs.Same or StoredAs.OneByOneKernel } key && key.Key.EndsWith(".weight", StringComparison.Ordinal)
            ? key.Key[SingleFileLayout.UnetPrefix.Length..^".weight".Length]
            : null;

    public void Dispose()
    {
        Unet.Dispose();
        TextEncoder.Dispose();
        TextEncoder2.Dispose();
    }

    /// <summary>One network's LoRA branches and what they are fed.</summary>
    private sealed class Branches
    {
        private readonly OnnxGraph graph;
        private readonly Dictionary<string, OnnxGraph.LoraBranch> byModule;

        public Branches(OnnxGraph graph, Func<string, bool> modules)
        {
            this.graph = graph;
            byModule = graph.LoraBranches.ToDictionary(b => b.Module, StringComparer.Ordinal);
            Feed = new LoraFeed { Modules = modules, Inputs = Inputs([]) };
        }

        public LoraFeed Feed { get; }

        /// <summary>The factors of every branch for <paramref name="layers"/>: zeros where none of them acts.</summary>
        public IReadOnlyList<ModelInput> Inputs(IReadOnlyList<MatchedLoraLayer> layers)
        {
            var byLayer = layers.ToLookup(l => l.Module, StringComparer.Ordinal);
            foreach (var layer in layers)
                if (!byModule.ContainsKey(layer.Module) && graph.Reads(layer.Module + ".weight"))
                    throw new CheckpointException(
                        $"{layer.File.Path}: its layer '{layer.Layer.Module}' changes '{layer.Module}' of the {LoraKeyMap.Describe(layer.Layer.Target)}, which is no linear or " +
                        "convolution layer (an embedding): the engine applies LoRAs to those only, so the file is not applied.", layer.File.Path, layer.Layer.Module);
            // A layer the outputs never read (the first encoder's last) needs no branch: its LoRA changes nothing SDXL sees.
            var inputs = new List<ModelInput>(2 * byModule.Count);
            foreach (var branch in byModule.Values)
            {
                var (down, up) = Factors(branch, byLayer[branch.Module].ToList());
                inputs.Add(ModelInput.Float(branch.Down, down));
                inputs.Add(ModelInput.Float(branch.Up, up));
            }
            return inputs;
        }

        /// <summary>
        /// A linear branch's A [in, R] and B [R, out] or a convolution's down [R, in, k, k] and up [out, R, 1, 1], with
        /// R the layers' ranks together and each layer's up scaled by its weight · alpha / rank.
        /// </summary>
        private static (FloatTensor Down, FloatTensor Up) Factors(OnnxGraph.LoraBranch branch, IReadOnlyList<MatchedLoraLayer> layers)
        {
            int inputs = (int)branch.In, outputs = (int)branch.Out, taps = branch.Kernel * branch.Kernel;
            // A layer no LoRA changes gets one rank of zeros (adding exact zeros). ONNX Runtime takes empty factors (rank 0)
            // too, but ran them slower: +17% over a lone 8192×640·640 layer against +9% for rank 1.
            int rank = Math.Max(1, layers.Sum(l => (int)l.Layer.Rank));
            var down = new float[rank * inputs * taps];
            var up = new float[outputs * rank];
            int offset = 0;
            foreach (var matched in layers)
            {
                int r = (int)matched.Layer.Rank;
                var (layerDown, layerUp, scale) = matched.ReadFactors();
                for (int i = 0; i < r; i++)
                {
                    var row = layerDown.AsSpan(i * inputs * taps, inputs * taps);
                    // A convolution's down rows stack as they are; a linear layer's A is down transposed.
                    if (branch.Convolution) row.CopyTo(down.AsSpan((offset + i) * inputs * taps));
                    else
                        for (int c = 0; c < inputs; c++) down[c * rank + offset + i] = row[c];
                    for (int o = 0; o < outputs; o++)
                    {
                        float value = scale * layerUp[o * r + i];
                        if (branch.Convolution) up[o * rank + offset + i] = value;
                        else up[(offset + i) * outputs + o] = value;
                    }
                }
                offset += r;
            }
            return branch.Convolution
                ? (new(down, [rank, inputs, branch.Kernel, branch.Kernel]), new(up, [outputs, rank, 1, 1]))
                : (new(down, [inputs, rank]), new(up, [rank, outputs]));
        }
    }
}
