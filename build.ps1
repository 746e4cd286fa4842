#requires -Version 7.4
<#
.SYNOPSIS
    Builds, tests, benchmarks and packages Mnemosyne.
.EXAMPLE
    dotnet tool restore && dotnet pwsh ./build.ps1 Test
#>
[CmdletBinding()]
param(
    [Parameter(Position = 0)]
    [ValidateSet('Build', 'Test', 'TinyModel', 'TinyDecoder', 'Bench', 'Demo', 'Soak', 'Package')]
    [string] $Task = 'Build',

    [ValidateSet('Debug', 'Release')]
    [string] $Configuration = 'Release',

    # TinyModel, TinyDecoder: where to write the checkpoint (or tiny decoder); Size: Tiny or Full (SDXL base 1.0 and
    # TAESDXL sizes; Bench's default).
    [string] $Output,
    [ValidateSet('Tiny', 'Full')]
    [string] $Size = 'Tiny',
    [uint64] $Seed = 1,

    # Bench: ONNX Runtime threads (0 = one per core), image sides, scene steps, 512² only (-Quick),
    # which phases, and -Peer to time diffusers on PyTorch in the same run.
    [int] $Threads = 0,
    [int[]] $Sizes = @(512, 1024),
    [int] $Steps = 4,
    [switch] $Quick,
    [switch] $LowMemory,
    [string[]] $Phases,
    [switch] $Peer,
    [string] $PeerVendor,
    # Bench: the weight precision (Int8 converts the weights of the UNet, the adapter's keys and the encoders once, beside the benchmark's checkpoint).
    [ValidateSet('Float32', 'Int8')]
    [string] $Precision = 'Float32',
    # Bench phase engines: scenes per engine process and configuration, and their quality (Fast: 4 unguided steps, the tiny decoder).
    [int] $Scenes = 3,
    [ValidateSet('Standard', 'Fast')]
    [string] $Quality = 'Standard',

    # Test: with ../shared hidden, as in a clone with nothing beside it: the xunit tests that read it where present, and Pester.
    [switch] $WithoutShared,

    # Bench: the phases other than open-uncached/open-caching/open-cached optimise every session instead of using saved ones.
    [switch] $NoSessionCache,

    # Package: also ONNX Runtime's CUDA build, as an add-on per platform (out/package/Mnemosyne.Cuda-<version>-<rid>.zip).
    [switch] $Gpu
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version Latest
$root = $PSScriptRoot
$moduleOut = Join-Path $root 'out/Mnemosyne'
$testingOut = Join-Path $root 'out/Mnemosyne.Testing'

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
    Copy-Item (Join-Path $root 'module/*'), (Join-Path $root 'LICENSE') $moduleOut -Recurse -Force
    Write-UpdatableHelp
    # The tests' checkpoint generator (tests/Mnemosyne.Testing), for the Pester and soak tests: its own files only,
    # so that it binds to the engine of the module imported before it.
    if (Test-Path $testingOut) { Remove-Item $testingOut -Recurse -Force }
    New-Item -ItemType Directory $testingOut | Out-Null
    Copy-Item (Join-Path $root "tests/Mnemosyne.Testing/bin/$Configuration/net8.0/Mnemosyne.Testing.*") $testingOut -Include *.dll, *.pdb
    Write-Host "Module: $moduleOut"
}

# Update-Help: the manifest's HelpInfoURI names where a release publishes the HelpInfo file (which help version is current)
# and the help content (module/en-US, zipped). Both are made into out/help, to be attached to each GitHub release (the
# URI is the latest release's downloads); the module carries the same HelpInfo file, so Update-Help knows its help is
# current until a release brings newer help. `Update-Help -Module Mnemosyne -SourcePath out/help` installs it offline.
function Write-UpdatableHelp {
    $manifestData = Import-PowerShellDataFile (Join-Path $root 'module/Mnemosyne.psd1')
    $stem = "Mnemosyne_$($manifestData.GUID)"
    $helpOut = Join-Path $root 'out/help'
    if (Test-Path $helpOut) { Remove-Item $helpOut -Recurse -Force }
    New-Item -ItemType Directory $helpOut | Out-Null
    # UICultureVersion has four parts; a new module version is new help.
    $version = [version]$manifestData.ModuleVersion
    $helpVersion = [version]::new($version.Major, $version.Minor, [math]::Max($version.Build, 0), [math]::Max($version.Revision, 0))
    $helpInfo = @"
<?xml version="1.0" encoding="utf-8"?>
<HelpInfo xmlns="http://schemas.microsoft.com/powershell/help/2010/05">
  <HelpContentURI>$($manifestData.HelpInfoURI)</HelpContentURI>
  <SupportedUICultures>
    <UICulture>
      <UICultureName>en-US</UICultureName>
      <UICultureVersion>$helpVersion</UICultureVersion>
    </UICulture>
  </SupportedUICultures>
</HelpInfo>
"@
    Set-Content (Join-Path $helpOut "${stem}_HelpInfo.xml") $helpInfo -Encoding utf8NoBOM
    Set-Content (Join-Path $moduleOut "${stem}_HelpInfo.xml") $helpInfo -Encoding utf8NoBOM
    Compress-Archive -Path (Join-Path $root 'module/en-US/*') -DestinationPath (Join-Path $helpOut "${stem}_en-US_HelpContent.zip")
}

# The package the PowerShell Gallery takes: Publish-PSResource makes it from the built module, into a folder
# registered as a file repository just for the call. To publish it:
# Publish-PSResource -NupkgPath out/package/Mnemosyne.<version>.nupkg -Repository PSGallery -ApiKey <key>
function Invoke-Package {
    Invoke-Build
    $packages = Join-Path $root 'out/package'
    if (Test-Path $packages) { Remove-Item $packages -Recurse -Force }
    New-Item -ItemType Directory $packages | Out-Null
    $repository = "Mnemosyne-build-$PID"
    Register-PSResourceRepository -Name $repository -Uri $packages -Trusted
    try { Publish-PSResource -Path $moduleOut -Repository $repository }
    finally { Unregister-PSResourceRepository -Name $repository }
    Get-ChildItem $packages -Filter *.nupkg | ForEach-Object { Write-Host "Package: $($_.FullName) ($([math]::Round($_.Length / 1MB, 1)) MB)" }
    if ($Gpu) { Invoke-CudaAddOn }
}

# The CUDA add-on: ONNX Runtime's CUDA build of the engine's ONNX Runtime version (NuGet's Microsoft.ML.OnnxRuntime.Gpu.Linux
# and .Gpu.Windows: the library and its CUDA provider, without TensorRT's), laid out as cuda/<rid>/ to be extracted into
# the installed module's dependencies/ folder, where OnnxRuntimeNative prefers it. Kept out of the module's own package:
# 330 MB against its few, and of use only beside an NVIDIA GPU with CUDA 13 and cuDNN 9.
function Invoke-CudaAddOn {
    $engineProject = Join-Path $root 'src/Mnemosyne.Engine/Mnemosyne.Engine.csproj'
    $version = ([xml](Get-Content $engineProject)).SelectSingleNode("//PackageReference[@Include='Microsoft.ML.OnnxRuntime']").Version
    $restore = Join-Path $root 'out/cuda-restore'
    New-Item -ItemType Directory -Force $restore | Out-Null
    Set-Content (Join-Path $restore 'CudaAddOn.csproj') @"
<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup><TargetFramework>net8.0</TargetFramework></PropertyGroup>
  <ItemGroup>
    <PackageReference Include="Microsoft.ML.OnnxRuntime.Gpu.Linux" Version="$version" />
    <PackageReference Include="Microsoft.ML.OnnxRuntime.Gpu.Windows" Version="$version" />
  </ItemGroup>
</Project>
"@
    Invoke-Native 'dotnet restore (CUDA add-on)' { dotnet restore (Join-Path $restore 'CudaAddOn.csproj') --nologo -v quiet }
    $packages = Get-NuGetPackagesFolder
    $moduleVersion = (Import-PowerShellDataFile (Join-Path $root 'module/Mnemosyne.psd1')).ModuleVersion
    foreach ($platform in @(
            @{ Package = 'microsoft.ml.onnxruntime.gpu.linux'; Rid = 'linux-x64'; Files = 'libonnxruntime.so', 'libonnxruntime_providers_cuda.so', 'libonnxruntime_providers_shared.so' },
            @{ Package = 'microsoft.ml.onnxruntime.gpu.windows'; Rid = 'win-x64'; Files = 'onnxruntime.dll', 'onnxruntime_providers_cuda.dll', 'onnxruntime_providers_shared.dll' })) {
        $native = Join-Path $packages "$($platform.Package)/$version/runtimes/$($platform.Rid)/native"
        $stage = Join-Path $root "out/cuda/$($platform.Rid)"
        if (Test-Path $stage) { Remove-Item $stage -Recurse -Force }
        $folder = New-Item -ItemType Directory -Force (Join-Path $stage "cuda/$($platform.Rid)")
        foreach ($file in $platform.Files) { Copy-Item (Join-Path $native $file) $folder -ErrorAction Stop }
        $zip = Join-Path $root "out/package/Mnemosyne.Cuda-$moduleVersion-$($platform.Rid).zip"
        Compress-Archive -Path (Join-Path $stage 'cuda') -DestinationPath $zip -Force
        Write-Host "CUDA add-on: $zip ($([math]::Round((Get-Item $zip).Length / 1MB, 1)) MB; ONNX Runtime $version)"
    }
}

function Get-NuGetPackagesFolder {
    if ($env:NUGET_PACKAGES) { $env:NUGET_PACKAGES } else {
        ((dotnet nuget locals global-packages --list) -replace '^global-packages:\s*', '').Trim()
    }
}

function Get-PesterManifest {
    $packages = Get-NuGetPackagesFolder
    $manifest = Join-Path $packages 'pester/6.2.0/tools/Pester.psd1'
    if (-not (Test-Path $manifest)) { throw "Pester 6.2.0 was not restored to $manifest." }
    $manifest
}

function Invoke-Test {
    Invoke-Build
    $results = Join-Path $root $(if ($WithoutShared) { 'out/test-results-without-shared' } else { 'out/test-results' })
    Remove-Item $results -Recurse -Force -ErrorAction SilentlyContinue
    New-Item -ItemType Directory -Force $results | Out-Null

    # The tests honour MNEMOSYNE_TEST_WITHOUT_SHARED. Without ../shared, xunit runs the classes that read it where
    # present (trait Reads=Shared) and Pester runs whole: its cmdlet tests are quick.
    $xunitFilter = @()
    $env:MNEMOSYNE_TEST_WITHOUT_SHARED = $null
    if ($WithoutShared) {
        $env:MNEMOSYNE_TEST_WITHOUT_SHARED = '1'
        $xunitFilter = @('--filter', 'Reads=Shared')
    }
    dotnet test (Join-Path $root 'tests/Mnemosyne.Engine.Tests') -c $Configuration --no-build --nologo @xunitFilter `
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
# Engines opened by the tests keep their optimised sessions here, not in the user's cache.
`$env:XDG_CACHE_HOME = '$results/cache'
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
    $skipped = [int]$xunit.total - [int]$xunit.executed + [int]$pesterCounts.Skipped # skipped xunit tests are not executed, yet not counted as notExecuted
    Write-Host "xunit $($xunit.passed)/$($xunit.total) passed; Pester $($pesterCounts.Passed) passed"
    Write-Host "Total: $passed passed, $failed failed, $skipped skipped"
    if ($xunitFailed -or $pesterFailed) {
        throw "Tests failed: xunit $(if ($xunitFailed) {'failed'} else {'passed'}), Pester $(if ($pesterFailed) {'failed'} else {'passed'})."
    }
}

# The main job: build the module, then put the sample character into a scene. With the real SDXL +
# IP-Adapter weights installed (Install-MnemosyneModel) it uses them; otherwise a generated tiny
# random checkpoint, whose picture is noise.
function Invoke-Demo {
    Invoke-Build
    $tiny = Join-Path $root 'out/tiny-model'
    $picture = Join-Path $root 'out/demo/samurai.png'
    $script = @"
`$ErrorActionPreference = 'Stop'
Import-Module '$moduleOut/Mnemosyne.psd1'
`$models = Get-MnemosyneModel -Name sdxl-base-1.0, ip-adapter-sdxl-vit-h, ip-adapter-image-encoder-vit-h
if (`$env:MNEMOSYNE_MODEL) {
    Write-Host "Using `$env:MNEMOSYNE_MODEL"
    Open-MnemosyneEngine -Path `$env:MNEMOSYNE_MODEL
    `$settings = @{ Quality = 'Draft' }
} elseif (@(`$models | Where-Object IsComplete).Count -eq 3) {
    Write-Host 'Using the real SDXL base 1.0 + IP-Adapter weights from the Hugging Face cache (a draft scene takes tens of minutes on a CPU).'
    Open-MnemosyneEngine -Model sdxl-base-1.0
    `$settings = @{ Quality = 'Draft' }
} else {
    Write-Host 'The real weights are not installed, so this demo runs on a generated tiny random checkpoint: its picture is noise.'
    Write-Host 'To install the real ones (10.2 GB): Install-MnemosyneModel sdxl-base-1.0, ip-adapter-sdxl-vit-h, ip-adapter-image-encoder-vit-h'
    Open-MnemosyneEngine -Path '$tiny'
    `$settings = @{ Steps = 4; Width = 512; Height = 512 }
}
Import-MnemosyneReference '$root/module/Samples/kira.png' |
    New-MnemosyneScene 'a cyberpunk street samurai' -Seed 42 @settings |
    Save-MnemosyneImage -Path '$picture' -Force -PassThru |
    ForEach-Object { "Saved `$(`$_.Path)" }
"@
    New-Item -ItemType Directory -Force (Split-Path $picture) | Out-Null
    if (-not (Test-Path (Join-Path $tiny 'model_index.json'))) {
        Invoke-Tool @('tiny-model', '--output', $tiny, '--size', 'Tiny', '--seed', '1')
    }
    Invoke-Native 'Demo' { dotnet pwsh -NoProfile -NonInteractive -Command $script }
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
    'TinyDecoder' {
        if (-not $Output) { throw 'TinyDecoder needs -Output <folder>.' }
        Invoke-Tool @('tiny-decoder', '--output', $Output, '--size', $Size, '--seed', $Seed)
    }
    'Demo' { Invoke-Demo }
    'Package' { Invoke-Package }
    'Soak' {
        # Not part of Test: 500 scenes in one session, failing on memory or handle growth (tests/Soak.ps1).
        Invoke-Build
        Invoke-Native 'Soak test' { dotnet pwsh -NoProfile -NonInteractive -File (Join-Path $root 'tests/Soak.ps1') -ModulePath $moduleOut }
    }
    'Bench' {
        $harness = Join-Path $root '../shared/tools/reference-harness'
        if (-not $PeerVendor) {
            $PeerVendor = @($env:MNEMOSYNE_PEER_VENDOR, (Join-Path $harness 'vendor'), (Join-Path $root '../refenv/vendor')) |
                Where-Object { $_ -and (Test-Path (Join-Path $_ 'diffusers')) } | Select-Object -First 1
        }
        $arguments = @('bench', '--size', $(if ($PSBoundParameters.ContainsKey('Size')) { $Size } else { 'Full' }),
            '--threads', $Threads, '--precision', $Precision, '--sizes', ($Sizes -join ','), '--steps', $Steps, '--quick', $Quick.IsPresent, '--low-memory', $LowMemory.IsPresent,
            '--output', (Join-Path $root 'out/bench'), '--peer', $Peer.IsPresent, '--peer-harness', $harness,
            '--session-cache', (-not $NoSessionCache.IsPresent), '--scenes', $Scenes, '--fast', ($Quality -eq 'Fast'))
        if ($PeerVendor) { $arguments += @('--peer-vendor', $PeerVendor) }
        if ($Phases) { $arguments += @('--phases', ($Phases -join ',')) }
        Invoke-Tool $arguments
    }
    default { throw "Task $Task is not implemented yet." }
}
