using System.Text.RegularExpressions;
using Microsoft.ML.OnnxRuntime;
using Mnemosyne.Engine.Checkpoints;
using Mnemosyne.Engine.Conversion;
using Mnemosyne.Engine.Lora;
using Mnemosyne.Engine.Networks;
using Mnemosyne.Engine.Onnx;
using Mnemosyne.Engine.Pipeline;
using Mnemosyne.Engine.Safetensors;
using Mnemosyne.Engine.Tensors;

namespace Mnemosyne.Tools.Bench;

public static partial class BenchPhases
{
    public const string Lora = "lora";

    private const int LoraRank = 32;

    /// <summary>The layers a kohya LoRA usually trains: every attention projection and feed-forward linear of the transformer blocks.</summary>
    private static readonly Regex LoraModules = new(@"\.attn[12]\.(to_q|to_k|to_v|to_out\.0)$|\.ff\.net\.(0\.proj|2)$", RegexOptions.CultureInvariant);

    /// <summary>
    /// What LoRAs cost a UNet step (guided, batch 2, at the largest size) and what switching them costs, for each way of
    /// applying them: the plain graph; the engine's graph with LoRA branches (no LoRA, one and two rank-32 LoRAs on every
    /// attention and feed-forward linear, made here at the model's shapes); the same graph fed by ONNX Runtime's
    /// OrtLoraAdapter; and merged weights in a new session per set (the mechanism the branches replaced). Switch times
    /// stand beside the UNet's open with the phase's settings (warm, from the session cache unless -NoSessionCache).
    /// </summary>
    private static void RunLora(PhaseContext c)
    {
        var options = EngineOptionsFor(c.Request);
        using var model = SdxlModelFiles.Open(options);
        var config = model.Configs.Unet;
        var settings = c.Settings(null);
        int size = c.Request.Sizes.Max();
        var (inputs, names) = LoraStepInputs(config, size);
        var loraA = WriteBenchLora(c, model, "lora-a", seed: 11);
        var loraB = WriteBenchLora(c, model, "lora-b", seed: 12);
        List<LoraRequest> one = [new(loraA)], two = [new(loraA), new(loraB)], reweighted = [new(loraA, 0.5f), new(loraB)];
        var conditioning = new UnetConditioning(inputs[2], inputs[3], inputs[4]);
        void Steps(string what, Action step)
        {
            step();
            var times = Enumerable.Range(0, 2).Select(_ => Time(step)).ToList();
            c.Add(new Measurement($"UNet step {size}² (batch 2), {what}", times, c.Memory.Sample(what).Peak));
        }

        // The plain graph, as scenes without LoRAs run it before any LoRA.
        Unet plain = null!;
        c.Add(new Measurement("UNet open, plain graph", [Time(() => plain = Unet.Load(config, model.Unet, null, settings))], c.Memory.ProcessPeak));
        using (plain) Steps("plain graph", () => plain.Run(inputs[0], 999f, conditioning));
        NativeHeap.Trim();

        // The engine's mechanism: one session with a branch on every layer; a switch is new inputs.
        using (var networks = LoraNetworks.Create(model, null, settings, keepEncodersLoaded: false))
        {
            networks.Use([]);
            c.Add(new Measurement("UNet open, graph with LoRA branches on every layer", [Time(() => networks.Unet.Load())], c.Memory.ProcessPeak));
            void Step() => networks.Unet.Use(u => u.Run(inputs[0], 999f, conditioning));
            Steps("branches, no LoRA (zero factors everywhere)", Step);
            c.Add(new Measurement("LoRA switch, branches: none → one LoRA", [Time(() => networks.Use(one))], c.Memory.ProcessPeak));
            Steps("branches, one rank-32 LoRA", Step);
            c.Add(new Measurement("LoRA switch, branches: one → two LoRAs", [Time(() => networks.Use(two))], c.Memory.ProcessPeak));
            Steps("branches, two rank-32 LoRAs", Step);
            c.Add(new Measurement("LoRA switch, branches: a weight 1 → 0.5", [Time(() => networks.Use(reweighted))], c.Memory.ProcessPeak));
            networks.Unet.Release();

            // ONNX Runtime's adapters over the same graph: the factors come from an OrtLoraAdapter instead of the feeds.
            using var session = BranchSession(config, model.Unet, settings);
            void StepWith(IReadOnlyList<ModelInput> lora, OrtLoraAdapter? adapter)
            {
                using var active = new RunOptions();
                if (adapter is not null) active.AddActiveLoraAdapter(adapter);
                var values = inputs.Select(i => OrtValue.CreateTensorValueFromMemory(i.Data, i.Shape.Select(d => (long)d).ToArray()))
                    .Concat(lora.Select(l => l.Create())).ToList();
                try
                {
                    using var results = session.Run(active, names.Concat(lora.Select(l => l.Name)).ToList(), values, [Unet.Output]);
                }
                finally
                {
                    foreach (var value in values) value.Dispose();
                }
            }
            OrtLoraAdapter? adapter = null;
            IReadOnlyList<ModelInput> fed = networks.Feed(LoraTarget.Unet).Inputs;
            c.Add(new Measurement("LoRA switch, OrtLoraAdapter: two LoRAs written and loaded", [Time(() => adapter = Adapter(fed))], c.Memory.ProcessPeak));
            using (adapter)
            {
                Steps("same graph, two LoRAs fed as inputs", () => StepWith(fed, null));
                Steps("same graph, two LoRAs from an OrtLoraAdapter", () => StepWith([], adapter));
            }
        }
        NativeHeap.Trim();

        // Branches on the set's layers only (here the attention and feed-forward linears): no rank-0 branch elsewhere, but
        // a graph, and so a session, per set of layers.
        using (var networks = LoraNetworks.Create(model, null, settings, keepEncodersLoaded: false, LoraModules.IsMatch))
        {
            networks.Use(two);
            c.Add(new Measurement("UNet open, graph with branches on the LoRAs' layers only", [Time(() => networks.Unet.Load())], c.Memory.ProcessPeak));
            Steps("branches on the LoRAs' layers only, two rank-32 LoRAs", () => networks.Unet.Use(u => u.Run(inputs[0], 999f, conditioning)));
        }
        NativeHeap.Trim();

        // Merged weights (the mechanism before the branches): every set or weight writes W + ΔW and makes a new session.
        var map = new LoraKeyMap(LoraTarget.Unet, LoraWeights(config, model.Unet));
        var maps = new Dictionary<LoraTarget, LoraKeyMap> { [LoraTarget.Unet] = map };
        var mergedSettings = settings with { SessionCache = null };
        foreach (var (what, requests) in new[] { ("one LoRA", one), ("two LoRAs", two), ("two LoRAs, a weight at 0.5", reweighted) })
        {
            LoraSet set = null!;
            LoraMergedWeights merged = null!;
            Unet unet = null!;
            var merge = Time(() =>
            {
                set = LoraSet.Open(requests, maps);
                merged = LoraMergedWeights.Create((IStoredWeightSource)model.Unet, set.Layers[LoraTarget.Unet]);
            });
            var open = Time(() => unet = Unet.Load(config, merged, null, mergedSettings));
            c.Add(new Measurement($"LoRA switch, merged: {what} (merge {merge:0.00} s + new session {open:0.00} s)", [merge + open], c.Memory.ProcessPeak));
            using (set)
            using (merged)
            using (unet)
                if (what == "two LoRAs") Steps("merged weights, two LoRAs", () => unet.Run(inputs[0], 999f, conditioning));
            NativeHeap.Trim();
        }
    }

    /// <summary>sample, timestep, encoder_hidden_states, text_embeds and time_ids of a guided step at <paramref name="size"/>², with their names.</summary>
    private static (FloatTensor[] Inputs, string[] Names) LoraStepInputs(UnetConfig config, int size)
    {
        int side = size / 8;
        int pooled = config.ProjectionClassEmbeddingsInputDim - Unet.TimeIdCount * config.AdditionTimeEmbedDim;
        return ([
            new FloatTensor(RandomValues(2 * config.InChannels * side * side, size), [2, config.InChannels, side, side]),
            new FloatTensor([999f], [1]),
            new FloatTensor(RandomValues(2 * 77 * config.CrossAttentionDim, 3), [2, 77, config.CrossAttentionDim]),
            new FloatTensor(RandomValues(2 * pooled, 4), [2, pooled]),
            new FloatTensor([1024, 1024, 0, 0, 1024, 1024, 1024, 1024, 0, 0, 1024, 1024], [2, Unet.TimeIdCount]),
        ], [Unet.SampleInput, Unet.TimestepInput, Unet.EncoderHiddenStatesInput, Unet.TextEmbedsInput, Unet.TimeIdsInput]);
    }

    /// <summary>The UNet's weights with their shapes, as a LoRA's key map reads them.</summary>
    private static IEnumerable<(string Name, long[] Shape)> LoraWeights(UnetConfig config, IWeightSource weights)
    {
        var plan = new WeightConversionPlan(weights);
        Unet.BuildGraph(config, plan, false, null);
        return plan.Weights.Select(w => (w.Name, w.Shape));
    }

    /// <summary>
    /// A kohya-named LoRA of rank <see cref="LoraRank"/> (alpha 16) on every attention and feed-forward linear of the UNet,
    /// with small random factors; written once into the work folder.
    /// </summary>
    private static string WriteBenchLora(PhaseContext c, SdxlModelFiles model, string name, int seed)
    {
        var path = Path.Combine(c.Request.WorkFolder, $"{name}-rank{LoraRank}.safetensors");
        var plan = new WeightConversionPlan(model.Unet);
        var graph = Unet.BuildGraph(model.Configs.Unet, plan, false, null, _ => true);
        var entries = new List<SafetensorsWriter.Entry>();
        int layer = 0;
        foreach (var branch in graph.LoraBranches.Where(b => LoraModules.IsMatch(b.Module)))
        {
            var key = "lora_unet_" + branch.Module.Replace('.', '_');
            int layerSeed = seed * 100_000 + layer++;
            entries.Add(new(key + ".lora_down.weight", [LoraRank, branch.In], () => Scaled(RandomValues(LoraRank * (int)branch.In, layerSeed), 0.01f)));
            entries.Add(new(key + ".lora_up.weight", [branch.Out, LoraRank], () => Scaled(RandomValues((int)branch.Out * LoraRank, -layerSeed), 0.01f)));
            entries.Add(new(key + ".alpha", [], () => [16f]));
        }
        SafetensorsWriter.Write(path, entries);
        c.Result.Values[$"{name}Layers"] = layer;
        return path;
    }

    private static float[] Scaled(float[] values, float scale)
    {
        for (int i = 0; i < values.Length; i++) values[i] *= scale;
        return values;
    }

    /// <summary>A session of the UNet graph with LoRA branches, as the engine's (from the session cache when it has one).</summary>
    private static InferenceSession BranchSession(UnetConfig config, IWeightSource weights, SessionSettings settings)
    {
        var graph = settings.Precision == WeightPrecision.Float32
            ? Unet.BuildGraph(config, weights, false, Path.GetDirectoryName(weights.Path), _ => true)
            : ConvertedNetwork.Build(settings, [("unet", weights)], (sources, folder) => Unet.BuildGraph(config, sources[0], false, folder, _ => true));
        return settings.SessionCache is { } cache && graph.WeightFolder is not null
            ? cache.CreateSession(graph, settings)
            : OnnxModel.FromGraph(graph.ToBytes(), graph.WeightFolder, settings);
    }

    /// <summary>An OrtLoraAdapter holding <paramref name="inputs"/>' factors, written in ONNX Runtime's adapter format and loaded.</summary>
    private static OrtLoraAdapter Adapter(IReadOnlyList<ModelInput> inputs)
    {
        var parameters = inputs.Select(input =>
        {
            using var value = input.Create();
            return (input.Name, value.GetTensorTypeAndShape().Shape, value.GetTensorDataAsSpan<float>().ToArray());
        }).ToList();
        return OrtLoraAdapter.Create(OrtAdapterFile.Write(parameters), null);
    }
}
