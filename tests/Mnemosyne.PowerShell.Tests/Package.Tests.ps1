# The module as users install it: Publish-PSResource makes the package the PowerShell Gallery takes (as build.ps1
# Package does) into a file repository, Install-PSResource puts it among the user's modules, Import-Module finds it by
# name. Every pwsh here runs with HOME in a temporary folder, which is where PSResourceGet keeps its repositories and
# the CurrentUser modules on Linux and macOS, so the user's own are never touched. On Windows they live under
# Documents, which no environment variable moves, so the test does not run there.
Describe 'The module package' -Skip:$IsWindows {
    BeforeAll {
        . $PSScriptRoot/Common.ps1
        Import-Mnemosyne
        $script:root = (New-Item -ItemType Directory -Force (Join-Path ([IO.Path]::GetTempPath()) "mnemosyne-package-$PID")).FullName
        $script:files = New-TinyModelFiles -Root (Join-Path $root 'model')
        $script:repository = (New-Item -ItemType Directory -Force (Join-Path $root 'repository')).FullName
        $script:user = @{ HOME = (New-Item -ItemType Directory -Force (Join-Path $root 'home')).FullName; XDG_DATA_HOME = $null; XDG_CONFIG_HOME = $null; XDG_CACHE_HOME = $null }
        # As in a real home: without ~/.config, .NET reports no ApplicationData and NuGet (under Publish-PSResource) writes
        # its user NuGet.Config under the current directory instead.
        $null = New-Item -ItemType Directory -Force (Join-Path $user.HOME '.config')
        $script:installed = Join-Path $user.HOME '.local/share/powershell/Modules/Mnemosyne'
        $script:version = (Import-PowerShellDataFile $manifest).ModuleVersion
        function Invoke-AsUser([string] $Script) {
            Push-Location $root   # and anything else written to the current directory goes to the temporary folder
            try { Invoke-SeparatePwsh -NoImport -Environment $user $Script } finally { Pop-Location }
        }

        $script:published = Invoke-AsUser @"
Register-PSResourceRepository -Name MnemosyneTest -Uri '$repository' -Trusted
Publish-PSResource -Path '$modulePath' -Repository MnemosyneTest
"@
        $script:package = @(Get-ChildItem $repository -Filter *.nupkg)
        function Get-PackageEntries {
            $zip = [IO.Compression.ZipFile]::OpenRead($package[0].FullName)
            try { @($zip.Entries | ForEach-Object FullName) } finally { $zip.Dispose() }
        }
    }

    AfterAll {
        $null = Invoke-AsUser 'Unregister-PSResourceRepository -Name MnemosyneTest -ErrorAction SilentlyContinue'
        Remove-Item $root -Recurse -Force -ErrorAction SilentlyContinue
    }

    It 'is made by Publish-PSResource' {
        $published.ExitCode | Should -Be 0 -Because ($published.Output -join "`n")
        $package.Name | Should -Be "Mnemosyne.$version.nupkg"
    }

    It 'describes the module as the Gallery shows it' {
        $zip = [IO.Compression.ZipFile]::OpenRead($package[0].FullName)
        try {
            $reader = [IO.StreamReader]::new($zip.GetEntry('Mnemosyne.nuspec').Open())
            $nuspec = ([xml]$reader.ReadToEnd()).package.metadata
            $reader.Dispose()
        }
        finally { $zip.Dispose() }
        $nuspec.id | Should -Be 'Mnemosyne'
        $nuspec.version | Should -Be $version
        $nuspec.projectUrl | Should -Match '^https://'
        $nuspec.licenseUrl | Should -Match '^https://.*LICENSE$'
        $nuspec.releaseNotes | Should -Match "^$([regex]::Escape($version))"
        Get-PackageEntries | Should -Contain 'LICENSE'
    }

    It 'carries ONNX Runtime for the runtimes pwsh runs on, and nothing pwsh cannot load' {
        $entries = Get-PackageEntries
        $runtimes = $entries | Where-Object { $_ -like 'dependencies/runtimes/*' } | ForEach-Object { $_.Split('/')[2] } | Sort-Object -Unique
        $runtimes | Should -Be @('linux-arm64', 'linux-x64', 'osx-arm64', 'win-arm64', 'win-x64')
        foreach ($library in 'linux-x64/native/libonnxruntime.so', 'linux-arm64/native/libonnxruntime.so', 'osx-arm64/native/libonnxruntime.dylib',
            'win-x64/native/onnxruntime.dll', 'win-arm64/native/onnxruntime.dll') {
            $entries | Should -Contain "dependencies/runtimes/$library"
        }
        $entries | Where-Object { $_ -match '\.(pdb|lib|aar|zip)$' } | Should -BeNullOrEmpty
        # Only the loader and the cmdlets sit beside the manifest; the engine and its dependencies are for its load context.
        $entries | Where-Object { $_ -match '^[^/]+\.dll$' } | Sort-Object | Should -Be @('Mnemosyne.PowerShell.dll', 'Mnemosyne.PowerShell.Loader.dll')
        $entries | Should -Contain 'dependencies/Mnemosyne.Engine.dll'
    }

    It 'installs, imports by name and makes a scene from the installed copy' {
        $result = Invoke-AsUser @"
Install-PSResource Mnemosyne -Repository MnemosyneTest -Scope CurrentUser
Import-Module Mnemosyne
'module ' + (Get-Module Mnemosyne).ModuleBase
'engine ' + [Mnemosyne.Engine.Pipeline.Scene].Assembly.Location
Open-MnemosyneEngine -Path '$($files.Folder)' | Out-Null
`$scene = New-MnemosyneScene 'a lighthouse' -Seed 5 -Width 64 -Height 64 -Steps 2
'scene {0}x{1}' -f `$scene.Image.Width, `$scene.Image.Height
"@
        $result.ExitCode | Should -Be 0 -Because ($result.Output -join "`n")
        $result.Output | Should -Contain "module $(Join-Path $installed $version)"
        $result.Output | Should -Contain "engine $(Join-Path $installed $version 'dependencies/Mnemosyne.Engine.dll')"
        $result.Output | Should -Contain 'scene 64x64'
    }

    It 'uninstalls' {
        $result = Invoke-AsUser @"
Uninstall-PSResource Mnemosyne -Scope CurrentUser
'left ' + @(Get-InstalledPSResource Mnemosyne -ErrorAction SilentlyContinue).Count
"@
        $result.ExitCode | Should -Be 0 -Because ($result.Output -join "`n")
        $result.Output | Should -Contain 'left 0'
        Join-Path $installed $version | Should -Not -Exist
    }
}
