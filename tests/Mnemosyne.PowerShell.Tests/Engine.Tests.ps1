BeforeAll {
    . $PSScriptRoot/Common.ps1
    Import-Mnemosyne
    $script:variables = 'MNEMOSYNE_MODEL', 'MNEMOSYNE_IP_ADAPTER', 'MNEMOSYNE_IMAGE_ENCODER'
    Save-HubEnvironment
    Use-HubCache

    function Clear-MnemosyneEnvironment {
        foreach ($name in $variables) { [Environment]::SetEnvironmentVariable($name, $null) }
    }
}

AfterAll {
    Restore-HubEnvironment
}

Describe 'Without an open engine' {
    BeforeEach {
        Close-MnemosyneEngine
        Clear-MnemosyneEnvironment
    }

    It 'Get-MnemosyneEngine writes nothing' {
        Get-MnemosyneEngine | Should -BeNullOrEmpty
    }

    It 'Close-MnemosyneEngine does nothing and reports no error' {
        Close-MnemosyneEngine -ErrorVariable failures
        $failures | Should -BeNullOrEmpty
    }

    It 'New-MnemosyneScene stops with ResourceUnavailable, saying to install the models or open a checkpoint' {
        { New-MnemosyneScene 'a cat' -Seed 1 @tiny -ErrorAction Stop } | Should -Throw -ErrorId 'NoEngineOpen,*'
        $Error[0].CategoryInfo.Category | Should -Be 'ResourceUnavailable'
        $Error[0].Exception.Message | Should -Match 'Install-MnemosyneModel sdxl-base-1\.0, ip-adapter-sdxl-vit-h, ip-adapter-image-encoder-vit-h'
        $Error[0].Exception.Message | Should -Match ([regex]::Escape($env:HF_HUB_CACHE))
        $Error[0].Exception.Message | Should -Match 'Open-MnemosyneEngine -Path'
        $Error[0].Exception.Message | Should -Match 'MNEMOSYNE_MODEL'
    }

    It 'Measure-MnemosyneConsistency stops the same way' {
        { New-FakeScene | Measure-MnemosyneConsistency -Reference (New-FakeReference) -ErrorAction Stop } | Should -Throw -ErrorId 'NoEngineOpen,*'
    }

    It 'a missing folder in $env:MNEMOSYNE_MODEL is ObjectNotFound, naming the variable' {
        $missing = Join-Path $TestDrive 'no-such-model'
        $env:MNEMOSYNE_MODEL = $missing
        { New-MnemosyneScene 'a cat' -Seed 1 @tiny -ErrorAction Stop } | Should -Throw -ErrorId 'CheckpointNotFound,*' -ExpectedMessage '*MNEMOSYNE_MODEL*'
        $Error[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
        $Error[0].TargetObject | Should -Be $missing
    }
}

Describe 'Open-MnemosyneEngine with bad paths' {
    BeforeAll { Close-MnemosyneEngine }

    It 'reports a missing checkpoint folder as ObjectNotFound, with the folder as target' {
        $missing = Join-Path $TestDrive 'missing'
        { Open-MnemosyneEngine $missing -ErrorAction Stop } | Should -Throw -ErrorId 'CheckpointNotFound,*'
        $Error[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
        $Error[0].TargetObject | Should -Be $missing
        $Error[0].Exception.Message | Should -Match 'diffusers'
        $Error[0].Exception.Message | Should -Match 'single-file \.safetensors'
    }

    It 'refuses a file that is not .safetensors, saying why' {
        $file = Join-Path $TestDrive 'model.ckpt'
        Set-Content $file 'x'
        { Open-MnemosyneEngine $file -ErrorAction Stop } | Should -Throw -ErrorId 'CheckpointNotSupported,*' -ExpectedMessage '*can run code*'
        $Error[0].CategoryInfo.Category | Should -Be 'InvalidArgument'
        $Error[0].TargetObject | Should -Be $file
    }

    It 'reports a missing IP-Adapter' {
        $folder = New-Item -ItemType Directory (Join-Path $TestDrive 'checkpoint') -Force
        $adapter = Join-Path $TestDrive 'missing-adapter.safetensors'
        { Open-MnemosyneEngine $folder -IPAdapterPath $adapter -ErrorAction Stop } | Should -Throw -ErrorId 'IPAdapterNotFound,*'
        $Error[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
        $Error[0].TargetObject | Should -Be $adapter
    }

    It 'reports a missing image encoder folder' {
        $folder = New-Item -ItemType Directory (Join-Path $TestDrive 'checkpoint') -Force
        $encoder = Join-Path $TestDrive 'missing-encoder'
        { Open-MnemosyneEngine $folder -ImageEncoderPath $encoder -ErrorAction Stop } | Should -Throw -ErrorId 'ImageEncoderNotFound,*'
        $Error[0].TargetObject | Should -Be $encoder
    }

    It 'refuses a negative thread count at binding' {
        { Open-MnemosyneEngine $TestDrive -Threads -1 -ErrorAction Stop } | Should -Throw -ErrorId 'ParameterArgumentValidationError,*'
    }

    It 'leaves no engine open after a failure' {
        Get-MnemosyneEngine | Should -BeNullOrEmpty
    }
}

Describe 'Open, Get and Close with the tiny checkpoint' {
    BeforeEach {
        Close-MnemosyneEngine
        Clear-MnemosyneEnvironment
    }
    AfterAll { Close-MnemosyneEngine }

    It 'opens with the IP-Adapter it finds in the checkpoint''s ip-adapter folder' {
        $info = Open-MnemosyneEngine -Path $modelPath -PassThru
        $info | Should -BeOfType ([Mnemosyne.PowerShell.MnemosyneEngineInfo])
        $info.Model | Should -Be 'model'
        $info.Path | Should -Be $modelPath
        $info.IPAdapterPath | Should -Be (Join-Path $modelPath 'ip-adapter/sdxl_models/ip-adapter_sdxl_vit-h.safetensors')
        $info.ImageEncoderPath | Should -Be (Join-Path $modelPath 'ip-adapter/models/image_encoder')
        $info.SupportsReferences | Should -BeTrue
        $info.Threads | Should -Be 0
    }

    It 'writes nothing without -PassThru, and Get-MnemosyneEngine then shows the engine' {
        Open-MnemosyneEngine $modelPath | Should -BeNullOrEmpty
        (Get-MnemosyneEngine).Path | Should -Be $modelPath
    }

    It 'takes the IP-Adapter repository folder, the image encoder and a thread count' {
        $info = Open-MnemosyneEngine $modelPath -IPAdapterPath (Join-Path $modelPath 'ip-adapter') -ImageEncoderPath (Join-Path $modelPath 'ip-adapter/models/image_encoder') -Threads 1 -PassThru
        $info.IPAdapterPath | Should -BeLike '*sdxl_models*ip-adapter_sdxl_vit-h.safetensors'
        $info.Threads | Should -Be 1
    }

    It 'takes the one Plus adapter of a folder without the base one, and refuses to guess between Plus and Plus-Face' {
        $adapters = New-Item -ItemType Directory (Join-Path $TestDrive 'plus-only/sdxl_models') -Force
        $plus = Join-Path $adapters 'ip-adapter-plus_sdxl_vit-h.safetensors'
        Copy-Item (Join-Path $modelPath 'ip-adapter/sdxl_models/ip-adapter-plus_sdxl_vit-h.safetensors') $plus
        $encoder = Join-Path $modelPath 'ip-adapter/models/image_encoder'
        $info = Open-MnemosyneEngine $modelPath -IPAdapterPath $adapters.Parent.FullName -ImageEncoderPath $encoder -PassThru
        $info.IPAdapterPath | Should -Be $plus
        $info.IPAdapterKind | Should -Be 'Plus'

        Close-MnemosyneEngine
        $face = Join-Path $adapters 'ip-adapter-plus-face_sdxl_vit-h.safetensors'
        Copy-Item $plus $face
        { Open-MnemosyneEngine $modelPath -IPAdapterPath $adapters.Parent.FullName -ImageEncoderPath $encoder -ErrorAction Stop } | Should -Throw -ErrorId 'IPAdapterAmbiguous,*'
        $Error[0].CategoryInfo.Category | Should -Be 'InvalidArgument'
        $Error[0].TargetObject | Should -Be $adapters.Parent.FullName
        $Error[0].Exception.Message | Should -Match ([regex]::Escape($plus))
        $Error[0].Exception.Message | Should -Match ([regex]::Escape($face))
        $Error[0].Exception.Message | Should -Match 'Give the file'
        Get-MnemosyneEngine | Should -BeNullOrEmpty
    }

    It 'with -LowMemory makes the same scenes, one after another, as without' {
        Open-MnemosyneEngine $modelPath
        $expected = New-MnemosyneScene 'a harbour at dawn' -Seed 4 @tiny
        $info = Open-MnemosyneEngine $modelPath -LowMemory -PassThru
        $info.LowMemory | Should -BeTrue
        foreach ($i in 1..2) {
            $scene = New-MnemosyneScene 'a harbour at dawn' -Seed 4 @tiny
            $scene.Image.Rgb | Should -Be $expected.Image.Rgb
        }
    }


    It 'opens with -Precision Int8, converting each network''s weights into the cache once' -Skip:$IsWindows {
        $saved = $env:XDG_CACHE_HOME
        $env:XDG_CACHE_HOME = Join-Path $TestDrive 'xdg-cache'
        try {
            $info = Open-MnemosyneEngine $modelPath -Precision Int8 -PassThru
            $info.Precision | Should -Be 'Int8'
            $root = Join-Path $env:XDG_CACHE_HOME 'mnemosyne/converted-weights'
            $unet = @(Get-ChildItem $root -Recurse -File -Filter 'unet-*.safetensors')
            $unet.Count | Should -Be 1
            $scene = New-MnemosyneScene 'a cat' -Seed 1 @tiny
            $scene.Precision | Should -Be 'Int8'
            @(Get-ChildItem $root -Recurse -File -Filter 'text-encoder-*.safetensors').Count | Should -Be 2 -Because 'the text encoders are converted when first used'
            Open-MnemosyneEngine $modelPath -Precision Int8
            (Get-Item $unet[0].FullName).LastWriteTimeUtc | Should -Be $unet[0].LastWriteTimeUtc -Because 'a second open reuses the converted weights'
        }
        finally {
            Close-MnemosyneEngine
            $env:XDG_CACHE_HOME = $saved
        }
    }

    It 'keeps each network''s optimised session in -SessionCachePath, and the next open makes the same scenes from it' {
        $cache = Join-Path $TestDrive 'sessions'
        try {
            $info = Open-MnemosyneEngine $modelPath -SessionCachePath $cache -PassThru
            $info.SessionCachePath | Should -Be $cache
            $expected = New-MnemosyneScene 'a cat' -Seed 1 @tiny
            $files = @(Get-ChildItem $cache -Recurse -File)
            @($files | Where-Object Name -eq 'manifest.json').Count | Should -Be 5 -Because 'the UNet, the VAE, the image projection and both text encoders are kept'

            Open-MnemosyneEngine $modelPath -SessionCachePath $cache -WarningVariable warnings
            (New-MnemosyneScene 'a cat' -Seed 1 @tiny -WarningVariable sceneWarnings).Image.Rgb | Should -Be $expected.Image.Rgb
            @($warnings) + @($sceneWarnings) | Should -BeNullOrEmpty
            foreach ($file in $files) { (Get-Item $file.FullName).LastWriteTimeUtc | Should -Be $file.LastWriteTimeUtc -Because 'the saved sessions are read, not written again' }
        }
        finally {
            Close-MnemosyneEngine
        }
    }

    It 'warns about a damaged saved session and replaces it' {
        $cache = Join-Path $TestDrive 'damaged-sessions'
        try {
            Open-MnemosyneEngine $modelPath -SessionCachePath $cache
            $data = Get-ChildItem $cache -Recurse -File -Filter model.data | Select-Object -First 1
            $stream = [IO.File]::Open($data.FullName, 'Open')
            try { $stream.SetLength($stream.Length / 2) } finally { $stream.Dispose() }

            Open-MnemosyneEngine $modelPath -SessionCachePath $cache -WarningVariable warnings -WarningAction SilentlyContinue
            $warnings.Count | Should -Be 1
            "$warnings" | Should -Match 'is damaged'
            "$warnings" | Should -Match ([regex]::Escape($data.DirectoryName))
            (Get-Item $data.FullName).Length | Should -BeGreaterThan ($data.Length / 2) -Because 'the entry is written again whole'
        }
        finally {
            Close-MnemosyneEngine
        }
    }

    It 'keeps nothing with -NoSessionCache' {
        $cache = Join-Path $TestDrive 'no-sessions'
        try {
            $info = Open-MnemosyneEngine $modelPath -SessionCachePath $cache -NoSessionCache -PassThru
            $info.SessionCachePath | Should -BeNullOrEmpty
            $null = New-MnemosyneScene 'a cat' -Seed 1 @tiny
            Test-Path $cache | Should -BeFalse
        }
        finally {
            Close-MnemosyneEngine
        }
    }

    It 'opens in Float32 by default' {
        (Open-MnemosyneEngine $modelPath -PassThru).Precision | Should -Be 'Float32'
    }

    It 'takes the checkpoint folder from the pipeline' {
        (Get-Item $modelPath | Open-MnemosyneEngine -PassThru).Path | Should -Be $modelPath
    }

    It 'replaces the open engine when opened again' {
        $first = Open-MnemosyneEngine $modelPath -PassThru
        $second = Open-MnemosyneEngine $modelPath -Threads 1 -PassThru
        $second.OpenedAt | Should -BeGreaterOrEqual $first.OpenedAt
        @(Get-MnemosyneEngine).Count | Should -Be 1
        (Get-MnemosyneEngine).Threads | Should -Be 1
    }

    It 'closes with Close-MnemosyneEngine' {
        Open-MnemosyneEngine $modelPath
        Close-MnemosyneEngine
        Get-MnemosyneEngine | Should -BeNullOrEmpty
    }

    It 'opens $env:MNEMOSYNE_MODEL when a command needs an engine and none is open' {
        $env:MNEMOSYNE_MODEL = $modelPath
        $scene = New-MnemosyneScene 'a cat' -Seed 1 @tiny
        $scene.Model | Should -Be 'model'
        (Get-MnemosyneEngine).Path | Should -Be $modelPath
        (Get-MnemosyneEngine).SupportsReferences | Should -BeTrue
    }

    It 'is shared by every runspace of the session' {
        Open-MnemosyneEngine $modelPath
        $other = Invoke-InRunspace { Get-MnemosyneEngine }
        $other.Output.Count | Should -Be 1
        $other.Output[0].Path | Should -Be $modelPath
    }

    It 'is closed when the module is removed' {
        Open-MnemosyneEngine $modelPath
        Remove-Module Mnemosyne
        Import-Mnemosyne
        Get-MnemosyneEngine | Should -BeNullOrEmpty
    }

    It 'lets a scene being made in another runspace finish when closed' {
        Open-MnemosyneEngine $modelPath
        $ps = [powershell]::Create()
        try {
            $null = $ps.AddScript("Import-Module '$manifest'; New-MnemosyneScene 'a slow cat' -Seed 3 -Steps 40 -Width 64 -Height 64")
            $running = $ps.BeginInvoke()
            Wait-Until { $ps.Streams.Progress.Count -gt 0 -or $running.IsCompleted } | Should -BeTrue
            Close-MnemosyneEngine
            $output = $ps.EndInvoke($running)
            $ps.Streams.Error | Should -BeNullOrEmpty
            $output.Count | Should -Be 1
            $output[0].Seed | Should -Be 3
            Get-MnemosyneEngine | Should -BeNullOrEmpty
        }
        finally { $ps.Dispose() }
    }
}
