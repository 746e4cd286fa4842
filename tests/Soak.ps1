#requires -Version 7.4
<#
.SYNOPSIS
    Soak test: hundreds of tiny scenes in one session, as an unattended script makes them; resident
    memory and open handles must not grow.
.DESCRIPTION
    Writes the tiny random checkpoint to a temporary folder, opens it and makes -Scenes scenes (64×64,
    2 steps, with a character reference, the prompts cycling through more texts than the engine
    caches), saving each as a PNG and measuring every tenth against the reference. Resident memory
    (VmRSS) and open file descriptors are read after scene -WarmUp and after the last.

    Memory is read twice each time: as the process stands after a full garbage collection, and "held",
    once the allocators have handed their free memory back (an aggressive, compacting collection, then
    glibc's malloc_trim). Tiny scenes take milliseconds, so the first hundred or so still see the
    runtime warming up (tiered JIT, the GC's budgets, malloc arenas): the process grows by a fixed
    10–25 MB of allocator cache, then stays flat. A leak is memory something still holds, so the test
    fails (exit code 1) when held memory grew by -MaxGrowthPercent or more, or when handles grew; both
    figures are printed. -Untrimmed never trims and judges memory as it stands (warm-up included).
    Run it with ./build.ps1 Soak.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)] [string] $ModulePath,
    [ValidateRange(2, 100000)] [int] $Scenes = 500,
    [ValidateRange(1, 100000)] [int] $WarmUp = 50,
    [double] $MaxGrowthPercent = 5,
    [switch] $Untrimmed
)

$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
Set-StrictMode -Version Latest
if ($WarmUp -ge $Scenes) { throw "-WarmUp ($WarmUp) must be below -Scenes ($Scenes)." }

$canTrim = $IsLinux -and -not $Untrimmed
if ($canTrim) {
    Add-Type -Namespace MnemosyneSoak -Name Libc -MemberDefinition '[DllImport("libc")] public static extern int malloc_trim(UIntPtr pad);'
}

function Get-Resident {
    if (Test-Path /proc/self/status) {
        1024 * [long](([IO.File]::ReadAllLines('/proc/self/status') | Where-Object { $_ -like 'VmRSS:*' }) -replace '\D', '')
    }
    else { [Diagnostics.Process]::GetCurrentProcess().WorkingSet64 }
}

function Get-Usage {
    [GC]::Collect()
    [GC]::WaitForPendingFinalizers()
    [GC]::Collect()
    $asIs = Get-Resident
    if (-not $Untrimmed) { [GC]::Collect(2, [GCCollectionMode]::Aggressive, $true, $true) }
    if ($canTrim) { $null = [MnemosyneSoak.Libc]::malloc_trim([UIntPtr]::Zero) }
    $handles = if (Test-Path /proc/self/fd) { [IO.Directory]::GetFileSystemEntries('/proc/self/fd').Count } else { [Diagnostics.Process]::GetCurrentProcess().HandleCount }
    [pscustomobject]@{ ResidentBytes = $asIs; HeldBytes = Get-Resident; Handles = $handles; ManagedBytes = [GC]::GetTotalMemory($false) }
}

Import-Module (Join-Path $ModulePath 'Mnemosyne.psd1')
# The tests' checkpoint generator, which ./build.ps1 Build puts beside the module; after it, so that it binds to the module's engine.
Add-Type -Path (Join-Path $PSScriptRoot '../out/Mnemosyne.Testing/Mnemosyne.Testing.dll')
$work = Join-Path ([IO.Path]::GetTempPath()) "mnemosyne-soak-$([guid]::NewGuid().ToString('N'))"
$null = New-Item -ItemType Directory $work
try {
    $checkpoint = Join-Path $work 'tiny'
    [Mnemosyne.Testing.RandomCheckpoint]::Write($checkpoint, [Mnemosyne.Testing.CheckpointShape]::Tiny, 1)
    Open-MnemosyneEngine $checkpoint
    $picture = Join-Path $work 'character.png'
    $rgb = [byte[]]::new(40 * 30 * 3)
    for ($i = 0; $i -lt $rgb.Length; $i++) { $rgb[$i] = ($i * 7) % 256 }
    [Mnemosyne.Engine.Imaging.PngFile]::Save($picture, [Mnemosyne.Engine.Imaging.RgbImage]::new(40, 30, $rgb))
    $reference = Import-MnemosyneReference $picture -Name 'soak'
    $places = 'on a beach', 'in a forest', 'at a cafe', 'in the rain', 'on a roof', 'in a library', 'at night', 'in the snow', 'on a boat', 'in a garden'
    $prompts = foreach ($who in 'a knight', 'a cat', 'a pilot', 'a painter', 'a robot', 'a dancer', 'a sailor', 'a monk', 'a chef', 'a child') {
        foreach ($where in $places) { "$who $where" }
    }
    $output = Join-Path $work 'scene.png'

    $samples = [Collections.Generic.List[object]]::new()
    $clock = [Diagnostics.Stopwatch]::StartNew()
    for ($scene = 1; $scene -le $Scenes; $scene++) {
        $made = New-MnemosyneScene $prompts[($scene - 1) % $prompts.Count] -Reference $reference -Seed $scene -Width 64 -Height 64 -Steps 2
        $made | Save-MnemosyneImage -Path $output -Force
        if ($scene % 10 -eq 0) { $null = $made | Measure-MnemosyneConsistency -Reference $reference }
        if ($scene -eq $WarmUp -or $scene -eq $Scenes -or $scene % 100 -eq 0) {
            $usage = Get-Usage
            $samples.Add([pscustomobject]@{
                    Scene           = $scene
                    'RSS (MB)'      = [Math]::Round($usage.ResidentBytes / 1MB, 1)
                    'Held RSS (MB)' = [Math]::Round($usage.HeldBytes / 1MB, 1)
                    Handles         = $usage.Handles
                    'Managed (MB)'  = [Math]::Round($usage.ManagedBytes / 1MB, 1)
                    'Time (s)'      = [Math]::Round($clock.Elapsed.TotalSeconds, 1)
                    Resident        = $usage.ResidentBytes
                    Held            = $usage.HeldBytes
                })
        }
    }
    Close-MnemosyneEngine
}
finally {
    Remove-Item $work -Recurse -Force -ErrorAction SilentlyContinue
}

$samples | Sort-Object Scene -Unique | Format-Table Scene, 'RSS (MB)', 'Held RSS (MB)', Handles, 'Managed (MB)', 'Time (s)' | Out-String | Write-Host
$first = $samples | Where-Object Scene -EQ $WarmUp | Select-Object -First 1
$last = $samples | Where-Object Scene -EQ $Scenes | Select-Object -First 1
function Get-Growth([string] $Property) { 100.0 * ($last.$Property - $first.$Property) / $first.$Property }
$heldGrowth = Get-Growth Held
$handleGrowth = $last.Handles - $first.Handles
$judged = if ($Untrimmed) { 'memory (untrimmed)' } else { 'held memory' }
Write-Host ("From scene {0} to {1}: $judged {2:N1} -> {3:N1} MB ({4:+0.00;-0.00}%); resident as is {5:N1} -> {6:N1} MB ({7:+0.00;-0.00}%); handles {8} -> {9} ({10:+0;-0;0}); {11:N0} ms a scene" -f
    $WarmUp, $Scenes, ($first.Held / 1MB), ($last.Held / 1MB), $heldGrowth, ($first.Resident / 1MB), ($last.Resident / 1MB), (Get-Growth Resident),
    $first.Handles, $last.Handles, $handleGrowth, (1000 * $last.'Time (s)' / $Scenes))

$failures = @()
if ($heldGrowth -ge $MaxGrowthPercent) { $failures += "$judged grew {0:N2}% (limit {1}%)" -f $heldGrowth, $MaxGrowthPercent }
if ($handleGrowth -gt 0) { $failures += "open handles grew by $handleGrowth" }
if ($failures) {
    Write-Host "Soak FAILED: $($failures -join '; ')."
    exit 1
}
Write-Host 'Soak passed.'
