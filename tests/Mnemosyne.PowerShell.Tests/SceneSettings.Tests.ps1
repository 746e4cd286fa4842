BeforeAll {
    . $PSScriptRoot/Common.ps1
    Import-Mnemosyne

    function Read-PngParameters([string] $Path) {
        ([Mnemosyne.Engine.Imaging.PngFile]::ReadText($Path) | Where-Object Keyword -EQ 'parameters').Text
    }

    # A PNG holding a parameters text, as another tool would have written it.
    function New-ParametersPng([string] $Path, [string] $Text) {
        $image = [Mnemosyne.Engine.Imaging.RgbImage]::new(2, 2, [byte[]]::new(12))
        $entries = [Mnemosyne.Engine.Imaging.PngTextEntry[]]@([Mnemosyne.Engine.Imaging.PngTextEntry]::Parameters($Text))
        [Mnemosyne.Engine.Imaging.PngFile]::Save($Path, $image, $entries, $false)
        $Path
    }

    # An A1111 1.10 infotext written by hand from its create_infotext: a LoRA, an embedding, hires fix, quoted values.
    $script:a1111Text = @(
        'masterpiece, best quality, 1girl, (red hair:1.2), looking at viewer <lora:add_detail:0.5>'
        'Negative prompt: lowres, bad anatomy, (worst quality:1.4)'
        'Steps: 28, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 3551209734, Size: 832x1216, Model hash: 31e35c80fc, Model: sd_xl_base_1.0, Denoising strength: 0.35, Hires upscale: 1.5, Lora hashes: "add_detail: 7c6bad76eb54", TI hashes: "easynegative: c74b4e810b03", Version: v1.10.1'
    ) -join "`n"
}

Describe 'The parameters text Save-MnemosyneImage writes, in A1111''s layout and names (issue 14)' {
    It 'names <Kind> as A1111 does: Sampler <Sampler>, Schedule type <Type>' -ForEach @(
        @{ Kind = 'Euler'; Sampler = 'Euler'; Type = 'Automatic' }
        @{ Kind = 'EulerAncestral'; Sampler = 'Euler a'; Type = 'Automatic' }
        @{ Kind = 'DpmPlusPlus2M'; Sampler = 'DPM++ 2M'; Type = 'Uniform' }
        @{ Kind = 'DpmPlusPlus2MKarras'; Sampler = 'DPM++ 2M'; Type = 'Karras' }
        @{ Kind = 'Ddim'; Sampler = 'DDIM'; Type = 'Automatic' }
        @{ Kind = 'Lcm'; Sampler = 'LCM'; Type = 'Automatic' }
    ) {
        $path = Join-Path $TestDrive "$Kind.png"
        New-FakeScene -Prompt 'a cat' -NegativePrompt 'blurry' -Seed 7 -Width 16 -Height 8 -ReferenceName 'kira, the knight' -Scheduler $Kind |
            Save-MnemosyneImage -Path $path
        Read-PngParameters $path | Should -BeExactly (@(
                'a cat'
                'Negative prompt: blurry'
                "Steps: 4, Sampler: $Sampler, Schedule type: $Type, CFG scale: 5, Seed: 7, Size: 16x8, Model: tiny, Reference: ""kira, the knight"", Reference weight: 0.6, Generator: Mnemosyne"
            ) -join "`n")
    }
}

Describe 'Get-MnemosyneSceneSetting (issue 13)' {
    It 'reads an A1111 picture''s settings, with A1111''s sampler as Mnemosyne''s scheduler and the rest kept' {
        $path = New-ParametersPng (Join-Path $TestDrive 'a1111.png') $a1111Text
        $settings = Get-MnemosyneSceneSetting $path -WarningVariable warnings -WarningAction SilentlyContinue
        $settings | Should -BeOfType ([Mnemosyne.Engine.Pipeline.SceneSettings])
        $settings.Prompt | Should -BeExactly 'masterpiece, best quality, 1girl, (red hair:1.2), looking at viewer <lora:add_detail:0.5>'
        $settings.NegativePrompt | Should -BeExactly 'lowres, bad anatomy, (worst quality:1.4)'
        $settings.Steps | Should -Be 28
        $settings.Sampler, $settings.ScheduleType | Should -Be 'DPM++ 2M', 'Karras'
        $settings.Scheduler | Should -Be 'DpmPlusPlus2MKarras'
        $settings.GuidanceScale | Should -Be 6.5
        $settings.Seed | Should -Be 3551209734
        $settings.Width, $settings.Height | Should -Be 832, 1216
        $settings.ModelHash, $settings.Model | Should -Be '31e35c80fc', 'sd_xl_base_1.0'
        $settings.LoraHashes['add_detail'] | Should -Be '7c6bad76eb54'
        $settings.Extra['TI hashes'] | Should -Be 'easynegative: c74b4e810b03'
        $settings.Extra['Denoising strength'] | Should -Be '0.35'
        $settings.Extra['Version'] | Should -Be 'v1.10.1'
        $settings.Path | Should -Be $path
        @($warnings).Count | Should -Be 1
        "$($warnings[0])" | Should -Match 'made with the LoRAs add_detail; give -LoraFolder \(or \$env:MNEMOSYNE_LORA_PATH\) with the folder of their files'
    }

    It 'reads the same from -Parameters, and from paths and files piped in' {
        (Get-MnemosyneSceneSetting -Parameters $a1111Text -WarningAction SilentlyContinue).Seed | Should -Be 3551209734
        $first = New-ParametersPng (Join-Path $TestDrive 'one.png') "a cat`nSteps: 2, Sampler: Euler a, Seed: 1"
        $second = New-ParametersPng (Join-Path $TestDrive 'two [2].png') "a dog`nSteps: 3, Sampler: Euler a, Seed: 2"
        ($first, $second | Get-MnemosyneSceneSetting).Seed | Should -Be 1, 2
        (Get-Item -LiteralPath $first, $second | Get-MnemosyneSceneSetting).Prompt | Should -Be 'a cat', 'a dog'
    }

    It 'warns of a sampler Mnemosyne has no like of and leaves Scheduler unset' {
        $path = New-ParametersPng (Join-Path $TestDrive 'sde.png') "a cat`nSteps: 20, Sampler: DPM++ SDE, Schedule type: Karras, CFG scale: 7, Seed: 5"
        $settings = Get-MnemosyneSceneSetting $path -WarningVariable warnings -WarningAction SilentlyContinue
        $settings.Scheduler | Should -BeNullOrEmpty
        $settings.Sampler | Should -Be 'DPM++ SDE'
        "$warnings" | Should -Match "the sampler 'DPM\+\+ SDE' with the schedule type 'Karras' has no like in Mnemosyne"
    }

    It 'gives one error for a file without settings and still reads the others' {
        $good = New-ParametersPng (Join-Path $TestDrive 'good.png') "a cat`nSteps: 2, Sampler: Euler, Seed: 1"
        $bare = Join-Path $TestDrive 'bare.png'
        [Mnemosyne.Engine.Imaging.PngFile]::Save($bare, [Mnemosyne.Engine.Imaging.RgbImage]::new(1, 1, [byte[]]::new(3)), $null, $false)
        $read = @(Get-MnemosyneSceneSetting $bare, $good -ErrorVariable failures -ErrorAction SilentlyContinue)
        $read.Seed | Should -Be 1
        $failures.Count | Should -Be 1
        $failures[0].CategoryInfo.Category | Should -Be 'InvalidData'
        $failures[0].TargetObject | Should -Be $bare
        "$($failures[0])" | Should -Match "has no 'parameters' text"
    }

    It 'gives one InvalidData error for malformed Reference controls, naming the part' {
        $text = "two friends`nSteps: 2, Sampler: Euler, Seed: 1, Size: 64x64, Reference: ""kira, ren"", Reference weight: 0.7, " +
            'Reference controls: "weights 0.7 lots; steps 0.2-0.8"'
        $read = Get-MnemosyneSceneSetting -Parameters $text -ErrorVariable failures -ErrorAction SilentlyContinue
        $read | Should -BeNullOrEmpty
        $failures.Count | Should -Be 1
        $failures[0].CategoryInfo.Category | Should -Be 'InvalidData'
        $failures[0].FullyQualifiedErrorId | Should -BeLike 'SceneSettingsUnreadable,*'
        "$($failures[0])" | Should -Match "Reference controls has 'weights 0.7 lots'"
    }

    It 'reads a table of blocks and warns of a picture mask, naming it' {
        $text = "two friends`nSteps: 2, Sampler: Euler, Seed: 1, Size: 64x64, Reference: ""kira, ren"", Reference weight: 0.7, " +
            'Reference controls: "weights 0.7 0.6; masks ellipse.png none; blocks {\"down\": {\"block_2\": [0.0, 1.0]}, \"up\": 1.0}"'
        $read = Get-MnemosyneSceneSetting -Parameters $text -WarningVariable warnings -WarningAction SilentlyContinue
        $read.ReferenceWeight | Should -Be ([float]0.7), ([float]0.6)
        $read.ReferenceMask[0] | Should -Be 'ellipse.png'
        $read.ReferenceMask[1]['X'], $read.ReferenceMask[1]['Y'], $read.ReferenceMask[1]['Width'], $read.ReferenceMask[1]['Height'] |
            Should -Be 0, 0, 64, 64 -Because 'a reference without a mask acts on the whole scene'
        "$($read.ReferenceBlocks)" | Should -Be '{"down": {"block_2": [0.0, 1.0]}, "up": 1.0}'
        $warnings.Count | Should -Be 1
        "$warnings" | Should -Match "'ellipse.png'.*-ReferenceMask"
    }
}

Describe 'Scenes made again and A1111''s names taken, with the tiny checkpoint' {
    BeforeAll {
        Open-TestEngine
        $script:kira = Import-MnemosyneReference $referenceImage -Name 'kira'
        $script:unetHash = [Convert]::ToHexString([Security.Cryptography.SHA256]::HashData(
                [IO.File]::ReadAllBytes((Join-Path $modelPath 'unet/diffusion_pytorch_model.safetensors')))).Substring(0, 10).ToLowerInvariant()
    }

    It 'records A1111''s Model hash: the short SHA-256 of the UNet weights file' {
        $path = Join-Path $TestDrive 'hashed.png'
        New-MnemosyneScene 'a cat' -Seed 1 @tiny | Save-MnemosyneImage -Path $path
        Read-PngParameters $path | Should -Match "\nSteps: 2, Sampler: Euler, Schedule type: Automatic, CFG scale: 5, Seed: 1, Size: 64x64, Model hash: $unetHash, Model: model, Generator: Mnemosyne$"
    }

    It 'makes a saved <Kind> scene again from the PNG''s settings, pixel for pixel' -ForEach @(
        @{ Kind = 'Euler' }, @{ Kind = 'EulerAncestral' }, @{ Kind = 'DpmPlusPlus2M' }, @{ Kind = 'DpmPlusPlus2MKarras' }, @{ Kind = 'Ddim' }
    ) {
        $first = New-MnemosyneScene 'a knight, in the rain: at night' -NegativePrompt 'blurry, lowres' -Reference $kira -ReferenceWeight 0.45 -Seed 321 -Steps 3 `
            -GuidanceScale 3.7 -GuidanceCutoff 0.5 -Scheduler $Kind -Width 64 -Height 96
        $path = Join-Path $TestDrive "again-$Kind.png"
        $first | Save-MnemosyneImage -Path $path
        $settings = Get-MnemosyneSceneSetting $path
        $settings.ReferenceName | Should -Be 'kira'
        $again = $settings | New-MnemosyneScene -Reference $kira -WarningVariable warnings
        $warnings | Should -BeNullOrEmpty
        $again.Scheduler | Should -Be $Kind
        $again.NegativePrompt, $again.ReferenceWeight, $again.GuidanceScale, $again.GuidanceCutoff | Should -Be 'blurry, lowres', ([float]0.45), ([float]3.7), 0.5
        $again.Height | Should -Be 96
        [Convert]::ToHexString($again.Image.Rgb) | Should -Be ([Convert]::ToHexString($first.Image.Rgb))
    }

    It 'makes a saved scene of two masked references in a window of steps again from the PNG''s settings, pixel for pixel' {
        $ren = Import-MnemosyneReference (Join-Path $repositoryRoot 'tests/reference/ipa-control-b/second-reference.png') -Name 'ren'
        $first = New-MnemosyneScene 'two friends at a cafe' -Reference $kira, $ren -ReferenceWeight 0.7, 0.6 -ReferenceMask Left, Right `
            -ReferenceBlocks Style -ReferenceStart 0.2 -ReferenceEnd 0.8 -Seed 5 -Steps 5 -Width 64 -Height 64
        $path = Join-Path $TestDrive 'two-friends.png'
        $first | Save-MnemosyneImage -Path $path
        $settings = Get-MnemosyneSceneSetting $path -WarningVariable warnings
        $warnings | Should -BeNullOrEmpty
        $settings.ReferenceWeight | Should -Be ([float]0.7), ([float]0.6)
        "$($settings.ReferenceBlocks)", $settings.ReferenceStart, $settings.ReferenceEnd | Should -Be 'Style', 0.2, 0.8
        $again = $settings | New-MnemosyneScene -Reference $kira, $ren -ErrorAction Stop
        $again.ParametersText() | Should -Be $first.ParametersText()
        [Convert]::ToHexString($again.Image.Rgb) | Should -Be ([Convert]::ToHexString($first.Image.Rgb))
        $plain = New-MnemosyneScene 'two friends at a cafe' -Reference $kira, $ren -Seed 5 -Steps 5 -Width 64 -Height 64
        [Convert]::ToHexString($plain.Image.Rgb) | Should -Not -Be ([Convert]::ToHexString($first.Image.Rgb)) -Because 'the controls change the scene'
    }

    It 'takes A1111''s name <Name> for -Scheduler <Kind>' -ForEach @(
        @{ Name = 'Euler a'; Kind = 'EulerAncestral' }
        @{ Name = 'DPM++ 2M Karras'; Kind = 'DpmPlusPlus2MKarras' }
        @{ Name = 'DPM++ 2M'; Kind = 'DpmPlusPlus2M' }
        @{ Name = 'DDIM'; Kind = 'Ddim' }
        @{ Name = 'LCM'; Kind = 'Lcm' }
    ) {
        $named = New-MnemosyneScene 'a cat' -Seed 3 -Scheduler $Name @tiny
        $named.Scheduler | Should -Be $Kind
        [Convert]::ToHexString($named.Image.Rgb) | Should -Be ([Convert]::ToHexString((New-MnemosyneScene 'a cat' -Seed 3 -Scheduler $Kind @tiny).Image.Rgb))
    }

    It 'takes A1111''s columns from a CSV: Sampler and Schedule type, CFG scale, Size, Negative prompt' {
        $rows = @'
Prompt,Negative prompt,Sampler,Schedule type,CFG scale,Size,Seed,Steps
a knight,blurry,DPM++ 2M,Karras,3.5,64x96,11,2
a cat,,Euler a,,7,96x64,12,2
a dog,,DPM++ 2M Karras,,,64x64,13,2
a bird,,EulerAncestral,,,64x64,14,2
'@ | ConvertFrom-Csv
        $scenes = @($rows | New-MnemosyneScene -WarningVariable warnings -ErrorAction Stop)
        $warnings | Should -BeNullOrEmpty -Because 'A1111''s columns name settings'
        $scenes.Scheduler | Should -Be 'DpmPlusPlus2MKarras', 'EulerAncestral', 'DpmPlusPlus2MKarras', 'EulerAncestral'
        $scenes.GuidanceScale | Should -Be 3.5, 7, 5, 5
        $scenes[0].Width, $scenes[0].Height, $scenes[1].Width, $scenes[1].Height | Should -Be 64, 96, 96, 64
        $scenes[0].NegativePrompt | Should -Be 'blurry'
        $scenes[1].NegativePrompt | Should -BeNullOrEmpty
        $spelled = New-MnemosyneScene 'a knight' -NegativePrompt 'blurry' -Scheduler DpmPlusPlus2MKarras -GuidanceScale 3.5 -Width 64 -Height 96 -Seed 11 -Steps 2
        [Convert]::ToHexString($scenes[0].Image.Rgb) | Should -Be ([Convert]::ToHexString($spelled.Image.Rgb))
    }
}
