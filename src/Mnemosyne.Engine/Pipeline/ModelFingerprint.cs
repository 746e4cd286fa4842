using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Mnemosyne.Engine.Checkpoints;
using Mnemosyne.Engine.Onnx;

namespace Mnemosyne.Engine.Pipeline;

/// <summary>
/// A SHA-256 of what decides an engine's pictures: its weight precision, the networks' configs, and the content of every
/// weights, tokenizer and scheduler file it reads (each by <see cref="FileChecksum"/>: whole up to 64 MB, else 64 samples
/// spread over it, so that SDXL's gigabytes are told apart in a second). Engines on two machines with the same fingerprint
/// make the same pictures from the same settings, up to their CPUs' float rounding; another checkpoint, fine-tune,
/// replacement UNet, IP-Adapter or tiny decoder gives another fingerprint. File names and folders do not count.
/// </summary>
public static class ModelFingerprint
{
    public static string Of(SceneEngine engine)
    {
        ArgumentNullException.ThrowIfNull(engine);
        var model = engine.ModelFiles;
        var options = engine.Options;
        var text = new StringBuilder();
        text.Append("precision ").Append(options.Precision).Append('\n');
        text.Append("force-zeros-for-empty-prompt ").Append(model.ForceZerosForEmptyPrompt).Append('\n');
        text.Append("configs ").Append(JsonSerializer.Serialize(model.Configs)).Append('\n');
        AppendFile(text, "unet", model.Unet.Path);
        AppendFile(text, "vae", model.Vae.Path);
        AppendFile(text, "text_encoder", model.TextEncoder.Path);
        AppendFile(text, "text_encoder_2", model.TextEncoder2.Path);
        AppendFolder(text, "tokenizer", model.Tokenizer);
        AppendFolder(text, "tokenizer_2", model.Tokenizer2);
        AppendFile(text, "scheduler", model.SchedulerConfigPath);
        if (options.IpAdapterPath is not null)
        {
            var adapter = IpAdapterFiles.Open(options.IpAdapterPath, options.ImageEncoderPath);
            AppendFile(text, "ip_adapter", adapter.AdapterPath);
            AppendFile(text, "image_encoder_config", adapter.ImageEncoderConfigPath);
            AppendFile(text, "image_encoder", adapter.ImageEncoderWeightsPath);
        }
        if (options.TinyDecoderPath is { } tiny)
        {
            if (Directory.Exists(tiny)) AppendFolder(text, "tiny_decoder", tiny);
            else AppendFile(text, "tiny_decoder", tiny);
        }
        return Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString()))).ToLowerInvariant();
    }

    private static void AppendFolder(StringBuilder text, string role, string folder)
    {
        foreach (var file in Directory.GetFiles(folder).Order(StringComparer.Ordinal))
            AppendFile(text, $"{role}/{Path.GetFileName(file)}", file);
    }

    private static void AppendFile(StringBuilder text, string role, string path)
    {
        // The length of what a link points to (a Hugging Face snapshot's files link to its blobs).
        long length;
        using (var stream = File.OpenRead(path)) length = stream.Length;
        text.Append(role).Append(' ').Append(length.ToString(CultureInfo.InvariantCulture)).Append(' ')
            .Append(FileChecksum.Of(path, length)).Append('\n');
    }
}
