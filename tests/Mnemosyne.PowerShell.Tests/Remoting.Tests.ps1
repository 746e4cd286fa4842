# Invoke-MnemosyneBatch over PowerShell remoting: an OpenSSH server of the test's own on 127.0.0.1 (a free port, a host
# key and a user key made in TestDrive, pwsh as its subsystem), and two sessions to it standing for two hosts.
BeforeDiscovery {
    $script:sshd = '/usr/sbin/sshd'
    $script:noSsh = if ($IsWindows) { 'the test runs OpenSSH as on Linux' }
    elseif (-not (Test-Path $sshd)) { "$sshd is missing (apt-get install openssh-server; .ci/run installs it)" }
    elseif (-not (Get-Command ssh, ssh-keygen -ErrorAction SilentlyContinue)) { 'the OpenSSH client (ssh, ssh-keygen) is missing' }
}

Describe 'Invoke-MnemosyneBatch over SSH remoting' -Skip:([bool]$noSsh) {
    BeforeAll {
        . $PSScriptRoot/Common.ps1
        Import-Mnemosyne
        Open-TestEngine

        # The server: loopback only, keys made here, the pwsh running these tests as its PowerShell subsystem.
        $ssh = New-Item -ItemType Directory (Join-Path $TestDrive 'ssh')
        foreach ($key in 'host_key', 'user_key') { ssh-keygen -q -t ed25519 -N '' -f (Join-Path $ssh $key) | Out-Null }
        Copy-Item (Join-Path $ssh 'user_key.pub') (Join-Path $ssh 'authorized_keys')
        $listener = [Net.Sockets.TcpListener]::new([Net.IPAddress]::Loopback, 0)
        $listener.Start(); $script:port = $listener.LocalEndpoint.Port; $listener.Stop()
        $subsystem = Join-Path $ssh 'pwsh-subsystem.sh'
        $pwsh = Get-PwshCommand
        $pwsh = ($pwsh | ForEach-Object { "'$_'" }) -join ' '
        Set-Content $subsystem "#!/bin/sh`nexec $pwsh -sshs -NoLogo -NoProfile`n"
        chmod +x $subsystem
        $config = Join-Path $ssh 'sshd_config'
        Set-Content $config @"
ListenAddress 127.0.0.1
Port $port
HostKey $ssh/host_key
PidFile $ssh/sshd.pid
AuthorizedKeysFile $ssh/authorized_keys
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin prohibit-password
Subsystem powershell $subsystem
"@
        # sshd wants its privilege-separation folder even when it runs one connection at a time.
        if (-not (Test-Path /run/sshd)) { New-Item -ItemType Directory /run/sshd | Out-Null }
        $script:server = Start-Process $sshd -ArgumentList '-D', '-e', '-f', $config -PassThru -RedirectStandardError (Join-Path $ssh 'sshd.log')
        $listening = Wait-Until -TimeoutSeconds 30 {
            if ($server.HasExited) { return $true }
            $client = [Net.Sockets.TcpClient]::new()
            try { $client.Connect([Net.IPAddress]::Loopback, $port); $true } catch { $false } finally { $client.Dispose() }
        }
        if (-not $listening -or $server.HasExited) { throw "sshd did not listen on 127.0.0.1:${port}: $(Get-Content (Join-Path $ssh 'sshd.log') -Raw)" }

        $script:sessionOptions = @{
            HostName = '127.0.0.1'; Port = $port; UserName = [Environment]::UserName; KeyFilePath = (Join-Path $ssh 'user_key')
            Options  = @{ StrictHostKeyChecking = 'no'; UserKnownHostsFile = (Join-Path $ssh 'known_hosts') }
        }
        # Engines the hosts open keep their optimised sessions with the tests', not in the user's cache.
        function New-TestSession {
            $session = New-PSSession @sessionOptions -ErrorAction Stop
            Invoke-Command $session { $env:XDG_CACHE_HOME = $using:env:XDG_CACHE_HOME }
            $session
        }
        $script:hostA = New-TestSession
        $script:hostB = New-TestSession
        $script:sessions = $hostA, $hostB

        # Twelve tiny scenes; half of them with seeds, the others drawn by the batch.
        $script:rows = 1..12 | ForEach-Object {
            [pscustomobject]@{ Prompt = "scene $_ of a lighthouse"; Seed = if ($_ % 2) { 1000 + $_ } else { $null } }
        }
        $script:batch = @{ Setting = $tiny; ModulePath = $manifest }

        # The scene of a batch's file made here instead, with the prompt and the seed its name records.
        function Get-LocalBytes([IO.FileInfo] $File, [string] $Folder) {
            $index, $seed = $File.Name.Split('-')[0, 1]
            $local = Join-Path $Folder $File.Name
            New-MnemosyneScene "scene $([int]$index) of a lighthouse" -Seed $seed @tiny | Save-MnemosyneImage -Path $local
            [IO.File]::ReadAllBytes($local)
        }
        function Get-RemotePid($Session) { Invoke-Command $Session { $PID } }
    }

    AfterAll {
        if (Get-Variable sessions -Scope Script -ErrorAction SilentlyContinue) { $sessions | Remove-PSSession -ErrorAction SilentlyContinue }
        if ($server -and -not $server.HasExited) { Stop-Process -Id $server.Id -Force; $server.WaitForExit(10000) | Out-Null }
    }

    It 'refuses a host whose engine has another checkpoint, and makes nothing there' {
        # Config B's shape and folder name from another seed: only the hash tells them apart.
        $other = Join-Path $TestDrive 'other/model'
        [Mnemosyne.Testing.RandomCheckpoint]::Write($other, [Mnemosyne.Testing.CheckpointShape]::Tiny, 7, $null)
        Invoke-Command $hostB { Import-Module $using:manifest; Open-MnemosyneEngine -Path $using:other }
        $folder = New-Item -ItemType Directory (Join-Path $TestDrive 'refused')

        $files = Invoke-MnemosyneBatch $rows -Session $hostB -Directory $folder @batch -ErrorVariable problems -ErrorAction SilentlyContinue

        $files | Should -BeNullOrEmpty
        $refusal = $problems | Where-Object { $_.FullyQualifiedErrorId -like 'ModelMismatch*' }
        @($refusal).Count | Should -Be 1
        $refusal.CategoryInfo.Category | Should -Be 'InvalidData'
        $refusal.TargetObject | Should -Be $hostB
        "$refusal" | Should -Match 'model hash'
        @($problems | Where-Object { $_.FullyQualifiedErrorId -like 'SceneNotMade*' }).Count | Should -Be 12
        Get-ChildItem $folder -Force | Should -BeNullOrEmpty
        Invoke-Command $hostB { Close-MnemosyneEngine }
    }

    It 'makes a 12-scene batch on two hosts, byte for byte the scenes made here' {
        $folder = New-Item -ItemType Directory (Join-Path $TestDrive 'batch')
        Invoke-Command $hostA { Get-Module Mnemosyne } | Should -BeNullOrEmpty -Because 'the batch imports the module on a host without it'

        $files = Invoke-MnemosyneBatch $rows -Session $sessions -Directory $folder @batch -ThrottleLimit 2 -ErrorAction Stop

        @($files).Count | Should -Be 12
        ($files.Name | Sort-Object) | Should -Be (Get-ChildItem $folder -Force).Name
        foreach ($i in 1..12) { @($files | Where-Object Name -Like ('{0:0000}-*-scene-{1}-of-a-lighthouse.png' -f $i, $i)).Count | Should -Be 1 }
        foreach ($i in 1, 3, 11) { $files.Name | Should -Contain ('{0:0000}-{1}-scene-{2}-of-a-lighthouse.png' -f $i, (1000 + $i), $i) }
        @($files.Session.InstanceId | Sort-Object -Unique).Count | Should -Be 2 -Because 'both hosts make scenes'
        $local = New-Item -ItemType Directory (Join-Path $TestDrive 'local')
        foreach ($file in $files) {
            [IO.File]::ReadAllBytes($file.FullName) | Should -Be (Get-LocalBytes $file $local) -Because "$($file.Name) is the scene made here"
        }
    }

    It 'makes nothing again when re-run on the same folder, though the unseeded scenes draw other seeds' {
        $folder = Join-Path $TestDrive 'batch'
        $before = Get-ChildItem $folder -Force | ForEach-Object { "$($_.Name) $($_.LastWriteTimeUtc.Ticks) $($_.Length)" }

        $files = Invoke-MnemosyneBatch $rows -Session $sessions -Directory $folder @batch -ErrorAction Stop

        $files | Should -BeNullOrEmpty
        Get-ChildItem $folder -Force | ForEach-Object { "$($_.Name) $($_.LastWriteTimeUtc.Ticks) $($_.Length)" } | Should -Be $before
    }

    It 'finishes the batch on the other host when one host is killed mid-batch, with no scene twice and no partial file' {
        $folder = New-Item -ItemType Directory (Join-Path $TestDrive 'killed')
        $victim = Get-RemotePid $hostA
        # Kills host A's pwsh the moment the first picture is saved, while its hand of three is unfinished.
        $killer = Start-ThreadJob {
            while (-not (Get-ChildItem $using:folder -Filter *.png)) { Start-Sleep -Milliseconds 10 }
            Stop-Process -Id $using:victim -Force
        }
        try {
            $files = Invoke-MnemosyneBatch $rows -Session $sessions -Directory $folder @batch -ThrottleLimit 3 -WarningVariable warnings -WarningAction SilentlyContinue -ErrorAction Stop
        }
        finally { $killer | Wait-Job -Timeout 60 | Remove-Job -Force }

        $hostA.State | Should -Not -Be 'Opened'
        @($warnings | Where-Object { "$_" -match "session $($hostA.Name) .*failed.*unfinished scene" }).Count | Should -Be 1
        @($files).Count | Should -Be 12
        $saved = Get-ChildItem $folder -Force
        ($saved.Name | Sort-Object) | Should -Be ($files.Name | Sort-Object) -Because 'no temporary or partial file is left'
        ($saved.Name | ForEach-Object { $_.Split('-')[0] } | Sort-Object -Unique).Count | Should -Be 12 -Because 'no scene is made twice'
        $local = New-Item -ItemType Directory (Join-Path $TestDrive 'local-killed')
        foreach ($file in $files) {
            [IO.File]::ReadAllBytes($file.FullName) | Should -Be (Get-LocalBytes $file $local) -Because "$($file.Name) is the scene made here"
        }
    }

    It 'sends the character to the host exactly: its scene is the one made here' {
        $folder = New-Item -ItemType Directory (Join-Path $TestDrive 'reference')
        $character = Import-MnemosyneReference $referenceImage

        $file = [pscustomobject]@{ Prompt = 'a knight in the rain'; Seed = 9 } |
            Invoke-MnemosyneBatch -Session $hostB -Directory $folder -Setting $tiny -Reference $character -ErrorAction Stop

        $file.Name | Should -Be '0001-9-a-knight-in-the-rain.png'
        $local = Join-Path $TestDrive 'reference-local.png'
        New-MnemosyneScene 'a knight in the rain' -Seed 9 -Reference $character @tiny | Save-MnemosyneImage -Path $local
        [IO.File]::ReadAllBytes($file.FullName) | Should -Be ([IO.File]::ReadAllBytes($local))
        $without = Join-Path $TestDrive 'no-reference-local.png'
        New-MnemosyneScene 'a knight in the rain' -Seed 9 @tiny | Save-MnemosyneImage -Path $without
        [IO.File]::ReadAllBytes($file.FullName) | Should -Not -Be ([IO.File]::ReadAllBytes($without)) -Because 'the reference changes the picture'
    }

    It 'sends an IP-Adapter Plus character exactly, hidden states included, to a host that opens the Plus engine from here' {
        $plus = Join-Path $modelPath 'ip-adapter/sdxl_models/ip-adapter-plus_sdxl_vit-h.safetensors'
        Open-MnemosyneEngine -Path $modelPath -IPAdapterPath $plus -ErrorAction Stop
        Invoke-Command $hostB { Close-MnemosyneEngine }
        try {
            $folder = New-Item -ItemType Directory (Join-Path $TestDrive 'plus-reference')
            $character = Import-MnemosyneReference $referenceImage
            $character.AdapterKind | Should -Be 'Plus'
            $file = [pscustomobject]@{ Prompt = 'a knight in the rain'; Seed = 9 } |
                Invoke-MnemosyneBatch -Session $hostB -Directory $folder -Setting $tiny -Reference $character -ModulePath $manifest -ErrorAction Stop
            $local = Join-Path $TestDrive 'plus-reference-local.png'
            New-MnemosyneScene 'a knight in the rain' -Seed 9 -Reference $character @tiny | Save-MnemosyneImage -Path $local
            [IO.File]::ReadAllBytes($file.FullName) | Should -Be ([IO.File]::ReadAllBytes($local))
        }
        finally {
            Invoke-Command $hostB { Close-MnemosyneEngine }
            Open-MnemosyneEngine -Path $modelPath -ErrorAction Stop
        }
    }

    It 'stops the hosts when the pipeline wants no more, saving only what it took, and the session stays usable' {
        $folder = New-Item -ItemType Directory (Join-Path $TestDrive 'first-only')

        $first = $rows | Invoke-MnemosyneBatch -Session $hostB -Directory $folder @batch | Select-Object -First 1

        @($first).Count | Should -Be 1
        (Get-ChildItem $folder -Force).Name | Should -Be $first.Name
        $hostB.State | Should -Be 'Opened'
        Invoke-Command $hostB { 1 + 1 } | Should -Be 2
    }

    Context 'Bad input' {
        It 'refuses a -Setting that is no scene setting, naming it' {
            { Invoke-MnemosyneBatch 'a cat' -Session $hostB -Directory $TestDrive -Setting @{ Stpes = 4 } -ErrorAction Stop } |
                Should -Throw -ErrorId 'UnknownSetting,*'
            $Error[0].CategoryInfo.Category | Should -Be 'InvalidArgument'
            $Error[0].TargetObject | Should -Be 'Stpes'
        }

        It 'reports each unusable input by itself, and a missing folder before any host is asked' {
            $inputs = '  ', [pscustomobject]@{ Prompt = 'a cat'; Seed = 'abc' }, [pscustomobject]@{ Prompt = 'a dog'; InitialNoisePath = './noise.npy' }
            $missing = Join-Path $TestDrive 'no-such-folder'

            $stopped = try { $inputs | Invoke-MnemosyneBatch -Session $hostB -Directory $missing -ErrorVariable problems -ErrorAction SilentlyContinue } catch { $_ }

            $stopped.FullyQualifiedErrorId | Should -BeLike 'FolderNotFound,*'
            $stopped.TargetObject | Should -Be $missing

            $problems | Select-Object -First 3 | ForEach-Object FullyQualifiedErrorId | Should -Be 'EmptyPrompt,Mnemosyne.PowerShell.Commands.InvokeMnemosyneBatchCommand',
                'InvalidSceneSetting,Mnemosyne.PowerShell.Commands.InvokeMnemosyneBatchCommand', 'InvalidSceneSetting,Mnemosyne.PowerShell.Commands.InvokeMnemosyneBatchCommand'
            $problems[1].TargetObject.Seed | Should -Be 'abc'
            "$($problems[1])" | Should -Match "Seed is 'abc'"
            "$($problems[2])" | Should -Match 'InitialNoisePath'
        }

        It 'reports a scene its host refuses, without dealing it again, and makes the others' {
            $folder = New-Item -ItemType Directory (Join-Path $TestDrive 'refused-scene')
            $inputs = [pscustomobject]@{ Prompt = 'too many steps'; Steps = 5000 }, [pscustomobject]@{ Prompt = 'a good one'; Seed = 5 }

            $files = $inputs | Invoke-MnemosyneBatch -Session $hostB -Directory $folder -Setting @{ Width = 64; Height = 64 } -ErrorVariable problems -ErrorAction SilentlyContinue

            $files.Name | Should -Be '0002-5-a-good-one.png'
            @($problems).Count | Should -Be 1
            $problems[0].FullyQualifiedErrorId | Should -BeLike 'InvalidSceneSetting,*'
            $problems[0].CategoryInfo.Category | Should -Be 'InvalidArgument'
            $problems[0].TargetObject.Prompt | Should -Be 'too many steps'
        }

        It 'needs an engine open here, the model the hosts are checked against' {
            Close-MnemosyneEngine
            try {
                { Invoke-MnemosyneBatch 'a cat' -Session $hostB -Directory $TestDrive -ErrorAction Stop } | Should -Throw -ErrorId 'NoEngine,*'
                $Error[0].CategoryInfo.Category | Should -Be 'InvalidOperation'
            }
            finally { Open-TestEngine }
        }
    }
}
