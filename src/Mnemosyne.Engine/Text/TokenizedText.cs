namespace Mnemosyne.Engine.Text;

/// <summary>
/// A prompt as a CLIP text encoder takes it: BOS, at most <c>MaxLength − 2</c> token ids, EOS,
/// then pad ids up to the tokenizer's length.
/// </summary>
/// <param name="Ids">The ids, exactly the tokenizer's MaxLength of them.</param>
/// <param name="TokenCount">The prompt's own tokens before truncation, BOS and EOS not counted.</param>
/// <param name="DroppedTokenCount">How many of those were cut off to fit.</param>
public sealed record TokenizedText(int[] Ids, int TokenCount, int DroppedTokenCount)
{
    /// <summary>The ids widened to the int64 that ONNX text encoders usually take.</summary>
    public long[] IdsAsInt64() => Array.ConvertAll(Ids, id => (long)id);
}
