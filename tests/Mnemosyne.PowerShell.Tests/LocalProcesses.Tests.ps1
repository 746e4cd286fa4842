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
}
