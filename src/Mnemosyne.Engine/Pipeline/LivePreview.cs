using Mnemosyne.Engine.Imaging;
using Mnemosyne.Engine.Networks;
using Mnemosyne.Engine.Tensors;

namespace Mnemosyne.Engine.Pipeline;

/// <summary>Where and how often a scene draws its live preview (<see cref="SceneEngine.Generate"/>).</summary>
public sealed record PreviewSettings
{
    /// <summary>The PNG file to write; its folder must exist. Each preview replaces the one before.</summary>
    public required string Path { get; init; }

    /// <summary>Draw a preview after every this many steps (and after the last step).</summary>
    public int Every { get; init; } = 1;

    /// <summary>Checks the settings before a scene starts: a preview that cannot be written should not cost a scene's time first.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(Path)) throw new ArgumentException("The preview needs a file path (a .png file).", nameof(Path));
        if (Every is < 1 or > SceneRequest.MaxSteps)
            throw new ArgumentOutOfRangeException(nameof(Every), Every, $"Every must be from 1 to {SceneRequest.MaxSteps} steps.");
        var full = System.IO.Path.GetFullPath(Path);
        if (Directory.Exists(full)) throw new ArgumentException($"The preview path {full} is a folder; give a .png file name in it.", nameof(Path));
        var folder = System.IO.Path.GetDirectoryName(full)!;
        if (!Directory.Exists(folder))
            throw new DirectoryNotFoundException($"The preview's folder {folder} does not exist. Create it first (New-Item -ItemType Directory), or give a path in an existing folder.");
    }
}

/// <summary>
/// Shows a scene forming: every <see cref="PreviewSettings.Every"/> steps and after the last one, the decoder's
/// picture of the sampler's denoised estimate is written to the preview file (atomically, so that a viewer never
/// reads half a PNG), and each progress report from then on names the file and the step it shows. A file that
/// cannot be written (a viewer holding it, a full disk) costs a warning, not the scene.
/// </summary>
internal sealed class LivePreview(ILatentDecoder decoder, PreviewSettings settings, ICollection<string> warnings) : IDenoisingObserver
{
    private readonly string path = Path.GetFullPath(settings.Path);
    private int? shownStep;
    private bool warned;

    public SceneProgress StepTaken(SceneProgress report, FloatTensor denoised, CancellationToken cancellation)
    {
        if (report.Step % settings.Every == 0 || report.Step == report.TotalSteps)
        {
            var picture = SdxlPipeline.Decode(decoder, denoised, cancellation);
            try
            {
                PngFile.Save(path, picture, overwrite: true);
                shownStep = report.Step;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                if (!warned) warnings.Add($"The preview of step {report.Step} could not be written ({e.Message}); the scene went on, and later previews were tried again.");
                warned = true;
            }
        }
        return shownStep is null ? report : report with { PreviewPath = path, PreviewStep = shownStep };
    }
}
