using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Mnemosyne.Testing;

/// <summary>
/// A small CLIP-style byte-level BPE vocabulary of our own (the real one is OpenAI's and is not ours to
/// ship): the 256 byte symbols, the same with the end-of-word mark, every pair of lower-case letters in
/// both forms, then the start and end tokens. Random-weight checkpoints use it so they need no download.
/// </summary>
public static class SyntheticVocabulary
{
    private const string EndOfWord = "</w>";
    private static readonly char[] Letters = "abcdefghijklmnopqrstuvwxyz".ToCharArray();

    public static int Size => 256 * 2 + Letters.Length * Letters.Length * 2 + 2;

    public static int Bos => Size - 2;

    public static int Eos => Size - 1;

    public static void Write(string folder, string padToken)
    {
        Directory.CreateDirectory(folder);
        var vocab = new JsonObject();
        int next = 0;
        var symbols = ByteSymbols();
        foreach (var s in symbols) vocab[s] = next++;
        foreach (var s in symbols) vocab[s + EndOfWord] = next++;
        var merges = new StringBuilder("#version: 0.2\n");
        foreach (var suffix in new[] { "", EndOfWord })
            foreach (var a in Letters)
                foreach (var b in Letters)
                {
                    merges.Append(a).Append(' ').Append(b).Append(suffix).Append('\n');
                    vocab[$"{a}{b}{suffix}"] = next++;
                }
        vocab["<|startoftext|>"] = next++;
        vocab["<|endoftext|>"] = next++;

        var options = new JsonSerializerOptions { WriteIndented = true };
        File.WriteAllText(Path.Combine(folder, "vocab.json"), vocab.ToJsonString(options));
        File.WriteAllText(Path.Combine(folder, "merges.txt"), merges.ToString());
        var special = new JsonObject
        {
            ["bos_token"] = "<|startoftext|>",
            ["eos_token"] = "<|endoftext|>",
            ["unk_token"] = "<|endoftext|>",
            ["pad_token"] = padToken,
        };
        File.WriteAllText(Path.Combine(folder, "special_tokens_map.json"), special.ToJsonString(options));
        var config = special.DeepClone().AsObject();
        config["model_max_length"] = 77;
        config["do_lower_case"] = true;
        config["tokenizer_class"] = "CLIPTokenizer";
        File.WriteAllText(Path.Combine(folder, "tokenizer_config.json"), config.ToJsonString(options));
    }

    /// <summary>GPT-2's reversible byte → printable character map, in its order.</summary>
    private static List<string> ByteSymbols()
    {
        var printable = Enumerable.Range('!', '~' - '!' + 1)
            .Concat(Enumerable.Range('¡', '¬' - '¡' + 1))
            .Concat(Enumerable.Range('®', 'ÿ' - '®' + 1))
            .ToList();
        var result = printable.Select(b => ((char)b).ToString()).ToList();
        int extra = 0;
        for (int b = 0; b < 256; b++)
            if (!printable.Contains(b)) result.Add(((char)(256 + extra++)).ToString());
        return result;
    }
}
