# Shared by the *.Tests.ps1 files: dot-source it in BeforeAll (and in BeforeDiscovery where -Skip needs it).
Set-StrictMode -Version Latest

$script:modulePath = if ($env:MNEMOSYNE_MODULE) { $env:MNEMOSYNE_MODULE } else { Join-Path $PSScriptRoot '../../out/Mnemosyne' }
$script:manifest = Join-Path $modulePath 'Mnemosyne.psd1'
$script:repositoryRoot = [IO.Path]::GetFullPath((Join-Path $PSScriptRoot '../..'))

# The tiny SDXL + IP-Adapter checkpoint and the diffusers reference cases, read in place beside the checkout.
$script:fidelity = [IO.Path]::GetFullPath((Join-Path $repositoryRoot '../shared/fidelity'))
$script:modelPath = Join-Path $fidelity 'model'
$script:referenceImage = Join-Path $fidelity 'reference.png'
$script:hasModel = Test-Path (Join-Path $modelPath 'model_index.json')
$script:noModel = "$modelPath is absent: the tiny checkpoint lives in ../shared/fidelity beside the checkout."

# Small enough that the tiny checkpoint makes a scene in moments.
$script:tiny = @{ Width = 64; Height = 64; Steps = 2 }

function Import-Mnemosyne {
    Import-Module $manifest -Force -ErrorAction Stop
}

function Open-TestEngine {
    if ($hasModel -and -not (Get-MnemosyneEngine)) { Open-MnemosyneEngine -Path $modelPath -ErrorAction Stop }
}

# A finished scene built by hand, for the cmdlets that only handle scenes (saving, file names).
function New-FakeScene {
    param(
        [string] $Prompt = 'a cat in a red hat',
        [string] $NegativePrompt,
        [long] $Seed = 42,
        [int] $Width = 8,
        [int] $Height = 8,
        [string] $ReferenceName
    )
    $rgb = [byte[]]::new($Width * $Height * 3)
    $random = [Random]::new([int]($Seed % [int]::MaxValue))
    $random.NextBytes($rgb)
    $scene = [Mnemosyne.Engine.Pipeline.Scene]@{
        Image           = [Mnemosyne.Engine.Imaging.RgbImage]::new($Width, $Height, $rgb)
        Prompt          = $Prompt
        Seed            = $Seed
        Steps           = 4
        Scheduler       = [Mnemosyne.Engine.Sampling.SchedulerKind]::Euler
        GuidanceScale   = 5.0
        Width           = $Width
        Height          = $Height
        Model           = 'tiny'
        NegativePrompt  = $NegativePrompt
        ReferenceName   = $ReferenceName
        ReferenceWeight = 0.6
        FinalLatents    = [Mnemosyne.Engine.Tensors.FloatTensor]::new([float[]]::new(4), [int[]](1, 4, 1, 1))
    }
    $scene
}

# A character reference built by hand, for the cmdlets that only move references around.
function New-FakeReference {
    param([string] $Name = 'kira', [float[]] $Embedding = @(0.25, -1.5, 3.0, 0.125))
    [Mnemosyne.Engine.Pipeline.CharacterReference]@{
        Name      = $Name
        Encoder   = 'clip-vit-h-test'
        Embedding = $Embedding
        Sources   = [Mnemosyne.Engine.Pipeline.ReferenceSource[]]@([Mnemosyne.Engine.Pipeline.ReferenceSource]::new('/pictures/kira.png', 'ab' * 32))
    }
}

# The pwsh that runs these tests, as a command line: under `dotnet pwsh` the process is dotnet itself.
function Get-PwshCommand {
    $process = [Environment]::ProcessPath
    if ([IO.Path]::GetFileNameWithoutExtension($process) -eq 'dotnet') { , @($process, (Join-Path $PSHOME 'pwsh.dll')) }
    else { , @($process) }
}

# Runs a script in a fresh pwsh process with the built module imported; returns its output lines and exit code.
function Invoke-SeparatePwsh {
    param([Parameter(Mandatory)] [string] $Script)
    $pwsh = Get-PwshCommand
    $full = "`$ErrorActionPreference = 'Stop'; Import-Module '$manifest'; $Script"
    $encoded = [Convert]::ToBase64String([Text.Encoding]::Unicode.GetBytes($full))
    $arguments = @($pwsh | Select-Object -Skip 1) + @('-NoProfile', '-NonInteractive', '-EncodedCommand', $encoded)
    $output = & $pwsh[0] @arguments 2>&1
    [pscustomobject]@{ Output = @($output | ForEach-Object { "$_" }); ExitCode = $LASTEXITCODE }
}

# The progress, errors and output of a command run in its own runspace, as a background job would see them.
function Invoke-InRunspace {
    param([Parameter(Mandatory)] [scriptblock] $ScriptBlock, [object[]] $ArgumentList = @())
    $ps = [powershell]::Create()
    try {
        $null = $ps.AddScript("Import-Module '$manifest'").AddStatement().AddScript($ScriptBlock.ToString())
        foreach ($argument in $ArgumentList) { $null = $ps.AddArgument($argument) }
        $output = $ps.Invoke()
        [pscustomobject]@{ Output = @($output); Progress = @($ps.Streams.Progress); Errors = @($ps.Streams.Error) }
    }
    finally { $ps.Dispose() }
}

# Waits for a condition another thread makes true (polling: PowerShell events cannot fire while this thread waits).
function Wait-Until {
    param([Parameter(Mandatory)] [scriptblock] $Condition, [int] $TimeoutSeconds = 300)
    $deadline = [DateTime]::UtcNow.AddSeconds($TimeoutSeconds)
    while (-not (& $Condition)) {
        if ([DateTime]::UtcNow -gt $deadline) { return $false }
        Start-Sleep -Milliseconds 20
    }
    $true
}
