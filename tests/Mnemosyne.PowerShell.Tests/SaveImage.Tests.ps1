BeforeAll {
    . $PSScriptRoot/Common.ps1
    Import-Mnemosyne

    function Read-PngParameters([string] $Path) {
        $entry = [Mnemosyne.Engine.Imaging.PngFile]::ReadText($Path) | Where-Object Keyword -EQ 'parameters'
        $entry.Text
    }
}

Describe 'Save-MnemosyneImage -Path' {
    BeforeEach {
        $script:folder = Join-Path $TestDrive ([guid]::NewGuid())
        $null = New-Item -ItemType Directory $folder
    }

    It 'writes a PNG of the scene''s pixels with every setting in a parameters text chunk' {
        $scene = New-FakeScene -Prompt 'a cat, in a red hat' -NegativePrompt 'blurry' -Seed 987654321 -Width 16 -Height 8 -ReferenceName 'kira'
        $path = Join-Path $folder 'cat.png'
        $scene | Save-MnemosyneImage -Path $path

        $decoded = [Mnemosyne.Engine.Imaging.SafeImageDecoder]::Default.Decode($path)
        $decoded.Width | Should -Be 16
        $decoded.Height | Should -Be 8
        [Convert]::ToHexString($decoded.Rgb) | Should -Be ([Convert]::ToHexString($scene.Image.Rgb))
        $parameters = Read-PngParameters $path
        $parameters | Should -Be $scene.ParametersText()
        $parameters | Should -Match '^a cat, in a red hat\nNegative prompt: blurry\nSteps: 4, Sampler: Euler, Schedule type: Automatic, CFG scale: 5, Seed: 987654321, Size: 16x8, Model: tiny, Reference: kira, Reference weight: 0.6'
    }

    It 'resolves a relative path against the PowerShell location, not the process''s' {
        Push-Location $folder
        try { New-FakeScene | Save-MnemosyneImage -Path 'relative.png' }
        finally { Pop-Location }
        Join-Path $folder 'relative.png' | Should -Exist
    }

    It 'returns the scene with the file it was saved to as its Path with -PassThru, and nothing without it' {
        $path = Join-Path $folder 'a.png'
        New-FakeScene | Save-MnemosyneImage -Path $path | Should -BeNullOrEmpty
        $scene = New-FakeScene -Seed 21
        $saved = $scene | Save-MnemosyneImage -Path (Join-Path $folder 'b.png') -PassThru
        $saved | Should -BeOfType ([Mnemosyne.Engine.Pipeline.Scene])
        $saved.Path | Should -Be (Join-Path $folder 'b.png')
        $saved.Seed | Should -Be 21
        $saved.Image.Rgb | Should -Be $scene.Image.Rgb
        $scene.Path | Should -BeNullOrEmpty -Because 'the scene piped in is not changed'
        $saved | Format-List | Out-String | Should -Match ([regex]::Escape((Join-Path $folder 'b.png')))
    }

    It 'writes nothing with -WhatIf' {
        $path = Join-Path $folder 'whatif.png'
        New-FakeScene | Save-MnemosyneImage -Path $path -WhatIf
        $path | Should -Not -Exist
        Get-ChildItem $folder -Force | Should -BeNullOrEmpty
    }

    It 'overwrites with -Force' {
        $path = Join-Path $folder 'existing.png'
        Set-Content -Path $path -Value 'old'
        New-FakeScene -Seed 5 | Save-MnemosyneImage -Path $path -Force
        Read-PngParameters $path | Should -Match 'Seed: 5,'
    }

    It 'keeps going after one scene of a stream fails' {
        $path = Join-Path $folder 'taken.png'
        Set-Content -Path $path -Value 'taken'
        $saved = @(
            New-FakeScene -Seed 1
            New-FakeScene -Seed 2
        ) | ForEach-Object {
            $target = if ($_.Seed -eq 1) { $path } else { Join-Path $folder "$($_.Seed).png" }
            $_ | Save-MnemosyneImage -Path $target -PassThru -ErrorVariable +failures -ErrorAction SilentlyContinue
        }
        Split-Path -Leaf $saved.Path | Should -Be '2.png'
        $failures.Count | Should -Be 1
    }
}

Describe 'Save-MnemosyneImage -Directory' {
    BeforeEach {
        $script:folder = Join-Path $TestDrive ([guid]::NewGuid())
        $null = New-Item -ItemType Directory $folder
    }

    It 'names files {seed}-{prompt}.png by default' {
        $file = New-FakeScene -Prompt 'a cat in a red hat' -Seed 42 | Save-MnemosyneImage -Directory $folder -PassThru
        Split-Path -Leaf $file.Path | Should -Be '42-a-cat-in-a-red-hat.png'
    }

    It 'fills in every template value and adds the .png extension' {
        $scenes = (New-FakeScene -Seed 7 -ReferenceName 'Kira'), (New-FakeScene -Seed 8 -ReferenceName 'Kira')
        $files = $scenes | Save-MnemosyneImage -Directory $folder -NameTemplate '{index}_{reference}_{scheduler}_{steps}_{guidance}_{width}x{height}_{model}_{seed}' -PassThru
        $files.Path | Split-Path -Leaf | Should -Be '00001_Kira_Euler_4_5_8x8_tiny_7.png', '00002_Kira_Euler_4_5_8x8_tiny_8.png'
    }

    It 'names files by the {date} and {time} of saving' {
        $before = Get-Date
        $file = New-FakeScene -Seed 5 | Save-MnemosyneImage -Directory $folder -NameTemplate '{date}_{time}-{seed}' -PassThru
        $after = Get-Date
        Split-Path -Leaf $file.Path | Should -Match '^\d{4}-\d\d-\d\d_\d{6}-5\.png$'
        $saved = [datetime]::ParseExact((Split-Path -Leaf $file.Path).Substring(0, 17), 'yyyy-MM-dd_HHmmss', [cultureinfo]::InvariantCulture)
        $saved | Should -BeGreaterOrEqual $before.AddTicks(-($before.Ticks % [timespan]::TicksPerSecond))
        $saved | Should -BeLessOrEqual $after
    }

    It 'numbers {index} on from the highest number already in the folder, so a second run adds to it' {
        $first = 1..2 | ForEach-Object { New-FakeScene -Seed $_ } | Save-MnemosyneImage -Directory $folder -NameTemplate '{index}-{seed}-{prompt}' -PassThru
        $first.Path | Split-Path -Leaf | Should -Be '00001-1-a-cat-in-a-red-hat.png', '00002-2-a-cat-in-a-red-hat.png'
        # A gap and a file of another kind: the numbering goes on after the highest of this template's names.
        Rename-Item $first[1].Path '00007-2-a-cat-in-a-red-hat.png'
        Set-Content (Join-Path $folder '99999-notes.txt') 'not a picture'
        $second = 1..2 | ForEach-Object { New-FakeScene -Seed $_ } | Save-MnemosyneImage -Directory $folder -NameTemplate '{index}-{seed}-{prompt}' -PassThru
        $second.Path | Split-Path -Leaf | Should -Be '00008-1-a-cat-in-a-red-hat.png', '00009-2-a-cat-in-a-red-hat.png'
    }

    It 'finds {index} wherever the template puts it' {
        New-FakeScene -Seed 3 | Save-MnemosyneImage -Directory $folder -NameTemplate 'scene {seed} #{index}'
        $next = New-FakeScene -Seed 4 | Save-MnemosyneImage -Directory $folder -NameTemplate 'scene {seed} #{index}' -PassThru
        Split-Path -Leaf $next.Path | Should -Be 'scene-4-00002.png'
    }

    It 'creates a missing folder, and its parents' {
        $missing = Join-Path $folder 'new/deeper'
        $file = New-FakeScene -Seed 6 | Save-MnemosyneImage -Directory $missing -PassThru
        $file.Path | Should -Be (Join-Path $missing '6-a-cat-in-a-red-hat.png')
        $file.Path | Should -Exist
    }

    It 'reports the missing folder under -WhatIf and creates nothing' {
        $missing = Join-Path $folder 'new'
        $result = Invoke-SeparatePwsh ". '$PSScriptRoot/Common.ps1'; New-FakeScene -Seed 6 | Save-MnemosyneImage -Directory '$missing' -WhatIf"
        $result.ExitCode | Should -Be 0 -Because ($result.Output -join "`n")
        $text = $result.Output -join "`n"
        $text | Should -Match ([regex]::Escape("`"Create folder`" on target `"$missing`""))
        $text | Should -Match ([regex]::Escape("on target `"$(Join-Path $missing '6-a-cat-in-a-red-hat.png')`""))
        $missing | Should -Not -Exist
    }

    It 'makes a safe file name of prompt <Prompt>' -ForEach @(
        @{ Prompt = 'knight: "sword" / shield \ helm | a*b? <c>'; Name = '1-knight-sword-shield-helm-a-b-c.png' }
        @{ Prompt = 'café in Paris 🗼, 4K!'; Name = '1-café-in-Paris-4K.png' }
        @{ Prompt = '[wildcard] name'; Name = '1-wildcard-name.png' }
        @{ Prompt = "line one`nline two`ttab"; Name = '1-line-one-line-two-tab.png' }
        @{ Prompt = '...'; Name = '1.png' }
    ) {
        $file = New-FakeScene -Prompt $Prompt -Seed 1 | Save-MnemosyneImage -Directory $folder -PassThru
        Split-Path -Leaf $file.Path | Should -Be $Name
    }

    It 'avoids names that Windows reserves' {
        $file = New-FakeScene -Prompt 'con' | Save-MnemosyneImage -Directory $folder -NameTemplate '{prompt}' -PassThru
        Split-Path -Leaf $file.Path | Should -Be '_con.png'
    }

    It 'shortens a long prompt to keep the name usable' {
        $file = New-FakeScene -Prompt ('a very long prompt ' * 40) -Seed 3 | Save-MnemosyneImage -Directory $folder -PassThru
        (Split-Path -Leaf $file.Path).Length | Should -BeLessOrEqual 100
        Split-Path -Leaf $file.Path | Should -BeLike '3-a-very-long-prompt-a-very*.png'
    }

    It 'writes nothing with -WhatIf' {
        New-FakeScene | Save-MnemosyneImage -Directory $folder -WhatIf
        Get-ChildItem $folder -Force | Should -BeNullOrEmpty
    }

    It 'refuses to overwrite, naming the file' {
        New-FakeScene -Seed 9 | Save-MnemosyneImage -Directory $folder
        New-FakeScene -Seed 9 | Save-MnemosyneImage -Directory $folder -ErrorVariable failures -ErrorAction SilentlyContinue
        $failures[0].CategoryInfo.Category | Should -Be 'ResourceExists'
        $failures[0].TargetObject | Should -Be (Join-Path $folder '9-a-cat-in-a-red-hat.png')
    }

    It 'leaves no temporary files behind' {
        1..3 | ForEach-Object { New-FakeScene -Seed $_ } | Save-MnemosyneImage -Directory $folder
        (Get-ChildItem $folder -Force).Name | Sort-Object | Should -Be @('1-a-cat-in-a-red-hat.png', '2-a-cat-in-a-red-hat.png', '3-a-cat-in-a-red-hat.png')
    }

    It 'stops with InvalidArgument on a template value it does not know' {
        { New-FakeScene | Save-MnemosyneImage -Directory $folder -NameTemplate '{seed}-{colour}.png' -ErrorAction Stop } |
            Should -Throw -ErrorId 'InvalidNameTemplate,*' -ExpectedMessage '*{colour}*'
        $Error[0].CategoryInfo.Category | Should -Be 'InvalidArgument'
    }

    It 'refuses a template with a folder in it' {
        { New-FakeScene | Save-MnemosyneImage -Directory $folder -NameTemplate 'sub/{seed}.png' -ErrorAction Stop } |
            Should -Throw -ErrorId 'InvalidNameTemplate,*'
    }
}

Describe 'Save-MnemosyneImage parameter sets' {
    It 'has a Path set (default) and a Directory set' {
        $command = Get-Command Save-MnemosyneImage
        $command.DefaultParameterSet | Should -Be 'Path'
        $command.ParameterSets.Name | Sort-Object | Should -Be 'Directory', 'Path'
    }

    It 'does not accept -Path and -Directory together' {
        { New-FakeScene | Save-MnemosyneImage -Path (Join-Path $TestDrive 'x.png') -Directory $TestDrive } |
            Should -Throw -ErrorId 'AmbiguousParameterSet,*'
    }
}
