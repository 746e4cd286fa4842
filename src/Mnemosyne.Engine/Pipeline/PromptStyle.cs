namespace Mnemosyne.Engine.Pipeline;

/// <summary>How a prompt's text becomes the UNet's prompt embeddings.</summary>
public enum PromptStyle
{
    /// <summary>
    /// As AUTOMATIC1111 reads prompts: emphasis (<c>(word)</c>, <c>(word:1.3)</c>, <c>[word]</c>, escapes, see
    /// <see cref="Text.PromptSyntax"/>), BREAK, and any length, in chunks of 75 tokens whose states are joined
    /// (<see cref="PromptEncoder"/>). A plain prompt of up to 75 tokens is encoded exactly as <see cref="Diffusers"/> encodes it.
    /// </summary>
    A1111,

    /// <summary>
    /// As diffusers' StableDiffusionXLPipeline reads prompts: plain text, cut to CLIP's 77 tokens (with a warning
    /// when something is cut). Brackets are text.
    /// </summary>
    Diffusers,
}
