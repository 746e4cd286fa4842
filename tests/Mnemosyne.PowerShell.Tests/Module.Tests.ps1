BeforeAll {
    $modulePath = $env:MNEMOSYNE_MODULE
    if (-not $modulePath) { $modulePath = Join-Path $PSScriptRoot '../../out/Mnemosyne' }
    $script:manifest = Join-Path $modulePath 'Mnemosyne.psd1'
}

Describe 'The built module' {
    It 'has a valid manifest' {
        $info = Test-ModuleManifest -Path $manifest
        $info.Name | Should -Be 'Mnemosyne'
        $info.PowerShellVersion | Should -Be ([version]'7.4')
    }

    It 'imports from another working directory, as a user would' {
        Push-Location ([IO.Path]::GetTempPath())
        try {
            $module = Import-Module $manifest -PassThru -Force
            $module.Name | Should -Be 'Mnemosyne'
        }
        finally {
            Remove-Module Mnemosyne -ErrorAction SilentlyContinue
            Pop-Location
        }
    }
}
