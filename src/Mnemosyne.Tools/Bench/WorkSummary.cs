namespace Mnemosyne.Tools.Bench;

/// <summary>One operator type's share of a run: kernels, time, and counted work.</summary>
public sealed record OperatorShare(string OpType, WorkKind Kind, int Kernels, double Seconds, double Gflop)
{
    public double GflopPerSecond => Seconds > 0 ? Gflop / Seconds : 0;
}

/// <summary>
/// The work of one profiled run, counted from its kernels: total GFLOP, the split by kind, and
/// time per operator type (largest first). <see cref="RunSeconds"/> is the run as the profiler saw it.
/// </summary>
public sealed record WorkSummary(
    double RunSeconds, double Gflop, double ConvolutionGflop, double LinearGflop, double AttentionGflop,
    double KernelSeconds, IReadOnlyList<OperatorShare> ByOperator)
{
    public static WorkSummary Of(ProfiledRun run)
    {
        var counted = run.Nodes.Select(n => (Node: n, Work: OperatorWork.Of(n))).ToList();
        double Sum(WorkKind kind) => counted.Where(c => c.Work.Kind == kind).Sum(c => c.Work.Flops) / 1e9;
        var shares = counted
            .GroupBy(c => c.Node.OpType)
            .Select(g => new OperatorShare(g.Key, g.First().Work.Kind, g.Count(),
                g.Sum(c => c.Node.Duration) / 1e6, g.Sum(c => c.Work.Flops) / 1e9))
            .OrderByDescending(s => s.Seconds)
            .ToList();
        return new WorkSummary(run.Duration / 1e6, counted.Sum(c => c.Work.Flops) / 1e9,
            Sum(WorkKind.Convolution), Sum(WorkKind.Linear), Sum(WorkKind.Attention),
            run.Nodes.Sum(n => n.Duration) / 1e6, shares);
    }

    /// <summary>Several sessions' runs taken together (e.g. both text encoders of one prompt).</summary>
    public static WorkSummary Combine(params WorkSummary[] parts) => new(
        parts.Sum(p => p.RunSeconds), parts.Sum(p => p.Gflop), parts.Sum(p => p.ConvolutionGflop),
        parts.Sum(p => p.LinearGflop), parts.Sum(p => p.AttentionGflop), parts.Sum(p => p.KernelSeconds),
        parts.SelectMany(p => p.ByOperator)
            .GroupBy(s => s.OpType)
            .Select(g => new OperatorShare(g.Key, g.First().Kind, g.Sum(s => s.Kernels), g.Sum(s => s.Seconds), g.Sum(s => s.Gflop)))
            .OrderByDescending(s => s.Seconds)
            .ToList());
}
