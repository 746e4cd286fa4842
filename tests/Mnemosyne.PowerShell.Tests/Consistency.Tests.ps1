BeforeAll {
    . $PSScriptRoot/Common.ps1
    Import-Mnemosyne
}

Describe 'Measure-MnemosyneConsistency parameter sets' {
    BeforeAll { $script:command = Get-Command Measure-MnemosyneConsistency }

    It 'has a Scene set (default) and a Path set, both needing -Reference' {
        $command.DefaultParameterSet | Should -Be 'Scene'
        $command.ParameterSets.Name | Sort-Object | Should -Be 'Path', 'Scene'
        foreach ($set in $command.ParameterSets) {
            ($set.Parameters | Where-Object Name -EQ 'Reference').IsMandatory | Should -BeTrue
        }
    }

    It 'takes scenes from the pipeline and files by their FullName' {
        $command.Parameters['Scene'].ParameterSets['Scene'].ValueFromPipeline | Should -BeTrue
        $command.Parameters['Path'].ParameterSets['Path'].ValueFromPipelineByPropertyName | Should -BeTrue
        $command.Parameters['Path'].Aliases | Should -Contain 'FullName'
    }

    It 'reports a missing picture as ObjectNotFound before it needs an engine' {
        $missing = Join-Path $TestDrive 'missing.png'
        Measure-MnemosyneConsistency -Reference (New-FakeReference) -Path $missing -ErrorVariable failures -ErrorAction SilentlyContinue |
            Should -BeNullOrEmpty
        $failures[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
        $failures[0].TargetObject | Should -Be $missing
    }

    It 'reports a file that is not a picture as InvalidData before it needs an engine' {
        $text = Join-Path $TestDrive 'notes.png'
        Set-Content $text 'not a picture'
        Measure-MnemosyneConsistency -Reference (New-FakeReference) -Path $text -ErrorVariable failures -ErrorAction SilentlyContinue |
            Should -BeNullOrEmpty
        $failures[0].CategoryInfo.Category | Should -Be 'InvalidData'
        $failures[0].TargetObject | Should -Be $text
    }
}

Describe 'Measuring with the tiny checkpoint' {
    BeforeAll {
        $script:folder = Join-Path $TestDrive 'measure'
        $null = New-Item -ItemType Directory $folder
        Open-TestEngine
        $script:kira = Import-MnemosyneReference $referenceImage -Name 'kira'
    }

    It 'finds the reference picture itself identical to the reference' {
        $result = Measure-MnemosyneConsistency -Reference $kira -Path $referenceImage
        $result | Should -BeOfType ([Mnemosyne.PowerShell.ConsistencyResult])
        $result.Reference | Should -Be 'kira'
        $result.Path | Should -Be $referenceImage
        $result.Similarity | Should -BeGreaterThan 0.9999
    }

    It 'measures piped scenes, with their prompt and seed' {
        $results = 'on a beach', 'in a forest' | New-MnemosyneScene -Reference $kira -Seed 4 @tiny | Measure-MnemosyneConsistency -Reference $kira
        $results.Count | Should -Be 2
        $results.Prompt | Should -Be 'on a beach', 'in a forest'
        $results.Seed | Select-Object -Unique | Should -Be 4
        foreach ($result in $results) {
            $result.Similarity | Should -BeGreaterOrEqual -1
            $result.Similarity | Should -BeLessOrEqual 1
            $result.Path | Should -BeNullOrEmpty
        }
    }

    It 'gives a saved PNG the same score as the scene it holds' {
        $scene = New-MnemosyneScene 'a portrait' -Reference $kira -Seed 6 @tiny
        $file = $scene | Save-MnemosyneImage -Path (Join-Path $folder 'portrait.png') -PassThru
        $inMemory = $scene | Measure-MnemosyneConsistency -Reference $kira
        $saved = Measure-MnemosyneConsistency $kira $file.Path
        $saved.Similarity | Should -Be $inMemory.Similarity
    }

    It 'measures files piped from Get-ChildItem, one result each' {
        'one', 'two' | ForEach-Object { New-MnemosyneScene $_ -Seed 8 @tiny } | Save-MnemosyneImage -Directory $folder -NameTemplate 'piped-{prompt}.png'
        $results = Get-ChildItem $folder -Filter 'piped-*.png' | Measure-MnemosyneConsistency -Reference $kira
        ($results.Path | ForEach-Object { Split-Path -Leaf $_ }) | Should -Be 'piped-one.png', 'piped-two.png'
    }

    It 'carries each scene and its reference weight, so that the likest can be saved' {
        $results = 0, 0.5, 1 | ForEach-Object { New-MnemosyneScene 'on a beach' -Reference $kira -ReferenceWeight $_ -Seed 4 @tiny } |
            Measure-MnemosyneConsistency -Reference $kira
        $results.ReferenceWeight | Should -Be 0, 0.5, 1
        foreach ($result in $results) {
            $result.Scene | Should -BeOfType ([Mnemosyne.Engine.Pipeline.Scene])
            $result.Scene.ReferenceWeight | Should -Be $result.ReferenceWeight
            $result.Seed | Should -Be $result.Scene.Seed
        }
        $best = $results | Sort-Object Similarity -Descending | Select-Object -First 1
        $saved = $results | Sort-Object Similarity -Descending | Select-Object -First 1 | ForEach-Object Scene |
            Save-MnemosyneImage -Directory $folder -NameTemplate 'best' -PassThru
        [IO.File]::ReadAllBytes($saved.Path) | Should -Be $best.Scene.ToPng()
    }

    It 'shows each row''s reference weight in its table (help example 3)' {
        $table = 0, 0.5, 1 | ForEach-Object { New-MnemosyneScene 'Kira in the rain' -Reference $kira -ReferenceWeight $_ -Seed 1 @tiny } |
            Measure-MnemosyneConsistency -Reference $kira | Format-Table | Out-String -Width 200
        $table | Should -Match 'Reference\s+Similarity\s+Seed\s+Weight\s+Picture'
        foreach ($weight in '0', '0.5', '1') { $table | Should -Match "kira\s+-?[0-9.]+\s+1\s+$([regex]::Escape($weight))\s+Kira in the rain" }
    }

    It 'reads the prompt, seed and reference weight of a saved PNG from its settings' {
        $scene = New-FakeScene -Prompt "a fox,`nin the snow" -NegativePrompt 'blurry' -Seed 123456789012 -Width 16 -Height 16 -ReferenceName 'kira'
        $path = ($scene | Save-MnemosyneImage -Path (Join-Path $folder 'fox.png') -PassThru).Path
        $result = Measure-MnemosyneConsistency $kira $path
        $result.Path | Should -Be $path
        $result.Prompt | Should -Be "a fox,`nin the snow"
        $result.Seed | Should -Be 123456789012
        $result.ReferenceWeight | Should -Be ([float]0.6)
        $result.Scene | Should -BeNullOrEmpty -Because 'a file is measured, not a scene'
    }

    It 'leaves prompt, seed and weight empty for a picture without settings' {
        $result = Measure-MnemosyneConsistency $kira $referenceImage
        $result.Prompt | Should -BeNullOrEmpty
        $result.Seed | Should -BeNullOrEmpty
        $result.ReferenceWeight | Should -BeNullOrEmpty
    }

    It 'refuses a reference made by another image encoder, naming both' {
        $foreign = New-FakeReference -Name 'foreign' -Embedding ([float[]]::new($kira.Embedding.Length))
        $scene = New-MnemosyneScene 'a cat' -Seed 1 @tiny
        { $scene | Measure-MnemosyneConsistency -Reference $foreign -ErrorAction Stop } |
            Should -Throw -ErrorId 'ReferenceFromOtherEncoder,*' -ExpectedMessage "*clip-vit-h-test*$($kira.Encoder)*"
        $Error[0].CategoryInfo.Category | Should -Be 'InvalidArgument'
        ($scene | Measure-MnemosyneConsistency -Reference $kira).Reference | Should -Be 'kira' -Because 'the session stays usable'
    }
}
