using System.Globalization;
using Mnemosyne.Engine.Checkpoints;
using Mnemosyne.Engine.Onnx;
using Mnemosyne.Testing;
using Mnemosyne.Tools.Bench;

namespace Mnemosyne.Tools;

/// <summary>Developer commands behind build.ps1; each prints what it did.</summary>
public static class Program
{
    public static int Main(string[] args)
    {
        if (args.Length == 0) return Usage();
        CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;
        var options = Options.Parse(args.Skip(1));
        try
        {
            switch (args[0])
            {
                case "tiny-model":
                    WriteCheckpoint(options);
                    return 0;
                case "tiny-decoder":
                    WriteTinyDecoder(options);
                    return 0;
                case "sample-character":
                    var path = options.Require("output");
                    Engine.Imaging.PngFile.Save(path, SampleCharacter.Draw(512), overwrite: true);
                    Console.WriteLine($"Drew the sample character to {Path.GetFullPath(path)}.");
                    return 0;
                case "bench":
                    Benchmark.Run(BenchSettingsFrom(options));
                    return 0;
                case Benchmark.PhaseCommand:
                    Benchmark.RunPhaseHere(new PhaseRequest(options.Require("phase"), options.Require("checkpoint"),
                        Int(options.Get("threads", "0"), "threads"), Sizes(options.Require("sizes")), Int(options.Require("steps"), "steps"),
                        options.Require("work"), options.Require("result"),
                        long.Parse(options.Get("decode-bytes", "0"), CultureInfo.InvariantCulture),
                        Flag(options.Get("low-memory", "false"), "low-memory"), Precision(options.Get("precision", "Float32")),
                        Flag(options.Get("session-cache", "true"), "session-cache"), Int(options.Get("scenes", "3"), "scenes"),
                        Flag(options.Get("fast", "false"), "fast")));
                    return 0;
                default:
                    return Usage();
            }
        }
        catch (Exception e) when (e is IOException or InvalidDataException or ArgumentException or UnauthorizedAccessException)
        {
            Console.Error.WriteLine(e.Message);
            return 1;
        }
    }

    private static void WriteCheckpoint(Options options)
    {
        var output = options.Require("output");
        var shape = Shape(options.Get("size", "Tiny"));
        var seed = ulong.Parse(options.Get("seed", "1"), CultureInfo.InvariantCulture);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        RandomCheckpoint.Write(output, shape, seed, new Progress<string>(part => Console.WriteLine($"  writing {part}")));
        Console.WriteLine($"Wrote the {shape.Name} random checkpoint (seed {seed}) to {Path.GetFullPath(output)} in {clock.Elapsed.TotalSeconds:0.0} s.");
    }

    private static void WriteTinyDecoder(Options options)
    {
        var output = options.Require("output");
        var size = options.Get("size", "Tiny");
        var config = Shape(size) == CheckpointShape.Tiny ? RandomCheckpoint.TinyDecoderShape : new TinyAutoencoderConfig();
        var seed = ulong.Parse(options.Get("seed", "1"), CultureInfo.InvariantCulture);
        RandomCheckpoint.WriteTinyDecoder(output, config, seed);
        Console.WriteLine($"Wrote a random tiny decoder ({size} size, seed {seed}) to {Path.GetFullPath(output)}.");
    }

    private static BenchSettings BenchSettingsFrom(Options options)
    {
        bool quick = Flag(options.Get("quick", "false"), "quick");
        return new BenchSettings
        {
            Shape = Shape(options.Get("size", "Full")),
            Threads = Int(options.Get("threads", "0"), "threads"),
            Precision = Precision(options.Get("precision", "Float32")),
            Sizes = quick ? [512] : Sizes(options.Get("sizes", "512,1024")),
            Steps = Int(options.Get("steps", "4"), "steps"),
            Phases = options.Get("phases", string.Join(',', BenchPhases.All)).Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries),
            OutputFolder = options.Get("output", Path.Combine("out", "bench")),
            LowMemory = Flag(options.Get("low-memory", "false"), "low-memory"),
            SessionCache = Flag(options.Get("session-cache", "true"), "session-cache"),
            Peer = Flag(options.Get("peer", "false"), "peer"),
            PeerHarness = options.Get("peer-harness", ""),
            PeerVendor = options.Get("peer-vendor", ""),
            PeerPython = options.Get("peer-python", "/usr/bin/python3"),
            Scenes = Int(options.Get("scenes", "3"), "scenes"),
            Fast = Flag(options.Get("fast", "false"), "fast"),
        };
    }

    private static CheckpointShape Shape(string name) => name.ToLowerInvariant() switch
    {
        "tiny" => CheckpointShape.Tiny,
        "full" => CheckpointShape.Full,
        var other => throw new ArgumentException($"Unknown size '{other}': use Tiny or Full."),
    };

    private static WeightPrecision Precision(string name)
        => Enum.TryParse<WeightPrecision>(name, ignoreCase: true, out var precision) && Enum.IsDefined(precision) ? precision
            : throw new ArgumentException($"Unknown precision '{name}': use {string.Join(" or ", Enum.GetNames<WeightPrecision>())}.");

    private static int Int(string value, string name)
        => int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) ? n
            : throw new ArgumentException($"--{name} must be a whole number; got '{value}'.");

    private static int[] Sizes(string value) => value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
        .Select(v => Int(v, "sizes")).ToArray();

    private static bool Flag(string value, string name)
        => bool.TryParse(value, out var flag) ? flag : throw new ArgumentException($"--{name} must be true or false; got '{value}'.");

    private static int Usage()
    {
        Console.Error.WriteLine("usage: Mnemosyne.Tools tiny-model --output DIR [--size Tiny|Full] [--seed N]");
        Console.Error.WriteLine("       Mnemosyne.Tools tiny-decoder --output DIR [--size Tiny|Full] [--seed N]");
        Console.Error.WriteLine("       Mnemosyne.Tools sample-character --output FILE.png");
        Console.Error.WriteLine("       Mnemosyne.Tools bench [--size Full|Tiny] [--threads N] [--sizes 512,1024] [--steps 4] [--quick true]");
        Console.Error.WriteLine("                             [--precision Float32|Int8] [--session-cache true|false] [--scenes N] [--fast true|false]");
        Console.Error.WriteLine("                             [--phases a,b] [--output DIR] [--peer true --peer-harness DIR --peer-vendor DIR [--peer-python PATH]]");
        return 2;
    }

    private sealed class Options
    {
        private readonly Dictionary<string, string> values = new(StringComparer.OrdinalIgnoreCase);

        public static Options Parse(IEnumerable<string> args)
        {
            var options = new Options();
            string? key = null;
            foreach (var arg in args)
            {
                if (arg.StartsWith("--", StringComparison.Ordinal)) key = arg[2..];
                else if (key is not null) { options.values[key] = arg; key = null; }
                else throw new ArgumentException($"Unexpected argument '{arg}'.");
            }
            return options;
        }

        public string Get(string key, string fallback) => values.GetValueOrDefault(key, fallback);

        public string Require(string key) => values.TryGetValue(key, out var v) ? v : throw new ArgumentException($"--{key} is required.");
    }
}
