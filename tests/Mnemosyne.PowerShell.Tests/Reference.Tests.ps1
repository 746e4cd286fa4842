BeforeDiscovery {
    . $PSScriptRoot/Common.ps1
}

BeforeAll {
    . $PSScriptRoot/Common.ps1
    Import-Mnemosyne
}

Describe 'Export-MnemosyneReference' {
    BeforeEach {
        $script:folder = Join-Path $TestDrive ([guid]::NewGuid())
        $null = New-Item -ItemType Directory $folder
    }

    It 'saves a reference that Import-MnemosyneReference reads back unchanged' {
        $reference = New-FakeReference -Name 'kira' -Embedding 0.25, -1.5, 3.0, 1e-7
        $path = Join-Path $folder 'kira.json'
        Export-MnemosyneReference -Reference $reference -Path $path
        $loaded = Import-MnemosyneReference -Path $path
        $loaded | Should -BeOfType ([Mnemosyne.Engine.Pipeline.CharacterReference])
        $loaded.Name | Should -Be 'kira'
        $loaded.Encoder | Should -Be 'clip-vit-h-test'
        $loaded.Embedding | Should -Be $reference.Embedding
        $loaded.Sources[0].Path | Should -Be '/pictures/kira.png'
        $loaded.Sources[0].Sha256 | Should -Be ('ab' * 32)
        $loaded.Created | Should -Be $reference.Created
    }

    It 'takes references from the pipeline and returns the file with -PassThru' {
        $file = New-FakeReference | Export-MnemosyneReference -Path (Join-Path $folder 'piped.json') -PassThru
        $file | Should -BeOfType ([IO.FileInfo])
        $file.Name | Should -Be 'piped.json'
    }

    It 'writes nothing with -WhatIf' {
        New-FakeReference | Export-MnemosyneReference -Path (Join-Path $folder 'whatif.json') -WhatIf
        Get-ChildItem $folder -Force | Should -BeNullOrEmpty
    }

    It 'refuses to overwrite without -Force and overwrites with it' {
        $path = Join-Path $folder 'kira.json'
        Set-Content $path 'keep me' -NoNewline
        New-FakeReference | Export-MnemosyneReference -Path $path -ErrorVariable failures -ErrorAction SilentlyContinue
        $failures[0].CategoryInfo.Category | Should -Be 'ResourceExists'
        $failures[0].TargetObject | Should -Be $path
        Get-Content -Raw $path | Should -Be 'keep me'

        New-FakeReference -Name 'new' | Export-MnemosyneReference -Path $path -Force
        (Import-MnemosyneReference $path).Name | Should -Be 'new'
        Get-ChildItem $folder -Force | Should -HaveCount 1
    }

}

Describe 'Import-MnemosyneReference from saved files' {
    BeforeAll {
        $script:folder = Join-Path $TestDrive 'saved'
        $null = New-Item -ItemType Directory $folder
        New-FakeReference -Name 'kira' | Export-MnemosyneReference -Path (Join-Path $folder 'kira.json')
        New-FakeReference -Name 'aiko' | Export-MnemosyneReference -Path (Join-Path $folder 'aiko.json')
        Set-Content (Join-Path $TestDrive 'broken.json') '{ "format": "mnemosyne-reference", "embedding": [1, 2'
        Set-Content (Join-Path $TestDrive 'other.json') '{ "format": "something-else", "version": 1 }'
    }

    It 'renames the reference with -Name' {
        (Import-MnemosyneReference (Join-Path $folder 'kira.json') -Name 'Kira Tanaka').Name | Should -Be 'Kira Tanaka'
    }

    It 'expands wildcards' {
        (Import-MnemosyneReference (Join-Path $folder '*.json')).Name | Sort-Object | Should -Be 'aiko', 'kira'
    }

    It 'binds files piped from Get-ChildItem' {
        (Get-ChildItem $folder -Filter *.json | Import-MnemosyneReference).Name | Sort-Object | Should -Be 'aiko', 'kira'
    }

    It 'binds path strings piped in' {
        ((Join-Path $folder 'kira.json'), (Join-Path $folder 'aiko.json') | Import-MnemosyneReference).Name | Should -Be 'kira', 'aiko'
    }

    It 'reports a corrupted file as InvalidData and still imports the others' {
        $paths = (Join-Path $TestDrive 'broken.json'), (Join-Path $folder 'kira.json'), (Join-Path $TestDrive 'other.json')
        $loaded = Import-MnemosyneReference $paths -ErrorVariable failures -ErrorAction SilentlyContinue
        $loaded.Name | Should -Be 'kira'
        $failures.Count | Should -Be 2
        $failures.CategoryInfo.Category | Select-Object -Unique | Should -Be 'InvalidData'
        $failures.TargetObject | Should -Be (Join-Path $TestDrive 'broken.json'), (Join-Path $TestDrive 'other.json')
        $failures[0].Exception.Message | Should -Match 'Export-MnemosyneReference'
    }

}

Describe 'Import-MnemosyneReference from images' {
    BeforeAll {
        Open-TestEngine
        # A second picture of "the character": the reference image mirrored left to right.
        $script:mirrored = Join-Path $TestDrive 'mirrored.png'
        $image = [Mnemosyne.Engine.Imaging.SafeImageDecoder]::Default.Decode($referenceImage)
        $rgb = [byte[]]::new($image.Rgb.Length)
        for ($y = 0; $y -lt $image.Height; $y++) {
            for ($x = 0; $x -lt $image.Width; $x++) {
                [Array]::Copy($image.Rgb, ($y * $image.Width + $x) * 3, $rgb, ($y * $image.Width + $image.Width - 1 - $x) * 3, 3)
            }
        }
        [Mnemosyne.Engine.Imaging.PngFile]::Save($mirrored, [Mnemosyne.Engine.Imaging.RgbImage]::new($image.Width, $image.Height, $rgb))

        # The picture's reference against diffusers' image embeds of it (tests/reference/pipeline-b or ../shared/fidelity).
        function Assert-DiffusersEmbeds([string] $Picture, [string] $Embeds) {
            $reference = Import-MnemosyneReference $Picture -Name 'kira'
            $reference.Name | Should -Be 'kira'
            $reference.Sources.Count | Should -Be 1
            $reference.Sources[0].Path | Should -Be $Picture
            $reference.Sources[0].Sha256 | Should -Be (Get-FileHash $Picture -Algorithm SHA256).Hash.ToLowerInvariant()
            $expected = [Mnemosyne.Engine.Tensors.NpyFile]::Read($Embeds).Data
            $reference.Embedding.Length | Should -Be $expected.Length
            $maxError = 0.0
            for ($i = 0; $i -lt $expected.Length; $i++) { $maxError = [Math]::Max($maxError, [Math]::Abs($reference.Embedding[$i] - $expected[$i])) }
            $maxError | Should -BeLessOrEqual 1e-4
        }
    }

    It 'encodes one image as diffusers'' image encoder does' {
        Assert-DiffusersEmbeds $referenceImage (Join-Path $pipelineB 'reference-image-embeds.npy')
    }

    if ($hasFidelity) {
        Context 'with the independent checkpoint of ../shared/fidelity' {
            BeforeAll { Open-FidelityEngine }
            AfterAll { Restore-TestEngine }

            It 'encodes one image as diffusers'' image encoder does' {
                Assert-DiffusersEmbeds (Join-Path $fidelity 'reference.png') (Join-Path $fidelity 'reference-image-embeds.npy')
            }
        }
    }

    It 'averages the embeddings of several images of one character into one reference' {
        $one = Import-MnemosyneReference $referenceImage
        $two = Import-MnemosyneReference $mirrored
        $both = $referenceImage, $mirrored | Import-MnemosyneReference -Name 'kira'
        @($both).Count | Should -Be 1
        $both.Sources.Path | Should -Be $referenceImage, $mirrored
        for ($i = 0; $i -lt $one.Embedding.Length; $i++) {
            $both.Embedding[$i] | Should -BeGreaterOrEqual (($one.Embedding[$i] + $two.Embedding[$i]) / 2 - 1e-5)
            $both.Embedding[$i] | Should -BeLessOrEqual (($one.Embedding[$i] + $two.Embedding[$i]) / 2 + 1e-5)
        }
    }

    It 'keeps each picture''s embedding with -Combine Concatenate, through export and import' {
        # Another picture than the mirrored one, which the tiny image encoder sees alike.
        $other = Join-Path $repositoryRoot 'tests/reference/ipa-control-b/second-reference.png'
        $one = Import-MnemosyneReference $referenceImage
        $two = Import-MnemosyneReference $other
        $both = $referenceImage, $other | Import-MnemosyneReference -Name 'kira' -Combine Concatenate
        $both.PictureEmbeddings.Count | Should -Be 2
        $both.PictureEmbeddings[0] | Should -Be $one.Embedding
        $both.PictureEmbeddings[1] | Should -Be $two.Embedding
        $averaged = $referenceImage, $other | Import-MnemosyneReference -Name 'kira'
        $both.Embedding | Should -Be $averaged.Embedding
        $averaged.PictureEmbeddings | Should -BeNullOrEmpty
        $path = Join-Path $TestDrive 'kira-concatenated.json'
        $both | Export-MnemosyneReference -Path $path -Force
        (Import-MnemosyneReference $path).PictureEmbeddings[1] | Should -Be $two.Embedding
        # The scene lays both pictures' tokens side by side: another scene than the average's.
        $concatenated = New-MnemosyneScene 'a portrait' -Seed 3 -Reference $both @tiny
        $scene = New-MnemosyneScene 'a portrait' -Seed 3 -Reference $averaged @tiny
        [Convert]::ToHexString($concatenated.Image.Rgb) | Should -Not -Be ([Convert]::ToHexString($scene.Image.Rgb))
        $concatenated.ParametersText() | Should -Match 'Reference controls: pictures concatenated'
    }

    It 'survives export and import unchanged' {
        $reference = Import-MnemosyneReference $referenceImage -Name 'kira'
        $path = Join-Path $TestDrive 'kira-encoded.json'
        $reference | Export-MnemosyneReference -Path $path -Force
        $loaded = Import-MnemosyneReference $path
        $loaded.Embedding | Should -Be $reference.Embedding
        $loaded.Encoder | Should -Be $reference.Encoder
    }

}

Describe 'Import-MnemosyneReference with an engine that has no IP-Adapter' {
    BeforeAll {
        Save-HubEnvironment
        Use-HubCache
        # The tiny checkpoint without its ip-adapter folder: links to everything else.
        $script:bare = Join-Path $TestDrive 'no-adapter'
        $null = New-Item -ItemType Directory $bare
        $script:canLink = $true
        try {
            foreach ($item in Get-ChildItem $modelPath | Where-Object Name -NE 'ip-adapter') {
                $null = New-Item -ItemType SymbolicLink -Path (Join-Path $bare $item.Name) -Target $item.FullName -ErrorAction Stop
            }
        }
        catch { $script:canLink = $false }
    }
    BeforeEach { if (-not $canLink) { Set-ItResult -Skipped -Because 'symbolic links are not allowed here' } }
    AfterAll {
        Close-MnemosyneEngine
        Restore-HubEnvironment
    }

    It 'stops with InvalidOperation, saying how to open the engine with one' {
        $info = Open-MnemosyneEngine $bare -PassThru
        $info.SupportsReferences | Should -BeFalse
        { Import-MnemosyneReference $referenceImage -ErrorAction Stop } | Should -Throw -ErrorId 'NoIPAdapter,*' -ExpectedMessage '*-IPAdapterPath*'
        $Error[0].Exception.Message | Should -Match 'Install-MnemosyneModel ip-adapter-sdxl-vit-h, ip-adapter-image-encoder-vit-h'
        $Error[0].CategoryInfo.Category | Should -Be 'InvalidOperation'
    }
}

Describe 'Several references in one scene' {
    BeforeAll {
        Open-TestEngine
        $script:controlCases = Join-Path $repositoryRoot 'tests/reference/ipa-control-b'
        $script:kira = Import-MnemosyneReference $referenceImage -Name 'kira'
        $script:ren = Import-MnemosyneReference (Join-Path $controlCases 'second-reference.png') -Name 'ren'
    }

    It 'puts two characters side by side, each in its half' {
        $scene = New-MnemosyneScene 'two friends at a cafe' -Reference $kira, $ren -ReferenceMask Left, Right -Seed 4 @tiny
        $scene.ReferenceName | Should -Be 'kira, ren'
        $scene.ParametersText() | Should -Match 'Reference controls: "?weights 0.6 0.6; masks 0,0,32,64 32,0,32,64'
        $unmasked = New-MnemosyneScene 'two friends at a cafe' -Reference $kira, $ren -Seed 4 @tiny
        [Convert]::ToHexString($scene.Image.Rgb) | Should -Not -Be ([Convert]::ToHexString($unmasked.Image.Rgb))
        $file = Join-Path $TestDrive 'friends.png'
        $scene | Save-MnemosyneImage -Path $file -ErrorAction Stop
        (Measure-MnemosyneConsistency -Path $file -Reference $kira).Similarity | Should -BeGreaterThan -1
    }

    It 'makes diffusers'' scene of two masked references (tests/reference/ipa-control-b/two-masked)' {
        $scene = New-MnemosyneScene 'two friends at a cafe' -NegativePrompt 'blurry' -PromptStyle Diffusers -Scheduler Euler -Seed 21 `
            -Width 96 -Height 64 -Steps 5 -GuidanceScale 5 -Reference $kira, $ren -ReferenceWeight 0.7, 0.6 `
            -ReferenceMask (Join-Path $controlCases 'mask-ellipse.png'), @{ X = 48; Y = 0; Width = 48; Height = 64 }
        $expected = [Mnemosyne.Engine.Tensors.NpyFile]::Read((Join-Path $controlCases 'two-masked/final-latents.npy')).Data
        $maxError = 0.0
        for ($i = 0; $i -lt $expected.Length; $i++) { $maxError = [Math]::Max($maxError, [Math]::Abs($scene.FinalLatents.Data[$i] - $expected[$i])) }
        $maxError | Should -BeLessOrEqual 1e-4
    }

    It 'takes masks, weights, blocks and steps from a CSV row, lists separated by ;' {
        $rows = "Prompt,ReferenceMask,ReferenceWeight,ReferenceBlocks,ReferenceStart,ReferenceEnd`ntwo friends,Left;Right,0.5;0.75,Style,0,0.5" | ConvertFrom-Csv
        $fromRow = $rows | New-MnemosyneScene -Reference $kira, $ren -Seed 4 @tiny
        $given = New-MnemosyneScene 'two friends' -Reference $kira, $ren -ReferenceMask Left, Right -ReferenceWeight 0.5, 0.75 -ReferenceBlocks Style `
            -ReferenceStart 0 -ReferenceEnd 0.5 -Seed 4 @tiny
        [Convert]::ToHexString($fromRow.Image.Rgb) | Should -Be ([Convert]::ToHexString($given.Image.Rgb))
        $fromRow.ParametersText() | Should -Match 'blocks Style; steps 0-0.5'
    }

    It 'takes a block table as diffusers'' set_ip_adapter_scale does' {
        $table = New-MnemosyneScene 'a knight' -Reference $kira -ReferenceBlocks @{ up = @{ block_0 = 0, 1, 0 } } -Seed 2 @tiny
        $style = New-MnemosyneScene 'a knight' -Reference $kira -ReferenceBlocks Style -Seed 2 @tiny
        [Convert]::ToHexString($table.Image.Rgb) | Should -Be ([Convert]::ToHexString($style.Image.Rgb))
        $all = New-MnemosyneScene 'a knight' -Reference $kira -Seed 2 @tiny
        [Convert]::ToHexString($all.Image.Rgb) | Should -Not -Be ([Convert]::ToHexString($style.Image.Rgb))
    }
}
