namespace Mnemosyne.Engine.Onnx;

/// <summary>
/// The factors a network's LoRA branches read (<see cref="OnnxGraph.LoraBranches"/>), fed with every run: shared by
/// whoever chooses the LoRAs and the network that runs, so that a new set or weight is a new <see cref="Inputs"/>
/// at the next run, never a new session.
/// </summary>
public sealed class LoraFeed
{
    /// <summary>The layers that have a branch, by module name (the checkpoint's, without ".weight"): all of them unless told.</summary>
    public Func<string, bool> Modules { get; init; } = _ => true;

    /// <summary>One value for each branch input of the network's graph.</summary>
    public IReadOnlyList<ModelInput> Inputs { get; set; } = [];
}
