using System.Text.Json;
using Mnemosyne.Engine.Networks;
using Mnemosyne.Engine.Onnx;
using Mnemosyne.Engine.Tensors;
using Xunit.Abstractions;
using static Mnemosyne.Engine.Tests.Networks.NetworkFixtures;

namespace Mnemosyne.Engine.Tests.Networks;

/// <summary>
/// What only config B (<see cref="TinyModel.B"/>: the engine's own tiny random checkpoint with a synthetic
/// vocabulary, whose reference numbers are tests/reference/networks-b) has: the command that made its fixtures,
/// and the UNet's prompt embeds from id rows. Every network's equivalence runs on it in that network's tests.
/// </summary>
[Trait(TestPaths.ReadsTrait, TestPaths.ReadsShared)]
public sealed class ConfigBTests(ITestOutputHelper output)
{
    private static FloatTensor Fixture(string name) => ReadNpy(TinyModel.B.NetworkCase(name));

    private void Check(string what, FloatTensor expected, FloatTensor actual)
    {
        var error = MaxAbsError(expected, actual);
        output.WriteLine($"networks-b {what}: max-abs error {error:E2} (values up to {expected.Data.Max(Math.Abs):g3})");
        Assert.True(error <= Tolerance, $"networks-b {what}: max-abs error {error:g3} > {Tolerance:g3}");
    }

    /// <summary>The fixtures hold the command that made their checkpoint; the tests must write that same one.</summary>
    [Fact]
    public void RegeneratesTheCheckpointTheFixturesWereMadeFrom()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(TinyModel.B.NetworkCase("checkpoint.json")));
        Assert.Equal(
            $"dotnet pwsh ./build.ps1 TinyModel -Output out/tiny-b -Seed {TinyModel.ConfigBSeed} -Size Tiny",
            doc.RootElement.GetProperty("command").GetString());
    }

    /// <summary>encode_prompt's output: both penultimate states side by side, pooled embeds from encoder 2.</summary>
    [Fact]
    public void TextEncodersGiveTheUnetPromptEmbeds()
    {
        var ids = TinyModel.B.NetworkCase("unet-text-ids.json");
        using var encoder1 = ClipTextEncoder.Load(TinyModel.B.TextEncoder, SessionSettings.Default);
        using var encoder2 = ClipTextEncoder.Load(TinyModel.B.TextEncoder2, SessionSettings.Default);
        var first = encoder1.Run(IdRows(ids, "tokenizer"));
        var second = encoder2.Run(IdRows(ids, "tokenizer_2"));

        var promptEmbeds = Fixture("unet-encoder-hidden-states.npy");
        int width1 = first.PenultimateHiddenStates.Shape[^1];
        Check("prompt embeds from text_encoder", LastAxis(promptEmbeds, 0, width1), first.PenultimateHiddenStates);
        Check("prompt embeds from text_encoder_2", LastAxis(promptEmbeds, width1, promptEmbeds.Shape[^1] - width1), second.PenultimateHiddenStates);
        Check("pooled prompt embeds", Fixture("unet-text-embeds.npy"), second.TextEmbeds!);
    }
}
