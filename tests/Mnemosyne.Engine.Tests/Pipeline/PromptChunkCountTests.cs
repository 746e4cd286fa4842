using Mnemosyne.Engine.Networks;
using Mnemosyne.Engine.Onnx;
using Mnemosyne.Engine.Pipeline;
using Mnemosyne.Engine.Text;

namespace Mnemosyne.Engine.Tests.Pipeline;

/// <summary>
/// With OpenAI's vocabulary (config A's tokenizers), "!!!!" is one token for tokenizer 1 and four pad ids for
/// tokenizer 2, so the two can make different numbers of chunks; the shorter gets the empty prompt's chunk.
/// </summary>
[Trait(TestPaths.ReadsTrait, TestPaths.ReadsShared)]
public sealed class PromptChunkCountTests
{
    [FidelityFact]
    public void TheTokenizerWithFewerChunksGetsEmptyOnes()
    {
        var tokenizer = ClipTokenizer.Load(Path.Combine(TinyModel.A.Folder, "tokenizer"));
        var tokenizer2 = ClipTokenizer.Load(Path.Combine(TinyModel.A.Folder, "tokenizer_2"));
        var prompt = string.Join(' ', Enumerable.Repeat("cat", 70)) + " !!!!!!!!!!!!";
        var pieces = PromptSyntax.Parse(prompt);
        Assert.Single(tokenizer.EncodeChunks(pieces));
        Assert.Equal(2, tokenizer2.EncodeChunks(pieces).Count);

        using var encoder = new OnDemandNetwork<ClipTextEncoder>(() => ClipTextEncoder.Load(TinyModel.A.TextEncoder, SessionSettings.Default), keepLoaded: true);
        using var encoder2 = new OnDemandNetwork<ClipTextEncoder>(() => ClipTextEncoder.Load(TinyModel.A.TextEncoder2, SessionSettings.Default), keepLoaded: true);
        var embeds = new PromptEncoder(tokenizer, tokenizer2, encoder, encoder2).Encode([prompt], PromptStyle.A1111, CancellationToken.None)[0].Embedding.Embeds;

        int width = encoder.Use(e => e.Config.HiddenSize);
        Assert.Equal([1, 154, width + encoder2.Use(e => e.Config.HiddenSize)], embeds.Shape);
        var empty = encoder.Use(e => e.Run([tokenizer.Encode("").IdsAsInt64()])).PenultimateHiddenStates.Data;
        for (int token = 0; token < 77; token++)
            for (int i = 0; i < width; i++)
                Assert.Equal(empty[token * width + i], embeds.Data[(77 + token) * embeds.Shape[2] + i], 5);
    }
}
