BeforeAll {
    . $PSScriptRoot/Common.ps1
    $script:cmdlets = @(
        'Open-MnemosyneEngine', 'Get-MnemosyneEngine', 'Close-MnemosyneEngine',
        'Import-MnemosyneReference', 'Export-MnemosyneReference',
        'New-MnemosyneScene', 'Save-MnemosyneImage', 'Measure-MnemosyneConsistency', 'Get-MnemosyneSceneSetting',
        'Get-MnemosyneModel', 'Install-MnemosyneModel'
    )
}

Describe 'The built module' {
    It 'has a valid manifest' {
        $info = Test-ModuleManifest -Path $manifest
        $info.Name | Should -Be 'Mnemosyne'
        $info.PowerShellVersion | Should -Be ([version]'7.4')
    }

    It 'imports from another working directory, as a user would' {
        Push-Location ([IO.Path]::GetTempPath())
        try {
            $module = Import-Module $manifest -PassThru -Force
            $module.Name | Should -Be 'Mnemosyne'
        }
        finally {
            Remove-Module Mnemosyne -ErrorAction SilentlyContinue
            Pop-Location
        }
    }
}

Describe 'The exported commands' {
    BeforeAll { Import-Mnemosyne }

    It 'are exactly the Mnemosyne cmdlets' {
        (Get-Command -Module Mnemosyne).Name | Sort-Object | Should -Be ($cmdlets | Sort-Object)
        (Get-Command -Module Mnemosyne).CommandType | Select-Object -Unique | Should -Be 'Cmdlet'
    }

    It 'use approved verbs only' {
        $approved = (Get-Verb).Verb
        foreach ($command in Get-Command -Module Mnemosyne) { $approved | Should -Contain $command.Verb }
    }

    It 'declare their output types' {
        (Get-Command New-MnemosyneScene).OutputType.Type | Should -Be ([Mnemosyne.Engine.Pipeline.Scene])
        (Get-Command Import-MnemosyneReference).OutputType.Type | Should -Be ([Mnemosyne.Engine.Pipeline.CharacterReference])
        (Get-Command Open-MnemosyneEngine).OutputType.Type | Should -Be ([Mnemosyne.PowerShell.MnemosyneEngineInfo])
        (Get-Command Get-MnemosyneEngine).OutputType.Type | Should -Be ([Mnemosyne.PowerShell.MnemosyneEngineInfo])
        (Get-Command Measure-MnemosyneConsistency).OutputType.Type | Should -Be ([Mnemosyne.PowerShell.ConsistencyResult])
        (Get-Command Save-MnemosyneImage).OutputType.Type | Should -Be ([IO.FileInfo])
        (Get-Command Export-MnemosyneReference).OutputType.Type | Should -Be ([IO.FileInfo])
        (Get-Command Get-MnemosyneSceneSetting).OutputType.Type | Should -Be ([Mnemosyne.Engine.Pipeline.SceneSettings])
    }

    It 'support -WhatIf and -Confirm where they write files' {
        foreach ($name in 'Save-MnemosyneImage', 'Export-MnemosyneReference') {
            (Get-Command $name).Parameters.Keys | Should -Contain 'WhatIf'
            (Get-Command $name).Parameters.Keys | Should -Contain 'Confirm'
        }
    }
}

Describe 'Help' {
    BeforeAll { Import-Mnemosyne }

    It '<_> has a synopsis, a description and at least one example' -ForEach @(
        'Open-MnemosyneEngine', 'Get-MnemosyneEngine', 'Close-MnemosyneEngine',
        'Import-MnemosyneReference', 'Export-MnemosyneReference',
        'New-MnemosyneScene', 'Save-MnemosyneImage', 'Measure-MnemosyneConsistency', 'Get-MnemosyneSceneSetting',
        'Get-MnemosyneModel', 'Install-MnemosyneModel'
    ) {
        $help = Get-Help $_ -Full
        $help.Synopsis | Should -Not -BeNullOrEmpty
        $help.Synopsis | Should -Not -Match '^\s*\w+-\w+\s*\['   # the generated stand-in is the syntax line
        ($help.Description.Text -join '') | Should -Not -BeNullOrEmpty
        @($help.Examples.Example).Count | Should -BeGreaterOrEqual 1
        foreach ($example in @($help.Examples.Example)) { $example.Code | Should -Match ([regex]::Escape($_)) }
    }

    It '<_> describes every parameter' -ForEach @(
        'Open-MnemosyneEngine', 'Import-MnemosyneReference', 'Export-MnemosyneReference',
        'New-MnemosyneScene', 'Save-MnemosyneImage', 'Measure-MnemosyneConsistency', 'Get-MnemosyneSceneSetting',
        'Get-MnemosyneModel', 'Install-MnemosyneModel'
    ) {
        $common = [System.Management.Automation.PSCmdlet]::CommonParameters + [System.Management.Automation.PSCmdlet]::OptionalCommonParameters
        $declared = (Get-Command $_).Parameters.Keys | Where-Object { $_ -notin $common }
        $help = Get-Help $_ -Full
        $described = @{}
        foreach ($parameter in @($help.Parameters.Parameter)) { $described[$parameter.Name] = ($parameter.Description.Text -join '') }
        foreach ($name in $declared) {
            $described.Keys | Should -Contain $name -Because "$_ -$name needs help"
            $described[$name] | Should -Not -BeNullOrEmpty -Because "$_ -$name needs a description"
        }
    }

    It 'includes the about_Mnemosyne topic' {
        $about = Get-Help about_Mnemosyne
        ($about | Out-String) | Should -Match 'Open-MnemosyneEngine'
        ($about | Out-String) | Should -Match 'New-MnemosyneScene'
    }
}

Describe 'Formatting' {
    BeforeAll { Import-Mnemosyne }

    It 'has a default table view and a list view for <_>' -ForEach @(
        'Mnemosyne.Engine.Pipeline.Scene', 'Mnemosyne.Engine.Pipeline.CharacterReference',
        'Mnemosyne.PowerShell.MnemosyneEngineInfo'
    ) {
        $controls = (Get-FormatData -TypeName $_).FormatViewDefinition | ForEach-Object { $_.Control.GetType().Name }
        $controls[0] | Should -Be 'TableControl' -Because 'the first view is the default'
        $controls | Should -Contain 'ListControl'
    }

    It 'has a table view for consistency results' {
        (Get-FormatData -TypeName Mnemosyne.PowerShell.ConsistencyResult).FormatViewDefinition[0].Control | Should -BeOfType ([System.Management.Automation.TableControl])
    }

    It 'shows a scene as a row with its settings, not its pixels' {
        $text = New-FakeScene -Prompt 'a lighthouse at dusk' -Seed 1234 -Width 16 -Height 8 | Format-Table | Out-String -Width 200
        $text | Should -Match 'Seed\s+Steps\s+Scheduler\s+Size'
        $text | Should -Match '1234\s+4\s+Euler\s+16x8'
        $text | Should -Match 'a lighthouse at dusk'
        $text | Should -Not -Match 'FinalLatents|Rgb'
    }

    It 'shows a reference with its name, image count, date and pictures' {
        $text = New-FakeReference -Name 'kira' | Format-Table | Out-String -Width 200
        $text | Should -Match 'kira\s+1\s+\d{4}-\d\d-\d\d'
        $text | Should -Match 'kira\.png'
    }
}
