# Invoke-MnemosyneBatch -LocalProcess: engine processes on this machine, each an out-of-process runspace as Start-Job
# makes them (no SSH), opened with this session's engine files, their own thread count and this engine's saved sessions.
Describe 'Invoke-MnemosyneBatch with local engine processes' {
    BeforeAll {
        . $PSScriptRoot/Common.ps1
        Import-Mnemosyne
        Open-TestEngine
        $script:rows = 1..6 | ForEach-Object { [pscustomobject]@{ Prompt = "scene $_ of a harbour"; Seed = 2000 + $_ } }

        # The batch's files, and the processes that said they were ready (from its verbose messages).
        function Invoke-LocalBatch([string] $Name, [int] $Processes, [int] $Threads) {
            $folder = New-Item -ItemType Directory (Join-Path $TestDrive $Name)
            $output = Invoke-MnemosyneBatch $rows -LocalProcess $Processes -ThreadsPerProcess $Threads -Directory $folder -Setting $tiny -ErrorAction Stop -Verbose 4>&1
            [pscustomobject]@{
                Files     = @($output | Where-Object { $_ -is [IO.FileInfo] })
                Processes = @($output | Where-Object { $_ -is [Management.Automation.VerboseRecord] -and $_.Message -match 'is ready: .*process (\d+),' } |
                        ForEach-Object { [int]($_.Message -replace '.*process (\d+),.*', '$1') })
            }
        }
    }

    It 'makes with 2 processes of 1 thread byte for byte what 1 process of 2 threads makes, and ends its processes' {
        $two = Invoke-LocalBatch 'two-by-one' -Processes 2 -Threads 1
        $one = Invoke-LocalBatch 'one-by-two' -Processes 1 -Threads 2

        $two.Processes.Count | Should -Be 2
        @($two.Processes | Sort-Object -Unique).Count | Should -Be 2 -Because 'each is a process of its own'
        $two.Processes | Should -Not -Contain $PID
        $one.Processes.Count | Should -Be 1
        foreach ($id in $two.Processes + $one.Processes) {
            Wait-Until -TimeoutSeconds 30 { -not (Get-Process -Id $id -ErrorAction SilentlyContinue) } | Should -BeTrue -Because "process $id ends with its batch"
        }
        $two.Files.Count | Should -Be 6
        ($two.Files.Name | Sort-Object) | Should -Be ($one.Files.Name | Sort-Object)
        foreach ($file in $two.Files) {
            $same = $one.Files | Where-Object Name -EQ $file.Name
            [IO.File]::ReadAllBytes($file.FullName) | Should -Be ([IO.File]::ReadAllBytes($same.FullName)) -Because "$($file.Name) is the same scene"
        }
    }

    It 'finishes the batch in the other process when one is killed mid-batch, with no scene twice, and leaves no process' {
        $folder = New-Item -ItemType Directory (Join-Path $TestDrive 'killed')
        $test = $PID
        # Kills one engine process (a child pwsh in server mode) the moment the first picture is saved, while its hand of three is unfinished.
        $killer = Start-ThreadJob {
            while (-not (Get-ChildItem $using:folder -Filter *.png)) { Start-Sleep -Milliseconds 10 }
            $victim = Get-Process | Where-Object { $_.Parent.Id -eq $using:test -and $_.CommandLine -match ' -s ' } | Select-Object -First 1
            Stop-Process -Id $victim.Id -Force
            $victim.Id
        }
        try {
            $output = Invoke-MnemosyneBatch $rows -LocalProcess 2 -ThreadsPerProcess 1 -ThrottleLimit 3 -Directory $folder -Setting $tiny `
                -WarningVariable warnings -WarningAction SilentlyContinue -ErrorAction Stop -Verbose 4>&1
        }
        finally { $victim = $killer | Wait-Job -Timeout 60 | Receive-Job; $killer | Remove-Job -Force }

        $victim | Should -Not -BeNullOrEmpty
        @($warnings | Where-Object { "$_" -match 'local engine process \d .*failed.*unfinished scene' }).Count | Should -Be 1
        $files = @($output | Where-Object { $_ -is [IO.FileInfo] })
        $files.Count | Should -Be 6
        $saved = Get-ChildItem $folder -Force
        ($saved.Name | Sort-Object) | Should -Be ($files.Name | Sort-Object) -Because 'no temporary or partial file is left'
        ($saved.Name | ForEach-Object { $_.Split('-')[0] } | Sort-Object -Unique).Count | Should -Be 6 -Because 'no scene is made twice'
        foreach ($file in $files) {
            [IO.File]::ReadAllBytes($file.FullName) | Should -Be ([IO.File]::ReadAllBytes((Join-Path $TestDrive "one-by-two/$($file.Name)"))) -Because "$($file.Name) is the same scene"
        }
        $processes = @($output | Where-Object { $_ -is [Management.Automation.VerboseRecord] -and $_.Message -match 'is ready: .*process (\d+),' } |
                ForEach-Object { [int]($_.Message -replace '.*process (\d+),.*', '$1') })
        $processes | Should -Contain $victim
        foreach ($id in $processes) {
            Wait-Until -TimeoutSeconds 30 { -not (Get-Process -Id $id -ErrorAction SilentlyContinue) } | Should -BeTrue -Because "process $id ends with its batch"
        }
    }

    It 'opens a known model from the hub cache by its name in each process, fp16 files and all' {
        Save-HubEnvironment
        try {
            $files = New-TinyModelFiles -Root (Join-Path $TestDrive 'generated')
            $cache = New-FakeHubCache -Root (Join-Path $TestDrive 'hub') -From $files -Include 'sdxl-base-1.0' -Fp16Names
            Use-HubCache $cache
            Open-MnemosyneEngine -Model sdxl-base-1.0 -ErrorAction Stop
            $folder = New-Item -ItemType Directory (Join-Path $TestDrive 'by-name')

            $made = Invoke-MnemosyneBatch $rows[0] -LocalProcess 1 -Directory $folder -Setting $tiny -ErrorAction Stop

            @($made).Count | Should -Be 1 -Because 'the process opened sdxl-base-1.0 as this session did, not its snapshot folder under another name'
            $here = New-MnemosyneScene $rows[0].Prompt -Seed $rows[0].Seed @tiny
            [IO.File]::ReadAllBytes($made.FullName) | Should -Be ($here.ToPng())
        }
        finally {
            Restore-HubEnvironment
            Open-MnemosyneEngine -Path $modelPath -ErrorAction Stop
        }
    }
}
