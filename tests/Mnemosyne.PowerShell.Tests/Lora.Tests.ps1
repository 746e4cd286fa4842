BeforeAll {
    . $PSScriptRoot/Common.ps1
    Import-Mnemosyne
    Open-TestEngine
    # LoRA files and diffusers' scenes with them fused (tests/reference/make_lora_cases.py).
    $script:loraB = Join-Path $repositoryRoot 'tests/reference/lora-b'
    $script:loraManifest = Get-Content (Join-Path $loraB 'manifest.json') -Raw | ConvertFrom-Json
    $script:kira = Import-MnemosyneReference $referenceImage -Name 'kira'
    $s = $loraManifest.scene
    $script:settings = @{
        Prompt = $s.prompt; NegativePrompt = $s.negative; Width = $s.w; Height = $s.h; Steps = $s.steps; GuidanceScale = $s.g
        ReferenceWeight = $s.ip; Seed = $s.seed; Scheduler = $s.sched; Reference = $kira
    }
    $script:expected = [Mnemosyne.Engine.Tensors.NpyFile]::Read((Join-Path $loraB 'kira-and-film/final-latents.npy')).Data
}

Describe 'New-MnemosyneScene -Lora' {
    It 'takes LoRAs as path:weight, relative to the current location, and makes diffusers'' scene with them fused' {
        Push-Location $loraB
        try { $scene = New-MnemosyneScene @settings -Lora 'kira.safetensors:0.8', 'film.safetensors:-0.5' }
        finally { Pop-Location }
        $worst = 0
        for ($i = 0; $i -lt $expected.Length; $i++) { $worst = [Math]::Max($worst, [Math]::Abs($expected[$i] - $scene.FinalLatents.Data[$i])) }
        $worst | Should -BeLessOrEqual 1e-4
        $scene.Loras.Name | Should -Be 'kira', 'film'
        $scene.Loras.Weight | Should -Be ([float[]](0.8, -0.5))
        $scene.Loras[0].Path | Should -Be (Join-Path $loraB 'kira.safetensors')
        $scene.ParametersText() | Should -Match ', Lora hashes: "kira: [0-9a-f]{12}, film: [0-9a-f]{12}", Lora weights: "kira: 0\.8, film: -0\.5"'
        $script:withLoras = $scene
    }

    It 'takes objects with Path and Weight, a CSV cell of several, and a scene''s own LoRAs piped back' {
        $latents = ($withLoras.FinalLatents.Data -join ',')
        $objects = New-MnemosyneScene @settings -Lora @{ Path = (Join-Path $loraB 'kira.safetensors'); Weight = 0.8 }, ([pscustomobject]@{ Path = (Join-Path $loraB 'film.safetensors'); Weight = '-0.5' })
        ($objects.FinalLatents.Data -join ',') | Should -Be $latents
        $row = [pscustomobject]@{ Prompt = $settings.Prompt; Lora = "$(Join-Path $loraB 'kira.safetensors'):0.8; $(Join-Path $loraB 'film.safetensors'):-0.5" }
        $fromCsv = $row | New-MnemosyneScene -NegativePrompt $settings.NegativePrompt -Width 64 -Height 64 -Steps 3 -GuidanceScale 5 -ReferenceWeight 0.6 -Seed 42 -Scheduler Euler -Reference $kira
        ($fromCsv.FinalLatents.Data -join ',') | Should -Be $latents
        $again = $withLoras | New-MnemosyneScene -Reference $kira
        ($again.FinalLatents.Data -join ',') | Should -Be $latents
    }

    It 'resolves A1111''s <lora:name:weight> tags against -LoraFolder, takes them out of the prompt, and adds them to -Lora' {
        $latents = ($withLoras.FinalLatents.Data -join ',')
        $tagged = New-MnemosyneScene @settings -Prompt "<lora:kira:0.8>$($settings.Prompt)<lora:film:-0.5>" -LoraFolder $loraB
        ($tagged.FinalLatents.Data -join ',') | Should -Be $latents
        $tagged.Prompt | Should -Be $settings.Prompt
        $tagged.Loras.Path | Should -Be (Join-Path $loraB 'kira.safetensors'), (Join-Path $loraB 'film.safetensors')
        $mixed = New-MnemosyneScene @settings -Prompt "$($settings.Prompt)<lora:film:-0.5>" -LoraFolder $loraB -Lora (Join-Path $loraB 'kira.safetensors:0.8')
        ($mixed.FinalLatents.Data -join ',') | Should -Be $latents
        # Names may hold subfolders; $env:MNEMOSYNE_LORA_PATH stands in for -LoraFolder.
        New-Item -ItemType Directory "$TestDrive/loras/characters" -Force | Out-Null
        Copy-Item (Join-Path $loraB 'kira.safetensors') "$TestDrive/loras/characters/kira.safetensors"
        Copy-Item (Join-Path $loraB 'film.safetensors') "$TestDrive/loras/film.safetensors"
        $env:MNEMOSYNE_LORA_PATH = "$TestDrive/loras"
        try { $fromEnv = New-MnemosyneScene @settings -Prompt "<lora:characters/kira:0.8>$($settings.Prompt)<lora:film:-0.5>" }
        finally { Remove-Item Env:MNEMOSYNE_LORA_PATH }
        ($fromEnv.FinalLatents.Data -join ',') | Should -Be $latents
        # A1111 reads the tags in the prompt only: in the negative prompt one is text, and names no file.
        $negative = New-MnemosyneScene @settings -NegativePrompt "$($settings.NegativePrompt) <lora:nowhere:1>" -Lora (Join-Path $loraB 'kira.safetensors:0.8'), (Join-Path $loraB 'film.safetensors:-0.5')
        $negative.NegativePrompt | Should -BeLike '*<lora:nowhere:1>'
        ($negative.FinalLatents.Data -join ',') | Should -Not -Be $latents
    }

    # The other bad LoRAs (weights, missing files, other kinds of file) are in BadInput.Tests.ps1.
    It 'refuses an entry without a path as InvalidArgument' {
        New-MnemosyneScene 'a cat' -Seed 1 @tiny -Lora @{ Weight = 1 } -ErrorVariable failed -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $failed[0].FullyQualifiedErrorId | Should -BeLike 'InvalidLora,*'
    }
}

Describe 'A scene''s LoRAs read back from its PNG' {
    BeforeAll {
        $script:fused = New-MnemosyneScene @settings -Lora (Join-Path $loraB 'kira.safetensors:0.8'), (Join-Path $loraB 'film.safetensors:-0.5')
        $script:png = Join-Path $TestDrive 'with-loras.png'
        $fused | Save-MnemosyneImage -Path $png
    }

    It 'finds them in -LoraFolder, checked by their short hashes, and the settings piped on make the same scene' {
        $read = Get-MnemosyneSceneSetting $png -LoraFolder $loraB -WarningVariable warnings
        $warnings | Should -BeNullOrEmpty
        $read.Loras.Path | Should -Be (Join-Path $loraB 'kira.safetensors'), (Join-Path $loraB 'film.safetensors')
        $read.Loras.Weight | Should -Be ([float[]](0.8, -0.5))
        $again = $read | New-MnemosyneScene -Reference $kira
        $again.Loras.Hash | Should -Be $fused.Loras.Hash
        [Convert]::ToHexString($again.Image.Rgb) | Should -Be ([Convert]::ToHexString($fused.Image.Rgb))
        ($again.FinalLatents.Data -join ',') | Should -Be ($fused.FinalLatents.Data -join ',')
    }

    It 'takes $env:MNEMOSYNE_LORA_PATH without -LoraFolder, and warns that the LoRAs are missing without either' {
        $env:MNEMOSYNE_LORA_PATH = $loraB
        try { (Get-MnemosyneSceneSetting $png).Loras.Count | Should -Be 2 }
        finally { Remove-Item Env:MNEMOSYNE_LORA_PATH }
        $bare = Get-MnemosyneSceneSetting $png -WarningVariable warnings -WarningAction SilentlyContinue
        $bare.Loras | Should -BeNullOrEmpty
        "$warnings" | Should -Match 'made with the LoRAs kira, film; give -LoraFolder'
    }

    It 'refuses a file under the LoRA''s name whose hash differs, and a missing one, as one error each that names it' {
        $other = New-Item -ItemType Directory -Force (Join-Path $TestDrive 'other-loras')
        Copy-Item (Join-Path $loraB 'film.safetensors') (Join-Path $other 'kira.safetensors')
        Copy-Item (Join-Path $loraB 'film.safetensors') (Join-Path $other 'film.safetensors')
        Get-MnemosyneSceneSetting $png -LoraFolder $other -ErrorVariable failures -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $failures.Count | Should -Be 1
        $failures[0].FullyQualifiedErrorId | Should -BeLike 'LoraHashMismatch,*'
        $failures[0].CategoryInfo.Category | Should -Be 'InvalidData'
        "$($failures[0])" | Should -Match "kira\.safetensors is not the LoRA 'kira' the scene was made with: its short hash is [0-9a-f]{12}, the scene's $($fused.Loras[0].Hash)"
        Remove-Item (Join-Path $other 'kira.safetensors')
        Get-MnemosyneSceneSetting $png -LoraFolder $other -ErrorVariable failures -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
        $failures.Count | Should -Be 1
        $failures[0].FullyQualifiedErrorId | Should -BeLike 'LoraNotFound,*'
        $failures[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
        "$($failures[0])" | Should -Match "made with the LoRA 'kira', but the LoRA folder .* has no kira\.safetensors"
    }

    It 'keeps an A1111 text''s lora tags in the prompt, checks their hashes, and resolves them through the folder it passes on' {
        $text = '<lora:kira:0.8><lora:film:-0.5>' + ($fused.ParametersText() -replace ', Lora weights: "[^"]*"', '')
        $read = Get-MnemosyneSceneSetting -Parameters $text -LoraFolder $loraB
        $read.Prompt | Should -BeLike '<lora:kira:0.8><lora:film:-0.5>*'
        $read.Loras | Should -BeNullOrEmpty
        $read.LoraFolder | Should -Be ([IO.Path]::TrimEndingDirectorySeparator($loraB))
        $again = $read | New-MnemosyneScene -Reference $kira
        $again.Prompt | Should -Be $fused.Prompt
        ($again.FinalLatents.Data -join ',') | Should -Be ($fused.FinalLatents.Data -join ',')
        $wrong = Get-MnemosyneSceneSetting -Parameters ($text -replace 'kira: [0-9a-f]{12}', 'kira: 0123456789ab') -LoraFolder $loraB -ErrorVariable failures -ErrorAction SilentlyContinue
        $wrong | Should -BeNullOrEmpty
        $failures[0].FullyQualifiedErrorId | Should -BeLike 'LoraHashMismatch,*'
    }
}
