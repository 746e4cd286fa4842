BeforeDiscovery {
    . $PSScriptRoot/Common.ps1
    $pipelineBCases = Get-SceneCases $pipelineB
    $img2imgBCases = Get-SceneCases (Join-Path $repositoryRoot 'tests/reference/img2img-b')
    $hiresBCases = (Get-Content -Raw (Join-Path $repositoryRoot 'tests/reference/hires-b/manifest.json') | ConvertFrom-Json).cases
    $fidelityCases = if ($hasFidelity) { Get-SceneCases $fidelity (Join-Path $fidelity 'cases') }
}

BeforeAll {
    . $PSScriptRoot/Common.ps1
    Import-Mnemosyne
}

Describe 'New-MnemosyneScene parameters' {
    BeforeAll { $script:command = Get-Command New-MnemosyneScene }

    It 'takes the prompt by position, from piped strings and from a Prompt property' {
        $prompt = $command.Parameters['Prompt'].ParameterSets['__AllParameterSets']
        $prompt.Position | Should -Be 0
        $prompt.IsMandatory | Should -BeTrue
        $prompt.ValueFromPipeline | Should -BeTrue
        $prompt.ValueFromPipelineByPropertyName | Should -BeTrue
    }

    It 'takes a piped reference by its type (one or several)' {
        $reference = $command.Parameters['Reference'].ParameterSets['__AllParameterSets']
        $reference.ValueFromPipeline | Should -BeTrue
        $command.Parameters['Reference'].ParameterType | Should -Be ([Mnemosyne.Engine.Pipeline.CharacterReference[]])
    }

    It 'binds -<_> from a property of piped objects' -ForEach @(
        'NegativePrompt', 'ReferenceWeight', 'ReferenceMask', 'ReferenceBlocks', 'ReferenceStart', 'ReferenceEnd', 'Seed', 'Steps', 'Quality', 'GuidanceScale', 'GuidanceCutoff', 'Scheduler', 'Spacing', 'Width', 'Height', 'InitialNoisePath', 'InitImagePath', 'MaskPath', 'Strength', 'HiresScale', 'HiresStrength', 'HiresUpscale', 'DeepCacheInterval', 'Lora'
    ) {
        $command.Parameters[$_].ParameterSets['__AllParameterSets'].ValueFromPipelineByPropertyName | Should -BeTrue
    }

    It 'completes -Scheduler with the scheduler names' {
        $line = 'New-MnemosyneScene a -Scheduler '
        (TabExpansion2 $line $line.Length).CompletionMatches.CompletionText | Sort-Object |
            Should -Be 'Ddim', 'DpmPlusPlus2M', 'DpmPlusPlus2MKarras', 'Euler', 'EulerAncestral', 'Lcm'
        $line = 'New-MnemosyneScene a -Scheduler DpmPlus'
        (TabExpansion2 $line $line.Length).CompletionMatches.CompletionText | Sort-Object | Should -Be 'DpmPlusPlus2M', 'DpmPlusPlus2MKarras'
    }

    It 'completes -Quality with Fast, Draft, Standard and Best' {
        $line = 'New-MnemosyneScene a -Quality '
        (TabExpansion2 $line $line.Length).CompletionMatches.CompletionText | Sort-Object | Should -Be 'Best', 'Draft', 'Fast', 'Standard'
    }

    It 'completes -Spacing with the timestep spacings' {
        $line = 'New-MnemosyneScene a -Spacing '
        (TabExpansion2 $line $line.Length).CompletionMatches.CompletionText | Sort-Object | Should -Be 'Leading', 'Linspace', 'Trailing'
    }
}

# The catalog of bad settings (and other bad inputs) is BadInput.Tests.ps1.
Describe 'New-MnemosyneScene refuses bad settings before it needs an engine' {
    It 'an unknown scheduler, at binding, listing the known ones' {
        { New-MnemosyneScene 'a cat' -Scheduler Heun -ErrorAction Stop } |
            Should -Throw -ErrorId 'CannotConvertArgument*' -ExpectedMessage '*Euler, EulerAncestral, DpmPlusPlus2M, DpmPlusPlus2MKarras, Ddim*'
    }

    It 'gives each bad row of a CSV its own error' {
        $rows = @'
Prompt,Width,Steps
first,100,2
second,64,0
third,64,-3
'@ | ConvertFrom-Csv
        $rows | New-MnemosyneScene -Height 64 -ErrorVariable failures -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $failures.Count | Should -Be 3
        $failures.TargetObject | Should -Be 100, 0, -3
    }
}

Describe 'Making scenes with the tiny checkpoint' {
    BeforeAll {
        Open-TestEngine
        $script:kira = Import-MnemosyneReference $referenceImage -Name 'kira'
        $script:folder = Join-Path $TestDrive 'scenes'
        $null = New-Item -ItemType Directory $folder

        # The case's scene made with the cmdlet against diffusers' picture (8-bit values within 1 level).
        function Assert-RemakesCase($Case, $Reference) {
            $arguments = @{
                Prompt          = $Case.prompt
                Reference       = $Reference
                ReferenceWeight = $Case.ip
                Steps           = $Case.steps
                GuidanceScale   = $Case.g
                Scheduler       = $Case.sched
                Width           = $Case.w
                Height          = $Case.h
                # diffusers' own prompt encoding: plain text, cut to 77 tokens (the long-prompt case is cut).
                PromptStyle     = 'Diffusers'
            }
            if ($null -ne $Case.negative) { $arguments.NegativePrompt = $Case.negative }
            if ($null -ne $Case.seed) { $arguments.Seed = $Case.seed }
            else { $arguments.InitialNoisePath = Join-Path $Case.folder $Case.initial_noise }
            if ($Case.PSObject.Properties['deepcache']) { $arguments.DeepCacheInterval = $Case.deepcache }
            if ($Case.PSObject.Properties['cutoff']) { $arguments.GuidanceCutoff = $Case.cutoff }
            if ($Case.PSObject.Properties['spacing']) { $arguments.Spacing = $Case.spacing }
            # img2img and inpainting cases: the pictures lie beside the case folders.
            if ($Case.PSObject.Properties['init']) {
                $arguments.InitImagePath = Join-Path (Split-Path $Case.folder) $Case.init
                $arguments.Strength = $Case.strength
            }
            if ($Case.PSObject.Properties['mask']) { $arguments.MaskPath = Join-Path (Split-Path $Case.folder) $Case.mask }
            $scene = New-MnemosyneScene @arguments -WarningAction SilentlyContinue
            $expected = [Mnemosyne.Engine.Imaging.SafeImageDecoder]::Default.Decode((Join-Path $Case.folder 'image.png')).Rgb
            $scene.Image.Rgb.Length | Should -Be $expected.Length
            $within = 0
            for ($i = 0; $i -lt $expected.Length; $i++) { if ([Math]::Abs([int]$scene.Image.Rgb[$i] - [int]$expected[$i]) -le 1) { $within++ } }
            $within / $expected.Length | Should -BeGreaterOrEqual 0.999
        }
    }

    It 'records DeepCache''s interval with the picture, and refuses one out of range' {
        $scene = New-MnemosyneScene 'a cat in a hat' -Seed 4 -Steps 4 -DeepCacheInterval 2 @tiny
        $scene.DeepCacheInterval | Should -Be 2
        $scene.ParametersText() | Should -Match ', DeepCache interval: 2,'
        $whole = New-MnemosyneScene 'a cat in a hat' -Seed 4 -Steps 4 @tiny
        $whole.DeepCacheInterval | Should -Be 1
        $whole.ParametersText() | Should -Not -Match 'DeepCache'
        $whole.Image.Rgb | Should -Not -Be $scene.Image.Rgb

        New-MnemosyneScene 'a cat' -Seed 4 -DeepCacheInterval 0 @tiny -ErrorVariable bad -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $bad.Count | Should -Be 1
        $bad[0].CategoryInfo.Category | Should -Be 'InvalidArgument'
        $bad[0].TargetObject | Should -Be 0
        "$bad" | Should -Match 'DeepCacheInterval must be from 1'
    }

    It 'records every setting with the picture' {
        $scene = New-MnemosyneScene 'a cat in a hat' -NegativePrompt 'blurry' -Reference $kira -ReferenceWeight 0.5 -Seed 42 -Steps 3 -GuidanceScale 3.5 -Scheduler DpmPlusPlus2MKarras -Width 96 -Height 64
        $scene | Should -BeOfType ([Mnemosyne.Engine.Pipeline.Scene])
        $scene.Prompt | Should -Be 'a cat in a hat'
        $scene.NegativePrompt | Should -Be 'blurry'
        $scene.ReferenceName | Should -Be 'kira'
        $scene.ReferenceWeight | Should -Be 0.5
        $scene.Seed | Should -Be 42
        $scene.Steps | Should -Be 3
        $scene.GuidanceScale | Should -Be 3.5
        $scene.Scheduler | Should -Be 'DpmPlusPlus2MKarras'
        $scene.Width | Should -Be 96
        $scene.Height | Should -Be 64
        $scene.Model | Should -Be 'model'
        $scene.Image.Width | Should -Be 96
        $scene.Image.Height | Should -Be 64
        $scene.Image.Rgb.Length | Should -Be (96 * 64 * 3)
    }

    It 'uses the engine''s defaults for settings left out' {
        $scene = New-MnemosyneScene 'a cat' -Reference $kira -Seed 1 -Width 64 -Height 64 -Steps 2
        $scene.GuidanceScale | Should -Be 5
        $scene.Scheduler | Should -Be 'Euler'
        $scene.ReferenceWeight | Should -Be ([float]0.6)
        $scene.NegativePrompt | Should -BeNullOrEmpty
    }

    It 'turns -Quality <Quality> into <Steps> steps' -ForEach @(
        @{ Quality = 'Draft'; Steps = 10 }
        @{ Quality = 'Standard'; Steps = 20 }
    ) {
        (New-MnemosyneScene 'a cat' -Seed 1 -Width 64 -Height 64 -Quality $Quality).Steps | Should -Be $Steps
    }

    It 'makes the same picture from the same seed, and another from another seed' {
        $a = New-MnemosyneScene 'a cat' -Seed 7 @tiny
        $b = New-MnemosyneScene 'a cat' -Seed 7 @tiny
        $c = New-MnemosyneScene 'a cat' -Seed 8 @tiny
        [Convert]::ToHexString($b.Image.Rgb) | Should -Be ([Convert]::ToHexString($a.Image.Rgb))
        [Convert]::ToHexString($c.Image.Rgb) | Should -Not -Be ([Convert]::ToHexString($a.Image.Rgb))
    }

    It 'draws and records a seed when none is given, and that seed remakes the picture' {
        $drawn = New-MnemosyneScene 'a cat' @tiny -Verbose 4>&1
        $scene = $drawn | Where-Object { $_ -is [Mnemosyne.Engine.Pipeline.Scene] }
        $message = $drawn | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] }
        $scene.Seed | Should -BeGreaterOrEqual 0
        $scene.Seed | Should -BeLessThan 4294967296
        "$message" | Should -Match "Seed $($scene.Seed) \(drawn at random\)"
        $again = New-MnemosyneScene 'a cat' -Seed $scene.Seed @tiny
        [Convert]::ToHexString($again.Image.Rgb) | Should -Be ([Convert]::ToHexString($scene.Image.Rgb))
    }

    It 'makes one scene per line of a prompt file, in order' {
        $file = Join-Path $folder 'prompts.txt'
        Set-Content $file 'on a beach', 'in a forest', 'at a cafe in Paris'
        $scenes = Get-Content $file | New-MnemosyneScene -Reference $kira -Seed 5 @tiny
        $scenes.Count | Should -Be 3
        $scenes.Prompt | Should -Be 'on a beach', 'in a forest', 'at a cafe in Paris'
        $scenes.ReferenceName | Select-Object -Unique | Should -Be 'kira'
        $scenes.Seed | Select-Object -Unique | Should -Be 5
    }

    It 'reports a blank line of a prompt file and makes the other scenes' {
        $file = Join-Path $folder 'gappy.txt'
        Set-Content $file 'on a beach', '', 'in a forest'
        $scenes = Get-Content $file | New-MnemosyneScene -Seed 5 @tiny -ErrorVariable failures -ErrorAction SilentlyContinue
        $scenes.Prompt | Should -Be 'on a beach', 'in a forest'
        $failures.Count | Should -Be 1
    }

    It 'binds the columns of a CSV file by name, converting the text and leaving empty cells unset' {
        $csv = Join-Path $folder 'scenes.csv'
        Set-Content $csv @'
Prompt,NegativePrompt,Seed,Steps,Quality,GuidanceScale,Scheduler,Width,Height,ReferenceWeight
a knight in the rain,blurry,11,2,,7.5,EulerAncestral,96,64,0.3
a cat on a sofa,,12,3,,,,64,64,
a dragon,,,,Draft,1,Ddim,64,96,
'@
        $scenes = Import-Csv $csv | New-MnemosyneScene -Reference $kira
        $scenes.Count | Should -Be 3
        $scenes[0].Prompt | Should -Be 'a knight in the rain'
        $scenes[0].NegativePrompt | Should -Be 'blurry'
        $scenes[0].Seed | Should -Be 11
        $scenes[0].Steps | Should -Be 2
        $scenes[0].GuidanceScale | Should -Be 7.5
        $scenes[0].Scheduler | Should -Be 'EulerAncestral'
        $scenes[0].Width, $scenes[0].Height | Should -Be 96, 64
        $scenes[0].ReferenceWeight | Should -Be ([float]0.3)
        $scenes[1].Seed | Should -Be 12
        $scenes[1].Steps | Should -Be 3
        $scenes[1].GuidanceScale | Should -Be 5 -Because 'an empty cell keeps the default'
        $scenes[1].Scheduler | Should -Be 'Euler'
        $scenes[1].ReferenceWeight | Should -Be ([float]0.6)
        $scenes[2].Steps | Should -Be 10
        $scenes[2].Scheduler | Should -Be 'Ddim'
        $scenes[2].Height | Should -Be 96
        $scenes[2].Seed | Should -Not -Be 0 -Because 'an empty Seed cell draws a seed instead of binding 0'
    }

    It 'reports a bad CSV row and still makes the others' {
        $rows = @'
Prompt,Seed,Width,Height,Steps
first,1,64,64,2
second,2,100,64,2
third,3,64,64,2
'@ | ConvertFrom-Csv
        $scenes = $rows | New-MnemosyneScene -ErrorVariable failures -ErrorAction SilentlyContinue
        $scenes.Prompt | Should -Be 'first', 'third'
        $failures.Count | Should -Be 1
        $failures[0].CategoryInfo.Category | Should -Be 'InvalidArgument'
        $failures[0].TargetObject | Should -Be 100
    }

    It 'takes a reference piped in, with the prompt by position' {
        $scene = Import-MnemosyneReference $referenceImage -Name 'kira' | New-MnemosyneScene 'on a beach' -Seed 3 @tiny
        $scene.ReferenceName | Should -Be 'kira'
        $given = New-MnemosyneScene 'on a beach' -Reference $kira -Seed 3 @tiny
        [Convert]::ToHexString($scene.Image.Rgb) | Should -Be ([Convert]::ToHexString($given.Image.Rgb))
    }

    It 'remakes a scene piped back in, from its properties' {
        $first = New-MnemosyneScene 'a lighthouse' -NegativePrompt 'fog' -Seed 9 -Steps 2 -Width 64 -Height 96 -Scheduler DpmPlusPlus2M -GuidanceScale 4
        $again = $first | New-MnemosyneScene
        $again.Height | Should -Be 96
        $again.Scheduler | Should -Be 'DpmPlusPlus2M'
        [Convert]::ToHexString($again.Image.Rgb) | Should -Be ([Convert]::ToHexString($first.Image.Rgb))
    }

    It 'stops guidance after -GuidanceCutoff, records it, and remakes the scene piped back in or from a CSV column' {
        $settings = @{ Prompt = 'a lighthouse'; NegativePrompt = 'fog'; Seed = 9; Steps = 6; Width = 64; Height = 64 }
        $guided = New-MnemosyneScene @settings
        $cut = New-MnemosyneScene @settings -GuidanceCutoff 0.4
        $cut.GuidanceCutoff | Should -Be 0.4
        [Convert]::ToHexString($cut.Image.Rgb) | Should -Not -Be ([Convert]::ToHexString($guided.Image.Rgb))
        $cut.ParametersText() | Should -Match 'CFG scale: 5, Seed: 9, .*, CFG cutoff: 0\.4,'
        $guided.ParametersText() | Should -Not -Match 'CFG cutoff'
        $again = $cut | New-MnemosyneScene
        $again.GuidanceCutoff | Should -Be 0.4
        [Convert]::ToHexString($again.Image.Rgb) | Should -Be ([Convert]::ToHexString($cut.Image.Rgb))
        $row = [pscustomobject]@{ Prompt = 'a lighthouse'; NegativePrompt = 'fog'; Seed = '9'; Steps = '6'; Width = '64'; Height = '64'; GuidanceCutoff = '0.4' }
        [Convert]::ToHexString(($row | New-MnemosyneScene).Image.Rgb) | Should -Be ([Convert]::ToHexString($cut.Image.Rgb))
    }

    It 'remakes diffusers'' picture for reference case <_.name>' -ForEach $pipelineBCases {
        Assert-RemakesCase $_ $kira
    }

    It 'remakes diffusers'' img2img or inpainting picture for case <_.name>' -ForEach $img2imgBCases {
        Assert-RemakesCase $_ $kira
    }

    It 'makes diffusers'' hires fix (<_.upscale> upscale) from -HiresScale, -HiresStrength and -HiresUpscale, and records it' -ForEach $hiresBCases {
        $arguments = @{
            Prompt = $_.prompt; Seed = $_.seed; Steps = $_.steps; GuidanceScale = $_.g; Scheduler = $_.sched; Width = $_.w; Height = $_.h
            PromptStyle = 'Diffusers'; Reference = $kira; ReferenceWeight = $_.ip; HiresScale = $_.scale; HiresStrength = $_.strength; HiresUpscale = $_.upscale
        }
        if ($null -ne $_.negative) { $arguments.NegativePrompt = $_.negative }
        $scene = New-MnemosyneScene @arguments -WarningAction SilentlyContinue
        ($scene.Width, $scene.Height, $scene.BaseWidth, $scene.BaseHeight) | Should -Be 96, 96, 64, 64
        $expected = [Mnemosyne.Engine.Imaging.SafeImageDecoder]::Default.Decode((Join-Path $repositoryRoot "tests/reference/hires-b/$($_.name)/image.png")).Rgb
        $within = 0
        for ($i = 0; $i -lt $expected.Length; $i++) { if ([Math]::Abs([int]$scene.Image.Rgb[$i] - [int]$expected[$i]) -le 1) { $within++ } }
        $within / $expected.Length | Should -BeGreaterOrEqual 0.999
        $upscaler = if ($_.upscale -eq 'latent') { 'Latent' } else { 'Lanczos' }
        $scene.ParametersText() | Should -Match "Size: 64x64, .*Denoising strength: 0\.5, Hires upscale: 1\.5, Hires upscaler: $upscaler,"
        $row = [pscustomobject]@{ Prompt = $_.prompt; Seed = "$($_.seed)"; Steps = "$($_.steps)"; Width = '64'; Height = '64'; HiresScale = '1.5'; HiresUpscale = $_.upscale }
        ($row | New-MnemosyneScene -WarningAction SilentlyContinue).Width | Should -Be 96
        # Its PNG's settings make it again: Size is the base size, the hires settings beside it.
        $path = Join-Path $TestDrive "$($_.name).png"
        $scene | Save-MnemosyneImage -Path $path
        $again = Get-MnemosyneSceneSetting $path | New-MnemosyneScene -Reference $kira -WarningAction SilentlyContinue
        [Convert]::ToHexString($again.Image.Rgb) | Should -Be ([Convert]::ToHexString($scene.Image.Rgb))
        # And it comes back from Export-Clixml (jobs, remoting) with its hires settings.
        $scene | Export-Clixml (Join-Path $TestDrive 'hires.xml')
        $back = Import-Clixml (Join-Path $TestDrive 'hires.xml')
        $back | Should -BeOfType ([Mnemosyne.Engine.Pipeline.Scene])
        $back.ParametersText() | Should -BeExactly $scene.ParametersText()
    }

    It 'takes a starting picture''s size, records picture, mask and strength, and remakes the scene piped back in or from a CSV row' {
        $img2img = Join-Path $repositoryRoot 'tests/reference/img2img-b'
        $init = Join-Path $img2img 'init-96x64.png'
        $scene = New-MnemosyneScene 'a portrait in the rain' -Seed 3 -Steps 4 -InitImagePath $init -Strength 0.5
        ($scene.Width, $scene.Height) | Should -Be 96, 64
        $scene.InitImagePath | Should -Be $init
        $scene.Strength | Should -Be 0.5
        $scene.ParametersText() | Should -Match ', Init image: init-96x64\.png, Denoising strength: 0\.5,'
        $text = New-MnemosyneScene 'a portrait in the rain' -Seed 3 -Steps 4 -Width 96 -Height 64
        $text.Strength | Should -BeNullOrEmpty
        $text.ParametersText() | Should -Not -Match 'Denoising strength'
        [Convert]::ToHexString($text.Image.Rgb) | Should -Not -Be ([Convert]::ToHexString($scene.Image.Rgb))
        [Convert]::ToHexString(($scene | New-MnemosyneScene).Image.Rgb) | Should -Be ([Convert]::ToHexString($scene.Image.Rgb))

        $init64 = Join-Path $img2img 'init-64.png'
        $mask = Join-Path $img2img 'mask-64.png'
        $inpainted = New-MnemosyneScene 'a knight''s helmet' -Seed 7 -Steps 5 -InitImagePath $init64 -MaskPath $mask -Strength 0.8
        $inpainted.ParametersText() | Should -Match ', Init image: init-64\.png, Mask: mask-64\.png, Denoising strength: 0\.8,'
        $row = [pscustomobject]@{ Prompt = 'a knight''s helmet'; Seed = '7'; Steps = '5'; InitImagePath = $init64; MaskPath = $mask; Strength = '0.8' }
        [Convert]::ToHexString(($row | New-MnemosyneScene).Image.Rgb) | Should -Be ([Convert]::ToHexString($inpainted.Image.Rgb))
    }

    if ($hasFidelity) {
        Context 'with the independent checkpoint of ../shared/fidelity' {
            BeforeAll {
                Open-FidelityEngine
                $script:fidelityKira = Import-MnemosyneReference (Join-Path $fidelity 'reference.png') -Name 'kira'
            }
            AfterAll { Restore-TestEngine }

            It 'remakes diffusers'' picture for reference case <_.name>' -ForEach $fidelityCases {
                Assert-RemakesCase $_ $fidelityKira
            }
        }
    }

    It 'writes progress for every step' {
        $run = Invoke-InRunspace { New-MnemosyneScene 'a cat' -Seed 1 -Steps 3 -Width 64 -Height 64 }
        $run.Errors | Should -BeNullOrEmpty
        $steps = $run.Progress | Where-Object StatusDescription -Match '^Step \d+ of 3'
        ($steps.StatusDescription | ForEach-Object { ($_ -split ',')[0] } | Select-Object -Unique) | Should -Be 'Step 1 of 3', 'Step 2 of 3', 'Step 3 of 3'
        $steps[-1].PercentComplete | Should -Be 100
        $steps[0].SecondsRemaining | Should -BeGreaterOrEqual 0 -Because 'each step gives the time left'
        $steps.CurrentOperation | Select-Object -Unique | Should -Be 'a cat'
        $run.Progress[-1].RecordType | Should -Be 'Completed'
        $run.Progress[0].Activity | Should -Match 'seed 1'
    }

    It 'shows the text encoding, the reference and the decode as phases of their own' {
        $run = Invoke-InRunspace {
            param($picture)
            $fresh = Import-MnemosyneReference $picture -Name 'fresh'
            New-MnemosyneScene 'a fox at dawn, phases' -Reference $fresh -Seed 2 -Steps 2 -Width 64 -Height 64
        } -ArgumentList $referenceImage
        $run.Errors | Should -BeNullOrEmpty
        $statuses = @($run.Progress | Where-Object ActivityId -EQ 0x4d6e0002 | ForEach-Object { ($_.StatusDescription -split ',')[0] } | Select-Object -Unique)
        $statuses | Should -Be 'Encoding the prompt', "Encoding the reference 'fresh' for the IP-Adapter", 'Denoising: 2 steps', 'Step 1 of 2', 'Step 2 of 2',
            'Decoding the picture with the VAE', 'Done'
    }

    It 'shows a stream of scenes under a parent bar: scene k of n for a file''s lines, k alone when n is not known' {
        $prompts = Join-Path $TestDrive 'two-prompts.txt'
        Set-Content $prompts 'a red door', '', 'a blue door'
        $run = Invoke-InRunspace { param($file) Get-Content $file | Where-Object { $_ } | New-MnemosyneScene -Seed 3 -Steps 1 -Width 64 -Height 64 } -ArgumentList $prompts
        $run.Errors | Should -BeNullOrEmpty
        $batch = @($run.Progress | Where-Object ActivityId -EQ 0x4d6e0005)
        $batch.StatusDescription | Should -Be 'Scene 1 of 2', 'Scene 2 of 2', 'Done'
        $batch[0..1].CurrentOperation | Should -Be 'a red door', 'a blue door'
        $batch[0..1].PercentComplete | Should -Be 0, 50
        $batch[-1].RecordType | Should -Be 'Completed'
        $run.Progress | Where-Object ActivityId -EQ 0x4d6e0002 | ForEach-Object { $_.ParentActivityId | Should -Be 0x4d6e0005 }

        $run = Invoke-InRunspace { 'a green door', 'a grey door' | New-MnemosyneScene -Seed 3 -Steps 1 -Width 64 -Height 64 }
        $batch = @($run.Progress | Where-Object ActivityId -EQ 0x4d6e0005)
        $batch.StatusDescription | Should -Be 'Scene 1', 'Scene 2', 'Done'
        $batch[0..1].PercentComplete | Should -Be -1, -1

        $run = Invoke-InRunspace { New-MnemosyneScene 'a door alone' -Seed 3 -Steps 1 -Width 64 -Height 64 }
        $run.Progress | Where-Object ActivityId -EQ 0x4d6e0005 | Should -BeNullOrEmpty -Because 'one scene needs no parent bar'
    }

    It '-Verbose reports each encoding with its time, and what the caches answered' {
        $fresh = Import-MnemosyneReference $referenceImage -Name 'verbose'
        $settings = @{ Seed = 4; Steps = 2; Width = 64; Height = 64; Reference = $fresh }
        $first = @(New-MnemosyneScene 'a lantern in fog, verbose' @settings -Verbose 4>&1 | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] }).Message
        @($first -match "^Text encoding: 'a lantern in fog, verbose' encoded in \d+\.\d\d s\.$") | Should -HaveCount 1
        @($first -match "^Reference 'verbose': the IP-Adapter's keys and values made in \d+\.\d\d s\.$") | Should -HaveCount 1
        @($first -match '^Denoising: 2 steps in \d+\.\d\d s \(\d+\.\d\d s a step\)\.$') | Should -HaveCount 1
        @($first -match '^Decoding with the VAE: \d+\.\d\d s\.$') | Should -HaveCount 1
        @($first -match '^Scene \(seed 4\) made in \d+\.\d\d s\.$') | Should -HaveCount 1
        $second = @(New-MnemosyneScene 'a lantern in fog, verbose' @settings -Verbose 4>&1 | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] }).Message
        $second | Should -Contain "Text encoding: 'a lantern in fog, verbose' from the prompt cache."
        $second | Should -Contain "Reference 'verbose': the IP-Adapter's keys and values from the reference cache."
    }

    It 'Import-MnemosyneReference shows each picture as progress and reports its encoding with -Verbose' {
        $run = Invoke-InRunspace { param($picture) Import-MnemosyneReference $picture, $picture -Name 'twice' -Verbose 4>&1 } -ArgumentList $referenceImage
        $run.Errors | Should -BeNullOrEmpty
        $verbose = @($run.Output | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] }).Message
        $pattern = "^Image encoding: $([regex]::Escape($referenceImage)) \({0} of 2\) in \d+\.\d\d s\.$"
        @($verbose -match ($pattern -f 1)) | Should -HaveCount 1
        @($verbose -match ($pattern -f 2)) | Should -HaveCount 1
        $verbose | Should -Contain "Reference 'twice': the average of the image embeddings of 2 pictures."
        $pictures = @($run.Progress | Where-Object ActivityId -EQ 0x4d6e0003 | Where-Object StatusDescription -Like 'Picture *')
        $pictures.StatusDescription | Should -Be 'Picture 1 of 2', 'Picture 2 of 2'
        $pictures.PercentComplete | Should -Be 0, 50
    }

    It 'lets an error of the next command in the pipeline stop the pipeline, not turn into a scene error' {
        { New-MnemosyneScene 'a cat' -Seed 1 @tiny | ForEach-Object { throw 'downstream failed' } } | Should -Throw 'downstream failed'
        { New-MnemosyneScene 'a cat' -Seed 1 @tiny | Save-MnemosyneImage -Path $folder -ErrorAction Stop } | Should -Throw -ErrorId 'PathIsFolder,*'
    }

    It 'with -PromptStyle Diffusers, warns when the prompt is longer than CLIP reads, and still makes the scene' {
        $long = (1..100 | ForEach-Object { "word$_" }) -join ' '
        $scene = New-MnemosyneScene $long -Seed 1 -PromptStyle Diffusers @tiny -WarningVariable warnings -WarningAction SilentlyContinue
        $scene.Prompt | Should -Be $long
        $scene.PromptStyle | Should -Be 'Diffusers'
        "$warnings" | Should -Match 'dropped'
        $scene.ParametersText() | Should -Match ', Prompt style: Diffusers,'
    }

    It 'reads a long prompt whole by default (A1111''s chunks): no warning, another picture than the cut one' {
        $long = (1..100 | ForEach-Object { "word$_" }) -join ' '
        $whole = New-MnemosyneScene $long -Seed 1 @tiny -WarningVariable warnings -WarningAction SilentlyContinue
        $warnings | Should -BeNullOrEmpty
        $whole.PromptStyle | Should -Be 'A1111'
        $whole.ParametersText() | Should -Not -Match 'Prompt style'
        $cut = New-MnemosyneScene $long -Seed 1 -PromptStyle Diffusers @tiny -WarningAction SilentlyContinue
        [System.Linq.Enumerable]::SequenceEqual($whole.Image.Rgb, $cut.Image.Rgb) | Should -BeFalse
    }

    It 'makes a plain prompt''s scene the same in both prompt styles, and a weighted one differently' {
        $plain = New-MnemosyneScene 'a cat in a hat' -Seed 2 @tiny
        $diffusers = New-MnemosyneScene 'a cat in a hat' -Seed 2 -PromptStyle Diffusers @tiny
        [System.Linq.Enumerable]::SequenceEqual($plain.Image.Rgb, $diffusers.Image.Rgb) | Should -BeTrue
        $weighted = New-MnemosyneScene 'a (cat:1.5) in a hat' -Seed 2 @tiny
        [System.Linq.Enumerable]::SequenceEqual($plain.Image.Rgb, $weighted.Image.Rgb) | Should -BeFalse
    }

    It 'takes -PromptStyle from a piped scene' {
        $first = New-MnemosyneScene 'a (cat) in a hat' -Seed 2 -PromptStyle Diffusers @tiny
        $again = $first | New-MnemosyneScene @tiny
        $again.PromptStyle | Should -Be 'Diffusers'
        [System.Linq.Enumerable]::SequenceEqual($first.Image.Rgb, $again.Image.Rgb) | Should -BeTrue
    }

    It 'refuses a reference made by another image encoder, per scene' {
        $foreign = New-FakeReference -Name 'foreign' -Embedding ([float[]]::new($kira.Embedding.Length))
        $scenes = 'one', 'two' | New-MnemosyneScene -Reference $foreign -Seed 1 @tiny -ErrorVariable failures -ErrorAction SilentlyContinue
        $scenes | Should -BeNullOrEmpty
        $failures.Count | Should -Be 2
        $failures[0].CategoryInfo.Category | Should -Be 'InvalidArgument'
        $failures[0].TargetObject.Name | Should -Be 'foreign'
    }

    It 'makes the same pictures in two runspaces at once as one after another, with one engine' {
        $opened = (Get-MnemosyneEngine).OpenedAt
        $jobs = 1..6 | ForEach-Object { @{ Seed = $_; Prompt = ('a cat', 'a dog')[$_ % 2]; Weight = 0.2 * ($_ % 3) } }
        $sequential = $jobs | ForEach-Object { New-MnemosyneScene $_.Prompt -Reference $kira -ReferenceWeight $_.Weight -Seed $_.Seed @tiny }
        $module = $manifest
        $parallel = $jobs | ForEach-Object -ThrottleLimit 2 -Parallel {
            Import-Module $using:module
            New-MnemosyneScene $_.Prompt -Reference $using:kira -ReferenceWeight $_.Weight -Seed $_.Seed -Steps 2 -Width 64 -Height 64
        } | Sort-Object Seed
        $parallel.Count | Should -Be 6
        for ($i = 0; $i -lt 6; $i++) {
            $parallel[$i].Prompt | Should -Be $sequential[$i].Prompt
            [Convert]::ToHexString($parallel[$i].Image.Rgb) | Should -Be ([Convert]::ToHexString($sequential[$i].Image.Rgb))
        }
        (Get-MnemosyneEngine).OpenedAt | Should -Be $opened -Because 'the runspaces share the open engine'
    }

    It 'saves the same PNG bytes from the same seed in two separate pwsh processes' {
        $paths = 'first', 'second' | ForEach-Object { Join-Path $folder "$_.png" }
        foreach ($path in $paths) {
            $run = Invoke-SeparatePwsh "Open-MnemosyneEngine '$modelPath'; New-MnemosyneScene 'a red fox in the snow' -Reference (Import-MnemosyneReference '$referenceImage') -Seed 1234 -Steps 3 -Width 64 -Height 64 | Save-MnemosyneImage -Path '$path'"
            $run.ExitCode | Should -Be 0 -Because ($run.Output -join "`n")
        }
        $first = [IO.File]::ReadAllBytes($paths[0])
        $second = [IO.File]::ReadAllBytes($paths[1])
        $first.Length | Should -BeGreaterThan 0
        [Convert]::ToHexString($second) | Should -Be ([Convert]::ToHexString($first))
    }
}
