using System.Globalization;
using Mnemosyne.Engine.Checkpoints;

namespace Mnemosyne.Tools;

/// <summary>Developer commands behind build.ps1; each prints what it did.</summary>
public static class Program
{
    public static int Main(string[] args)
    {
        if (args.Length == 0) return Usage();
        var options = Options.Parse(args.Skip(1));
        try
        {
            switch (args[0])
            {
                case "tiny-model":
                    WriteCheckpoint(options);
                    return 0;
                case "sample-character":
                    var path = options.Require("output");
                    Engine.Imaging.PngFile.Save(path, SampleCharacter.Draw(512), overwrite: true);
                    Console.WriteLine($"Drew the sample character to {Path.GetFullPath(path)}.");
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
        var shape = options.Get("size", "Tiny").ToLowerInvariant() switch
        {
            "tiny" => CheckpointShape.Tiny,
            "full" => CheckpointShape.Full,
            var other => throw new ArgumentException($"Unknown size '{other}': use Tiny or Full."),
        };
        var seed = ulong.Parse(options.Get("seed", "1"), CultureInfo.InvariantCulture);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        RandomCheckpoint.Write(output, shape, seed, new Progress<string>(part => Console.WriteLine($"  writing {part}")));
        Console.WriteLine($"Wrote the {shape.Name} random checkpoint (seed {seed}) to {Path.GetFullPath(output)} in {clock.Elapsed.TotalSeconds:0.0} s.");
    }

    private static int Usage()
    {
        Console.Error.WriteLine("usage: Mnemosyne.Tools tiny-model --output DIR [--size Tiny|Full] [--seed N]");
        Console.Error.WriteLine("       Mnemosyne.Tools sample-character --output FILE.png");
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
