@{
    RootModule           = 'Mnemosyne.PowerShell.dll'
    # Imported before the root module: the loader sends the engine and its dependencies to the module's own load
    # context and names the engine's types; then the type data, which names them (a manifest's own TypesToProcess
    # would be read before the loader runs).
    NestedModules        = @('Mnemosyne.PowerShell.Loader.dll', 'Mnemosyne.TypeData.psd1')
    ModuleVersion        = '0.1.0'
    GUID                 = '6c0a3f0e-7d1b-4a59-9a57-2f4c3e3b8e51'
    Author               = 'Mnemosyne contributors'
    CompanyName          = 'Mnemosyne'
    Copyright            = '(c) Mnemosyne contributors. MIT licence.'
    Description          = 'Keeps a character consistent across scenes: SDXL + IP-Adapter on ONNX Runtime, on the CPU.'
    PowerShellVersion    = '7.4'
    # Update-Help reads Mnemosyne_<GUID>_HelpInfo.xml here: each release carries it and the help content (build.ps1 makes both).
    HelpInfoURI          = 'https://github.com/mnemosyne-contributors/Mnemosyne/releases/latest/download/'
    CompatiblePSEditions = @('Core')
    FormatsToProcess     = @('Mnemosyne.format.ps1xml', 'Mnemosyne.Models.format.ps1xml')
    CmdletsToExport      = @(
        'Open-MnemosyneEngine', 'Get-MnemosyneEngine', 'Close-MnemosyneEngine',
        'Import-MnemosyneReference', 'Export-MnemosyneReference',
        'New-MnemosyneScene', 'Save-MnemosyneImage', 'Measure-MnemosyneConsistency',
        'Get-MnemosyneSceneSetting',
        'Get-MnemosyneModel', 'Install-MnemosyneModel', 'Invoke-MnemosyneBatch'
    )
    FunctionsToExport    = @()
    AliasesToExport      = @()
    VariablesToExport    = @()
    PrivateData          = @{
        PSData = @{
            Tags         = @('StableDiffusion', 'SDXL', 'IPAdapter', 'ONNX', 'AI', 'Image', 'PSEdition_Core', 'Windows', 'Linux', 'MacOS')
            ProjectUri   = 'https://github.com/mnemosyne-contributors/Mnemosyne'
            LicenseUri   = 'https://github.com/mnemosyne-contributors/Mnemosyne/blob/main/LICENSE'
            ReleaseNotes = @'
0.1.0: the first release.
- Scenes from SDXL base 1.0 + IP-Adapter (ViT-H) on the CPU with ONNX Runtime, the same numbers as diffusers 0.30.0;
  the graphs are built from the diffusers checkpoints themselves, read in place from the Hugging Face cache.
- Import-MnemosyneReference / Export-MnemosyneReference keep a character; New-MnemosyneScene places it from prompts,
  CSV rows or pipelines; Save-MnemosyneImage writes PNGs with their settings; Measure-MnemosyneConsistency scores them.
- Get-MnemosyneModel / Install-MnemosyneModel find and download the weights (resumable, SHA-256 checked).
- Int8 linear layers (-Precision Int8), SDXL-Lightning's 4-step UNet (-Quality Fast), single-file checkpoints.
- Carries ONNX Runtime for Windows (x64, Arm64), Linux (x64, Arm64) and macOS on Apple silicon; PowerShell 7.4 or later.
'@
        }
    }
}
