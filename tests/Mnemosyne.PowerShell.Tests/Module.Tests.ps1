BeforeAll {
    . $PSScriptRoot/Common.ps1
    $script:cmdlets = @(
        'Open-MnemosyneEngine', 'Get-MnemosyneEngine', 'Close-MnemosyneEngine',
        'Import-MnemosyneReference', 'Export-MnemosyneReference',
        'New-MnemosyneScene', 'Save-MnemosyneImage', 'Measure-MnemosyneConsistency', 'Get-MnemosyneSceneSetting',
        'Get-MnemosyneModel', 'Install-MnemosyneModel', 'Invoke-MnemosyneBatch'
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
        (Get-Command Save-MnemosyneImage).OutputType.Type | Should -Be ([Mnemosyne.Engine.Pipeline.Scene])
        (Get-Command Export-MnemosyneReference).OutputType.Type | Should -Be ([IO.FileInfo])
        (Get-Command Invoke-MnemosyneBatch).OutputType.Type | Should -Be ([IO.FileInfo])
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
        'Get-MnemosyneModel', 'Install-MnemosyneModel', 'Invoke-MnemosyneBatch'
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
        'Get-MnemosyneModel', 'Install-MnemosyneModel', 'Invoke-MnemosyneBatch'
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

    It '<_> has an online help URI, to its entry in the README''s Commands section' -ForEach @(
        'Open-MnemosyneEngine', 'Get-MnemosyneEngine', 'Close-MnemosyneEngine',
        'Import-MnemosyneReference', 'Export-MnemosyneReference',
        'New-MnemosyneScene', 'Save-MnemosyneImage', 'Measure-MnemosyneConsistency',
        'Get-MnemosyneModel', 'Install-MnemosyneModel'
    ) {
        $project = (Import-PowerShellDataFile $manifest).PrivateData.PSData.ProjectUri
        (Get-Command $_).HelpUri | Should -Be "$project/blob/main/README.md#$($_.ToLowerInvariant())"
        # GitHub's anchor for a heading is its text in lower case.
        Get-Content (Join-Path $repositoryRoot 'README.md') | Should -Contain "### $_"
    }

    It 'Get-Help -Online opens the command''s help URI' -Skip:(-not $IsLinux) {
        # .NET opens a URI on Linux through xdg-open from PATH: a stand-in records what it was given.
        $bin = New-Item -ItemType Directory -Force (Join-Path $TestDrive 'bin')
        $opened = Join-Path $TestDrive 'opened.txt'
        Set-Content (Join-Path $bin 'xdg-open') "#!/bin/sh`necho `"`$1`" >> '$opened'`n"
        chmod +x (Join-Path $bin 'xdg-open')
        $result = Invoke-SeparatePwsh -Environment @{ PATH = "$bin$([IO.Path]::PathSeparator)$env:PATH" } 'Get-Help Save-MnemosyneImage -Online'
        $result.ExitCode | Should -Be 0 -Because ($result.Output -join "`n")
        Wait-Until { Test-Path $opened } -TimeoutSeconds 10 | Should -BeTrue
        Get-Content $opened | Should -Be (Get-Command Save-MnemosyneImage).HelpUri
    }

    It 'supports Update-Help: the manifest names where releases publish help, and the built help installs' -Skip:$IsWindows {
        (Import-PowerShellDataFile $manifest).HelpInfoURI | Should -Match '^https://.*/$'
        $guid = (Import-PowerShellDataFile $manifest).GUID
        $helpOut = Join-Path $repositoryRoot 'out/help'
        Join-Path $helpOut "Mnemosyne_${guid}_HelpInfo.xml" | Should -Exist
        Join-Path $helpOut "Mnemosyne_${guid}_en-US_HelpContent.zip" | Should -Exist
        # Installed for the current user, under a temporary home, from the built files as a release would serve them.
        $userHome = (New-Item -ItemType Directory -Force (Join-Path $TestDrive 'home')).FullName
        $result = Invoke-SeparatePwsh -Environment @{ HOME = $userHome; XDG_DATA_HOME = $null } @"
Update-Help -Module Mnemosyne -SourcePath '$helpOut' -UICulture en-US -Scope CurrentUser
(Get-Help Save-MnemosyneImage).Synopsis
"@
        $result.ExitCode | Should -Be 0 -Because ($result.Output -join "`n")
        Join-Path $userHome '.local/share/powershell/Help/Mnemosyne/en-US/Mnemosyne.PowerShell.dll-Help.xml' | Should -Exist
        $result.Output | Should -Contain (Get-Help Save-MnemosyneImage).Synopsis
    }

    It 'completes -Name of <_> with the known models' -ForEach 'Install-MnemosyneModel', 'Get-MnemosyneModel' {
        $line = "$_ -Name sdxl-l"
        (TabExpansion2 $line $line.Length).CompletionMatches.CompletionText |
            Should -Be 'sdxl-lightning-2step-lora', 'sdxl-lightning-2step-unet', 'sdxl-lightning-4step-lora', 'sdxl-lightning-4step-unet', 'sdxl-lightning-8step-lora', 'sdxl-lightning-8step-unet'
        $line = "$_ ip-adapter"
        (TabExpansion2 $line $line.Length).CompletionMatches.CompletionText | Should -Be 'ip-adapter-image-encoder-vit-h', 'ip-adapter-plus-face-sdxl-vit-h', 'ip-adapter-plus-sdxl-vit-h', 'ip-adapter-sdxl-vit-h'
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
