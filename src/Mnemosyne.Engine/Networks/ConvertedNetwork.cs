using Mnemosyne.Engine.Conversion;
using Mnemosyne.Engine.Onnx;
using Mnemosyne.Engine.Safetensors;

namespace Mnemosyne.Engine.Networks;

/// <summary>
/// Builds a network's graph over weights converted for a <see cref="WeightPrecision"/> other than Float32: a first
/// build over plans records (and checks) every weight the graph reads; the weights are converted into one cache
/// folder unless they are there already; a second build reads them all from that folder, which is what ONNX
/// Runtime needs (external data from one folder per session).
/// </summary>
internal static class ConvertedNetwork
{
    /// <param name="sources">Each weight file the network reads, with the stem its converted file is named by; the first names the folder.</param>
    /// <param name="build">Builds the graph (or graphs sharing the weights) over the given sources (in order) with the given weight folder.</param>
    /// <param name="checkBeforeConverting">Other checks that must pass before anything is converted.</param>
    public static TGraph Build<TGraph>(SessionSettings settings, IReadOnlyList<(string Stem, IWeightSource Source)> sources,
        Func<IReadOnlyList<IWeightSource>, string?, TGraph> build, Action? checkBeforeConverting = null)
    {
        var plans = sources.Select(s => new WeightConversionPlan(s.Source)).ToList();
        build(plans, null);
        checkBeforeConverting?.Invoke();

        var folder = ConvertedWeightCache.FolderFor(sources[0].Source.Path, settings.Precision, settings.ConvertedWeightsRoot);
        var converted = new List<ConvertedWeights>();
        try
        {
            for (int i = 0; i < sources.Count; i++) converted.Add(ConvertedWeightCache.Open(folder, sources[i].Stem, plans[i]));
            // The graph names files and offsets only: ONNX Runtime opens the files itself when the session is made.
            return build(converted, folder);
        }
        finally
        {
            foreach (var file in converted) file.Dispose();
        }
    }
}
