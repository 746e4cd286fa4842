using Mnemosyne.Engine.Networks;
using Mnemosyne.Engine.Tensors;
using Mnemosyne.Engine.Text;

namespace Mnemosyne.Engine.Pipeline;

/// <summary>A prompt's embedding and how many of its tokens were cut off (<see cref="PromptStyle.Diffusers"/> only).</summary>
internal sealed record EncodedPrompt(PromptEmbedding Embedding, int DroppedTokens);

/// <summary>
/// Turns prompts into SDXL's prompt embeddings in a <see cref="PromptStyle"/>, keeping the last ones made.
/// </summary>
/// <remarks>
/// <see cref="PromptStyle.A1111"/> follows AUTOMATIC1111's SDXL conditioning: each tokenizer's chunks
/// (<see cref="ClipTokenizer.EncodeChunks"/>) through its encoder, each chunk's penultimate states multiplied by its
/// tokens' weights and then scaled back to the chunk's original mean (A1111's "Original" emphasis), the chunks joined
/// along the sequence (77·k tokens) and the two encoders' states side by side; the pooled embedding is encoder 2's of
/// the first chunk, unweighted. Where the two tokenizers make different chunk counts (tokenizer 2 splits "!" out as
/// its pad token), the shorter is padded with empty chunks.
/// </remarks>
internal sealed class PromptEncoder(
    ClipTokenizer tokenizer, ClipTokenizer tokenizer2, OnDemandNetwork<ClipTextEncoder> textEncoder, OnDemandNetwork<ClipTextEncoder> textEncoder2)
{
    private const int CacheSize = 64;

    private readonly Dictionary<(string Text, PromptStyle Style), EncodedPrompt> cache = new();
    private readonly LinkedList<(string Text, PromptStyle Style)> cacheOrder = new();

    /// <summary>An encoder of the same tokenizers over other networks (a LoRA's), keeping none of this one's embeddings.</summary>
    public PromptEncoder WithEncoders(OnDemandNetwork<ClipTextEncoder> first, OnDemandNetwork<ClipTextEncoder> second)
        => new(tokenizer, tokenizer2, first, second);

    /// <summary>Whether every one of the texts is kept from before, so that encoding them runs no encoder.</summary>
    public bool Holds(IEnumerable<string> texts, PromptStyle style) => texts.All(t => cache.ContainsKey((t, style)));

    /// <summary>The prompts' embeddings, in order; those not kept from before are encoded, the encoders loaded once for all.</summary>
    public IReadOnlyList<EncodedPrompt> Encode(IReadOnlyList<string> texts, PromptStyle style, CancellationToken cancellation)
    {
        var found = new Dictionary<string, EncodedPrompt>(StringComparer.Ordinal);
        foreach (var text in texts)
            if (cache.TryGetValue((text, style), out var cached)) found[text] = cached;
        var missing = texts.Distinct(StringComparer.Ordinal).Where(t => !found.ContainsKey(t)).ToList();
        if (missing.Count > 0)
        {
            var chunks = missing.Select(t => Tokenize(t, style)).ToList();
            var states = textEncoder.Use(network => chunks.Select(c => network.Run(c.First.Select(x => x.IdsAsInt64()).ToList(), cancellation)).ToList());
            var states2 = textEncoder2.Use(network => chunks.Select(c => network.Run(c.Second.Select(x => x.IdsAsInt64()).ToList(), cancellation)).ToList());
            for (int i = 0; i < missing.Count; i++)
            {
                var encoded = new EncodedPrompt(
                    Embedding(chunks[i].First, states[i].PenultimateHiddenStates, chunks[i].Second, states2[i]), chunks[i].Dropped);
                found[missing[i]] = encoded;
                Keep((missing[i], style), encoded);
            }
        }
        return texts.Select(t => found[t]).ToList();
    }

    /// <summary>
    /// The two embeddings with the same number of tokens: the shorter gets <paramref name="empty"/>'s chunk (the empty
    /// prompt's) appended until it has as many chunks, as A1111's "pad prompt/negative prompt" option and compel do.
    /// </summary>
    public static (PromptEmbedding First, PromptEmbedding Second) PadToSameLength(PromptEmbedding first, PromptEmbedding second, PromptEmbedding empty)
    {
        int length = Math.Max(first.Embeds.Shape[1], second.Embeds.Shape[1]);
        return (Pad(first, empty, length), Pad(second, empty, length));
    }

    private static PromptEmbedding Pad(PromptEmbedding embedding, PromptEmbedding empty, int length)
    {
        int have = embedding.Embeds.Shape[1], width = embedding.Embeds.Shape[2], chunk = empty.Embeds.Shape[1];
        if (have == length) return embedding;
        var data = new float[length * width];
        embedding.Embeds.Data.CopyTo(data, 0);
        for (int at = have; at < length; at += chunk) empty.Embeds.Data.CopyTo(data, at * width);
        return embedding with { Embeds = new FloatTensor(data, [1, length, width]) };
    }

    private sealed record PromptChunks(IReadOnlyList<WeightedChunk> First, IReadOnlyList<WeightedChunk> Second, int Dropped);

    private PromptChunks Tokenize(string text, PromptStyle style)
    {
        if (style == PromptStyle.Diffusers)
        {
            TokenizedText first = tokenizer.Encode(text), second = tokenizer2.Encode(text);
            return new PromptChunks([Unweighted(first.Ids)], [Unweighted(second.Ids)], Math.Max(first.DroppedTokenCount, second.DroppedTokenCount));
        }
        var pieces = PromptSyntax.Parse(text);
        var chunks = tokenizer.EncodeChunks(pieces);
        var chunks2 = tokenizer2.EncodeChunks(pieces);
        int count = Math.Max(chunks.Count, chunks2.Count);
        return new PromptChunks(PadChunks(chunks, tokenizer, count), PadChunks(chunks2, tokenizer2, count), 0);
    }

    private static WeightedChunk Unweighted(int[] ids)
    {
        var weights = new float[ids.Length];
        weights.AsSpan().Fill(1);
        return new WeightedChunk(ids, weights);
    }

    private static IReadOnlyList<WeightedChunk> PadChunks(IReadOnlyList<WeightedChunk> chunks, ClipTokenizer tokenizer, int count) =>
        chunks.Count == count ? chunks : [.. chunks, .. Enumerable.Repeat(Unweighted(tokenizer.Encode("").Ids), count - chunks.Count)];

    /// <summary>[k, 77, a] and [k, 77, b] states of k chunks → [1, 77·k, a + b], each chunk weighted; pooled from chunk 0.</summary>
    private static PromptEmbedding Embedding(IReadOnlyList<WeightedChunk> chunks, FloatTensor states, IReadOnlyList<WeightedChunk> chunks2, ClipTextOutput output2)
    {
        var first = Weighted(states, chunks);
        var second = Weighted(output2.PenultimateHiddenStates, chunks2);
        int rows = first.Shape[0] * first.Shape[1];
        var embeds = ConcatFeatures(new FloatTensor(first.Data, [1, rows, first.Shape[2]]), new FloatTensor(second.Data, [1, rows, second.Shape[2]]));
        var pooled = output2.TextEmbeds!;
        return new PromptEmbedding(embeds, pooled.Shape[0] == 1 ? pooled : FloatTensorOps.BatchItem(pooled, 0));
    }

    /// <summary>
    /// A1111's emphasis on each chunk of [k, 77, C] states: every token's state times its weight, then the whole chunk
    /// times (original mean ÷ new mean). Chunks whose weights are all 1 are left as they are (the rule gives them back).
    /// </summary>
    private static FloatTensor Weighted(FloatTensor states, IReadOnlyList<WeightedChunk> chunks)
    {
        if (chunks.All(c => c.IsUnweighted)) return states;
        int tokens = states.Shape[1], width = states.Shape[2], size = tokens * width;
        var data = (float[])states.Data.Clone();
        for (int c = 0; c < chunks.Count; c++)
        {
            if (chunks[c].IsUnweighted) continue;
            var chunk = data.AsSpan(c * size, size);
            float originalMean = Mean(chunk);
            for (int t = 0; t < tokens; t++)
            {
                float weight = chunks[c].Weights[t];
                foreach (ref var value in chunk.Slice(t * width, width)) value *= weight;
            }
            float scale = originalMean / Mean(chunk);
            foreach (ref var value in chunk) value *= scale;
        }
        return new FloatTensor(data, states.Shape);
    }

    private static float Mean(Span<float> values)
    {
        double sum = 0;
        foreach (var value in values) sum += value;
        return (float)(sum / values.Length);
    }

    /// <summary>[1, L, a] ‖ [1, L, b] → [1, L, a + b].</summary>
    private static FloatTensor ConcatFeatures(FloatTensor a, FloatTensor b)
    {
        int rows = a.Shape[1], wa = a.Shape[2], wb = b.Shape[2];
        var data = new float[rows * (wa + wb)];
        for (int r = 0; r < rows; r++)
        {
            Array.Copy(a.Data, r * wa, data, r * (wa + wb), wa);
            Array.Copy(b.Data, r * wb, data, r * (wa + wb) + wa, wb);
        }
        return new FloatTensor(data, [1, rows, wa + wb]);
    }

    private void Keep((string Text, PromptStyle Style) key, EncodedPrompt encoded)
    {
        cache[key] = encoded;
        cacheOrder.AddLast(key);
        if (cacheOrder.Count <= CacheSize) return;
        cache.Remove(cacheOrder.First!.Value);
        cacheOrder.RemoveFirst();
    }
}
