# Helpers of BadInput.Tests.ps1 (dot-sourced in its BeforeAll, after Common.ps1 and the module):
# running one case, checking its one error, and making odd pictures and broken checkpoint files.
Set-StrictMode -Version Latest

# The pictures are made with ImageSharp. The module keeps its copy in its own load context, out of this session's
# sight, so the session loads one for itself (the module's file).
Add-Type -Path (Join-Path $modulePath 'dependencies/SixLabors.ImageSharp.dll')

# A case's scriptblock comes from discovery; made anew here, it runs in the test's scope (its variables and these helpers).
function Invoke-Case([scriptblock] $Block) {
    & ([scriptblock]::Create($Block.ToString())) @args
}

# The one error a refused input gives, terminating or not, checking that nothing else came out.
function Get-OnlyFailure([scriptblock] $Command) {
    $ErrorActionPreference = 'Continue'
    try {
        $all = @(& $Command 2>&1)
    }
    catch {
        return $_
    }
    $failures = @($all | Where-Object { $_ -is [System.Management.Automation.ErrorRecord] })
    @($all | Where-Object { $_ -isnot [System.Management.Automation.ErrorRecord] }) | Should -BeNullOrEmpty -Because 'a refused input makes nothing'
    $failures.Count | Should -Be 1 -Because 'one bad input gives one error'
    $failures[0]
}

function Assert-Failure {
    param(
        [Parameter(Mandatory)] [System.Management.Automation.ErrorRecord] $Failure,
        [Parameter(Mandatory)] [string] $Category,
        [AllowNull()] [AllowEmptyString()] $Target,
        [Parameter(Mandatory)] [string] $Advice,
        [string] $ErrorId
    )
    $Failure.CategoryInfo.Category | Should -Be $Category -Because "$Failure"
    if ($ErrorId) { $Failure.FullyQualifiedErrorId | Should -BeLike "$ErrorId,*" }
    if (($Target -is [float] -or $Target -is [double]) -and [double]::IsNaN($Target)) { [double]::IsNaN($Failure.TargetObject) | Should -BeTrue }
    elseif ($Target -is [string]) { $Failure.TargetObject | Should -BeExactly $Target }
    elseif ($Target -is [Mnemosyne.Engine.Pipeline.CharacterReference]) { [object]::ReferenceEquals($Failure.TargetObject, $Target) | Should -BeTrue }
    else { $Failure.TargetObject | Should -Be $Target }
    # What the user reads: the ErrorDetails message where the cmdlet set one, else the exception's.
    "$Failure" | Should -Match $Advice
}

# The session goes on: the engine makes the same picture as before the bad input, and it can be saved.
function Assert-SessionUsable {
    $next = New-MnemosyneScene 'a cat' -Seed 1 @tiny -ErrorAction Stop
    [Convert]::ToHexString($next.Image.Rgb) | Should -Be $baseline
    $file = Join-Path $TestDrive "usable-$([guid]::NewGuid().ToString('N')).png"
    $next | Save-MnemosyneImage -Path $file -ErrorAction Stop
    $file | Should -Exist
}

# --- Pictures -------------------------------------------------------------------------------------

# Smooth colours (JPEG keeps them within a few levels), RGB bytes row by row.
function Get-Gradient([int] $Width, [int] $Height) {
    $rgb = [byte[]]::new(3 * $Width * $Height)
    for ($y = 0; $y -lt $Height; $y++) {
        for ($x = 0; $x -lt $Width; $x++) {
            $i = 3 * ($y * $Width + $x)
            $rgb[$i] = 20 + [int](200 * $x / [Math]::Max(1, $Width - 1))
            $rgb[$i + 1] = 20 + [int](200 * $y / [Math]::Max(1, $Height - 1))
            $rgb[$i + 2] = 128
        }
    }
    , $rgb
}

# The pixels turned 90° clockwise, as EXIF orientation 6 asks.
function Get-Turned([int] $Width, [int] $Height, [byte[]] $Rgb) {
    $turned = [byte[]]::new($Rgb.Length)
    for ($y = 0; $y -lt $Width; $y++) {
        for ($x = 0; $x -lt $Height; $x++) {
            [Array]::Copy($Rgb, 3 * (($Height - 1 - $x) * $Width + $y), $turned, 3 * ($y * $Height + $x), 3)
        }
    }
    New-RgbImage $Height $Width $turned
}

function New-RgbImage([int] $Width, [int] $Height, [byte[]] $Rgb) {
    [Mnemosyne.Engine.Imaging.RgbImage]::new($Width, $Height, $Rgb)
}

function New-Rgb24([int] $Width, [int] $Height, [byte[]] $Rgb) {
    [SixLabors.ImageSharp.Image]::LoadPixelData[SixLabors.ImageSharp.PixelFormats.Rgb24]($Rgb, $Width, $Height)
}

# Encodes an ImageSharp image (and disposes of it).
function Get-Encoded($Image, $Encoder) {
    $stream = [IO.MemoryStream]::new()
    try { $Image.Save($stream, $Encoder) } finally { $Image.Dispose() }
    , $stream.ToArray()
}

function Get-Png($Image) { Get-Encoded $Image ([SixLabors.ImageSharp.Formats.Png.PngEncoder]::new()) }

function Get-Jpeg($Image) { Get-Encoded $Image ([SixLabors.ImageSharp.Formats.Jpeg.JpegEncoder]@{ Quality = 100; ColorType = 'YCbCrRatio444' }) }

# Every pixel tells where it is: (40x + 1, 40y + 2, 7).
function Get-PositionalPng([int] $Width, [int] $Height) {
    $rgb = [byte[]]::new(3 * $Width * $Height)
    for ($y = 0; $y -lt $Height; $y++) {
        for ($x = 0; $x -lt $Width; $x++) {
            $i = 3 * ($y * $Width + $x)
            $rgb[$i] = (40 * $x + 1) % 256; $rgb[$i + 1] = (40 * $y + 2) % 256; $rgb[$i + 2] = 7
        }
    }
    , [Mnemosyne.Engine.Imaging.PngFile]::Encode((New-RgbImage $Width $Height $rgb), $null)
}

function Get-BigEndian([uint32] $Value) {
    $bytes = [BitConverter]::GetBytes($Value)
    [Array]::Reverse($bytes)
    , $bytes
}

function Get-Crc32([byte[]] $Data) {
    # In longs: PowerShell reads 0xFFFFFFFF as the int -1.
    $crc = 4294967295L
    foreach ($byte in $Data) {
        $crc = $crc -bxor $byte
        for ($k = 0; $k -lt 8; $k++) { $crc = if ($crc -band 1) { 3988292384L -bxor ($crc -shr 1) } else { $crc -shr 1 } }
    }
    [uint32]($crc -bxor 4294967295L)
}

function Get-PngChunk([string] $Type, [byte[]] $Data) {
    $typeAndData = [byte[]]([Text.Encoding]::ASCII.GetBytes($Type) + $Data)
    , [byte[]]((Get-BigEndian $Data.Length) + $typeAndData + (Get-BigEndian (Get-Crc32 $typeAndData)))
}

# An 8×8 PNG with a zTXt chunk of keyword $Keyword whose text inflates to 64 MB of zeros (a text bomb).
function Get-TextBombPng([string] $Keyword) {
    $compressed = [IO.MemoryStream]::new()
    $zlib = [IO.Compression.ZLibStream]::new($compressed, [IO.Compression.CompressionLevel]::Fastest, $true)
    $zeros = [byte[]]::new(1MB)
    for ($i = 0; $i -lt 64; $i++) { $zlib.Write($zeros, 0, $zeros.Length) }
    $zlib.Dispose()
    $png = Get-PositionalPng 8 8
    $text = [byte[]]([Text.Encoding]::ASCII.GetBytes($Keyword) + @(0, 0) + $compressed.ToArray())
    , [byte[]]($png[0..32] + (Get-PngChunk 'zTXt' $text) + $png[33..($png.Length - 1)])
}

# A copy of a PNG whose IHDR declares another size (its CRC fixed, so only the size is wrong).
function Set-PngSize([byte[]] $Png, [uint32] $Width, [uint32] $Height) {
    $patched = [byte[]]$Png.Clone()
    (Get-BigEndian $Width).CopyTo($patched, 16)
    (Get-BigEndian $Height).CopyTo($patched, 20)
    (Get-BigEndian (Get-Crc32 $patched[12..28])).CopyTo($patched, 29)
    , $patched
}

# A copy of a baseline JPEG whose frame header declares another size.
function Set-JpegSize([byte[]] $Jpeg, [uint16] $Width, [uint16] $Height) {
    $patched = [byte[]]$Jpeg.Clone()
    $frame = -1
    for ($i = 0; $i -lt $patched.Length - 1; $i++) { if ($patched[$i] -eq 0xFF -and $patched[$i + 1] -eq 0xC0) { $frame = $i; break } }
    $frame | Should -BeGreaterThan 0 -Because 'the encoder writes a baseline frame'
    $patched[$frame + 5] = $Height -shr 8; $patched[$frame + 6] = $Height -band 0xFF
    $patched[$frame + 7] = $Width -shr 8; $patched[$frame + 8] = $Width -band 0xFF
    , $patched
}

# An 8×8 baseline CMYK JPEG of one colour as Photoshop writes them (Adobe APP14, inverted samples),
# built by hand because ImageSharp 2.1 cannot encode CMYK: each component is one DC-only block.
function Get-CmykJpeg([byte] $C, [byte] $M, [byte] $Y, [byte] $K) {
    $jpeg = [Collections.Generic.List[byte]]::new()
    $segment = {
        param([byte] $Marker, [byte[]] $Payload)
        $jpeg.AddRange([byte[]](0xFF, $Marker, (($Payload.Length + 2) -shr 8), (($Payload.Length + 2) -band 0xFF)))
        $jpeg.AddRange($Payload)
    }
    $jpeg.AddRange([byte[]](0xFF, 0xD8))
    & $segment 0xEE ([byte[]]([Text.Encoding]::ASCII.GetBytes('Adobe') + @(0, 100, 0, 0, 0, 0, 0)))
    & $segment 0xDB ([byte[]](@(0) + @(8) * 64))
    & $segment 0xC0 ([byte[]](8, 0, 8, 0, 8, 4, 1, 0x11, 0, 2, 0x11, 0, 3, 0x11, 0, 4, 0x11, 0))
    # DC table: categories 0..11, all 4-bit codes (code = category); AC table: only end-of-block, code "0".
    $dcCounts = [byte[]]::new(16); $dcCounts[3] = 12
    $acCounts = [byte[]]::new(16); $acCounts[0] = 1
    & $segment 0xC4 ([byte[]](@(0x00) + $dcCounts + (0..11) + @(0x10) + $acCounts + @(0x00)))
    & $segment 0xDA ([byte[]](4, 1, 0, 2, 0, 3, 0, 4, 0, 0, 63, 0))

    $bits = [Collections.Generic.List[int]]::new()
    $put = { param([int] $Value, [int] $Count) for ($i = $Count - 1; $i -ge 0; $i--) { $bits.Add(($Value -shr $i) -band 1) } }
    foreach ($sample in $C, $M, $Y, $K) {
        # A flat block's DC coefficient is 8·(v − 128); quantised by 8 it is v − 128.
        $dc = [int]$sample - 128
        $category = if ($dc -eq 0) { 0 } else { 32 - [Numerics.BitOperations]::LeadingZeroCount([uint32][Math]::Abs($dc)) }
        & $put $category 4
        & $put $(if ($dc -ge 0) { $dc } else { $dc + (1 -shl $category) - 1 }) $category
        & $put 0 1
    }
    while ($bits.Count % 8) { $bits.Add(1) }
    for ($i = 0; $i -lt $bits.Count; $i += 8) {
        $value = 0
        for ($b = 0; $b -lt 8; $b++) { $value = ($value -shl 1) -bor $bits[$i + $b] }
        $jpeg.Add($value)
        if ($value -eq 0xFF) { $jpeg.Add(0) }
    }
    $jpeg.AddRange([byte[]](0xFF, 0xD9))
    , $jpeg.ToArray()
}

# --- Checkpoint files -----------------------------------------------------------------------------

# Rewrites a safetensors file's JSON header (the data section stays as it is). $Edit gets the header
# (name → dtype, shape, data_offsets) and the tensor names in file order.
function Edit-Safetensors([string] $Path, [scriptblock] $Edit) {
    $bytes = [IO.File]::ReadAllBytes($Path)
    $length = [BitConverter]::ToUInt64($bytes, 0)
    $header = [Text.Encoding]::UTF8.GetString($bytes, 8, $length) | ConvertFrom-Json -AsHashtable
    $names = @($header.Keys | Where-Object { $_ -ne '__metadata__' } | Sort-Object { $header[$_].data_offsets[0] })
    Invoke-Case $Edit $header $names
    $json = [Text.Encoding]::UTF8.GetBytes(($header | ConvertTo-Json -Compress -Depth 5))
    $stream = [IO.File]::Create($Path)
    try {
        $stream.Write([BitConverter]::GetBytes([uint64]$json.Length), 0, 8)
        $stream.Write($json, 0, $json.Length)
        $stream.Write($bytes, 8 + $length, $bytes.Length - 8 - $length)
    }
    finally { $stream.Dispose() }
}

function Edit-Json([string] $Path, [scriptblock] $Edit) {
    $config = Get-Content -Raw $Path | ConvertFrom-Json -AsHashtable
    Invoke-Case $Edit $config
    $config | ConvertTo-Json -Depth 10 | Set-Content $Path
}
