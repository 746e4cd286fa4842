namespace Mnemosyne.Engine.Text;

/// <summary>
/// One chunk of a long or weighted prompt: token ids laid out as <see cref="ClipTokenizer.Encode"/> lays out a prompt
/// (BOS, at most MaxLength − 2 ids, EOS, padding), with the weight of each position (1 for BOS, EOS and padding).
/// </summary>
public sealed record WeightedChunk(int[] Ids, float[] Weights)
{
    public long[] IdsAsInt64() => Array.ConvertAll(Ids, id => (long)id);

    /// <summary>Whether every weight is 1: A1111's weighting then gives the encoder's states back unchanged.</summary>
    public bool IsUnweighted => Array.TrueForAll(Weights, w => w == 1);
}
