#requires -Version 7.4
<#
.SYNOPSIS
    Builds, tests and benchmarks Mnemosyne.
.EXAMPLE
    dotnet tool restore && dotnet pwsh ./build.ps1 Test
#>
[CmdletBinding()]
param(
    [Parameter(Position = 0)]
    [ValidateSet('Build', 'Test', 'TinyModel', 'Bench', 'Demo', 'Soak')]
    [string] $Task = 'Build',

    [ValidateSet('Debug', 'Release')]
    [string] $Configuration = 'Release',

    # TinyModel: where to write the checkpoint; Size: Tiny or Full (SDXL base 1.0 sizes).
    [string] $Output,
    [ValidateSet('Tiny', 'Full')]
    [string] $Size = 'Tiny',
    [uint64] $Seed = 1
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
$root = $PSScriptRoot
$moduleOut = Join-Path $root 'out/Mnemosyne'

function Invoke-Native([string] $What, [scriptblock] $Command) {
    & $Command
    if ($LASTEXITCODE -ne 0) { throw "$What failed (exit code $LASTEXITCODE)." }
}

function Invoke-Build {
    Invoke-Native 'dotnet build' { dotnet build (Join-Path $root 'Mnemosyne.PowerShell.sln') -c $Configuration --nologo -v quiet }
    if (Test-Path $moduleOut) { Remove-Item $moduleOut -Recurse -Force }
    Invoke-Native 'dotnet publish' {
        dotnet publish (Join-Path $root 'src/Mnemosyne.PowerShell/Mnemosyne.PowerShell.csproj') -c $Configuration --no-build --nologo -v quiet -o $moduleOut
    }
    Copy-Item (Join-Path $root 'module/*') $moduleOut -Recurse -Force
    Write-Host "Module: $moduleOut"
}

function Get-PesterManifest {
    $packages = if ($env:NUGET_PACKAGES) { $env:NUGET_PACKAGES } else {
        ((dotnet nuget locals global-packages --list) -replace '^global-packages:\s*', '').Trim()
    }
    $manifest = Join-Path $packages 'pester/6.2.0/tools/Pester.psd1'
    if (-not (Test-Path $manifest)) { throw "Pester 6.2.0 was not restored to $manifest." }
    $manifest
}

function Invoke-Test {
    Invoke-Build
    $results = Join-Path $root 'out/test-results'
    Remove-Item $results -Recurse -Force -ErrorAction SilentlyContinue
    New-Item -ItemType Directory -Force $results | Out-Null

    dotnet test (Join-Path $root 'tests/Mnemosyne.Engine.Tests') -c $Configuration --no-build --nologo `
        --logger 'console;verbosity=normal' --logger "trx;LogFileName=$results/engine.trx"
    $xunitFailed = $LASTEXITCODE -ne 0

    # Pester runs in its own process so that it imports the built module as a user would.
    $pester = Get-PesterManifest
    $script = @"
Import-Module '$pester' -MinimumVersion 6.2.0
`$c = New-PesterConfiguration
`$c.Run.Path = '$(Join-Path $root 'tests/Mnemosyne.PowerShell.Tests')'
`$c.Run.PassThru = `$true
`$c.Output.Verbosity = 'Detailed'
`$c.TestResult.Enabled = `$true
`$c.TestResult.OutputPath = '$results/pester.xml'
`$env:MNEMOSYNE_MODULE = '$moduleOut'
`$r = Invoke-Pester -Configuration `$c
@{ Passed = `$r.PassedCount; Failed = `$r.FailedCount; Skipped = `$r.SkippedCount } | ConvertTo-Json | Set-Content '$results/pester-counts.json'
exit ([int](`$r.FailedCount -gt 0 -or `$r.Result -ne 'Passed'))
"@
    dotnet pwsh -NoProfile -NonInteractive -Command $script
    $pesterFailed = $LASTEXITCODE -ne 0

    $xunit = ([xml](Get-Content "$results/engine.trx")).TestRun.ResultSummary.Counters
    $pesterCounts = Get-Content "$results/pester-counts.json" -ErrorAction SilentlyContinue | ConvertFrom-Json
    $passed = [int]$xunit.passed + [int]$pesterCounts.Passed
    $failed = [int]$xunit.failed + [int]$xunit.error + [int]$pesterCounts.Failed
    $skipped = [int]$xunit.notExecuted + [int]$pesterCounts.Skipped
    Write-Host "xunit $($xunit.passed)/$($xunit.total) passed; Pester $($pesterCounts.Passed) passed"
    Write-Host "Total: $passed passed, $failed failed, $skipped skipped"
    if ($xunitFailed -or $pesterFailed) {
        throw "Tests failed: xunit $(if ($xunitFailed) {'failed'} else {'passed'}), Pester $(if ($pesterFailed) {'failed'} else {'passed'})."
    }
}

function Invoke-Tool([string[]] $Arguments) {
    Invoke-Native 'Mnemosyne.Tools' {
        dotnet run --project (Join-Path $root 'src/Mnemosyne.Tools') -c $Configuration -- @Arguments
    }
}

switch ($Task) {
    'Build' { Invoke-Build }
    'Test' { Invoke-Test }
    'TinyModel' {
        if (-not $Output) { throw 'TinyModel needs -Output <folder>.' }
        Invoke-Tool @('tiny-model', '--output', $Output, '--size', $Size, '--seed', $Seed)
    }
    'Soak' {
        # Not part of Test: 500 scenes in one session, failing on memory or handle growth (tests/Soak.ps1).
        Invoke-Build
        Invoke-Native 'Soak test' { dotnet pwsh -NoProfile -NonInteractive -File (Join-Path $root 'tests/Soak.ps1') -ModulePath $moduleOut }
    }
    default { throw "Task $Task is not implemented yet." }
}
