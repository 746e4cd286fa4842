using System.Diagnostics;
using System.Globalization;
using Mnemosyne.Engine.Imaging;
using Mnemosyne.Engine.Pipeline;

namespace Mnemosyne.Tools.Bench;

/// <summary>
/// The "engines" phase: scenes per hour of one machine's cores as one engine process with every thread, as one process per
/// thread (what Invoke-MnemosyneBatch -LocalProcess makes), and as one process with one thread (the per-thread scaling), with
/// the memory each process of the many holds of its own and shares with the others (the saved sessions' mapped weights).
/// </summary>
public static partial class BenchPhases
{
    /// <summary>One engine process of the "engines" phase, started by it; not chosen.</summary>
    public const string EngineWorker = "engine-worker";

    private const string WorkerReady = "@engine-worker ready";
    private const string WorkerDone = "@engine-worker done";

    /// <summary>Cores the model extrapolates to.</summary>
    private static readonly int[] ModelCores = [16, 64];

    private static readonly string[] SharingFields = ["Rss", "Pss", "Shared_Clean", "Shared_Dirty", "Private_Clean", "Private_Dirty"];

    private static void RunEngines(PhaseContext c)
    {
        int threads = c.Request.Threads > 0 ? c.Request.Threads : Environment.ProcessorCount;
        var configurations = new List<(int Processes, int Threads)> { (1, 1) };
        if (threads > 1) configurations.AddRange([(1, threads), (threads, 1)]);
        // Written once here, not by processes racing each other.
        if (c.Request.Fast) TinyDecoderFolder(c);
        PngFile.Save(EngineReferencePicture(c), SyntheticImage(768, 768), overwrite: true);
        foreach (var size in c.Request.Sizes)
        {
            var rates = configurations.ToDictionary(k => k, k => RunEngineConfiguration(c, size, k.Processes, k.Threads));
            if (threads > 1) Model(c, size, threads, rates[(1, 1)], rates[(1, threads)], rates[(threads, 1)]);
        }
    }

    /// <summary>Starts the processes, lets them all start making scenes at once when every one is open and warm; scenes per hour.</summary>
    private static double RunEngineConfiguration(PhaseContext c, int size, int processes, int threads)
    {
        var name = $"engines {processes}×{threads} {size}²";
        var workers = new List<(Process Process, SemaphoreSlim Ready, SemaphoreSlim Done, List<double> Seconds)>();
        try
        {
            for (int i = 0; i < processes; i++)
            {
                var request = c.Request with
                {
                    Phase = EngineWorker, Threads = threads, Sizes = [size],
                    ResultPath = Path.Combine(c.Request.WorkFolder, $"engines-{processes}x{threads}-{size}-{i + 1}.json"),
                };
                var start = Benchmark.PhaseStartInfo(request);
                start.RedirectStandardInput = true;
                start.RedirectStandardOutput = true;
                var process = Process.Start(start) ?? throw new InvalidOperationException("Could not start an engine process.");
                var worker = (Process: process, Ready: new SemaphoreSlim(0), Done: new SemaphoreSlim(0), Seconds: new List<double>());
                var label = $"  [{name}, process {i + 1}] ";
                process.OutputDataReceived += (_, e) =>
                {
                    if (e.Data is null)
                    {
                        // Ended: nothing more comes, so no one waits for it.
                        worker.Ready.Release();
                        worker.Done.Release();
                    }
                    else if (e.Data == WorkerReady) worker.Ready.Release();
                    else if (e.Data.StartsWith(WorkerDone, StringComparison.Ordinal))
                    {
                        worker.Seconds.AddRange(e.Data[WorkerDone.Length..].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                            .Select(s => double.Parse(s, CultureInfo.InvariantCulture)));
                        worker.Done.Release();
                    }
                    else Console.WriteLine(label + e.Data.TrimStart());
                };
                process.BeginOutputReadLine();
                workers.Add(worker);
            }
            foreach (var w in workers) w.Ready.Wait();
            if (workers.Select(w => w.Process).FirstOrDefault(p => p.HasExited) is { } ended)
                throw new InvalidOperationException($"{name}: an engine process ended before it was ready (exit code {ended.ExitCode}).");
            var clock = Stopwatch.StartNew();
            foreach (var w in workers) w.Process.StandardInput.WriteLine("go");
            foreach (var w in workers) w.Done.Wait();
            var wall = clock.Elapsed.TotalSeconds;
            // Every process is still alive: each one's proportional share of the pages they map together.
            var memory = workers.Select(w => ProcessMemory.Sharing(w.Process.Id)).ToList();
            if (workers.Any(w => w.Seconds.Count != c.Request.Scenes))
                throw new InvalidOperationException($"{name}: an engine process ended before it made its {c.Request.Scenes} scenes.");

            int scenes = processes * c.Request.Scenes;
            double rate = scenes * 3600 / wall;
            c.Result.Values[$"{name}: scenes per hour"] = rate;
            for (int i = 0; i < memory.Count; i++)
                foreach (var field in SharingFields)
                    c.Result.Values[$"{name}: process {i + 1} {field}"] = memory[i].GetValueOrDefault(field);
            var perProcess = memory.Select((m, i) =>
                $"process {i + 1}: scenes {StepList(workers[i].Seconds)} s, RSS {Benchmark.Gb(m.GetValueOrDefault("Rss"))} GB, PSS {Benchmark.Gb(m.GetValueOrDefault("Pss"))} GB, " +
                $"shared {Benchmark.Gb(m.GetValueOrDefault("Shared_Clean") + m.GetValueOrDefault("Shared_Dirty"))} GB, " +
                $"private {Benchmark.Gb(m.GetValueOrDefault("Private_Clean") + m.GetValueOrDefault("Private_Dirty"))} GB");
            c.Add(new Measurement(name, [wall], memory.Sum(m => m.GetValueOrDefault("Pss")))
            {
                Note = $"{scenes} scenes ({(c.Request.Fast ? "Fast, tiny decoder" : $"{c.Request.Steps} guided steps, VAE")}, with reference) " +
                    $"at once after one untimed scene each: {rate:0.0} scenes/hour; {string.Join("; ", perProcess)}; peak = the processes' PSS summed",
            });
            return rate;
        }
        finally
        {
            foreach (var w in workers)
            {
                if (!w.Process.HasExited)
                {
                    try { w.Process.StandardInput.WriteLine("exit"); } catch (IOException) { }
                    if (!w.Process.WaitForExit(60_000)) w.Process.Kill();
                }
                w.Process.Dispose();
            }
        }
    }

    /// <summary>
    /// Extrapolates to more cores from the three measured rates (printed and kept with the phase's values). Threads in one
    /// process: Amdahl's law with the serial share the 1×T speed-up implies. One process per core: the 1×1 rate times the
    /// cores times the efficiency T processes kept against T lone ones (T×1 against T·1×1), taken to hold at any count.
    /// Memory: the first process's RSS plus the private memory of each other one.
    /// </summary>
    private static void Model(PhaseContext c, int size, int threads, double single, double oneProcess, double manyProcesses)
    {
        double speedup = oneProcess / single;
        double serial = Math.Clamp((threads / speedup - 1) / (threads - 1), 0, 1);
        double efficiency = manyProcesses / (threads * single);
        var v = c.Result.Values;
        var many = $"engines {threads}×1 {size}²";
        double first = v.GetValueOrDefault($"{many}: process 1 Rss");
        double added = v.GetValueOrDefault($"{many}: process 2 Private_Clean") + v.GetValueOrDefault($"{many}: process 2 Private_Dirty");
        v[$"model {size}²: thread speed-up 1×{threads}"] = speedup;
        v[$"model {size}²: serial share"] = serial;
        v[$"model {size}²: process efficiency {threads}×1"] = efficiency;
        Console.WriteLine($"  model {size}²: 1×{threads} is {speedup:0.00}× 1×1 (serial share {serial:P0}); {threads}×1 keeps {efficiency:P0} of {threads} lone 1×1 processes; " +
            $"a process beyond the first adds {Benchmark.Gb(added)} GB of its own");
        foreach (var cores in ModelCores)
        {
            double wide = single / (serial + (1 - serial) / cores);
            double spread = single * cores * efficiency;
            v[$"model {size}² {cores} cores: 1×{cores} scenes per hour"] = wide;
            v[$"model {size}² {cores} cores: {cores}×1 scenes per hour"] = spread;
            v[$"model {size}² {cores} cores: {cores}×1 resident bytes"] = first + (cores - 1) * added;
            Console.WriteLine($"  model {size}², {cores} cores: 1×{cores} ≈ {wide:0} scenes/hour; {cores}×1 ≈ {spread:0} scenes/hour " +
                $"in ≈ {Benchmark.Gb(first + (cores - 1) * added)} GB");
        }
    }

    /// <summary>One process of <see cref="RunEngines"/>: opens, makes a scene untimed, then on "go" its scenes, one after another.</summary>
    private static void RunEngineWorker(PhaseContext c)
    {
        var files = Directory.EnumerateFiles(c.Request.Checkpoint, "*", SearchOption.AllDirectories).ToList();
        using var engine = OpenEngine(c, "engine open, warm", files, tinyDecoder: c.Request.Fast ? TinyDecoderFolder(c) : null);
        var reference = engine.EncodeReference([EngineReferencePicture(c)], "bench");
        int size = c.Request.Sizes[0];
        // What a long batch pays once (the decoder's first run, the arenas' growth) stays out of the rate.
        engine.Generate(EngineScene(c.Request, size, reference, 0));
        Console.WriteLine(WorkerReady);
        if (Console.ReadLine() != "go") return;
        var seconds = new List<double>();
        for (int i = 1; i <= c.Request.Scenes; i++)
        {
            var request = EngineScene(c.Request, size, reference, i);
            seconds.Add(Time(() => engine.Generate(request)));
        }
        c.Add(new Measurement("scenes", seconds, c.Memory.ProcessPeak));
        Console.WriteLine($"{WorkerDone} {string.Join(',', seconds.Select(s => s.ToString("R", CultureInfo.InvariantCulture)))}");
        // Alive until the phase has read every process's memory.
        Console.ReadLine();
    }

    /// <summary>A scene of a storyboard: each its own prompt (so each encodes its text, as a batch's scenes do) and seed.</summary>
    private static SceneRequest EngineScene(PhaseRequest request, int size, CharacterReference reference, int index)
    {
        var prompt = $"{Prompt}, shot {index}";
        return request.Fast
            ? new SceneRequest { Prompt = prompt, Seed = index, Width = size, Height = size, Reference = reference, Decoder = SceneDecoder.Tiny }.ForFewStepUnet()
            : new SceneRequest { Prompt = prompt, Seed = index, Steps = request.Steps, Width = size, Height = size, Reference = reference };
    }

    private static string EngineReferencePicture(PhaseContext c) => Path.Combine(c.Request.WorkFolder, "engines-reference.png");
}
