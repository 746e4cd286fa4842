using System.Buffers;
using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using Microsoft.ML.Tokenizers;

namespace Mnemosyne.Engine.Text;

/// <summary>
/// CLIP's byte-level BPE tokenizer as Stable Diffusion pipelines call it: BOS, the prompt's ids
/// cut to <see cref="MaxLength"/> − 2, EOS, then the folder's own pad id up to <see cref="MaxLength"/>.
/// Reads a diffusers tokenizer folder (vocab.json, merges.txt, special_tokens_map.json and/or
/// tokenizer_config.json). Instances are immutable and safe to share between threads.
/// </summary>
public sealed class ClipTokenizer
{
    public const string VocabFileName = "vocab.json";
    public const string MergesFileName = "merges.txt";
    public const string SpecialTokensMapFileName = "special_tokens_map.json";
    public const string TokenizerConfigFileName = "tokenizer_config.json";

    private const string EndOfWordSuffix = "</w>";
    private const int ClipContextLength = 77;
    private static readonly string[] FolderFiles = [VocabFileName, MergesFileName, SpecialTokensMapFileName, TokenizerConfigFileName];

    // The vocabulary is read once per folder; a changed file (new time stamp or size) is read again.
    private static readonly ConcurrentDictionary<string, (string Fingerprint, ClipTokenizer Tokenizer)> LoadedFolders = new(StringComparer.Ordinal);

    private readonly BpeTokenizer bpe;
    private readonly bool splitOnPadToken;
    private readonly int? commaId;

    private ClipTokenizer(BpeTokenizer bpe, string folder, SpecialTokens tokens, IReadOnlyDictionary<string, int> vocabulary)
    {
        this.bpe = bpe;
        Folder = folder;
        PadToken = tokens.Pad;
        BosId = vocabulary[tokens.Bos];
        EosId = vocabulary[tokens.Eos];
        PadId = vocabulary[tokens.Pad];
        MaxLength = tokens.MaxLength;
        commaId = bpe.EncodeToIds(",") is [var comma] ? comma : null;
        // transformers splits a prompt on every registered special token before BPE. BOS and EOS
        // the split pattern catches anyway; any other pad token (SDXL's tokenizer_2 pads with "!")
        // is split out of the raw prompt and becomes the pad id.
        splitOnPadToken = tokens.Pad != tokens.Bos && tokens.Pad != tokens.Eos;
    }

    /// <summary>The folder the tokenizer was read from, as a full path.</summary>
    public string Folder { get; }

    public int BosId { get; }

    public int EosId { get; }

    public int PadId { get; }

    public string PadToken { get; }

    /// <summary>The number of ids <see cref="Encode"/> returns (77 for CLIP), BOS and EOS included.</summary>
    public int MaxLength { get; }

    /// <summary>Reads the tokenizer in a diffusers checkpoint's tokenizer or tokenizer_2 folder.</summary>
    /// <exception cref="DirectoryNotFoundException">The folder does not exist.</exception>
    /// <exception cref="FileNotFoundException">vocab.json, merges.txt, or both special token files are missing.</exception>
    /// <exception cref="InvalidDataException">A file is malformed or names a token the vocabulary lacks.</exception>
    public static ClipTokenizer Load(string tokenizerFolder)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(tokenizerFolder);
        var folder = Path.TrimEndingDirectorySeparator(Path.GetFullPath(tokenizerFolder));
        if (!Directory.Exists(folder))
            throw new DirectoryNotFoundException($"CLIP tokenizer folder '{folder}' does not exist: pass a checkpoint's tokenizer or tokenizer_2 folder.");

        var fingerprint = Fingerprint(folder);
        if (LoadedFolders.TryGetValue(folder, out var loaded) && loaded.Fingerprint == fingerprint) return loaded.Tokenizer;
        var tokenizer = Read(folder);
        LoadedFolders[folder] = (fingerprint, tokenizer);
        return tokenizer;
    }

    /// <summary>Tokenizes a prompt into exactly <see cref="MaxLength"/> ids.</summary>
    /// <exception cref="ArgumentException">The prompt holds an unpaired UTF-16 surrogate.</exception>
    public TokenizedText Encode(string text)
    {
        var tokens = Body(text);
        int kept = Math.Min(tokens.Count, MaxLength - 2);
        return new TokenizedText(Chunk(tokens.GetRange(0, kept)), tokens.Count, tokens.Count - kept);
    }

    /// <summary>
    /// Tokenizes a parsed prompt (<see cref="PromptSyntax.Parse"/>) as AUTOMATIC1111 does: each piece on its own, the
    /// ids filling chunks of <see cref="MaxLength"/> − 2, each laid out as <see cref="Encode"/> lays out a prompt. A
    /// BREAK closes the chunk; a token that does not fit starts the next one, and when the chunk holds a comma among
    /// its last <see cref="CommaBacktrack"/> ids, the ids after that comma move with it. At least one chunk.
    /// </summary>
    /// <exception cref="ArgumentException">A piece holds an unpaired UTF-16 surrogate.</exception>
    public IReadOnlyList<WeightedChunk> EncodeChunks(IReadOnlyList<PromptPiece> pieces)
    {
        ArgumentNullException.ThrowIfNull(pieces);
        int chunkLength = MaxLength - 2;
        var chunks = new List<WeightedChunk>();
        var ids = new List<int>();
        var weights = new List<float>();
        int lastComma = -1;

        void Close()
        {
            var chunkWeights = new float[MaxLength];
            chunkWeights.AsSpan().Fill(1);
            weights.CopyTo(chunkWeights, 1);
            chunks.Add(new WeightedChunk(Chunk(ids), chunkWeights));
            ids.Clear();
            weights.Clear();
            lastComma = -1;
        }

        foreach (var piece in pieces)
        {
            if (piece.IsBreak)
            {
                Close();
                continue;
            }
            foreach (var token in Body(piece.Text))
            {
                if (token == commaId) lastComma = ids.Count;
                else if (ids.Count == chunkLength && lastComma >= 0 && ids.Count - lastComma <= CommaBacktrack)
                {
                    var movedIds = ids.GetRange(lastComma + 1, ids.Count - lastComma - 1);
                    var movedWeights = weights.GetRange(lastComma + 1, weights.Count - lastComma - 1);
                    ids.RemoveRange(lastComma + 1, movedIds.Count);
                    weights.RemoveRange(lastComma + 1, movedWeights.Count);
                    Close();
                    ids.AddRange(movedIds);
                    weights.AddRange(movedWeights);
                }
                if (ids.Count == chunkLength) Close();
                ids.Add(token);
                weights.Add((float)piece.Weight);
            }
        }
        if (ids.Count > 0 || chunks.Count == 0) Close();
        return chunks;
    }

    /// <summary>A1111's comma_padding_backtrack default: how far back a full chunk looks for a comma to break at.</summary>
    public const int CommaBacktrack = 20;

    /// <summary>The prompt's ids without BOS, EOS or padding, nothing dropped.</summary>
    private List<int> Body(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        ThrowIfUnpairedSurrogate(text);

        var tokens = new List<int>();
        if (splitOnPadToken)
        {
            var pieces = text.Split(PadToken);
            for (int i = 0; i < pieces.Length; i++)
            {
                if (i > 0) tokens.Add(PadId);
                tokens.AddRange(bpe.EncodeToIds(pieces[i]));
            }
        }
        else tokens.AddRange(bpe.EncodeToIds(text));
        return tokens;
    }

    /// <summary>BOS, the ids (at most <see cref="MaxLength"/> − 2), EOS, then pad ids up to <see cref="MaxLength"/>.</summary>
    private int[] Chunk(List<int> tokens)
    {
        var ids = new int[MaxLength];
        ids[0] = BosId;
        tokens.CopyTo(ids, 1);
        ids[tokens.Count + 1] = EosId;
        ids.AsSpan(tokens.Count + 2).Fill(PadId);
        return ids;
    }

    private static ClipTokenizer Read(string folder)
    {
        var vocabPath = RequireFile(folder, VocabFileName);
        var mergesPath = RequireFile(folder, MergesFileName);
        var vocabulary = ReadVocabulary(vocabPath);
        var merges = ReadMerges(mergesPath);
        var tokens = ReadSpecialTokens(folder);
        foreach (var (role, token) in new[] { ("bos_token", tokens.Bos), ("eos_token", tokens.Eos), ("pad_token", tokens.Pad) })
        {
            if (!vocabulary.ContainsKey(token))
                throw new InvalidDataException($"{tokens.Source}: its {role} \"{token}\" is not in {vocabPath}; the tokenizer files do not belong together.");
        }

        var options = new BpeOptions(vocabulary)
        {
            Merges = merges,
            SpecialTokens = new Dictionary<string, int> { [tokens.Bos] = vocabulary[tokens.Bos], [tokens.Eos] = vocabulary[tokens.Eos] },
            PreTokenizer = new ClipPreTokenizer([tokens.Bos, tokens.Eos]),
            Normalizer = ClipTextNormalizer.Instance,
            EndOfWordSuffix = EndOfWordSuffix,
            ByteLevel = true,
        };
        BpeTokenizer bpe;
        try
        {
            bpe = BpeTokenizer.Create(options);
        }
        catch (InvalidOperationException e)
        {
            throw new InvalidDataException($"{mergesPath} does not fit {vocabPath}: {e.Message}", e);
        }
        return new ClipTokenizer(bpe, folder, tokens, vocabulary);
    }

    private static string RequireFile(string folder, string name)
    {
        var path = Path.Combine(folder, name);
        if (!File.Exists(path))
            throw new FileNotFoundException($"The CLIP tokenizer folder '{folder}' has no {name}; it needs vocab.json and merges.txt from the checkpoint.", path);
        return path;
    }

    private static Dictionary<string, int> ReadVocabulary(string path)
    {
        Dictionary<string, int>? vocabulary;
        try
        {
            vocabulary = JsonSerializer.Deserialize<Dictionary<string, int>>(File.ReadAllBytes(path));
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path} is not a JSON object of token strings to integer ids: {e.Message}", e);
        }
        if (vocabulary is null || vocabulary.Count == 0)
            throw new InvalidDataException($"{path} holds no tokens; restore the checkpoint's vocab.json.");
        return vocabulary;
    }

    private static List<string> ReadMerges(string path)
    {
        var merges = new List<string>();
        int lineNumber = 0;
        foreach (var line in File.ReadLines(path))
        {
            lineNumber++;
            if (line.Length == 0 || (lineNumber == 1 && line.StartsWith("#version", StringComparison.Ordinal))) continue;
            int space = line.IndexOf(' ');
            if (space <= 0 || space == line.Length - 1 || line.IndexOf(' ', space + 1) >= 0)
                throw new InvalidDataException($"{path}, line {lineNumber}: a merge must be two tokens separated by one space, not \"{line}\".");
            merges.Add(line);
        }
        if (merges.Count == 0)
            throw new InvalidDataException($"{path} holds no merges; restore the checkpoint's merges.txt.");
        return merges;
    }

    private sealed record SpecialTokens(string Bos, string Eos, string Pad, int MaxLength, string Source);

    /// <summary>
    /// The special tokens as transformers resolves them: special_tokens_map.json over
    /// tokenizer_config.json, CLIP's defaults for what neither names.
    /// </summary>
    private static SpecialTokens ReadSpecialTokens(string folder)
    {
        var mapPath = Path.Combine(folder, SpecialTokensMapFileName);
        var configPath = Path.Combine(folder, TokenizerConfigFileName);
        JsonElement? map = File.Exists(mapPath) ? ReadJsonObject(mapPath) : null;
        JsonElement? config = File.Exists(configPath) ? ReadJsonObject(configPath) : null;
        if (map is null && config is null)
            throw new FileNotFoundException($"The CLIP tokenizer folder '{folder}' has neither {SpecialTokensMapFileName} nor {TokenizerConfigFileName}; one of them says which token pads the prompt.", mapPath);
        var sources = new[] { (Path: mapPath, Json: map), (Path: configPath, Json: config) }
            .Where(s => s.Json is not null).Select(s => (s.Path, Json: s.Json!.Value)).ToList();

        string Token(string key, string fallback)
        {
            foreach (var (path, json) in sources)
            {
                if (!json.TryGetProperty(key, out var value) || value.ValueKind == JsonValueKind.Null) continue;
                // A token is written either as a string or as an AddedToken object with "content".
                if (value.ValueKind == JsonValueKind.String) return value.GetString()!;
                if (value.ValueKind == JsonValueKind.Object && value.TryGetProperty("content", out var content) && content.ValueKind == JsonValueKind.String)
                    return content.GetString()!;
                throw new InvalidDataException($"{path}: {key} must be a string or an object with a \"content\" string.");
            }
            return fallback;
        }

        var bos = Token("bos_token", "<|startoftext|>");
        var eos = Token("eos_token", "<|endoftext|>");
        var pad = Token("pad_token", "<|endoftext|>");
        if (pad.Length == 0) throw new InvalidDataException($"{sources[0].Path}: pad_token is empty.");

        int maxLength = ClipContextLength;
        if (config is { } configJson && configJson.TryGetProperty("model_max_length", out var length))
        {
            if (length.ValueKind != JsonValueKind.Number || !length.TryGetInt32(out maxLength) || maxLength is < 3 or > ClipContextLength)
                throw new InvalidDataException($"{configPath}: model_max_length must be an integer from 3 to {ClipContextLength} (CLIP's context length), not {length.GetRawText()}.");
        }
        var source = string.Join(" / ", sources.Select(s => s.Path));
        return new SpecialTokens(bos, eos, pad, maxLength, source);
    }

    private static JsonElement ReadJsonObject(string path)
    {
        try
        {
            using var document = JsonDocument.Parse(File.ReadAllBytes(path));
            if (document.RootElement.ValueKind != JsonValueKind.Object)
                throw new InvalidDataException($"{path} must hold a JSON object.");
            return document.RootElement.Clone();
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path} is not valid JSON: {e.Message}", e);
        }
    }

    private static string Fingerprint(string folder)
    {
        var fingerprint = new StringBuilder();
        foreach (var name in FolderFiles)
        {
            var file = new FileInfo(Path.Combine(folder, name));
            fingerprint.Append(file.Exists ? $"{file.Length}:{file.LastWriteTimeUtc.Ticks};" : "-;");
        }
        return fingerprint.ToString();
    }

    private static void ThrowIfUnpairedSurrogate(string text)
    {
        var rest = text.AsSpan();
        while (!rest.IsEmpty)
        {
            if (Rune.DecodeFromUtf16(rest, out _, out int used) != OperationStatus.Done)
                throw new ArgumentException($"The prompt has an unpaired UTF-16 surrogate at index {text.Length - rest.Length}; it is not valid Unicode text.", nameof(text));
            rest = rest[used..];
        }
    }
}
