# What a session leaves on the machine: only the files the user asked for and the caches the README documents
# (~/.cache/mnemosyne for optimised sessions and converted weights, ~/.cache/huggingface for the weights).
# ONNX Runtime 1.31's Linux and macOS builds keep a device id and a store of usage events for Microsoft under
# ~/.cache/Microsoft/DeveloperTools/.onnxruntime unless told not to; Mnemosyne tells them not to. Each pwsh here runs with
# HOME in a temporary folder and no XDG variables, so what lands in the user's home lands there instead.
Describe 'A scene''s footprint' -Skip:$IsWindows {
    BeforeAll {
        . $PSScriptRoot/Common.ps1
        Import-Mnemosyne
        $script:root = (New-Item -ItemType Directory -Force (Join-Path ([IO.Path]::GetTempPath()) "mnemosyne-footprint-$PID")).FullName
        $script:user = @{
            HOME = (New-Item -ItemType Directory -Force (Join-Path $root 'home')).FullName
            XDG_CACHE_HOME = $null; XDG_DATA_HOME = $null; XDG_CONFIG_HOME = $null; ORT_DISABLE_TELEMETRY = $null
        }
        $script:output = (New-Item -ItemType Directory -Force (Join-Path $root 'pictures')).FullName
        # The files under the temporary home, relative to it.
        function Get-HomeFiles {
            @(Get-ChildItem $user.HOME -Recurse -File -Force | ForEach-Object { [IO.Path]::GetRelativePath($user.HOME, $_.FullName) } | Sort-Object)
        }
        # pwsh's own files (its module analysis cache, its startup data), which any script leaves.
        $script:pwshOnly = Invoke-SeparatePwsh -NoImport -Environment $user "'ran'"
        $script:before = Get-HomeFiles
        $script:scene = Invoke-SeparatePwsh -Environment $user @"
Open-MnemosyneEngine -Path '$modelPath' | Out-Null
New-MnemosyneScene 'a lighthouse' -Seed 5 -Width 64 -Height 64 -Steps 2 | Save-MnemosyneImage -Directory '$output' | Out-Null
Close-MnemosyneEngine
'done'
"@
        $script:after = Get-HomeFiles
    }

    AfterAll { Remove-Item $root -Recurse -Force -ErrorAction SilentlyContinue }

    It 'makes its scene' {
        $pwshOnly.ExitCode | Should -Be 0 -Because ($pwshOnly.Output -join "`n")
        $scene.ExitCode | Should -Be 0 -Because ($scene.Output -join "`n")
        $scene.Output | Should -Contain 'done'
        @(Get-ChildItem $output -Filter *.png).Count | Should -Be 1
    }

    It 'writes nothing to the home folder but the documented caches' {
        $added = $after | Where-Object { $_ -notin $before }
        $added | Where-Object { $_ -notlike '.cache/mnemosyne/*' -and $_ -notlike '.cache/huggingface/*' } | Should -BeNullOrEmpty
    }

    It 'leaves ONNX Runtime''s telemetry off: no device id, no event store' {
        Join-Path $user.HOME '.cache/Microsoft' | Should -Not -Exist
    }
}
