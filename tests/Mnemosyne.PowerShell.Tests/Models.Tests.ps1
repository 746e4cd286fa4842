BeforeAll {
    $modulePath = $env:MNEMOSYNE_MODULE
    if (-not $modulePath) { $modulePath = Join-Path $PSScriptRoot '../../out/Mnemosyne' }
    $script:manifest = Join-Path $modulePath 'Mnemosyne.psd1'
    Import-Module $manifest -Force

    $script:savedEnvironment = @{}
    foreach ($name in 'HF_HUB_CACHE', 'HF_HOME', 'HF_ENDPOINT', 'HF_TOKEN', 'HF_TOKEN_PATH') {
        $savedEnvironment[$name] = [Environment]::GetEnvironmentVariable($name)
    }
    # No test may see the machine's own cache or token.
    $env:HF_HOME = Join-Path ([IO.Path]::GetTempPath()) "mnemosyne-pester-home-$PID"
    $env:HF_HUB_CACHE = $null
    $env:HF_TOKEN = $null
    $env:HF_TOKEN_PATH = $null

    $script:lightningRepository = 'ByteDance/SDXL-Lightning'
    $script:lightningRevision = 'c9a24f48e1c025556787b0c58dd67a091ece2e44'
    $script:lightningFile = 'sdxl_lightning_4step_unet.safetensors'

    function script:New-Cache {
        (New-Item -ItemType Directory -Path (Join-Path ([IO.Path]::GetTempPath()) "mnemosyne-pester-$([guid]::NewGuid().ToString('N'))")).FullName
    }

    function script:Get-Sha256([byte[]] $Bytes) {
        [Convert]::ToHexString([Security.Cryptography.SHA256]::HashData($Bytes)).ToLowerInvariant()
    }

    # A loopback fake of the hub's resolve endpoint (HttpListener in a background runspace): LFS
    # files redirect to /cdn/{sha} with X-Repo-Commit, X-Linked-Etag and X-Linked-Size.
    function script:Start-FakeHub {
        $probe = [Net.Sockets.TcpListener]::new([Net.IPAddress]::Loopback, 0)
        $probe.Start(); $port = $probe.LocalEndpoint.Port; $probe.Stop()
        $listener = [Net.HttpListener]::new()
        $listener.Prefixes.Add("http://127.0.0.1:$port/")
        $listener.Start()
        $state = [hashtable]::Synchronized(@{ Files = @{}; Token = $null; HoldAfter = 0; Release = $false; Requests = [Collections.ArrayList]::Synchronized([Collections.ArrayList]::new()) })
        $runspace = [powershell]::Create()
        $null = $runspace.AddScript({
            param($listener, $state, $commit)
            while ($listener.IsListening) {
                try { $context = $listener.GetContext() } catch { break }
                $request = $context.Request; $response = $context.Response
                try {
                    $null = $state.Requests.Add("$($request.HttpMethod) $($request.Url.AbsolutePath)")
                    $path = [Uri]::UnescapeDataString($request.Url.AbsolutePath)
                    if ($path -like '/cdn/*') {
                        $file = $state.Files.Values | Where-Object Sha256 -EQ $path.Substring(5) | Select-Object -First 1
                        $response.StatusCode = 200
                        $response.ContentLength64 = $file.Bytes.Length
                        if ($request.HttpMethod -eq 'GET') {
                            $sent = 0
                            if ($state.HoldAfter) {
                                # Part of the body, then nothing until the test releases it (or the client leaves).
                                $response.OutputStream.Write($file.Bytes, 0, $state.HoldAfter)
                                $response.OutputStream.Flush()
                                $sent = $state.HoldAfter
                                while (-not $state.Release) { Start-Sleep -Milliseconds 20 }
                            }
                            $response.OutputStream.Write($file.Bytes, $sent, $file.Bytes.Length - $sent)
                        }
                    }
                    elseif ($state.Token -and $request.Headers['Authorization'] -ne "Bearer $($state.Token)") {
                        $response.StatusCode = 401
                        $response.Headers.Add('X-Error-Code', 'GatedRepo')
                    }
                    elseif ($path -match '^/(?<repo>[^/]+/[^/]+)/resolve/(?<revision>[^/]+)/(?<file>.+)$' -and $state.Files.ContainsKey("$($Matches.repo)/$($Matches.file)")) {
                        $file = $state.Files["$($Matches.repo)/$($Matches.file)"]
                        $response.StatusCode = 302
                        $response.RedirectLocation = "http://127.0.0.1:$($request.Url.Port)/cdn/$($file.Sha256)"
                        $response.Headers.Add('X-Repo-Commit', $commit)
                        $response.Headers.Add('X-Linked-Etag', "`"$($file.DeclaredSha256)`"")
                        $response.Headers.Add('X-Linked-Size', [string]$file.Bytes.Length)
                        $response.ContentLength64 = 0
                    }
                    else {
                        $response.StatusCode = 404
                        $response.Headers.Add('X-Error-Code', 'EntryNotFound')
                    }
                }
                catch { }
                finally { try { $response.Close() } catch { } }
            }
        }).AddArgument($listener).AddArgument($state).AddArgument($lightningRevision)
        $handle = $runspace.BeginInvoke()
        [pscustomobject]@{ Listener = $listener; Runspace = $runspace; Handle = $handle; State = $state; Endpoint = "http://127.0.0.1:$port" }
    }

    function script:Add-HubFile($Hub, [string] $Repository, [string] $Path, [byte[]] $Bytes, [string] $DeclaredSha256) {
        $sha = Get-Sha256 $Bytes
        $Hub.State.Files["$Repository/$Path"] = @{ Bytes = $Bytes; Sha256 = $sha; DeclaredSha256 = $(if ($DeclaredSha256) { $DeclaredSha256 } else { $sha }) }
        $sha
    }

    function script:Stop-FakeHub($Hub) {
        $Hub.Listener.Stop()
        $Hub.Listener.Close()
        $null = $Hub.Handle.AsyncWaitHandle.WaitOne(5000)
        $Hub.Runspace.Dispose()
    }
}

AfterAll {
    Remove-Module Mnemosyne -ErrorAction SilentlyContinue
    foreach ($entry in $savedEnvironment.GetEnumerator()) { [Environment]::SetEnvironmentVariable($entry.Key, $entry.Value) }
}

Describe 'Get-MnemosyneModel' {
    BeforeEach { $script:cache = New-Cache }
    AfterEach { Remove-Item $cache -Recurse -Force -ErrorAction SilentlyContinue }

    It 'lists every known model as a typed object, none complete in an empty cache' {
        $models = Get-MnemosyneModel -CachePath $cache
        $models.Name | Should -Be @('ip-adapter-image-encoder-vit-h', 'ip-adapter-plus-face-sdxl-vit-h', 'ip-adapter-plus-sdxl-vit-h', 'ip-adapter-sdxl-vit-h', 'lcm-lora-sdxl', 'sdxl-base-1.0', 'sdxl-lightning-2step-lora',
            'sdxl-lightning-2step-unet', 'sdxl-lightning-4step-lora', 'sdxl-lightning-4step-unet', 'sdxl-lightning-8step-lora', 'sdxl-lightning-8step-unet', 'taesdxl')
        $models | ForEach-Object { $_ | Should -BeOfType ([Mnemosyne.Engine.Models.ModelStatus]) }
        $models.IsComplete | Should -Not -Contain $true
        ($models | Where-Object Name -EQ 'sdxl-base-1.0').SizeBytes | Should -Be 6941187536
        ($models | Where-Object Name -EQ 'sdxl-base-1.0').Files.Count | Should -Be 18
        ($models | Where-Object Name -EQ 'ip-adapter-sdxl-vit-h').Repository | Should -Be 'h94/IP-Adapter'
    }

    It 'finds a model already in the cache that HF_HUB_CACHE names, in place' {
        $snapshot = Join-Path $cache "models--ByteDance--SDXL-Lightning/snapshots/$lightningRevision"
        $null = New-Item -ItemType Directory $snapshot
        [IO.File]::WriteAllBytes((Join-Path $snapshot $lightningFile), [byte[]](1..64))
        $env:HF_HUB_CACHE = $cache
        try { $model = Get-MnemosyneModel sdxl-lightning-4step-unet }
        finally { $env:HF_HUB_CACHE = $null }
        $model.IsComplete | Should -BeTrue
        $model.Complete | Should -BeTrue -Because 'the table column is a property too'
        $model.Path | Should -Be $snapshot
        $model.EntryPath | Should -Be (Join-Path $snapshot $lightningFile)
        $model.SizeBytes | Should -Be 64
    }

    It 'matches wildcards and reports an unknown name as ObjectNotFound' {
        (Get-MnemosyneModel 'SDXL*' -CachePath $cache).Name | Should -Be @('sdxl-base-1.0', 'sdxl-lightning-2step-lora', 'sdxl-lightning-2step-unet',
            'sdxl-lightning-4step-lora', 'sdxl-lightning-4step-unet', 'sdxl-lightning-8step-lora', 'sdxl-lightning-8step-unet')
        $models = Get-MnemosyneModel 'no-such-model' -CachePath $cache -ErrorVariable failures -ErrorAction SilentlyContinue
        $models | Should -BeNullOrEmpty
        $failures[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
        $failures[0].FullyQualifiedErrorId | Should -BeLike 'UnknownModel,*'
    }

    It 'shows a table with completeness, size and revision' {
        $table = Get-MnemosyneModel -CachePath $cache | Format-Table | Out-String -Width 200
        $table | Should -Match 'Name\s+Role\s+Complete\s+Size\s+Revision\s+Path'
        $table | Should -Match 'sdxl-base-1.0\s+Pipeline\s+False\s+6.94 GB\s+4621659'
        $table | Should -Match 'sdxl-lightning-4step-unet\s+Unet\s+False\s+unknown\s+c9a24f4'
    }

    It 'has its Complete column as a property that selects and filters, beside IsComplete' {
        $models = Get-MnemosyneModel -CachePath $cache
        ($models | Select-Object Name, Complete)[0].Complete | Should -BeOfType ([bool])
        @($models | Where-Object Complete -EQ $false).Count | Should -Be $models.Count
        ($models | Format-Table Name, Complete | Out-String -Width 200) | Should -Match 'sdxl-base-1.0\s+False'
    }
}

Describe 'Install-MnemosyneModel' {
    BeforeAll { $script:hub = Start-FakeHub }
    AfterAll { Stop-FakeHub $hub }
    BeforeEach {
        $script:cache = New-Cache
        $hub.State.Files.Clear(); $hub.State.Token = $null; $hub.State.Requests.Clear()
        $hub.State.HoldAfter = 0; $hub.State.Release = $false
        $env:HF_ENDPOINT = $hub.Endpoint
    }
    AfterEach {
        $env:HF_ENDPOINT = $null; $env:HF_TOKEN = $null
        Remove-Item $cache -Recurse -Force -ErrorAction SilentlyContinue
    }

    It '-WhatIf shows what would be fetched and its size, and fetches nothing' {
        $pwsh = [Environment]::ProcessPath
        # What-if text goes to the host, so it is read from a child pwsh's output (under `dotnet pwsh`, the process is dotnet).
        $arguments = @(if ([IO.Path]::GetFileNameWithoutExtension($pwsh) -eq 'dotnet') { Join-Path $PSHOME 'pwsh.dll' })
        $text = & $pwsh @arguments -NoProfile -NonInteractive -Command "Import-Module '$manifest'; Install-MnemosyneModel sdxl-base-1.0, sdxl-lightning-4step-unet -CachePath '$cache' -WhatIf" | Out-String
        $text | Should -Match 'What if: .*Download 18 files, 6\.94 GB \(6,941,187,536 bytes\).*sdxl-base-1\.0 \(stabilityai/stable-diffusion-xl-base-1\.0@4621659\)'
        $text | Should -Match 'What if: .*Download 1 file, size known at download time.*sdxl-lightning-4step-unet'
        Get-ChildItem $cache -Recurse | Should -BeNullOrEmpty
        $hub.State.Requests.Count | Should -Be 0
    }

    It 'installs from HF_ENDPOINT into the hub cache layout and outputs the complete model' {
        $bytes = [byte[]](0..255) * 40
        $sha = Add-HubFile $hub $lightningRepository $lightningFile $bytes
        $model = Install-MnemosyneModel sdxl-lightning-4step-unet -CachePath $cache -Confirm:$false
        $model.IsComplete | Should -BeTrue
        $model.Commit | Should -Be $lightningRevision
        $blob = Join-Path $cache "models--ByteDance--SDXL-Lightning/blobs/$sha"
        [IO.File]::ReadAllBytes($blob).Length | Should -Be $bytes.Length
        (Get-Item $model.EntryPath).LinkTarget | Should -Be "../../blobs/$sha"
        (Get-MnemosyneModel sdxl-lightning-4step-unet -CachePath $cache).IsComplete | Should -BeTrue
        # Already complete: a second install asks the hub nothing.
        $requests = $hub.State.Requests.Count
        (Install-MnemosyneModel sdxl-lightning-4step-unet -CachePath $cache).IsComplete | Should -BeTrue
        $hub.State.Requests.Count | Should -Be $requests
    }

    It 'reports a 404 as ObjectNotFound' {
        Install-MnemosyneModel sdxl-lightning-4step-unet -CachePath $cache -ErrorVariable failures -ErrorAction SilentlyContinue
        $failures[0].CategoryInfo.Category | Should -Be 'ObjectNotFound'
        $failures[0].FullyQualifiedErrorId | Should -BeLike 'ModelFileNotFound,*'
        $failures[0].Exception.Message | Should -Match '404'
    }

    It 'reports a gated model as an AuthenticationError that names HF_TOKEN but never the token' {
        $null = Add-HubFile $hub $lightningRepository $lightningFile ([byte[]](1..10))
        $hub.State.Token = 'hf_ExpectedToken'
        $env:HF_TOKEN = 'hf_PesterSecret987'
        Install-MnemosyneModel sdxl-lightning-4step-unet -CachePath $cache -ErrorVariable failures -ErrorAction SilentlyContinue -Verbose 4>&1 |
            Out-String | Should -Not -Match 'hf_PesterSecret987'
        $failures[0].CategoryInfo.Category | Should -Be 'AuthenticationError'
        $failures[0].Exception.Message | Should -Match 'HF_TOKEN'
        ($failures[0] | Out-String) + $failures[0].ErrorDetails.RecommendedAction | Should -Not -Match 'hf_PesterSecret987'
    }

    It 'reports a hash mismatch as InvalidData and leaves nothing in the snapshot' {
        $null = Add-HubFile $hub $lightningRepository $lightningFile ([byte[]](1..100)) -DeclaredSha256 ('ab' * 32)
        Install-MnemosyneModel sdxl-lightning-4step-unet -CachePath $cache -ErrorVariable failures -ErrorAction SilentlyContinue
        $failures[0].CategoryInfo.Category | Should -Be 'InvalidData'
        $failures[0].FullyQualifiedErrorId | Should -BeLike 'ModelIntegrity,*'
        Test-Path (Join-Path $cache 'models--ByteDance--SDXL-Lightning/snapshots') | Should -BeFalse
        Get-ChildItem (Join-Path $cache 'models--ByteDance--SDXL-Lightning/blobs') | Should -BeNullOrEmpty
    }

    It 'writes progress with bytes, and stops cleanly on Ctrl+C leaving only the resumable partial file' {
        $bytes = [byte[]]::new(200000); [Random]::new(7).NextBytes($bytes)
        $sha = Add-HubFile $hub $lightningRepository $lightningFile $bytes
        $hub.State.HoldAfter = 80000
        $incomplete = Join-Path $cache "models--ByteDance--SDXL-Lightning/blobs/$sha.incomplete"
        $install = [powershell]::Create()
        $null = $install.AddScript({
            param($module, $cache)
            Import-Module $module
            Install-MnemosyneModel sdxl-lightning-4step-unet -CachePath $cache
        }).AddArgument((Get-Module Mnemosyne).Path).AddArgument($cache)
        try {
            $running = $install.BeginInvoke()
            $byteProgress = { $install.Streams.Progress | Where-Object { $_.Activity -eq 'Installing sdxl-lightning-4step-unet' -and $_.StatusDescription -like '*sdxl_lightning_4step_unet.safetensors (1/1): * of 200 kB*' } }
            # The progress record may reach the stream a moment after the bytes reach the disk (a loaded machine).
            $deadline = [DateTime]::UtcNow.AddSeconds(30)
            while (-not ((Test-Path $incomplete) -and (Get-Item $incomplete).Length -eq 80000 -and (& $byteProgress)) -and [DateTime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 50 }
            (Get-Item $incomplete).Length | Should -Be 80000
            & $byteProgress | Should -Not -BeNullOrEmpty
            $install.Stop()   # what Ctrl+C does: StopProcessing cancels the download
            $install.InvocationStateInfo.State | Should -Be 'Stopped'
        }
        finally {
            $hub.State.Release = $true
            $install.Dispose()
        }
        Test-Path (Join-Path $cache 'models--ByteDance--SDXL-Lightning/snapshots') | Should -BeFalse
        (Get-ChildItem (Join-Path $cache 'models--ByteDance--SDXL-Lightning/blobs')).Name | Should -Be "$sha.incomplete"

        $hub.State.HoldAfter = 0
        (Install-MnemosyneModel sdxl-lightning-4step-unet -CachePath $cache).IsComplete | Should -BeTrue
        Get-Sha256 ([IO.File]::ReadAllBytes((Join-Path $cache "models--ByteDance--SDXL-Lightning/blobs/$sha"))) | Should -Be $sha
    }
}
