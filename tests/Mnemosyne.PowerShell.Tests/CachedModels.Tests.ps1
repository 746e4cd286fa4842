# Known models opened from a Hugging Face cache, single-file checkpoints, the default engine and -Quality Fast,
# on tiny generated checkpoints laid out as the cache (see New-FakeHubCache in Common.ps1): these never skip.
BeforeAll {
    . $PSScriptRoot/Common.ps1
    Import-Mnemosyne
    Save-HubEnvironment
    $script:files = New-TinyModelFiles -Root (Join-Path $TestDrive 'generated')
    $script:full = New-FakeHubCache -Root (Join-Path $TestDrive 'full') -From $files
    $script:baseOnly = New-FakeHubCache -Root (Join-Path $TestDrive 'base-only') -From $files -Include 'sdxl-base-1.0'
    $script:adapterOnly = New-FakeHubCache -Root (Join-Path $TestDrive 'adapter-only') -From $files -Include 'ip-adapter-sdxl-vit-h', 'ip-adapter-image-encoder-vit-h'
    $script:withPlus = New-FakeHubCache -Root (Join-Path $TestDrive 'with-plus') -From $files -Include 'sdxl-base-1.0', 'ip-adapter-plus-face-sdxl-vit-h', 'ip-adapter-image-encoder-vit-h'
    $script:withTiny = New-FakeHubCache -Root (Join-Path $TestDrive 'with-tiny') -From $files -Include 'sdxl-base-1.0', 'taesdxl'
    $script:picture = Join-Path $TestDrive 'character.png'
    $rgb = [byte[]]::new(24 * 32 * 3)
    for ($i = 0; $i -lt $rgb.Length; $i++) { $rgb[$i] = [byte](($i * 11) % 256) }
    [Mnemosyne.Engine.Imaging.PngFile]::Save($picture, [Mnemosyne.Engine.Imaging.RgbImage]::new(24, 32, $rgb))
    $script:adapterFile = Join-Path $files.Folder 'ip-adapter/sdxl_models/ip-adapter_sdxl_vit-h.safetensors'
    $script:scene = @{ Seed = 11; Width = 64; Height = 64 }

    function Get-Hex($Scene) { [Convert]::ToHexString($Scene.Image.Rgb) }
}

AfterAll {
    Close-MnemosyneEngine
    Restore-HubEnvironment
}

Describe 'Open-MnemosyneEngine -IPAdapterModel' {
    BeforeAll { Use-HubCache $withPlus }
    BeforeEach { Close-MnemosyneEngine }

    It 'opens IP-Adapter Plus-Face from the cache by name, with the cached image encoder: the scene of the same file given by path' {
        $info = Open-MnemosyneEngine -Model sdxl-base-1.0 -IPAdapterModel ip-adapter-plus-face-sdxl-vit-h -PassThru
        $info.IPAdapterPath | Should -Be (Join-Path $withPlus.Snapshots['ip-adapter-plus-face-sdxl-vit-h'] 'sdxl_models/ip-adapter-plus-face_sdxl_vit-h.safetensors')
        $info.ImageEncoderPath | Should -Be (Join-Path $withPlus.Snapshots['ip-adapter-image-encoder-vit-h'] 'models/image_encoder')
        $info.IPAdapterKind | Should -Be 'Plus'
        $reference = Import-MnemosyneReference $picture -Name 'face'
        $reference.AdapterKind | Should -Be 'Plus'
        $byName = New-MnemosyneScene 'a knight' -Reference $reference -Steps 2 @scene
        Open-MnemosyneEngine -Path $files.Folder -IPAdapterPath (Join-Path $files.Folder 'ip-adapter/sdxl_models/ip-adapter-plus_sdxl_vit-h.safetensors')
        Get-Hex (New-MnemosyneScene 'a knight' -Reference $reference -Steps 2 @scene) | Should -Be (Get-Hex $byName)
    }

    It 'a known adapter not in the cache: one error naming what to install' {
        { Open-MnemosyneEngine -Model sdxl-base-1.0 -IPAdapterModel ip-adapter-plus-sdxl-vit-h } | Should -Throw -ExpectedMessage '*Run Install-MnemosyneModel ip-adapter-plus-sdxl-vit-h*'
    }

    It 'with -IPAdapterPath as well: InvalidArgument' {
        $failure = { Open-MnemosyneEngine -Model sdxl-base-1.0 -IPAdapterModel ip-adapter-plus-sdxl-vit-h -IPAdapterPath $adapterFile } | Should -Throw -PassThru
        $failure.CategoryInfo.Category | Should -Be 'InvalidArgument'
        $failure.FullyQualifiedErrorId | Should -Match '^IPAdapterModelAndPath'
    }
}

Describe 'Open-MnemosyneEngine -Model' {
    BeforeAll { Use-HubCache $full }
    BeforeEach { Close-MnemosyneEngine }

    It 'opens sdxl-base-1.0 from its snapshot, with the IP-Adapter and image encoder from the cache' {
        $info = Open-MnemosyneEngine -Model sdxl-base-1.0 -PassThru
        $info.Model | Should -Be 'sdxl-base-1.0'
        $info.Path | Should -Be $full.Snapshots['sdxl-base-1.0']
        $info.IPAdapterPath | Should -Be (Join-Path $full.Snapshots['ip-adapter-sdxl-vit-h'] 'sdxl_models/ip-adapter_sdxl_vit-h.safetensors')
        $info.ImageEncoderPath | Should -Be (Join-Path $full.Snapshots['ip-adapter-image-encoder-vit-h'] 'models/image_encoder')
        $info.SupportsReferences | Should -BeTrue
        $info.UnetPath | Should -BeNullOrEmpty
    }

    It 'makes the scene that the same checkpoint makes opened by path, named after the model' {
        Open-MnemosyneEngine -Path $files.Folder
        $reference = Import-MnemosyneReference $picture -Name 'toy'
        $expected = New-MnemosyneScene 'a knight' -Reference $reference -Steps 2 @scene
        Open-MnemosyneEngine -Model sdxl-base-1.0
        $actual = New-MnemosyneScene 'a knight' -Reference $reference -Steps 2 @scene
        $actual.Model | Should -Be 'sdxl-base-1.0'
        $actual.ReferenceName | Should -Be 'toy'
        Get-Hex $actual | Should -Be (Get-Hex $expected)
    }

    It 'takes a replacement UNet by name, and -Quality Fast then makes 4 unguided trailing steps with the reference, without a warning' {
        $info = Open-MnemosyneEngine -Model sdxl-base-1.0 -UnetModel sdxl-lightning-4step-unet -PassThru
        $info.UnetPath | Should -Be (Join-Path $full.Snapshots['sdxl-lightning-4step-unet'] 'sdxl_lightning_4step_unet.safetensors')
        $info.Model | Should -Be 'sdxl-base-1.0+sdxl_lightning_4step_unet'
        $reference = Import-MnemosyneReference $picture -Name 'toy'
        $fast = New-MnemosyneScene 'a knight' -Reference $reference -ReferenceWeight 0.9 -Quality Fast @scene -WarningVariable warnings
        $warnings | Should -BeNullOrEmpty
        $fast.Steps | Should -Be 4
        $fast.Spacing | Should -Be 'Trailing'
        $fast.GuidanceScale | Should -Be 0
        $fast.Scheduler | Should -Be 'Euler'
        $fast.ReferenceName | Should -Be 'toy'
        $fast.ParametersText() | Should -Match 'Steps: 4, Sampler: Euler, Schedule type: Automatic, CFG scale: 0, .*, Timestep spacing: trailing,'
        $unreferenced = New-MnemosyneScene 'a knight' -Reference $reference -ReferenceWeight 0 -Quality Fast @scene
        Get-Hex $fast | Should -Not -Be (Get-Hex $unreferenced) -Because 'the reference still steers a Fast scene'
        # What -Quality Fast stands for, spelled out, with the replacement UNet given by path: the same picture.
        Open-MnemosyneEngine -Path $files.Folder -UnetPath $files.Lightning
        $spelled = New-MnemosyneScene 'a knight' -Reference $reference -ReferenceWeight 0.9 -Steps 4 -Scheduler Euler -Spacing Trailing -GuidanceScale 0 @scene
        Get-Hex $spelled | Should -Be (Get-Hex $fast)
    }

    It 'takes the sampling of -Quality Fast from the UNet model''s manifest: <Steps> trailing steps for <Model>' -ForEach @(
        @{ Model = 'sdxl-lightning-2step-unet'; Steps = 2 }
        @{ Model = 'sdxl-lightning-8step-unet'; Steps = 8 }
    ) {
        $info = Open-MnemosyneEngine -Model sdxl-base-1.0 -UnetModel $Model -PassThru
        $info.UnetPath | Should -Be (Join-Path $full.Snapshots[$Model] "sdxl_lightning_$($Steps)step_unet.safetensors")
        $fast = New-MnemosyneScene 'a knight' -Quality Fast @scene -WarningVariable warnings
        $warnings | Should -BeNullOrEmpty
        $fast.Steps | Should -Be $Steps
        $fast.Spacing | Should -Be 'Trailing'
        $fast.GuidanceScale | Should -Be 0
        $fast.ParametersText() | Should -Match "Steps: $Steps, Sampler: Euler, Schedule type: Automatic, CFG scale: 0, .*, Timestep spacing: trailing,"
        # The same UNet file opened by path, with those settings spelled out: the same picture.
        Open-MnemosyneEngine -Path $files.Folder -UnetPath $info.UnetPath
        $spelled = New-MnemosyneScene 'a knight' -Steps $Steps -Scheduler Euler -Spacing Trailing -GuidanceScale 0 @scene
        Get-Hex $spelled | Should -Be (Get-Hex $fast)
        (New-MnemosyneScene 'a knight' -Quality Fast @scene).Steps | Should -Be 4 -Because 'a UNet given by path has no manifest: the 4-step default'
    }

    It 'makes a Fast scene piped back in again, trailing spacing included' {
        Open-MnemosyneEngine -Model sdxl-base-1.0 -UnetModel sdxl-lightning-4step-unet
        $first = New-MnemosyneScene 'a lighthouse' -Quality Fast @scene
        $again = $first | New-MnemosyneScene
        $again.Spacing | Should -Be 'Trailing'
        Get-Hex $again | Should -Be (Get-Hex $first)
    }

    It 'reads the fp16 variant files the real snapshot has, as the manifest says' {
        $fp16 = New-FakeHubCache -Root (Join-Path $TestDrive 'fp16') -From $files -Include 'sdxl-base-1.0' -Fp16Names
        Use-HubCache $fp16
        try {
            Test-Path (Join-Path $fp16.Snapshots['sdxl-base-1.0'] 'unet/diffusion_pytorch_model.fp16.safetensors') | Should -BeTrue
            Open-MnemosyneEngine -Model sdxl-base-1.0
            (New-MnemosyneScene 'a cat' -Steps 1 @scene).Model | Should -Be 'sdxl-base-1.0'
        }
        finally { Use-HubCache $full }
    }

    It 'takes the replacement UNet by name with -Path too' {
        (Open-MnemosyneEngine $files.Folder -UnetModel sdxl-lightning-4step-unet -PassThru).UnetPath |
            Should -Be (Join-Path $full.Snapshots['sdxl-lightning-4step-unet'] 'sdxl_lightning_4step_unet.safetensors')
    }

    It 'keeps an IP-Adapter given by path' {
        (Open-MnemosyneEngine -Model sdxl-base-1.0 -IPAdapterPath $adapterFile -PassThru).IPAdapterPath | Should -Be $adapterFile
    }

    It 'looks in the cache -CachePath names' {
        Use-HubCache
        $env:MNEMOSYNE_MODELS_PATH = $full.Manifests
        try { (Open-MnemosyneEngine -Model sdxl-base-1.0 -CachePath $full.Cache -PassThru).Path | Should -Be $full.Snapshots['sdxl-base-1.0'] }
        finally { Use-HubCache $full }
    }

    It 'completes -Model with the known pipelines and -UnetModel with the known UNets' {
        $line = 'Open-MnemosyneEngine -Model '
        (TabExpansion2 $line $line.Length).CompletionMatches.CompletionText | Should -Be 'sdxl-base-1.0'
        $line = 'Open-MnemosyneEngine -Model sdxl-base-1.0 -UnetModel sdxl-l'
        (TabExpansion2 $line $line.Length).CompletionMatches.CompletionText | Should -Be 'sdxl-lightning-2step-unet', 'sdxl-lightning-4step-unet', 'sdxl-lightning-8step-unet'
    }

    It 'refuses <Case>: <Id>, <Category>' -ForEach @(
        @{ Case = 'an unknown model'; Arguments = @{ Model = 'sdxl-turbo' }; Id = 'InvalidModelName'; Category = 'InvalidArgument'; Message = "*knows no model named 'sdxl-turbo'. Known SDXL pipelines: sdxl-base-1.0.*" }
        @{ Case = 'an IP-Adapter as the model'; Arguments = @{ Model = 'ip-adapter-sdxl-vit-h' }; Id = 'InvalidModelName'; Category = 'InvalidArgument'; Message = "*is an IP-Adapter, not an SDXL pipeline*taken from the cache with the pipeline*" }
        @{ Case = 'a pipeline as the UNet'; Arguments = @{ Model = 'sdxl-base-1.0'; UnetModel = 'sdxl-base-1.0' }; Id = 'InvalidModelName'; Category = 'InvalidArgument'; Message = '*not a replacement UNet. Known replacement UNets: sdxl-lightning-2step-unet, sdxl-lightning-4step-unet, sdxl-lightning-8step-unet.*' }
        @{ Case = '-UnetModel with -UnetPath'; Arguments = @{ Model = 'sdxl-base-1.0'; UnetModel = 'sdxl-lightning-4step-unet'; UnetPath = 'unet.safetensors' }; Id = 'UnetModelAndPath'; Category = 'InvalidArgument'; Message = '*not both*' }
        @{ Case = 'a missing -UnetPath'; Arguments = @{ Model = 'sdxl-base-1.0'; UnetPath = 'no-such-unet.safetensors' }; Id = 'UnetNotFound'; Category = 'ObjectNotFound'; Message = '*no-such-unet.safetensors*' }
    ) {
        { Open-MnemosyneEngine @Arguments -ErrorAction Stop } | Should -Throw -ErrorId "$Id,*" -ExpectedMessage $Message
        $Error[0].CategoryInfo.Category | Should -Be $Category
        "$($Error[0])" | Should -Not -Match "\(Parameter '"
        Get-MnemosyneEngine | Should -BeNullOrEmpty
    }
}

Describe 'Open-MnemosyneEngine -Model with models missing from the cache' {
    BeforeEach { Close-MnemosyneEngine }

    It 'says which models to install, as ObjectNotFound' {
        Use-HubCache $adapterOnly
        { Open-MnemosyneEngine -Model sdxl-base-1.0 -ErrorAction Stop } | Should -Throw -ErrorId 'ModelNotInstalled,*'
        $Error[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
        $Error[0].TargetObject | Should -Be 'sdxl-base-1.0'
        $Error[0].Exception.Message | Should -Match 'Run Install-MnemosyneModel sdxl-base-1\.0, or point HF_HUB_CACHE'
        $Error[0].Exception.Message | Should -Match ([regex]::Escape($adapterOnly.Cache))
        $Error[0].ErrorDetails.RecommendedAction | Should -Be 'Install-MnemosyneModel sdxl-base-1.0'
    }

    It 'names the pipeline and the UNet together when both are missing' {
        Use-HubCache $adapterOnly
        { Open-MnemosyneEngine -Model sdxl-base-1.0 -UnetModel sdxl-lightning-4step-unet -ErrorAction Stop } | Should -Throw -ErrorId 'ModelNotInstalled,*'
        $Error[0].ErrorDetails.RecommendedAction | Should -Be 'Install-MnemosyneModel sdxl-base-1.0, sdxl-lightning-4step-unet'
        $Error[0].TargetObject | Should -Be 'sdxl-base-1.0', 'sdxl-lightning-4step-unet'
    }

    It 'treats a file of the wrong size as missing' {
        $broken = New-FakeHubCache -Root (Join-Path $TestDrive 'broken') -From $files -Include 'sdxl-base-1.0'
        Add-Content (Join-Path $broken.Snapshots['sdxl-base-1.0'] 'unet/diffusion_pytorch_model.safetensors') 'x'
        Use-HubCache $broken
        { Open-MnemosyneEngine -Model sdxl-base-1.0 -ErrorAction Stop } | Should -Throw -ErrorId 'ModelNotInstalled,*' -ExpectedMessage '*first unet/diffusion_pytorch_model.safetensors*'
    }

    It 'opens without references when the IP-Adapter is not cached, and says how to get it' {
        Use-HubCache $baseOnly
        $verbose = Open-MnemosyneEngine -Model sdxl-base-1.0 -Verbose 4>&1
        (Get-MnemosyneEngine).SupportsReferences | Should -BeFalse
        ($verbose -join "`n") | Should -Match 'Run Install-MnemosyneModel ip-adapter-sdxl-vit-h, ip-adapter-image-encoder-vit-h to use them'
        { Import-MnemosyneReference $picture -ErrorAction Stop } | Should -Throw -ErrorId 'NoIPAdapter,*' -ExpectedMessage '*Install-MnemosyneModel ip-adapter-sdxl-vit-h, ip-adapter-image-encoder-vit-h*'
    }

    It 'takes the tiny decoder from the cache when it is there, and says how to get it when not' {
        Use-HubCache $withTiny
        $info = Open-MnemosyneEngine -Model sdxl-base-1.0 -PassThru
        $info.TinyDecoderPath | Should -Be $withTiny.Snapshots['taesdxl']
        $info.SupportsTinyDecoder | Should -BeTrue
        (New-MnemosyneScene 'a cat' -Steps 1 -Decoder Tiny @scene).Decoder | Should -Be 'Tiny'

        Use-HubCache $baseOnly
        $verbose = Open-MnemosyneEngine -Model sdxl-base-1.0 -Verbose 4>&1
        (Get-MnemosyneEngine).SupportsTinyDecoder | Should -BeFalse
        ($verbose -join "`n") | Should -Match 'taesdxl is not complete .*Run Install-MnemosyneModel taesdxl'
    }

    It 'keeps a tiny decoder given by path over the cached one' {
        Use-HubCache $withTiny
        $copy = Join-Path $TestDrive 'my-taesd'
        Copy-Item $files.TinyDecoder $copy -Recurse -Force
        (Open-MnemosyneEngine -Model sdxl-base-1.0 -TinyDecoderPath $copy -PassThru).TinyDecoderPath | Should -Be $copy
    }

    It 'reports a manifest folder that is not there' {
        Use-HubCache $full
        $env:MNEMOSYNE_MODELS_PATH = Join-Path $TestDrive 'no-manifests'
        { Open-MnemosyneEngine -Model sdxl-base-1.0 -ErrorAction Stop } | Should -Throw -ExpectedMessage '*no-manifests*'
        $Error[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
    }
}

Describe 'Open-MnemosyneEngine -Path with a single-file checkpoint' {
    BeforeEach { Close-MnemosyneEngine }

    It 'takes tokenizers, scheduler and configs from the cached sdxl-base-1.0, and makes the folder''s scene' {
        Use-HubCache $full
        $info = Open-MnemosyneEngine $files.SingleFile -PassThru
        $info.Path | Should -Be $files.SingleFile
        $info.BaseModelPath | Should -Be $full.Snapshots['sdxl-base-1.0']
        $info.Model | Should -Be 'tiny-sdxl'
        $info.SupportsReferences | Should -BeTrue -Because 'the cached IP-Adapter is used with a single file too'
        $reference = Import-MnemosyneReference $picture -Name 'toy'
        $fromFile = New-MnemosyneScene 'a lighthouse' -Reference $reference -Steps 2 @scene
        Open-MnemosyneEngine $files.Folder
        $fromFolder = New-MnemosyneScene 'a lighthouse' -Reference $reference -Steps 2 @scene
        Get-Hex $fromFile | Should -Be (Get-Hex $fromFolder)
    }

    It 'takes them from -BaseModelPath instead, with no cache at all' {
        Use-HubCache
        $info = Open-MnemosyneEngine $files.SingleFile -BaseModelPath $files.Folder -IPAdapterPath $adapterFile -PassThru
        $info.BaseModelPath | Should -Be $files.Folder
        (New-MnemosyneScene 'a lighthouse' -Steps 1 @scene).Model | Should -Be 'tiny-sdxl'
    }

    It 'says to give -BaseModelPath or install sdxl-base-1.0 when neither is there' {
        Use-HubCache $adapterOnly
        { Open-MnemosyneEngine $files.SingleFile -ErrorAction Stop } | Should -Throw -ErrorId 'BaseModelNotFound,*'
        $Error[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
        $Error[0].TargetObject | Should -Be $files.SingleFile
        $Error[0].Exception.Message | Should -Match '-BaseModelPath'
        $Error[0].Exception.Message | Should -Match 'Install-MnemosyneModel sdxl-base-1\.0'
        $Error[0].ErrorDetails.RecommendedAction | Should -Be 'Install-MnemosyneModel sdxl-base-1.0'
    }

    It 'reports a -BaseModelPath that is not a folder' {
        Use-HubCache
        $missing = Join-Path $TestDrive 'no-base'
        { Open-MnemosyneEngine $files.SingleFile -BaseModelPath $missing -ErrorAction Stop } | Should -Throw -ErrorId 'BaseModelNotFound,*'
        $Error[0].TargetObject | Should -Be $missing
    }

    It 'opens a single file from $env:MNEMOSYNE_MODEL with the cached base' {
        Use-HubCache $full
        $env:MNEMOSYNE_MODEL = $files.SingleFile
        (New-MnemosyneScene 'a cat' -Steps 1 @scene).Model | Should -Be 'tiny-sdxl'
        (Get-MnemosyneEngine).BaseModelPath | Should -Be $full.Snapshots['sdxl-base-1.0']
    }
}

Describe 'The engine opened when none is open' {
    BeforeEach { Close-MnemosyneEngine }

    It 'is sdxl-base-1.0 from the cache, with the cached IP-Adapter' {
        Use-HubCache $full
        $reference = & {
            Open-MnemosyneEngine $files.Folder
            Import-MnemosyneReference $picture -Name 'toy'
            Close-MnemosyneEngine
        }
        $made = New-MnemosyneScene 'a cat' -Reference $reference -Steps 1 @scene -Verbose 4>&1
        $made | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] } | Out-String | Should -Match 'from the Hugging Face cache \(sdxl-base-1\.0\)'
        ($made | Where-Object { $_ -is [Mnemosyne.Engine.Pipeline.Scene] }).Model | Should -Be 'sdxl-base-1.0'
        (Get-MnemosyneEngine).Path | Should -Be $full.Snapshots['sdxl-base-1.0']
        (Get-MnemosyneEngine).SupportsReferences | Should -BeTrue
    }

    It 'is $env:MNEMOSYNE_MODEL when it is set, before the cache' {
        Use-HubCache $full
        $env:MNEMOSYNE_MODEL = $files.Folder
        (New-MnemosyneScene 'a cat' -Steps 1 @scene).Model | Should -Be 'tiny-sdxl'
        (Get-MnemosyneEngine).Path | Should -Be $files.Folder
    }

    It 'has the cached tiny decoder, opened from the cache or from $env:MNEMOSYNE_MODEL' {
        Use-HubCache $withTiny
        (New-MnemosyneScene 'a cat' -Steps 1 -Decoder Tiny @scene).Decoder | Should -Be 'Tiny'
        (Get-MnemosyneEngine).TinyDecoderPath | Should -Be $withTiny.Snapshots['taesdxl']
        Close-MnemosyneEngine
        $env:MNEMOSYNE_MODEL = $files.Folder
        (New-MnemosyneScene 'a cat' -Steps 1 -Decoder Tiny @scene).Decoder | Should -Be 'Tiny'
        (Get-MnemosyneEngine).TinyDecoderPath | Should -Be $withTiny.Snapshots['taesdxl']
    }

    It 'is none while sdxl-base-1.0 is not complete: the error names both ways to get one' {
        Use-HubCache $adapterOnly
        { New-MnemosyneScene 'a cat' -Steps 1 @scene -ErrorAction Stop } | Should -Throw -ErrorId 'NoEngineOpen,*'
        $Error[0].Exception.Message | Should -Match 'Install-MnemosyneModel sdxl-base-1\.0, ip-adapter-sdxl-vit-h, ip-adapter-image-encoder-vit-h'
        $Error[0].Exception.Message | Should -Match 'MNEMOSYNE_MODEL'
        Get-MnemosyneEngine | Should -BeNullOrEmpty
    }
}

Describe 'New-MnemosyneScene -Quality Fast' {
    BeforeAll { Use-HubCache $full }

    It 'warns once per command when the open engine has its own UNet, and still makes the 4 trailing steps' {
        Open-MnemosyneEngine -Model sdxl-base-1.0
        $scenes = 'a cat', 'a dog' | New-MnemosyneScene -Quality Fast @scene -WarningVariable warnings -WarningAction SilentlyContinue
        $scenes.Count | Should -Be 2
        @($warnings).Count | Should -Be 1
        "$($warnings[0])" | Should -Match 'Open-MnemosyneEngine -Model sdxl-base-1\.0 -UnetModel sdxl-lightning-4step-unet'
        $scenes.Spacing | Select-Object -Unique | Should -Be 'Trailing'
        $scenes.Steps | Select-Object -Unique | Should -Be 4
    }

    It 'refuses settings it decides itself: InvalidArgument listing them, before an engine is needed' {
        Close-MnemosyneEngine
        Use-HubCache
        New-MnemosyneScene 'a cat' -Quality Fast -GuidanceScale 3 -GuidanceCutoff 0.5 -Scheduler Ddim -ErrorVariable failures -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $failures.Count | Should -Be 1
        $failures[0].FullyQualifiedErrorId | Should -BeLike 'FastQualityConflict,*'
        $failures[0].CategoryInfo.Category | Should -Be 'InvalidArgument'
        $failures[0].Exception.Message | Should -Match 'takes no -GuidanceScale 3, -GuidanceCutoff 0\.5, -Scheduler Ddim\. Leave them out'
        Use-HubCache $full
    }

    It 'refuses -Steps with it' {
        New-MnemosyneScene 'a cat' -Quality Fast -Steps 8 -ErrorVariable failures -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $failures[0].FullyQualifiedErrorId | Should -BeLike 'FastQualityConflict,*'
        $failures[0].Exception.Message | Should -Match 'takes no -Steps 8\. Leave it out'
    }
}

Describe 'Speed LoRAs' {
    BeforeAll {
        Use-HubCache $full
        Open-MnemosyneEngine -Model sdxl-base-1.0
        $script:lcmFile = Join-Path $full.Snapshots['lcm-lora-sdxl'] 'pytorch_lora_weights.safetensors'
        $script:lightningFile = Join-Path $full.Snapshots['sdxl-lightning-4step-lora'] 'sdxl_lightning_4step_lora.safetensors'
    }

    It 'takes an installed LoRA by model name, and -Quality Fast its manifest''s sampling on the checkpoint''s own UNet, without a warning' {
        $fast = New-MnemosyneScene 'a knight' -Lora 'lcm-lora-sdxl' -Quality Fast @scene -WarningVariable warnings
        $warnings | Should -BeNullOrEmpty
        $fast.Loras.Path | Should -Be $lcmFile
        $fast.Steps | Should -Be 4
        $fast.Scheduler | Should -Be 'Lcm'
        $fast.GuidanceScale | Should -Be 1
        $fast.Spacing | Should -BeNullOrEmpty
        $explicit = New-MnemosyneScene 'a knight' -Lora $lcmFile -Steps 4 -Scheduler Lcm -GuidanceScale 1 @scene
        Get-Hex $fast | Should -Be (Get-Hex $explicit)
        $fast.ParametersText() | Should -Match 'Steps: 4, Sampler: LCM, Schedule type: Automatic, CFG scale: 1,'
    }

    It 'knows a speed LoRA kept elsewhere under another name by its SHA-256, at any weight' {
        $copy = Join-Path $TestDrive 'my-loras/fast.safetensors'
        $null = New-Item -ItemType Directory -Force (Split-Path $copy)
        Copy-Item $lightningFile $copy
        $fast = New-MnemosyneScene 'a knight' -Lora "${copy}:0.9" -Quality Fast @scene -WarningVariable warnings
        $warnings | Should -BeNullOrEmpty
        ($fast.Steps, $fast.Scheduler, $fast.Spacing, $fast.GuidanceScale) | Should -Be 4, 'Euler', 'Trailing', 0
        $explicit = New-MnemosyneScene 'a knight' -Lora "${copy}:0.9" -Steps 4 -Scheduler Euler -Spacing Trailing -GuidanceScale 0 @scene
        Get-Hex $fast | Should -Be (Get-Hex $explicit)
        # By name with a weight, the same file and sampling.
        $byName = New-MnemosyneScene 'a knight' -Lora 'sdxl-lightning-4step-lora:0.9' -Quality Fast @scene
        $byName.Loras.Path | Should -Be $lightningFile
        Get-Hex $byName | Should -Be (Get-Hex $fast)
    }

    It 'keeps the few-step UNet''s sampling, and its warning, when the LoRAs hold no speed LoRA' {
        $plain = Join-Path $TestDrive 'plain.safetensors'
        Copy-Item (Join-Path $repositoryRoot 'tests/reference/lora-b/texture.safetensors') $plain
        $fast = New-MnemosyneScene 'a knight' -Lora $plain -Quality Fast @scene -WarningVariable warnings -WarningAction SilentlyContinue
        ($fast.Steps, $fast.Scheduler, $fast.Spacing, $fast.GuidanceScale) | Should -Be 4, 'Euler', 'Trailing', 0
        "$warnings" | Should -Match 'add a speed LoRA \(-Lora sdxl-lightning-4step-lora\)'
    }

    It 'refuses two speed LoRAs that ask for different sampling as one InvalidArgument error naming both' {
        New-MnemosyneScene 'a knight' -Lora 'lcm-lora-sdxl', 'sdxl-lightning-4step-lora' -Quality Fast @scene -ErrorVariable failures -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $failures.Count | Should -Be 1
        $failures[0].FullyQualifiedErrorId | Should -BeLike 'SpeedLoraConflict,*'
        $failures[0].CategoryInfo.Category | Should -Be 'InvalidArgument'
        "$($failures[0])" | Should -Match 'two speed LoRAs that ask for different sampling: lcm-lora-sdxl \(4 Lcm steps, guidance 1\) and sdxl-lightning-4step-lora \(4 Euler steps at trailing timesteps, guidance 0\)'
        (New-MnemosyneScene 'a knight' -Lora 'lcm-lora-sdxl', 'sdxl-lightning-4step-lora' -Steps 2 @scene).Loras.Count | Should -Be 2 -Because 'without -Quality Fast both simply apply'
    }

    It 'refuses a model name that is not a LoRA, and a LoRA that is not installed, as one error each' {
        New-MnemosyneScene 'a knight' -Lora 'sdxl-base-1.0:0.5' -Steps 2 @scene -ErrorVariable failures -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $failures.Count | Should -Be 1
        $failures[0].FullyQualifiedErrorId | Should -BeLike 'InvalidLora,*'
        "$($failures[0])" | Should -Match "'sdxl-base-1\.0' is an SDXL pipeline, not a LoRA\. Known LoRAs: lcm-lora-sdxl, sdxl-lightning-4step-lora"
        Use-HubCache $baseOnly
        try {
            New-MnemosyneScene 'a knight' -Lora 'lcm-lora-sdxl' -Steps 2 @scene -ErrorVariable failures -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
            $failures.Count | Should -Be 1
            $failures[0].FullyQualifiedErrorId | Should -BeLike 'ModelNotInstalled,*'
            $failures[0].TargetObject | Should -Be 'lcm-lora-sdxl'
            $failures[0].ErrorDetails.RecommendedAction | Should -Be 'Install-MnemosyneModel lcm-lora-sdxl'
        }
        finally { Use-HubCache $full }
    }
}
