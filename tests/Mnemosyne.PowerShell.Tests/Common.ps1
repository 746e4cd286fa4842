# Shared by the *.Tests.ps1 files: dot-source it in BeforeAll (and in BeforeDiscovery where -Skip needs it).
Set-StrictMode -Version Latest

$script:modulePath = if ($env:MNEMOSYNE_MODULE) { $env:MNEMOSYNE_MODULE } else { Join-Path $PSScriptRoot '../../out/Mnemosyne' }
$script:manifest = Join-Path $modulePath 'Mnemosyne.psd1'
$script:repositoryRoot = [IO.Path]::GetFullPath((Join-Path $PSScriptRoot '../..'))
# The tests' checkpoint generator (RandomCheckpoint, CheckpointShape), which ./build.ps1 Build puts beside the module.
$script:testingAssembly = Join-Path $repositoryRoot 'out/Mnemosyne.Testing/Mnemosyne.Testing.dll'

# The cmdlets run on the repository's own tiny checkpoint, config B (see Get-ConfigBCheckpoint), with the
# repository's reference picture, and are compared with what diffusers made of them (tests/reference/pipeline-b).
$script:pipelineB = Join-Path $repositoryRoot 'tests/reference/pipeline-b'
$script:referenceImage = Join-Path $pipelineB 'reference.png'

# ../shared/fidelity beside the checkout (an independent tiny checkpoint with diffusers' cases) adds comparisons
# where it is there. MNEMOSYNE_TEST_WITHOUT_SHARED=1 hides it, as in a clone with nothing beside it.
$script:fidelity = [IO.Path]::GetFullPath((Join-Path $repositoryRoot '../shared/fidelity'))
$script:hasFidelity = $env:MNEMOSYNE_TEST_WITHOUT_SHARED -ne '1' -and (Test-Path $fidelity -PathType Container)

# Small enough that the tiny checkpoint makes a scene in moments.
$script:tiny = @{ Width = 64; Height = 64; Steps = 2 }

# The checkpoint's path is known only once the module has brought the engine's types and the generator is loaded.
function Import-Mnemosyne {
    Import-Module $manifest -Force -ErrorAction Stop
    # After the module, whose loader then hands the generator the module's own Mnemosyne.Engine.
    if (-not (Test-Path $testingAssembly)) { throw "$testingAssembly is missing: run ./build.ps1 Build first." }
    Add-Type -Path $testingAssembly
    $script:modelPath = Get-ConfigBCheckpoint
}

# Config B: CheckpointShape.Tiny from seed 20240607, what tests/reference/pipeline-b and networks-b were made from.
# Written once under out/test-checkpoints and shared by every test file (and every pwsh they start), in a folder
# named after the build of the code that writes it, so a changed generator writes it afresh. It is written under
# another name and renamed into place, so that no one ever sees half a checkpoint.
function Get-ConfigBCheckpoint {
    $seed = 20240607
    # Deterministic builds give an assembly the same id for the same code.
    $ids = [AppDomain]::CurrentDomain.GetAssemblies() | Where-Object { $_.GetName().Name -like 'Mnemosyne.*' } |
        ForEach-Object { $_.ManifestModule.ModuleVersionId } | Sort-Object
    $build = [Convert]::ToHexString([Security.Cryptography.SHA256]::HashData([Text.Encoding]::UTF8.GetBytes("$ids"))).Substring(0, 12)
    $root = Join-Path $repositoryRoot 'out/test-checkpoints'
    $folder = Join-Path $root "config-b-$seed-$build"
    if (-not (Test-Path $folder)) {
        $partial = "$folder.$([Guid]::NewGuid().ToString('n')).partial"
        [Mnemosyne.Testing.RandomCheckpoint]::Write((Join-Path $partial 'model'), [Mnemosyne.Testing.CheckpointShape]::Tiny, $seed, $null)
        try { [IO.Directory]::Move($partial, $folder) }
        catch [IO.IOException] { Remove-Item $partial -Recurse -Force }  # another test process put its own in place first
        # Those of earlier builds, 15 MB each.
        Get-ChildItem $root -Directory -Filter 'config-b-*' | Where-Object { -not $_.Name.StartsWith("config-b-$seed-$build") } |
            Remove-Item -Recurse -Force -ErrorAction SilentlyContinue
    }
    Join-Path $folder 'model'
}

function Open-TestEngine {
    if (-not (Get-MnemosyneEngine)) { Open-MnemosyneEngine -Path $modelPath -ErrorAction Stop }
}

# Diffusers' whole-scene cases listed in a folder's manifest.json, each with the folder of its expected files.
function Get-SceneCases {
    param([Parameter(Mandatory)] [string] $Folder, [string] $CasesFolder = $Folder)
    foreach ($case in (Get-Content (Join-Path $Folder 'manifest.json') -Raw | ConvertFrom-Json).cases) {
        $case | Add-Member -NotePropertyName folder -NotePropertyValue (Join-Path $CasesFolder $case.name) -PassThru
    }
}

# The fidelity checkpoint as the session's engine, for the comparisons that read ../shared/fidelity; and back
# (opening an engine closes the one that was open).
function Open-FidelityEngine {
    Open-MnemosyneEngine -Path (Join-Path $fidelity 'model') -ErrorAction Stop
}
function Restore-TestEngine {
    Open-MnemosyneEngine -Path $modelPath -ErrorAction Stop
}

# A finished scene built by hand, for the cmdlets that only handle scenes (saving, file names).
function New-FakeScene {
    param(
        [string] $Prompt = 'a cat in a red hat',
        [string] $NegativePrompt,
        [long] $Seed = 42,
        [int] $Width = 8,
        [int] $Height = 8,
        [string] $ReferenceName,
        [Mnemosyne.Engine.Sampling.SchedulerKind] $Scheduler = 'Euler'
    )
    $rgb = [byte[]]::new($Width * $Height * 3)
    $random = [Random]::new([int]($Seed % [int]::MaxValue))
    $random.NextBytes($rgb)
    $scene = [Mnemosyne.Engine.Pipeline.Scene]@{
        Image           = [Mnemosyne.Engine.Imaging.RgbImage]::new($Width, $Height, $rgb)
        Prompt          = $Prompt
        Seed            = $Seed
        Steps           = 4
        Scheduler       = $Scheduler
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

# Runs a script in a fresh pwsh process with the built module imported (unless -NoImport), and with the environment
# variables in -Environment set (a $null value removes one); returns its output lines and exit code.
function Invoke-SeparatePwsh {
    param([Parameter(Mandatory)] [string] $Script, [switch] $NoImport, [hashtable] $Environment = @{})
    $pwsh = Get-PwshCommand
    $full = "`$ErrorActionPreference = 'Stop'; $(if (-not $NoImport) { "Import-Module '$manifest'; " })$Script"
    $encoded = [Convert]::ToBase64String([Text.Encoding]::Unicode.GetBytes($full))
    $arguments = @($pwsh | Select-Object -Skip 1) + @('-NoProfile', '-NonInteractive', '-EncodedCommand', $encoded)
    $saved = @{}
    foreach ($name in $Environment.Keys) {
        $saved[$name] = [Environment]::GetEnvironmentVariable($name)
        [Environment]::SetEnvironmentVariable($name, $Environment[$name])
    }
    try { $output = & $pwsh[0] @arguments 2>&1 }
    finally { foreach ($name in $saved.Keys) { [Environment]::SetEnvironmentVariable($name, $saved[$name]) } }
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

# The tiny SDXL + IP-Adapter checkpoint the tests' generator writes (every run the same for a seed), the same
# weights as one single file, a stand-in for SDXL-Lightning's UNets and a tiny decoder in TAESDXL's layout:
# what New-FakeHubCache lays out (with tests/reference/lora-b's LoRAs as the speed LoRAs).
function New-TinyModelFiles {
    param([Parameter(Mandatory)] [string] $Root, [uint64] $Seed = 7)
    $shape = [Mnemosyne.Testing.CheckpointShape]::Tiny
    $files = [pscustomobject]@{
        Folder     = Join-Path $Root 'tiny-sdxl'
        SingleFile = Join-Path $Root 'tiny-sdxl.safetensors'
        Lightning  = Join-Path $Root 'lightning/sdxl_lightning_4step_unet.safetensors'
        TinyDecoder = Join-Path $Root 'taesd'
    }
    [Mnemosyne.Testing.RandomCheckpoint]::Write($files.Folder, $shape, $Seed, $null)
    [Mnemosyne.Testing.RandomCheckpoint]::WriteSingleFile($files.SingleFile, $shape, $Seed, [Mnemosyne.Engine.Safetensors.TensorDType]::F32)
    [Mnemosyne.Testing.RandomCheckpoint]::WriteUnet($files.Lightning, $shape.Unet, $Seed + 1, [Mnemosyne.Engine.Safetensors.TensorDType]::F16)
    [Mnemosyne.Testing.RandomCheckpoint]::WriteTinyDecoder($files.TinyDecoder, [Mnemosyne.Testing.RandomCheckpoint]::TinyDecoderShape, $Seed + 2)
    $files
}

# A Hugging Face hub cache (models--org--name/snapshots/<revision>/…, plain files) holding the tiny files as the
# known models named in -Include (taesdxl only when named), at the shipped manifests' repositories and revisions; and a manifest folder for
# $env:MNEMOSYNE_MODELS_PATH: the shipped manifests with file lists and sizes that fit the tiny files (the shipped
# ones list SDXL's own, so the tiny files would count as incomplete). Every model gets its manifest; those left
# out of -Include are simply not in the cache. -Fp16Names stores sdxl-base-1.0's weights under the names of
# diffusers' fp16 variant (*.fp16.safetensors), as the real snapshot has them.
function New-FakeHubCache {
    param(
        [Parameter(Mandatory)] [string] $Root,
        [Parameter(Mandatory)] $From,
        [string[]] $Include = @('sdxl-base-1.0', 'ip-adapter-sdxl-vit-h', 'ip-adapter-image-encoder-vit-h',
            'sdxl-lightning-2step-unet', 'sdxl-lightning-4step-unet', 'sdxl-lightning-8step-unet', 'sdxl-lightning-4step-lora', 'lcm-lora-sdxl'),
        [switch] $Fp16Names
    )
    $cache = Join-Path $Root 'hub'
    $manifests = Join-Path $Root 'manifests'
    $null = New-Item -ItemType Directory -Force $cache, $manifests
    $adapterRoot = Join-Path $From.Folder 'ip-adapter'
    function Get-RelativeFiles([string] $Folder) {
        Get-ChildItem $Folder -File -Recurse | ForEach-Object { @{ Source = $_.FullName; Path = [IO.Path]::GetRelativePath($Folder, $_.FullName).Replace('\', '/') } }
    }
    $contents = @{
        'sdxl-base-1.0'                  = @(Get-RelativeFiles $From.Folder | Where-Object { -not $_.Path.StartsWith('ip-adapter/') } |
                ForEach-Object { if ($Fp16Names) { $_.Path = $_.Path -replace '\.safetensors$', '.fp16.safetensors' }; $_ })
        'ip-adapter-sdxl-vit-h'          = @(Get-RelativeFiles $adapterRoot | Where-Object { $_.Path -eq 'sdxl_models/ip-adapter_sdxl_vit-h.safetensors' })
        # The one tiny Plus adapter under both Plus names.
        'ip-adapter-plus-sdxl-vit-h'      = @(Get-RelativeFiles $adapterRoot | Where-Object { $_.Path -eq 'sdxl_models/ip-adapter-plus_sdxl_vit-h.safetensors' })
        'ip-adapter-plus-face-sdxl-vit-h' = @(@{ Source = (Join-Path $adapterRoot 'sdxl_models/ip-adapter-plus_sdxl_vit-h.safetensors'); Path = 'sdxl_models/ip-adapter-plus-face_sdxl_vit-h.safetensors' })
        'ip-adapter-image-encoder-vit-h' = @(Get-RelativeFiles $adapterRoot | Where-Object { $_.Path.StartsWith('models/image_encoder/') })
        # The one stand-in UNet under each Lightning name: the manifests' sampling is what tells them apart.
        'sdxl-lightning-2step-unet'      = @(@{ Source = $From.Lightning; Path = 'sdxl_lightning_2step_unet.safetensors' })
        'sdxl-lightning-4step-unet'      = @(@{ Source = $From.Lightning; Path = 'sdxl_lightning_4step_unet.safetensors' })
        'sdxl-lightning-8step-unet'      = @(@{ Source = $From.Lightning; Path = 'sdxl_lightning_8step_unet.safetensors' })
        'taesdxl'                        = @(Get-RelativeFiles $From.TinyDecoder)
        # Two speed LoRAs: tiny LoRA files of the tests' checkpoint shape (tests/reference/lora-b) under the real names.
        'sdxl-lightning-4step-lora'      = @(@{ Source = (Join-Path $repositoryRoot 'tests/reference/lora-b/kira.safetensors'); Path = 'sdxl_lightning_4step_lora.safetensors' })
        'lcm-lora-sdxl'                  = @(@{ Source = (Join-Path $repositoryRoot 'tests/reference/lora-b/film.safetensors'); Path = 'pytorch_lora_weights.safetensors' })
    }
    $snapshots = @{}
    foreach ($name in $contents.Keys) {
        $manifest = Get-Content (Join-Path $repositoryRoot "models/$name.json") -Raw | ConvertFrom-Json
        $snapshot = Join-Path $cache ('models--' + $manifest.repository.Replace('/', '--')) 'snapshots' $manifest.revision
        $snapshots[$name] = $snapshot
        # The LoRAs' pins are their files' own, so that a copy kept elsewhere is known by its SHA-256.
        $manifest.files = @($contents[$name] | ForEach-Object {
                [ordered]@{ path = $_.Path; size = (Get-Item $_.Source).Length; sha256 = $manifest.role -eq 'lora' ? (Get-FileHash $_.Source -Algorithm SHA256).Hash.ToLowerInvariant() : $null } })
        $manifest | ConvertTo-Json -Depth 5 | Set-Content (Join-Path $manifests "$name.json")
        if ($name -notin $Include) { continue }
        foreach ($file in $contents[$name]) {
            $target = Join-Path $snapshot $file.Path
            $null = New-Item -ItemType Directory -Force (Split-Path $target)
            Copy-Item $file.Source $target
        }
    }
    [pscustomobject]@{ Cache = $cache; Manifests = $manifests; Snapshots = $snapshots }
}

# Points the module at a fake cache (or, with no argument, at an empty one) and restores what was there before.
$script:hubVariables = 'HF_HUB_CACHE', 'HF_HOME', 'MNEMOSYNE_MODELS_PATH', 'MNEMOSYNE_MODEL', 'MNEMOSYNE_IP_ADAPTER', 'MNEMOSYNE_IMAGE_ENCODER'
function Save-HubEnvironment {
    $script:savedHubEnvironment = @{}
    foreach ($name in $hubVariables) { $savedHubEnvironment[$name] = [Environment]::GetEnvironmentVariable($name) }
}
function Restore-HubEnvironment {
    foreach ($name in $hubVariables) { [Environment]::SetEnvironmentVariable($name, $savedHubEnvironment[$name]) }
}
function Use-HubCache {
    param($FakeCache)
    foreach ($name in $hubVariables) { [Environment]::SetEnvironmentVariable($name, $null) }
    if ($FakeCache) {
        $env:HF_HUB_CACHE = $FakeCache.Cache
        $env:MNEMOSYNE_MODELS_PATH = $FakeCache.Manifests
    }
    else {
        # No test may see the machine's own cache: an engine opened without an IP-Adapter would take the cached one.
        $env:HF_HUB_CACHE = (New-Item -ItemType Directory -Force (Join-Path ([IO.Path]::GetTempPath()) "mnemosyne-pester-empty-hub-$PID")).FullName
    }
}
