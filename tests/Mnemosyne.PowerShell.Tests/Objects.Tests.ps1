BeforeAll {
    . $PSScriptRoot/Common.ps1
    Import-Mnemosyne

    # A scene's settings as JSON, without what differs between two makings of one scene (its time), what is compared
    # on its own, and what Receive-Job adds.
    function Get-Settings($Scene) {
        $Scene | Select-Object * -ExcludeProperty Elapsed, Image, FinalLatents, PSComputerName, RunspaceId, PSShowComputerName |
            ConvertTo-Json -Depth 3
    }
}

Describe 'A scene''s table columns as properties' {
    It 'names Size and Reference in Format-Table and Select-Object' {
        $scene = New-FakeScene -Seed 77 -Width 16 -Height 8 -ReferenceName 'kira'
        $scene | Format-Table Seed, Size, Reference | Out-String -Width 200 | Should -Match '77\s+16x8\s+kira'
        $selected = $scene | Select-Object Seed, Size, Reference
        $selected.Size.Width | Should -Be 16
        $selected.Size.Height | Should -Be 8
        $selected.Reference | Should -Be 'kira'
    }

    It 'sorts by Size as pixel counts, not as text' {
        $scenes = (New-FakeScene -Seed 1 -Width 16 -Height 16), (New-FakeScene -Seed 2 -Width 8 -Height 8), (New-FakeScene -Seed 3 -Width 24 -Height 4)
        ($scenes | Sort-Object Size).Seed | Should -Be 2, 3, 1
        ($scenes | Sort-Object Size -Descending).Seed | Should -Be 1, 3, 2
    }

    It 'has no Reference for a scene made without one' {
        (New-FakeScene).Reference | Should -BeNullOrEmpty
    }
}

Describe 'A scene as JSON' {
    It 'holds the settings and the sizes of pixels and latents, not their values' {
        $scene = New-FakeScene -Prompt 'a lighthouse' -Seed 5 -Width 64 -Height 64 -ReferenceName 'kira'
        $json = $scene | ConvertTo-Json
        $json.Length | Should -BeLessThan 3000 -Because 'every pixel was a JSON number: 133,664 characters for 64x64'
        $parsed = $json | ConvertFrom-Json
        $parsed.Prompt | Should -Be 'a lighthouse'
        $parsed.Seed | Should -Be 5
        $parsed.Reference | Should -Be 'kira'
        $parsed.Size.Width | Should -Be 64
        $parsed.Image.Width | Should -Be 64
        $parsed.Image.PSObject.Properties.Name | Should -Not -Contain 'Rgb'
        $parsed.FinalLatents.Shape | Should -Be 1, 4, 1, 1
        $parsed.FinalLatents.PSObject.Properties.Name | Should -Not -Contain 'Data'
    }

    It 'gives the PNG bytes only when asked, the same bytes Save-MnemosyneImage writes' {
        $scene = New-FakeScene -Seed 9 -Width 16 -Height 8
        $png = $scene.ToPng()
        $png[0..7] | Should -Be 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A
        $path = Join-Path $TestDrive 'topng.png'
        $scene | Save-MnemosyneImage -Path $path
        [IO.File]::ReadAllBytes($path) | Should -Be $png
    }
}

Describe 'A scene through serialisation' {
    It 'comes back from Export-Clixml as a Scene with its pixels and latents' {
        $scene = New-FakeScene -Prompt 'a fox' -NegativePrompt 'blurry' -Seed 11 -Width 16 -Height 8 -ReferenceName 'kira'
        $file = Join-Path $TestDrive 'scene.xml'
        $scene | Export-Clixml $file
        $back = Import-Clixml $file
        $back | Should -BeOfType ([Mnemosyne.Engine.Pipeline.Scene])
        Get-Settings $back | Should -Be (Get-Settings $scene)
        $back.Image.Rgb | Should -Be $scene.Image.Rgb
        $back.FinalLatents.Data | Should -Be $scene.FinalLatents.Data
        $back.FinalLatents.Shape | Should -Be $scene.FinalLatents.Shape
    }

    It 'comes back from Start-Job as a Scene that Save-MnemosyneImage saves as the scene made here' {
        Open-TestEngine
        $settings = @{ Prompt = 'a lighthouse at dusk'; Seed = 3; Width = 64; Height = 64; Steps = 2 }
        $job = Start-Job -ScriptBlock {
            param($Manifest, $ModelPath, $Settings)
            Import-Module $Manifest -ErrorAction Stop
            Open-MnemosyneEngine -Path $ModelPath -ErrorAction Stop
            New-MnemosyneScene @Settings
        } -ArgumentList $manifest, $modelPath, $settings
        try {
            $received = @($job | Wait-Job -Timeout 300 | Receive-Job -ErrorAction Stop)
            $job.State | Should -Be 'Completed'
        }
        finally { $job | Remove-Job -Force }
        $local = New-MnemosyneScene @settings

        $received.Count | Should -Be 1
        $received[0] | Should -BeOfType ([Mnemosyne.Engine.Pipeline.Scene])
        Get-Settings $received[0] | Should -Be (Get-Settings $local)
        $received[0].FinalLatents.Data | Should -Be $local.FinalLatents.Data
        $saved = $received[0] | Save-MnemosyneImage -Path (Join-Path $TestDrive 'from-job.png') -PassThru
        [IO.File]::ReadAllBytes($saved.Path) | Should -Be $local.ToPng()
    }
}
