@{
    RootModule           = 'Mnemosyne.PowerShell.dll'
    # Imported before the root module: it sends the engine and its dependencies to the module's own load context.
    NestedModules        = @('Mnemosyne.PowerShell.Loader.dll')
    ModuleVersion        = '0.1.0'
    GUID                 = '6c0a3f0e-7d1b-4a59-9a57-2f4c3e3b8e51'
    Author               = 'Mnemosyne contributors'
    CompanyName          = 'Mnemosyne'
    Copyright            = '(c) Mnemosyne contributors. MIT licence.'
    Description          = 'Keeps a character consistent across scenes: SDXL + IP-Adapter on ONNX Runtime, on the CPU.'
    PowerShellVersion    = '7.4'
    CompatiblePSEditions = @('Core')
    FormatsToProcess     = @('Mnemosyne.format.ps1xml', 'Mnemosyne.Models.format.ps1xml')
    CmdletsToExport      = @(
        'Open-MnemosyneEngine', 'Get-MnemosyneEngine', 'Close-MnemosyneEngine',
        'Import-MnemosyneReference', 'Export-MnemosyneReference',
        'New-MnemosyneScene', 'Save-MnemosyneImage', 'Measure-MnemosyneConsistency',
        'Get-MnemosyneModel', 'Install-MnemosyneModel'
    )
    FunctionsToExport    = @()
    AliasesToExport      = @()
    VariablesToExport    = @()
    PrivateData          = @{
        PSData = @{
            Tags       = @('StableDiffusion', 'SDXL', 'IPAdapter', 'ONNX', 'AI', 'Image')
            LicenseUri = ''
        }
    }
}
