# The module's dependencies live in its own load context: another module's copy of one, loaded into the same session
# before or after it, must not stop either from working. The other copy is Google.Protobuf 3.30.2, older than the
# engine's, restored by a PackageDownload in tests/Mnemosyne.Engine.Tests.
BeforeAll {
    . $PSScriptRoot/Common.ps1
    Import-Mnemosyne
    $script:root = (New-Item -ItemType Directory -Force (Join-Path ([IO.Path]::GetTempPath()) "mnemosyne-isolation-$PID")).FullName
    $script:files = New-TinyModelFiles -Root $root
    $packages = if ($env:NUGET_PACKAGES) { $env:NUGET_PACKAGES } else {
        ((dotnet nuget locals global-packages --list) -replace '^global-packages:\s*', '').Trim()
    }
    $script:otherProtobuf = Join-Path $packages 'google.protobuf/3.30.2/lib/net5.0/Google.Protobuf.dll'
    $script:engineProtobuf = [Reflection.AssemblyName]::GetAssemblyName((Join-Path $modulePath 'dependencies/Google.Protobuf.dll')).Version

    # Makes a tiny scene, checks that PowerShell knows its type by name, then lists every Google.Protobuf in the session with the load context that holds it.
    $script:sceneAndProtobufs = @"
Open-MnemosyneEngine -Path '$($files.Folder)' | Out-Null
`$scene = New-MnemosyneScene 'a lighthouse' -Seed 5 -Width 64 -Height 64 -Steps 2
'scene {0}x{1}' -f `$scene.Width, `$scene.Image.Height
'named type: ' + (`$scene.GetType() -eq [Mnemosyne.Engine.Pipeline.Scene])
[AppDomain]::CurrentDomain.GetAssemblies() | Where-Object { `$_.GetName().Name -eq 'Google.Protobuf' } |
    ForEach-Object { 'protobuf {0} in {1}' -f `$_.GetName().Version, [Runtime.Loader.AssemblyLoadContext]::GetLoadContext(`$_).Name }
"@
}

AfterAll { Remove-Item $root -Recurse -Force -ErrorAction SilentlyContinue }

Describe 'Another module''s copy of a dependency' {
    It 'is restored for this test' {
        $otherProtobuf | Should -Exist
        [Reflection.AssemblyName]::GetAssemblyName($otherProtobuf).Version | Should -Not -Be $engineProtobuf
    }

    It 'loaded first, leaves the module working with its own' {
        $result = Invoke-SeparatePwsh -NoImport @"
`$null = [Reflection.Assembly]::LoadFrom('$otherProtobuf')
Import-Module '$manifest'
$sceneAndProtobufs
"@
        $result.ExitCode | Should -Be 0 -Because ($result.Output -join "`n")
        $result.Output | Should -Contain 'scene 64x64'
        $result.Output | Should -Contain 'named type: True'   # the engine's types keep their names in PowerShell
        $result.Output | Should -Contain 'protobuf 3.30.2.0 in Default'
        $result.Output | Should -Contain "protobuf $engineProtobuf in Mnemosyne"
    }

    It 'loaded after a scene, still loads and works' {
        $result = Invoke-SeparatePwsh @"
$sceneAndProtobufs
`$other = [Reflection.Assembly]::LoadFrom('$otherProtobuf')
'other works: ' + `$other.GetType('Google.Protobuf.ByteString')::CopyFromUtf8('abc').Length
"@
        $result.ExitCode | Should -Be 0 -Because ($result.Output -join "`n")
        $result.Output | Should -Contain 'scene 64x64'
        $result.Output | Should -Contain "protobuf $engineProtobuf in Mnemosyne"
        $result.Output | Should -Contain 'other works: 3'
    }
}
