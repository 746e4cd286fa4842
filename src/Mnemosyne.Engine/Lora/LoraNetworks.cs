using Mnemosyne.Engine.Checkpoints;
using Mnemosyne.Engine.Conversion;
using Mnemosyne.Engine.Networks;
using Mnemosyne.Engine.Onnx;
using Mnemosyne.Engine.Pipeline;
using Mnemosyne.Engine.Safetensors;

namespace Mnemosyne.Engine.Lora;

/// <summary>
/// The networks of a scene with LoRAs: a UNet and text encoders over their checkpoint weights with the LoRAs merged
/// in (<see cref="LoraMergedWeights"/>), made when the set of LoRAs or their weights change, beside the engine's
/// plain networks, which scenes without LoRAs keep using. A network no LoRA of the set changes is null: the plain
/// one serves. Float32 engines only for now: an Int8 engine's converted weights are not merged into.
/// </summary>
internal sealed class LoraNetworks : IDisposable
{
    private readonly LoraSet set;
    private readonly List<LoraMergedWeights> weights;

    private LoraNetworks(IReadOnlyList<LoraRequest> requests, LoraSet set, List<LoraMergedWeights> weights,
        OnDemandNetwork<Unet>? unet, OnDemandNetwork<ClipTextEncoder>? textEncoder, OnDemandNetwork<ClipTextEncoder>? textEncoder2)
    {
        Requests = requests;
        this.set = set;
        this.weights = weights;
        Unet = unet;
        TextEncoder = textEncoder;
        TextEncoder2 = textEncoder2;
    }

    /// <summary>The LoRAs and weights these networks were made for.</summary>
    public IReadOnlyList<LoraRequest> Requests { get; }

    public IReadOnlyList<AppliedLora> Applied => set.Applied;

    public OnDemandNetwork<Unet>? Unet { get; }

    public OnDemandNetwork<ClipTextEncoder>? TextEncoder { get; }

    public OnDemandNetwork<ClipTextEncoder>? TextEncoder2 { get; }

    /// <summary>Whether these networks serve <paramref name="requests"/>: the same files at the same weights, in the same order.</summary>
    public bool Serve(IReadOnlyList<LoraRequest> requests)
        => requests.Count == Requests.Count && requests.Zip(Requests).All(p => Path.GetFullPath(p.First.Path) == Path.GetFullPath(p.Second.Path) && p.First.Weight == p.Second.Weight);

    /// <summary>
    /// Reads and checks every LoRA of <paramref name="requests"/> against the model and merges them; the networks load
    /// when first used. The engine's sessions are not cached for LoRA networks (a LoRA set's session is worth one scene series).
    /// </summary>
    public static LoraNetworks Open(IReadOnlyList<LoraRequest> requests, SdxlModelFiles model, IpAdapterFiles? adapter, SessionSettings settings, bool keepEncodersLoaded)
    {
        if (settings.Precision != WeightPrecision.Float32)
            throw new InvalidOperationException(
                $"LoRAs are applied by Float32 engines only for now; this engine runs {settings.Precision}. Open the engine with -Precision Float32 to use LoRAs.");
        var configs = model.Configs;
        var unetSource = Stored(model.Unet);
        var te1Source = Stored(model.TextEncoder);
        var te2Source = Stored(model.TextEncoder2);
        var maps = new Dictionary<LoraTarget, LoraKeyMap>
        {
            [LoraTarget.Unet] = new(LoraTarget.Unet, Record(plan => Networks.Unet.BuildGraph(configs.Unet, plan, false, null), unetSource), name => LdmModule(name, configs.Unet)),
            [LoraTarget.TextEncoder] = new(LoraTarget.TextEncoder, Record(plan => ClipTextEncoder.BuildGraph(configs.TextEncoder, plan, null), te1Source)),
            [LoraTarget.TextEncoder2] = new(LoraTarget.TextEncoder2, Record(plan => ClipTextEncoder.BuildGraph(configs.TextEncoder2, plan, null), te2Source)),
        };

        var set = LoraSet.Open(requests, maps);
        var weights = new List<LoraMergedWeights>();
        try
        {
            IWeightSource? Merged(LoraTarget target, IStoredWeightSource source)
            {
                if (!set.Layers.TryGetValue(target, out var layers)) return null;
                var merged = LoraMergedWeights.Create(source, layers);
                weights.Add(merged);
                return merged;
            }
            var loraSettings = settings with { SessionCache = null };
            var unetWeights = Merged(LoraTarget.Unet, unetSource);
            var te1Weights = Merged(LoraTarget.TextEncoder, te1Source);
            var te2Weights = Merged(LoraTarget.TextEncoder2, te2Source);
            return new LoraNetworks(requests.ToList(), set, weights,
                unetWeights is null ? null : new OnDemandNetwork<Unet>(() => Networks.Unet.Load(configs.Unet, unetWeights, adapter, loraSettings), keepLoaded: true),
                te1Weights is null ? null : new OnDemandNetwork<ClipTextEncoder>(() => ClipTextEncoder.Load(configs.TextEncoder, te1Weights, loraSettings), keepEncodersLoaded),
                te2Weights is null ? null : new OnDemandNetwork<ClipTextEncoder>(() => ClipTextEncoder.Load(configs.TextEncoder2, te2Weights, loraSettings), keepEncodersLoaded));
        }
        catch
        {
            foreach (var merged in weights) merged.Dispose();
            set.Dispose();
            throw;
        }
    }

    private static IStoredWeightSource Stored(IWeightSource source) => source as IStoredWeightSource
        ?? throw new InvalidOperationException($"{source.Path}: LoRAs are merged into weights stored in files; this source holds none.");

    /// <summary>Every weight a network's graph reads, with its shape, as building the graph over a recorder lists them.</summary>
    private static IEnumerable<(string Name, long[] Shape)> Record(Action<IWeightSource> build, IWeightSource source)
    {
        var plan = new WeightConversionPlan(source);
        build(plan);
        return plan.Weights.Select(w => (w.Name, w.Shape));
    }

    /// <summary>A UNet module's ldm ("sgm") name, which sd-scripts' SDXL LoRAs use (lora_unet_input_blocks_4_1_…).</summary>
    private static string? LdmModule(string name, UnetConfig config)
        => SingleFileLayout.Unet(name, config) is { Layout: StoredAs.Same or StoredAs.OneByOneKernel } key && key.Key.EndsWith(".weight", StringComparison.Ordinal)
            ? key.Key[SingleFileLayout.UnetPrefix.Length..^".weight".Length]
            : null;

    public void Dispose()
    {
        Unet?.Dispose();
        TextEncoder?.Dispose();
        TextEncoder2?.Dispose();
        foreach (var merged in weights) merged.Dispose();
        set.Dispose();
    }
}
