# The tiny decoder (-Decoder Tiny) and live previews (-PreviewPath) on a generated tiny checkpoint and tiny
# decoder: these never skip. The bad inputs are in BadInput.Tests.ps1.
BeforeAll {
    . $PSScriptRoot/Common.ps1
    Import-Mnemosyne
    Save-HubEnvironment
    Use-HubCache
    $script:checkpoint = Join-Path $TestDrive 'tiny'
    $script:taesd = Join-Path $TestDrive 'taesd'
    [Mnemosyne.Testing.RandomCheckpoint]::Write($checkpoint, [Mnemosyne.Testing.CheckpointShape]::Tiny, 3)
    [Mnemosyne.Testing.RandomCheckpoint]::WriteTinyDecoder($taesd, [Mnemosyne.Testing.RandomCheckpoint]::TinyDecoderShape, 4)
    Open-MnemosyneEngine $checkpoint -TinyDecoderPath $taesd -ErrorAction Stop
    $script:size = @{ Width = 96; Height = 64 }

    function Read-Png([string] $Path) { [Mnemosyne.Engine.Imaging.SafeImageDecoder]::Default.Decode($Path) }
    function Get-MaxLevelDifference($A, $B) {
        $max = 0
        for ($i = 0; $i -lt $A.Rgb.Length; $i++) { $max = [Math]::Max($max, [Math]::Abs([int]$A.Rgb[$i] - [int]$B.Rgb[$i])) }
        $max
    }
}

AfterAll {
    Close-MnemosyneEngine
    Restore-HubEnvironment
}

Describe 'Open-MnemosyneEngine -TinyDecoderPath' {
    It 'shows the tiny decoder on the engine' {
        $info = Get-MnemosyneEngine
        $info.TinyDecoderPath | Should -Be $taesd
        $info.SupportsTinyDecoder | Should -BeTrue
        ($info | Format-List | Out-String) | Should -Match 'TinyDecoderPath\s+:\s+.*taesd'
    }
}

Describe 'New-MnemosyneScene -Decoder' {
    It 'binds -Decoder from a property of piped objects and completes it with Full, Tiny and Tiled' {
        (Get-Command New-MnemosyneScene).Parameters['Decoder'].ParameterSets['__AllParameterSets'].ValueFromPipelineByPropertyName | Should -BeTrue
        $line = 'New-MnemosyneScene a -Decoder '
        (TabExpansion2 $line $line.Length).CompletionMatches.CompletionText | Should -Be 'Full', 'Tiled', 'Tiny'
    }

    It 'decodes the same final latents with the tiny decoder, and records it' {
        $full = New-MnemosyneScene 'a lighthouse' -Seed 9 -Steps 3 @size
        $tiny = New-MnemosyneScene 'a lighthouse' -Seed 9 -Steps 3 -Decoder Tiny @size
        $full.Decoder | Should -Be 'Full'
        $tiny.Decoder | Should -Be 'Tiny'
        $tiny.FinalLatents.Data | Should -Be $full.FinalLatents.Data
        [Convert]::ToHexString($tiny.Image.Rgb) | Should -Not -Be ([Convert]::ToHexString($full.Image.Rgb))
        ($tiny | Format-List | Out-String) | Should -Match 'Decoder\s+:\s+Tiny'
        ($full | Format-List | Out-String) | Should -Not -Match 'Decoder'
        $file = Join-Path $TestDrive 'tiny.png'
        $tiny | Save-MnemosyneImage -Path $file
        ([Mnemosyne.Engine.Imaging.PngFile]::ReadText($file) | Where-Object Keyword -EQ 'parameters').Text | Should -Match ', Decoder: Tiny, '
    }

    It 'decodes in tiles with -Decoder Tiled: the Full picture within one tile, seams beyond, recorded and remade' {
        # The tiny checkpoint's VAE tiles are 128 pixels: 96×64 is one tile, 192×64 two.
        $full = New-MnemosyneScene 'a lighthouse' -Seed 9 -Steps 2 @size
        $oneTile = New-MnemosyneScene 'a lighthouse' -Seed 9 -Steps 2 -Decoder Tiled @size
        [Convert]::ToHexString($oneTile.Image.Rgb) | Should -Be ([Convert]::ToHexString($full.Image.Rgb))
        $wideFull = New-MnemosyneScene 'a lighthouse' -Seed 9 -Steps 2 -Width 192 -Height 64
        $wideTiled = New-MnemosyneScene 'a lighthouse' -Seed 9 -Steps 2 -Width 192 -Height 64 -Decoder Tiled
        $wideTiled.FinalLatents.Data | Should -Be $wideFull.FinalLatents.Data
        [Convert]::ToHexString($wideTiled.Image.Rgb) | Should -Not -Be ([Convert]::ToHexString($wideFull.Image.Rgb))
        $wideTiled.ParametersText() | Should -Match ', Decoder: Tiled'
        [Convert]::ToHexString(($wideTiled | New-MnemosyneScene).Image.Rgb) | Should -Be ([Convert]::ToHexString($wideTiled.Image.Rgb))
    }

    It 'remakes a Tiny scene piped back in with the tiny decoder' {
        $tiny = New-MnemosyneScene 'a lighthouse' -Seed 9 -Steps 2 -Decoder Tiny @size
        $again = $tiny | New-MnemosyneScene
        $again.Decoder | Should -Be 'Tiny'
        [Convert]::ToHexString($again.Image.Rgb) | Should -Be ([Convert]::ToHexString($tiny.Image.Rgb))
    }
}

Describe 'New-MnemosyneScene -PreviewPath' {
    It 'writes the preview as the scene forms, names it in the progress, and ends with the final picture' {
        $preview = Join-Path $TestDrive 'watch/preview.png'
        $null = New-Item -ItemType Directory (Split-Path $preview) -Force
        $run = Invoke-InRunspace { param($path) New-MnemosyneScene 'a lighthouse' -Seed 9 -Steps 5 -Width 96 -Height 64 -Decoder Tiny -PreviewPath $path -PreviewEvery 2 } -ArgumentList $preview
        $run.Errors | Should -BeNullOrEmpty
        $scene = $run.Output[0]
        $steps = @($run.Progress | Where-Object StatusDescription -Match '^Step')
        $steps.Count | Should -Be 5
        $steps.CurrentOperation | Should -Be @(
            'a lighthouse', "Preview of step 2: $preview", "Preview of step 2: $preview", "Preview of step 4: $preview", "Preview of step 5: $preview")
        $picture = Read-Png $preview
        $picture.Width, $picture.Height | Should -Be 96, 64
        Get-MaxLevelDifference $picture $scene.Image | Should -BeLessOrEqual 1 -Because 'the last preview is the tiny decoder''s picture of the final estimate'
        (Get-ChildItem (Split-Path $preview) -Force).Name | Should -Be 'preview.png' -Because 'each preview replaces the last atomically'
    }

    It 'replaces an existing file, and shows the tiny decoder''s picture while the scene decodes with the VAE' {
        $preview = Join-Path $TestDrive 'existing.png'
        Set-Content $preview 'an old preview'
        $scene = New-MnemosyneScene 'a lighthouse' -Seed 9 -Steps 2 -PreviewPath $preview @size
        $scene.Decoder | Should -Be 'Full'
        $tiny = New-MnemosyneScene 'a lighthouse' -Seed 9 -Steps 2 -Decoder Tiny @size
        Get-MaxLevelDifference (Read-Png $preview) $tiny.Image | Should -BeLessOrEqual 1
    }

    It 'Ctrl+C while previews are drawn: stopped, the last whole preview kept, no temporary file, and the engine goes on' {
        $folder = New-Item -ItemType Directory (Join-Path $TestDrive 'stopped-preview')
        $preview = Join-Path $folder 'preview.png'
        $ps = [powershell]::Create()
        try {
            $null = $ps.AddScript("Import-Module '$manifest'; New-MnemosyneScene 'a slow lighthouse' -Seed 1 -Steps 50 -Width 512 -Height 512 -PreviewPath '$preview'")
            $running = $ps.BeginInvoke()
            Wait-Until { @($ps.Streams.Progress | Where-Object CurrentOperation -Like 'Preview of step*').Count -gt 0 -or $running.IsCompleted } | Should -BeTrue
            $ps.Stop()
            $ps.InvocationStateInfo.State | Should -Be 'Stopped'
        }
        finally { $ps.Dispose() }
        $picture = Read-Png $preview
        $picture.Width, $picture.Height | Should -Be 512, 512
        (Get-ChildItem $folder -Force).Name | Should -Be 'preview.png'
        (New-MnemosyneScene 'a cat' -Seed 1 -Steps 1 @size).Image.Width | Should -Be 96
    }
}
