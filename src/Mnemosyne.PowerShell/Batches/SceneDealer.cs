namespace Mnemosyne.PowerShell.Batches;

/// <summary>
/// The scenes still to make, dealt to the sessions a few at a time. A session that fails hands its unfinished scenes
/// back, and they go to the next session that asks; a session that finds none waiting waits while others still hold
/// some (they may fail and hand them back), so every scene is made once, or left over only when every session failed.
/// </summary>
internal sealed class SceneDealer(IEnumerable<BatchScene> scenes)
{
    private readonly object gate = new();
    private readonly Queue<BatchScene> waiting = new(scenes);
    private int dealt;

    /// <summary>Up to <paramref name="most"/> scenes, or null when there is nothing left to deal (or the batch is stopping).</summary>
    public IReadOnlyList<BatchScene>? Deal(int most, CancellationToken cancellation)
    {
        lock (gate)
        {
            while (waiting.Count == 0 && dealt > 0 && !cancellation.IsCancellationRequested) Monitor.Wait(gate, 200);
            if (waiting.Count == 0 || cancellation.IsCancellationRequested) return null;
            var hand = new List<BatchScene>();
            while (hand.Count < most && waiting.TryDequeue(out var scene)) hand.Add(scene);
            dealt += hand.Count;
            return hand;
        }
    }

    /// <summary>A dealt scene came back, made or failed for good.</summary>
    public void Finished()
    {
        lock (gate)
        {
            dealt--;
            Monitor.PulseAll(gate);
        }
    }

    /// <summary>Dealt scenes that their session will not make, for another session.</summary>
    public void HandBack(IReadOnlyCollection<BatchScene> unfinished)
    {
        lock (gate)
        {
            foreach (var scene in unfinished) waiting.Enqueue(scene);
            dealt -= unfinished.Count;
            Monitor.PulseAll(gate);
        }
    }

    /// <summary>The scenes no session made, once every session has stopped.</summary>
    public IReadOnlyList<BatchScene> Leftover()
    {
        lock (gate) return [.. waiting];
    }
}
