namespace Mnemosyne.Engine.Checkpoints;

/// <summary>
/// Which image projection an IP-Adapter file carries, told by its keys as diffusers'
/// _convert_ip_adapter_image_proj_to_diffusers tells them: image_proj.proj (base: 4 tokens from the image
/// embeds) or image_proj.latents (Plus and Plus-Face: a resampler makes 16 tokens from the encoder's
/// penultimate hidden states).
/// </summary>
public enum IpAdapterKind
{
    Base,
    Plus,
}
