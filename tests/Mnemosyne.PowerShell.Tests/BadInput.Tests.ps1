# The catalog of bad inputs: each case gives one clear ErrorRecord (its category, the offending path or
# value as target, a message that says what to do), and the session goes on working afterwards. The
# "works" cases are odd inputs that must be accepted, with the right result. Everything runs on a tiny
# random checkpoint written here, so nothing skips.

BeforeDiscovery {
    $isRoot = -not $IsWindows -and (id -u) -eq 0

    $badPictures = @(
        @{ Name = 'an empty file'; File = 'empty.png'; Category = 'InvalidData'; Advice = 'it is not an image\. Choose a PNG, JPEG'
            Make = { param($path) [IO.File]::WriteAllBytes($path, [byte[]]@()) } }
        @{ Name = 'a truncated PNG'; File = 'cut.png'; Category = 'InvalidData'; Advice = 'get a complete copy'
            Make = { param($path) $png = Get-PositionalPng 32 32; [IO.File]::WriteAllBytes($path, $png[0..($png.Length / 2)]) } }
        @{ Name = 'a truncated JPEG'; File = 'cut.jpg'; Category = 'InvalidData'; Advice = 'get a complete copy'
            Make = { param($path) $jpeg = Get-Jpeg (New-Rgb24 64 64 (Get-Gradient 64 64)); [IO.File]::WriteAllBytes($path, $jpeg[0..($jpeg.Length * 6 / 10)]) } }
        @{ Name = 'a text file named .png'; File = 'notes.png'; Category = 'InvalidData'; Advice = 'convert it to PNG or JPEG'
            Make = { param($path) Set-Content $path 'this is not a picture' } }
        @{ Name = 'random bytes named .jpg'; File = 'noise.jpg'; Category = 'InvalidData'; Advice = 'convert it to PNG or JPEG'
            Make = { param($path) $bytes = [byte[]]::new(4096); [Random]::new(5).NextBytes($bytes); [IO.File]::WriteAllBytes($path, $bytes) } }
        @{ Name = 'a PNG whose pixel data is not deflate'; File = 'damaged.png'; Category = 'InvalidData'; Advice = 're-save it as PNG or JPEG'
            Make = { param($path) $png = Get-PositionalPng 4 4; [IO.File]::WriteAllBytes($path, [byte[]]($png[0..32] + (Get-PngChunk 'IDAT' ([Text.Encoding]::ASCII.GetBytes('definitely not deflate'))) + (Get-PngChunk 'IEND' @()))) } }
        @{ Name = 'a PNG declaring 100000×100000 pixels (a decompression bomb)'; File = 'bomb.png'; Category = 'LimitsExceeded'; Advice = '100000×100000 .*scale it down'
            Make = { param($path) [IO.File]::WriteAllBytes($path, (Set-PngSize (Get-PositionalPng 1 1) 100000 100000)) } }
        @{ Name = 'a JPEG declaring 60000×60000 pixels'; File = 'bomb.jpg'; Category = 'LimitsExceeded'; Advice = 'scale it down'
            Make = { param($path) [IO.File]::WriteAllBytes($path, (Set-JpegSize (Get-Jpeg (New-Rgb24 8 8 (Get-Gradient 8 8))) 60000 60000)) } }
        @{ Name = 'a 300 MB file'; File = 'huge.png'; Category = 'LimitsExceeded'; Advice = 'use a smaller image'
            Make = { param($path) $stream = [IO.File]::Create($path); try { $stream.SetLength(300MB) } finally { $stream.Dispose() } } }
        @{ Name = 'a PNG declaring 0×0 pixels'; File = 'nothing.png'; Category = 'InvalidData'; Advice = 're-save'
            Make = { param($path) [IO.File]::WriteAllBytes($path, (Set-PngSize (Get-PositionalPng 1 1) 0 0)) } }
    )

    # Odd pictures that must work: Make writes the file and returns the pixels expected from it.
    $oddPictures = @(
        @{ Name = 'a PNG named .jpg'; File = 'really-a-png.jpg'; Tolerance = 0
            Make = { param($path) $rgb = Get-Gradient 24 16; [IO.File]::WriteAllBytes($path, (Get-Png (New-Rgb24 24 16 $rgb))); New-RgbImage 24 16 $rgb } }
        @{ Name = 'a 1×1 picture'; File = 'dot.png'; Tolerance = 0
            Make = { param($path) [IO.File]::WriteAllBytes($path, (Get-Png (New-Rgb24 1 1 ([byte[]](9, 8, 7))))); New-RgbImage 1 1 ([byte[]](9, 8, 7)) } }
        @{ Name = 'a 16-bit PNG (high bytes kept, as Pillow does)'; File = 'deep.png'; Tolerance = 0
            Make = {
                param($path)
                # 0x12FF would round to 19; Pillow (and so diffusers) truncates to 18.
                $samples = [uint16[]](0x12FF, 0x8080, 0xFFFF, 0x1280, 0x7F80, 0x00FF)
                $bytes = [byte[]]::new(12)
                for ($i = 0; $i -lt 6; $i++) { [BitConverter]::GetBytes($samples[$i]).CopyTo($bytes, 2 * $i) }
                $image = [SixLabors.ImageSharp.Image]::LoadPixelData[SixLabors.ImageSharp.PixelFormats.Rgb48]($bytes, 2, 1)
                $encoder = [SixLabors.ImageSharp.Formats.Png.PngEncoder]@{ BitDepth = 'Bit16'; ColorType = 'Rgb' }
                [IO.File]::WriteAllBytes($path, (Get-Encoded $image $encoder))
                New-RgbImage 2 1 ([byte[]](18, 128, 255, 18, 127, 0))
            } }
        @{ Name = 'a palette PNG with transparent entries'; File = 'palette.png'; Tolerance = 0
            Make = {
                param($path)
                # 3×1, 8 bits per index, colour type 3 (palette).
                $header = [byte[]]((Get-BigEndian 3) + (Get-BigEndian 1) + @(8, 3, 0, 0, 0))
                $scanlines = [IO.MemoryStream]::new()
                $zlib = [IO.Compression.ZLibStream]::new($scanlines, [IO.Compression.CompressionLevel]::Optimal, $true)
                $zlib.Write([byte[]](0, 0, 1, 2), 0, 4); $zlib.Dispose()
                $png = [byte[]](0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A) + (Get-PngChunk 'IHDR' $header) +
                    (Get-PngChunk 'PLTE' ([byte[]](10, 20, 30, 200, 100, 0, 1, 2, 3))) + (Get-PngChunk 'tRNS' ([byte[]](0, 128, 255))) +
                    (Get-PngChunk 'IDAT' $scanlines.ToArray()) + (Get-PngChunk 'IEND' @())
                [IO.File]::WriteAllBytes($path, [byte[]]$png)
                New-RgbImage 3 1 ([byte[]](10, 20, 30, 200, 100, 0, 1, 2, 3))
            } }
        @{ Name = 'a CMYK JPEG (Adobe, inverted)'; File = 'print.jpg'; Tolerance = 0
            Make = { param($path) [IO.File]::WriteAllBytes($path, (Get-CmykJpeg 200 100 50 128)); New-RgbImage 8 8 ([byte[]](@(100, 50, 25) * 64)) } }
        @{ Name = 'a PNG with alpha (dropped, not composited)'; File = 'alpha.png'; Tolerance = 0
            Make = {
                param($path)
                $image = [SixLabors.ImageSharp.Image]::LoadPixelData[SixLabors.ImageSharp.PixelFormats.Rgba32]([byte[]](200, 100, 50, 0, 60, 70, 80, 128, 1, 2, 3, 255), 3, 1)
                [IO.File]::WriteAllBytes($path, (Get-Encoded $image ([SixLabors.ImageSharp.Formats.Png.PngEncoder]::new())))
                New-RgbImage 3 1 ([byte[]](200, 100, 50, 60, 70, 80, 1, 2, 3))
            } }
        @{ Name = 'an animated GIF (its first frame)'; File = 'blink.gif'; Tolerance = 0
            Make = {
                param($path)
                $red = [SixLabors.ImageSharp.Image[SixLabors.ImageSharp.PixelFormats.Rgba32]]::new(8, 8, [SixLabors.ImageSharp.PixelFormats.Rgba32]::new(255, 0, 0, 255))
                $blue = [SixLabors.ImageSharp.Image[SixLabors.ImageSharp.PixelFormats.Rgba32]]::new(8, 8, [SixLabors.ImageSharp.PixelFormats.Rgba32]::new(0, 0, 255, 255))
                $null = $red.Frames.AddFrame($blue.Frames.RootFrame)
                $blue.Dispose()
                [IO.File]::WriteAllBytes($path, (Get-Encoded $red ([SixLabors.ImageSharp.Formats.Gif.GifEncoder]::new())))
                New-RgbImage 8 8 ([byte[]](@(255, 0, 0) * 64))
            } }
        @{ Name = 'an EXIF-rotated photo (JPEG, orientation 6: turned upright)'; File = 'upright.jpg'; Tolerance = 12
            Make = {
                param($path)
                # Stored 32×16 on its side; orientation 6 turns it 90° clockwise to 16×32.
                $stored = Get-Gradient 32 16
                $image = New-Rgb24 32 16 $stored
                $image.Metadata.ExifProfile = [SixLabors.ImageSharp.Metadata.Profiles.Exif.ExifProfile]::new()
                $image.Metadata.ExifProfile.SetValue([SixLabors.ImageSharp.Metadata.Profiles.Exif.ExifTag]::Orientation, [uint16]6)
                [IO.File]::WriteAllBytes($path, (Get-Jpeg $image))
                Get-Turned 32 16 $stored
            } }
        @{ Name = 'an EXIF-mirrored PNG (orientation 2)'; File = 'mirror.png'; Tolerance = 0
            Make = {
                param($path)
                $stored = Get-Gradient 5 3
                $image = New-Rgb24 5 3 $stored
                $image.Metadata.ExifProfile = [SixLabors.ImageSharp.Metadata.Profiles.Exif.ExifProfile]::new()
                $image.Metadata.ExifProfile.SetValue([SixLabors.ImageSharp.Metadata.Profiles.Exif.ExifTag]::Orientation, [uint16]2)
                [IO.File]::WriteAllBytes($path, (Get-Png $image))
                $mirrored = [byte[]]::new($stored.Length)
                for ($y = 0; $y -lt 3; $y++) { for ($x = 0; $x -lt 5; $x++) { [Array]::Copy($stored, 3 * ($y * 5 + $x), $mirrored, 3 * ($y * 5 + 4 - $x), 3) } }
                New-RgbImage 5 3 $mirrored
            } }
        @{ Name = 'a grayscale PNG'; File = 'gray.png'; Tolerance = 0
            Make = {
                param($path)
                $image = [SixLabors.ImageSharp.Image]::LoadPixelData[SixLabors.ImageSharp.PixelFormats.L8]([byte[]](0, 77, 255), 3, 1)
                [IO.File]::WriteAllBytes($path, (Get-Encoded $image ([SixLabors.ImageSharp.Formats.Png.PngEncoder]@{ ColorType = 'Grayscale' })))
                New-RgbImage 3 1 ([byte[]](0, 0, 0, 77, 77, 77, 255, 255, 255))
            } }
    )

    $badReferences = @(
        @{ Name = 'a truncated file'; Category = 'InvalidData'; Advice = 'Export it again with Export-MnemosyneReference'
            Edit = { param($text) $text.Substring(0, $text.Length / 2) } }
        @{ Name = 'another program''s JSON'; Category = 'InvalidData'; Advice = 'Export it again'
            Edit = { param($text) '{ "format": "something-else", "version": 1 }' } }
        @{ Name = 'a file from a newer Mnemosyne'; Category = 'InvalidData'; Advice = 'update the module'
            Edit = { param($text) $text -replace '"version": \d+', '"version": 99' } }
        @{ Name = 'NaN in the embedding'; Category = 'InvalidData'; Advice = 'non-finite values.*Export it again'
            Edit = { param($text) $text -replace '(?s)("embedding": \[\s*)[^,\s]+', '$1"NaN"' } }
        @{ Name = 'an empty embedding'; Category = 'InvalidData'; Advice = 'Export it again'
            Edit = { param($text) $text -replace '(?s)"embedding": \[.*?\]', '"embedding": []' } }
        @{ Name = 'no name'; Category = 'InvalidData'; Advice = 'Export it again'
            Edit = { param($text) $text -replace '"name": "[^"]*",', '' } }
        @{ Name = 'an empty .json file'; Category = 'InvalidData'; Advice = 'Export it again'
            Edit = { param($text) '' } }
        @{ Name = 'an adapter kind Mnemosyne does not know'; Category = 'InvalidData'; Advice = "adapter kind 'faceid' is none of base, plus.*Export it again"
            Edit = { param($text) $text -replace '"adapterKind": "base"', '"adapterKind": "faceid"' } }
        @{ Name = 'a Plus reference without its hidden states'; Category = 'InvalidData'; Advice = 'hidden states of this Plus reference are missing.*Export it again'
            Edit = { param($text) $text -replace '"adapterKind": "base"', '"adapterKind": "plus"' } }
    )

    # Each breaks a copy of the tiny checkpoint; Target is the file (or folder) the error must name.
    $badCheckpoints = @(
        @{ Name = 'a weights file whose header length runs past its end'; Target = 'text_encoder/model.safetensors'; Category = 'InvalidData'; Advice = 'bad safetensors header length.*download or copy it again'
            Break = { param($root) $file = "$root/text_encoder/model.safetensors"; $bytes = [IO.File]::ReadAllBytes($file); [BitConverter]::GetBytes([uint64]1e12).CopyTo($bytes, 0); [IO.File]::WriteAllBytes($file, $bytes) } }
        @{ Name = 'an empty weights file'; Target = 'vae/diffusion_pytorch_model.safetensors'; Category = 'InvalidData'; Advice = 'too short.*download or copy it again'
            Break = { param($root) [IO.File]::WriteAllBytes("$root/vae/diffusion_pytorch_model.safetensors", [byte[]]@()) } }
        @{ Name = 'a weights file whose header is not JSON'; Target = 'text_encoder_2/model.safetensors'; Category = 'InvalidData'; Advice = 'not valid JSON.*download or copy it again'
            Break = { param($root) [IO.File]::WriteAllBytes("$root/text_encoder_2/model.safetensors", [byte[]]([BitConverter]::GetBytes([uint64]12) + [Text.Encoding]::ASCII.GetBytes('not json at all'))) } }
        @{ Name = 'a weights file cut in half'; Target = 'unet/diffusion_pytorch_model.safetensors'; Category = 'InvalidData'; Advice = 'outside the data section.*download or copy it again'
            Break = { param($root) $stream = [IO.File]::Open("$root/unet/diffusion_pytorch_model.safetensors", 'Open'); try { $stream.SetLength($stream.Length / 2) } finally { $stream.Dispose() } } }
        @{ Name = 'tensor offsets past the end of the file'; Target = 'text_encoder/model.safetensors'; Category = 'InvalidData'; Advice = 'data_offsets \[0, 99999999\].*download or copy it again'
            Break = { param($root) Edit-Safetensors "$root/text_encoder/model.safetensors" { param($header, $names) $header[$names[0]].data_offsets = @(0, 99999999) } } }
        @{ Name = 'overlapping tensors'; Target = 'text_encoder/model.safetensors'; Category = 'InvalidData'; Advice = 'overlaps tensor.*download or copy it again'
            Break = { param($root) Edit-Safetensors "$root/text_encoder/model.safetensors" { param($header, $names) $offsets = $header[$names[1]].data_offsets; $header[$names[1]].data_offsets = @(($offsets[0] - 4), ($offsets[1] - 4)) } } }
        @{ Name = 'an unknown dtype (F8_E4M3)'; Target = 'text_encoder/model.safetensors'; Category = 'InvalidData'; Advice = "unknown dtype 'F8_E4M3'.*convert the checkpoint to fp16 or fp32"
            Break = { param($root) Edit-Safetensors "$root/text_encoder/model.safetensors" { param($header, $names) $header[$names[0]].dtype = 'F8_E4M3' } } }
        @{ Name = 'integer weights where floats belong'; Target = 'text_encoder/model.safetensors'; Category = 'InvalidData'; Advice = 'not a floating-point tensor.*Download or copy the model again'
            Break = { param($root) Edit-Safetensors "$root/text_encoder/model.safetensors" { param($header, $names) $header[$names[0]].dtype = 'I32' } } }
        @{ Name = 'a tensor whose shape does not match the config'; Target = 'text_encoder/model.safetensors'; Category = 'InvalidData'; Advice = 'but the config needs .*Use the config.json that came with these weights'
            Break = { param($root) Edit-Safetensors "$root/text_encoder/model.safetensors" { param($header, $names) $shape = $header[$names[0]].shape; $header[$names[0]].shape = @($shape[1], $shape[0]) } } }
        @{ Name = 'a missing tensor'; Target = 'text_encoder/model.safetensors'; Category = 'InvalidData'; Advice = "'text_model.encoder.layers.1.mlp.fc1.weight' is missing.*Download or copy the model again"
            Break = { param($root) Edit-Safetensors "$root/text_encoder/model.safetensors" { param($header, $names) $name = 'text_model.encoder.layers.1.mlp.fc1.weight'; $header["unused.$name"] = $header[$name]; $header.Remove($name) } } }
        @{ Name = 'an SD 1.5 folder'; Target = 'model_index.json'; Category = 'InvalidData'; Advice = 'not a Stable Diffusion XL checkpoint.*Give the folder of an SDXL checkpoint'
            Break = {
                param($root)
                Remove-Item "$root/text_encoder_2", "$root/tokenizer_2" -Recurse
                Set-Content "$root/model_index.json" '{ "_class_name": "StableDiffusionPipeline", "_diffusers_version": "0.30.0" }'
            } }
        @{ Name = 'a UNet config of another architecture'; Target = 'unet/config.json'; Category = 'InvalidData'; Advice = "addition_embed_type is 'null'.*Give the folder of an SDXL checkpoint"
            Break = { param($root) Edit-Json "$root/unet/config.json" { param($config) $config.addition_embed_type = $null; $config.cross_attention_dim = 768 } } }
        @{ Name = 'a missing tokenizer file'; Target = 'tokenizer_2/merges.txt'; Category = 'ObjectNotFound'; Advice = 'Download or copy the whole checkpoint folder again'
            Break = { param($root) Remove-Item "$root/tokenizer_2/merges.txt" } }
        @{ Name = 'a damaged vocab.json'; Target = 'tokenizer'; Category = 'InvalidData'; Advice = 'vocab.json is not a JSON object.*Restore it'
            Break = { param($root) Set-Content "$root/tokenizer/vocab.json" '{ "a</w>": 1, ' } }
        @{ Name = 'a damaged config.json'; Target = 'unet/config.json'; Category = 'InvalidData'; Advice = 'not a valid UnetConfig config.*Restore it'
            Break = { param($root) Set-Content "$root/unet/config.json" '{ "block_out_channels": [32, ' } }
        @{ Name = 'a damaged scheduler config'; Target = 'scheduler/scheduler_config.json'; Category = 'InvalidData'; Advice = 'not valid JSON.*Restore it'
            Break = { param($root) Set-Content "$root/scheduler/scheduler_config.json" '{ "beta_start": ' } }
        @{ Name = 'no model_index.json'; Target = 'model_index.json'; Category = 'ObjectNotFound'; Advice = 'Give the folder of an SDXL checkpoint in the diffusers layout'
            Break = { param($root) Remove-Item "$root/model_index.json" } }
        @{ Name = 'UNet weights only as a pickle (.bin)'; Target = 'unet/diffusion_pytorch_model.safetensors'; Category = 'ObjectNotFound'; Advice = 'Download the model''s .safetensors files'
            Break = { param($root) Move-Item "$root/unet/diffusion_pytorch_model.safetensors" "$root/unet/diffusion_pytorch_model.bin" } }
        @{ Name = 'an IP-Adapter without its image projection'; Target = 'ip-adapter/sdxl_models/ip-adapter_sdxl_vit-h.safetensors'; Category = 'InvalidData'; Advice = "'image_proj.proj.weight' is missing.*Download or copy the model again"
            Break = { param($root) Edit-Safetensors "$root/ip-adapter/sdxl_models/ip-adapter_sdxl_vit-h.safetensors" { param($header, $names) $header.Remove('image_proj.proj.weight') } } }
        @{ Name = 'an image encoder without its config.json'; Target = 'ip-adapter/models/image_encoder/config.json'; Category = 'ObjectNotFound'; Advice = 'config.json is missing.*Download or copy it again'
            Break = { param($root) Remove-Item "$root/ip-adapter/models/image_encoder/config.json" } }
    )

    # New-MnemosyneScene settings: Settings replace the good ones; Target is the value the error must name.
    $badSettings = @(
        @{ Name = 'an empty prompt'; Settings = @{ Prompt = '' }; Target = ''; ErrorId = 'EmptyPrompt'; Advice = "prompt is empty; describe the scene" }
        @{ Name = 'a prompt of white space'; Settings = @{ Prompt = " `t " }; Target = " `t "; ErrorId = 'EmptyPrompt'; Advice = 'only white space; describe the scene.*Where-Object' }
        @{ Name = 'a NUL in the prompt'; Settings = @{ Prompt = "a cat`0in a hat" }; Target = "a cat`0in a hat"; ErrorId = 'InvalidSceneSetting'; Advice = 'U\+0000 at position 6; remove it' }
        @{ Name = 'an escape sequence in the prompt'; Settings = @{ Prompt = "`e[31ma red cat" }; Target = "`e[31ma red cat"; ErrorId = 'InvalidSceneSetting'; Advice = 'U\+001B at position 1; remove it' }
        @{ Name = 'an unpaired surrogate in the prompt'; Settings = @{ Prompt = "a cat $([char]0xD83D)" }; Target = "a cat $([char]0xD83D)"; ErrorId = 'InvalidSceneSetting'; Advice = 'unpaired UTF-16 surrogate at position 7.*right encoding' }
        @{ Name = 'a control character in the negative prompt'; Settings = @{ NegativePrompt = "blurry`a" }; Target = "blurry`a"; ErrorId = 'InvalidSceneSetting'; Advice = 'negative prompt has the control character U\+0007' }
        @{ Name = 'Width not a multiple of 8'; Settings = @{ Width = 100 }; Target = 100; ErrorId = 'InvalidSceneSetting'; Advice = 'Width must be a multiple of 8 from 64 to 4096' }
        @{ Name = 'Height below 64'; Settings = @{ Height = 32 }; Target = 32; ErrorId = 'InvalidSceneSetting'; Advice = 'Height must be a multiple of 8 from 64' }
        @{ Name = 'Width above 4096'; Settings = @{ Width = 8192 }; Target = 8192; ErrorId = 'InvalidSceneSetting'; Advice = 'from 64 to 4096' }
        @{ Name = 'Width 0'; Settings = @{ Width = 0 }; Target = 0; ErrorId = 'InvalidSceneSetting'; Advice = 'Width must be a multiple of 8' }
        @{ Name = 'a negative Height'; Settings = @{ Height = -64 }; Target = -64; ErrorId = 'InvalidSceneSetting'; Advice = 'Height must be a multiple of 8' }
        @{ Name = '0 steps'; Settings = @{ Steps = 0 }; Target = 0; ErrorId = 'InvalidSceneSetting'; Advice = 'Steps must be between 1 and 1000' }
        @{ Name = '10,000 steps'; Settings = @{ Steps = 10000 }; Target = 10000; ErrorId = 'InvalidSceneSetting'; Advice = 'Steps must be between 1 and 1000' }
        @{ Name = 'negative steps'; Settings = @{ Steps = -3 }; Target = -3; ErrorId = 'InvalidSceneSetting'; Advice = 'Steps must be between 1 and 1000' }
        @{ Name = 'NaN guidance'; Settings = @{ GuidanceScale = [float]::NaN }; Target = [float]::NaN; ErrorId = 'InvalidSceneSetting'; Advice = 'GuidanceScale must be a number from 0 to 100' }
        @{ Name = 'negative guidance'; Settings = @{ GuidanceScale = -1 }; Target = -1; ErrorId = 'InvalidSceneSetting'; Advice = 'GuidanceScale must be a number from 0 to 100' }
        @{ Name = 'infinite guidance'; Settings = @{ GuidanceScale = [float]::PositiveInfinity }; Target = [float]::PositiveInfinity; ErrorId = 'InvalidSceneSetting'; Advice = 'GuidanceScale must be a number from 0 to 100' }
        @{ Name = 'guidance above 100'; Settings = @{ GuidanceScale = 101 }; Target = 101; ErrorId = 'InvalidSceneSetting'; Advice = 'GuidanceScale must be a number from 0 to 100' }
        @{ Name = 'a guidance cutoff above 1'; Settings = @{ GuidanceCutoff = 1.5 }; Target = 1.5; ErrorId = 'InvalidSceneSetting'; Advice = 'GuidanceCutoff must be from 0 to 1' }
        @{ Name = 'a negative guidance cutoff'; Settings = @{ GuidanceCutoff = -0.2 }; Target = -0.2; ErrorId = 'InvalidSceneSetting'; Advice = 'GuidanceCutoff must be from 0 to 1' }
        @{ Name = 'reference weight above 2'; Settings = @{ ReferenceWeight = 5 }; Target = 5; ErrorId = 'InvalidSceneSetting'; Advice = 'ReferenceWeight must be from 0 to 2' }
        @{ Name = 'a negative reference weight'; Settings = @{ ReferenceWeight = -0.1 }; Target = [float]-0.1; ErrorId = 'InvalidSceneSetting'; Advice = 'ReferenceWeight must be from 0 to 2' }
        @{ Name = 'a NaN reference weight'; Settings = @{ ReferenceWeight = [float]::NaN }; Target = [float]::NaN; ErrorId = 'InvalidSceneSetting'; Advice = 'ReferenceWeight must be from 0 to 2' }
        @{ Name = 'seed -1'; Settings = @{ Seed = -1 }; Target = -1; ErrorId = 'InvalidSceneSetting'; Advice = 'Seed must be from 0 to 4294967295' }
        @{ Name = 'seed 2^32 (would repeat seed 0)'; Settings = @{ Seed = 4294967296 }; Target = 4294967296; ErrorId = 'InvalidSceneSetting'; Advice = 'Seed must be from 0 to 4294967295.*repeat' }
        @{ Name = 'seed [long]::MaxValue'; Settings = @{ Seed = [long]::MaxValue }; Target = [long]::MaxValue; ErrorId = 'InvalidSceneSetting'; Advice = 'Seed must be from 0 to 4294967295' }
        @{ Name = '-Steps with -Quality'; Settings = @{ Quality = 'Draft' }; Target = 'a cat'; ErrorId = 'StepsAndQuality'; Advice = 'Give -Steps \(2\) or -Quality \(Draft\), not both' }
        @{ Name = 'a missing noise file'; Settings = @{ InitialNoisePath = '{drive}/missing.npy' }; Target = '{drive}/missing.npy'; Category = 'ObjectNotFound'; ErrorId = 'InitialNoiseUnreadable'; Advice = 'missing.npy' }
        @{ Name = 'a noise file that is not .npy'; Settings = @{ InitialNoisePath = '{drive}/text.npy' }; Target = '{drive}/text.npy'; Category = 'InvalidData'; ErrorId = 'InitialNoiseUnreadable'; Advice = 'text.npy' }
        @{ Name = 'noise of the wrong shape'; Settings = @{ InitialNoisePath = '{drive}/small.npy' }; Target = '{drive}/small.npy'; ErrorId = 'InvalidSceneSetting'; Advice = 'needs \[1, 4, 8, 8\]' }
        @{ Name = 'a folder as the noise file'; Settings = @{ InitialNoisePath = '{drive}' }; Target = '{drive}'; ErrorId = 'InitialNoiseUnreadable'; Advice = 'is a folder; give the .npy file' }
        @{ Name = 'a LoRA weight of 99'; Settings = @{ Lora = '{drive}/loha.safetensors:99' }; Target = [float]99; ErrorId = 'InvalidSceneSetting'; Advice = 'weight must be a number from -10 to 10' }
        @{ Name = 'a missing LoRA file'; Settings = @{ Lora = '{drive}/missing.safetensors:0.8' }; Target = '{drive}/missing.safetensors'; Category = 'ObjectNotFound'; ErrorId = 'SceneFailed'; Advice = 'missing\.safetensors' }
        @{ Name = 'a LyCORIS LoHa as a LoRA'; Settings = @{ Lora = '{drive}/loha.safetensors' }; Target = '{drive}/loha.safetensors'; Category = 'InvalidData'; ErrorId = 'SceneFailed'; Advice = 'is not a LoRA the engine can apply: .*LyCORIS LoHa' }
        @{ Name = 'an SD 1.x LoRA'; Settings = @{ Lora = '{drive}/sd15.safetensors' }; Target = '{drive}/sd15.safetensors'; Category = 'InvalidData'; ErrorId = 'SceneFailed'; Advice = 'Stable Diffusion 1\.x/2\.x' }
        @{ Name = 'a <lora:> tag without -LoraFolder'; Settings = @{ Prompt = 'a cat <lora:kira:0.8>' }; Target = '<lora:kira:0.8>'; ErrorId = 'LoraFolderMissing'; Advice = 'names a LoRA by name: give the folder of LoRA files with -LoraFolder' }
        @{ Name = 'a <lora:> tag naming no file in the folder'; Settings = @{ Prompt = 'a cat <lora:kira:0.8>'; LoraFolder = '{drive}' }; Target = '<lora:kira:0.8>'; Category = 'ObjectNotFound'; ErrorId = 'LoraNotFound'; Advice = 'there is no LoRA .*kira\.safetensors' }
        @{ Name = 'a <lora:> tag leaving the folder'; Settings = @{ Prompt = 'a cat <lora:../loha>'; LoraFolder = '{drive}/loras' }; Target = '<lora:../loha>'; ErrorId = 'InvalidLora'; Advice = 'names a file outside the LoRA folder' }
        @{ Name = 'a <lora:> tag whose weight is no number'; Settings = @{ Prompt = 'a cat <lora:loha:strong>'; LoraFolder = '{drive}' }; Target = '<lora:loha:strong>'; ErrorId = 'InvalidLora'; Advice = "the weight 'strong' is not a number" }
        @{ Name = 'a <lora:> tag naming a LyCORIS LoHa'; Settings = @{ Prompt = 'a cat <lora:loha:0.5>'; LoraFolder = '{drive}' }; Target = '{drive}/loha.safetensors'; Category = 'InvalidData'; ErrorId = 'SceneFailed'; Advice = 'is not a LoRA the engine can apply: .*LyCORIS LoHa' }
        # img2img and inpainting (issue 13): init-64.png and mask-64.png are 64×64, wide.png 96×64.
        @{ Name = 'a strength above 1'; Settings = @{ InitImagePath = '{drive}/init-64.png'; Strength = 1.5 }; Target = 1.5; ErrorId = 'InvalidSceneSetting'; Advice = 'Strength must be from 0 to 1' }
        @{ Name = 'a negative strength'; Settings = @{ InitImagePath = '{drive}/init-64.png'; Strength = -0.25 }; Target = -0.25; ErrorId = 'InvalidSceneSetting'; Advice = 'Strength must be from 0 to 1' }
        @{ Name = 'a NaN strength'; Settings = @{ InitImagePath = '{drive}/init-64.png'; Strength = [double]::NaN }; Target = [double]::NaN; ErrorId = 'InvalidSceneSetting'; Advice = 'Strength must be from 0 to 1' }
        @{ Name = 'a strength that runs no step'; Settings = @{ InitImagePath = '{drive}/init-64.png'; Strength = 0.4 }; Target = 0.4; ErrorId = 'InvalidSceneSetting'; Advice = 'Strength 0.4 of 2 steps runs none' }
        @{ Name = 'a starting picture of another size than the scene'; Settings = @{ InitImagePath = '{drive}/wide.png' }; Target = '{drive}/wide.png'; ErrorId = 'InvalidSceneSetting'; Advice = 'is 96×64 but the scene is 64×64' }
        @{ Name = 'a mask of another size than the picture'; Settings = @{ InitImagePath = '{drive}/init-64.png'; MaskPath = '{drive}/wide.png' }; Target = '{drive}/wide.png'; ErrorId = 'InvalidSceneSetting'; Advice = 'mask is 96×64 but the starting picture is 64×64' }
        @{ Name = 'a mask without a picture'; Settings = @{ MaskPath = '{drive}/mask-64.png' }; Target = '{drive}/mask-64.png'; ErrorId = 'InvalidSceneSetting'; Advice = 'give the picture \(InitImage\) too' }
        @{ Name = 'a missing starting picture'; Settings = @{ InitImagePath = '{drive}/missing.png' }; Target = '{drive}/missing.png'; Category = 'ObjectNotFound'; ErrorId = 'InitImageUnreadable'; Advice = 'missing.png' }
        @{ Name = 'a starting picture that is text'; Settings = @{ InitImagePath = '{drive}/text.npy' }; Target = '{drive}/text.npy'; Category = 'InvalidData'; ErrorId = 'InitImageUnreadable'; Advice = 'not a PNG, JPEG, WebP, GIF or BMP image.*convert it to PNG or JPEG' }
        @{ Name = 'a mask declaring 100000×100000 pixels (a decompression bomb)'; Settings = @{ InitImagePath = '{drive}/init-64.png'; MaskPath = '{drive}/bomb-mask.png' }; Target = '{drive}/bomb-mask.png'; Category = 'LimitsExceeded'; ErrorId = 'MaskUnreadable'; Advice = '100000×100000 .*scale it down' }
        @{ Name = 'a folder as the starting picture'; Settings = @{ InitImagePath = '{drive}' }; Target = '{drive}'; ErrorId = 'InitImageUnreadable'; Advice = 'is a folder; give a picture file' }
        # The hires fix (issue 13): the scene is 64×64 at 2 steps.
        @{ Name = 'a hires scale above 4'; Settings = @{ HiresScale = 5 }; Target = 5; ErrorId = 'InvalidSceneSetting'; Advice = 'HiresScale must be more than 1 and at most 4' }
        @{ Name = 'a hires scale of 1'; Settings = @{ HiresScale = 1 }; Target = 1; ErrorId = 'InvalidSceneSetting'; Advice = 'HiresScale must be more than 1 and at most 4' }
        @{ Name = 'a hires scale that makes a side no multiple of 8'; Settings = @{ HiresScale = 1.1 }; Target = 1.1; ErrorId = 'InvalidSceneSetting'; Advice = 'Width 64 × HiresScale 1\.1 = 70\.4.*not a multiple of 8' }
        @{ Name = 'a hires strength above 1'; Settings = @{ HiresScale = 1.5; HiresStrength = 1.5 }; Target = 1.5; ErrorId = 'InvalidSceneSetting'; Advice = 'HiresStrength must be from 0 to 1' }
        @{ Name = 'a hires strength that runs no step'; Settings = @{ HiresScale = 2; HiresStrength = 0.4 }; Target = 0.4; ErrorId = 'InvalidSceneSetting'; Advice = 'HiresStrength 0\.4 of 2 steps runs none' }
        @{ Name = 'a hires strength without a hires scale'; Settings = @{ HiresStrength = 0.5 }; Target = 0.5; ErrorId = 'InvalidSceneSetting'; Advice = 'give -HiresScale too' }
        @{ Name = 'the hires fix of a starting picture'; Settings = @{ HiresScale = 2; InitImagePath = '{drive}/init-64.png' }; Target = '{drive}/init-64.png'; ErrorId = 'InvalidSceneSetting'; Advice = 'refines a scene made from text' }
    )

    # Several references (issue 11): Settings go beside -Reference $reference, $reference on a 64×64 scene; black-64.png is all black.
    $badReferenceSettings = @(
        @{ Name = 'a reference mask of another size than the scene'; Settings = @{ ReferenceMask = '{drive}/wide.png', 'Right' }; Target = '{drive}/wide.png'; ErrorId = 'InvalidSceneSetting'; Advice = 'is 96×64 but the scene is 64×64: give a mask of the scene''s size' }
        @{ Name = 'an all-black reference mask'; Settings = @{ ReferenceMask = 'Left', '{drive}/black-64.png' }; Target = '{drive}/black-64.png'; ErrorId = 'InvalidSceneSetting'; Advice = 'is all black, so the reference would act nowhere' }
        @{ Name = 'more references than masks'; Settings = @{ ReferenceMask = 'Left' }; Target = 'Left'; ErrorId = 'ReferenceMaskCount'; Advice = '1 mask for 2 references: give one mask per reference' }
        @{ Name = 'more masks than references'; Settings = @{ ReferenceMask = 'Left', 'Right', 'Top' }; Target = @('Left', 'Right', 'Top'); ErrorId = 'ReferenceMaskCount'; Advice = '3 masks for 2 references' }
        @{ Name = 'a weight list of the wrong length'; Settings = @{ ReferenceWeight = 0.5, 0.25, 0.75 }; Target = @(0.5, 0.25, 0.75); ErrorId = 'ReferenceWeightCount'; Advice = '3 weights for 2 references: give one weight for all, or one per reference' }
        @{ Name = 'a reference mask that is no picture, half or rectangle'; Settings = @{ ReferenceMask = 'Left', 42 }; Target = 42; ErrorId = 'InvalidReferenceMask'; Advice = 'takes a picture file, Left, Right, Top, Bottom' }
        @{ Name = 'a missing reference mask file'; Settings = @{ ReferenceMask = 'Left', '{drive}/missing.png' }; Target = '{drive}/missing.png'; Category = 'ObjectNotFound'; ErrorId = 'ReferenceMaskUnreadable'; Advice = 'missing.png' }
        @{ Name = 'a reference mask declaring 100000×100000 pixels'; Settings = @{ ReferenceMask = 'Left', '{drive}/bomb-mask.png' }; Target = '{drive}/bomb-mask.png'; Category = 'LimitsExceeded'; ErrorId = 'ReferenceMaskUnreadable'; Advice = 'scale it down' }
        @{ Name = 'an unknown reference block preset'; Settings = @{ ReferenceBlocks = 'Faces' }; Target = 'Faces'; ErrorId = 'InvalidReferenceBlocks'; Advice = 'neither All, Style, Layout nor StyleAndLayout' }
        @{ Name = 'a block table naming no part of the UNet'; Settings = @{ ReferenceBlocks = @{ side = 1 } }; Target = $null; ErrorId = 'InvalidReferenceBlocks'; Advice = "the key 'side' is not a part of the UNet" }
        @{ Name = 'a block table with a list of the wrong length'; Settings = @{ ReferenceBlocks = @{ up = @{ block_0 = 0, 1 } } }; Target = '{"up": {"block_0": [0.0, 1.0]}}'; ErrorId = 'SceneFailed'; Advice = 'up.block_0 has 3 attentions, so it takes 3 numbers' }
        @{ Name = 'a reference window that ends before it starts'; Settings = @{ ReferenceStart = 0.8; ReferenceEnd = 0.3 }; Target = @(0.8, 0.3); ErrorId = 'InvalidSceneSetting'; Advice = '0 ≤ start < end ≤ 1' }
    )

    # Odd settings that must work; Check gets the scene and the warnings.
    $oddSettings = @(
        @{ Name = 'a 10,000-character prompt (read whole, in 75-token chunks)'; Settings = @{ Prompt = ('a very long prompt ' * 527).Substring(0, 10000) }
            Check = { param($scene, $warnings) $scene.Prompt.Length | Should -Be 10000; $warnings | Should -BeNullOrEmpty } }
        @{ Name = 'a 10,000-character prompt with -PromptStyle Diffusers (made, with a truncation warning)'
            Settings = @{ Prompt = ('a very long prompt ' * 527).Substring(0, 10000); PromptStyle = 'Diffusers' }
            Check = { param($scene, $warnings) $scene.PromptStyle | Should -Be 'Diffusers'; "$warnings" | Should -Match 'longer than CLIP''s 77 tokens: its last \d+ tokens were dropped' } }
        @{ Name = 'unbalanced brackets and a weight that is no number (read as A1111 reads them)'; Settings = @{ Prompt = '((a cat:abc) in a [hat]] ) \x BREAK BREAK'; NegativePrompt = '(blurry' }
            Check = { param($scene, $warnings) $scene.Prompt | Should -Be '((a cat:abc) in a [hat]] ) \x BREAK BREAK'; $warnings | Should -BeNullOrEmpty } }
        @{ Name = 'emoji and other scripts'; Settings = @{ Prompt = 'a 🐱 in a 🎩 at a café, 猫' }
            Check = { param($scene, $warnings) $scene.Prompt | Should -Be 'a 🐱 in a 🎩 at a café, 猫'; $warnings | Should -BeNullOrEmpty } }
        @{ Name = 'tabs and line breaks'; Settings = @{ Prompt = "a cat`tin a hat`r`nat night" }
            Check = { param($scene, $warnings) $scene.Prompt | Should -Be "a cat`tin a hat`r`nat night" } }
        @{ Name = 'seed 0'; Settings = @{ Seed = 0 }; Check = { param($scene, $warnings) $scene.Seed | Should -Be 0 } }
        @{ Name = 'seed 4294967295 (2^32 − 1)'; Settings = @{ Seed = 4294967295 }; Check = { param($scene, $warnings) $scene.Seed | Should -Be 4294967295 } }
        @{ Name = 'the smallest size and one step'; Settings = @{ Width = 64; Height = 64; Steps = 1 }; Check = { param($scene, $warnings) $scene.Image.Rgb.Length | Should -Be (64 * 64 * 3) } }
        @{ Name = 'guidance 0 and reference weight 2'; Settings = @{ GuidanceScale = 0; ReferenceWeight = 2 }
            Check = { param($scene, $warnings) $scene.GuidanceScale | Should -Be 0; $scene.ReferenceWeight | Should -Be 2 } }
        @{ Name = 'an empty negative prompt'; Settings = @{ NegativePrompt = '' }; Check = { param($scene, $warnings) $scene.NegativePrompt | Should -Be '' } }
    )

    # Live preview paths for New-MnemosyneScene -PreviewPath ('{drive}' is the test's folder): refused before any scene.
    $badPreviews = @(
        @{ Name = 'a missing folder'; Target = '{drive}/missing/preview.png'; Category = 'ObjectNotFound'; ErrorId = 'FolderNotFound'; Advice = 'does not exist\. Create it first' }
        @{ Name = 'a file that is not .png'; Target = '{drive}/preview.jpg'; Category = 'InvalidArgument'; ErrorId = 'PreviewNotPng'; Advice = 'PNG picture: give -PreviewPath a \.png file name' }
        @{ Name = 'a folder'; Target = '{drive}/previews'; Category = 'InvalidArgument'; ErrorId = 'PathIsFolder'; Advice = 'is a folder: give -PreviewPath a \.png file name in it'
            Prepare = { param($target) $null = New-Item -ItemType Directory $target -Force } }
        @{ Name = 'a path under a file'; Target = '{drive}/a-file/preview.png'; Category = 'InvalidArgument'; ErrorId = 'FolderIsFile'; Advice = 'is a file, so it cannot hold preview\.png'
            Prepare = { param($target) Set-Content (Split-Path $target) 'not a folder' } }
    )

    # Output paths: Run writes to the target, which Target builds ('{drive}' is the test's folder).
    $badOutputs = @(
        @{ Name = 'Save-MnemosyneImage into a missing folder'; ErrorId = 'FolderNotFound'; Target = '{drive}/missing/cat.png'; Category = 'ObjectNotFound'; Advice = 'does not exist\. Create it first'
            Run = { param($target) $scene | Save-MnemosyneImage -Path $target } }
        @{ Name = 'Save-MnemosyneImage over an existing file without -Force'; ErrorId = 'FileExists'; Target = '{drive}/precious.png'; Category = 'ResourceExists'; Advice = 'already exists\. Use -Force'
            Prepare = { param($target) Set-Content $target 'precious' -NoNewline }; Keep = 'precious'
            Run = { param($target) $scene | Save-MnemosyneImage -Path $target } }
        @{ Name = 'Save-MnemosyneImage to a path that is a folder'; ErrorId = 'PathIsFolder'; Target = '{drive}/a-folder'; Category = 'InvalidArgument'; Advice = 'is a folder\. Give a file name \(or use -Directory'
            Prepare = { param($target) $null = New-Item -ItemType Directory $target }
            Run = { param($target) $scene | Save-MnemosyneImage -Path $target } }
        @{ Name = 'Save-MnemosyneImage under a file, as if it were a folder'; ErrorId = 'FolderIsFile'; Target = '{drive}/a-file/cat.png'; Category = 'InvalidArgument'; Advice = 'is a file, so it cannot hold cat\.png\. Choose a path in a folder'
            Prepare = { param($target) Set-Content (Split-Path $target) 'not a folder' }
            Run = { param($target) $scene | Save-MnemosyneImage -Path $target } }
        @{ Name = 'Save-MnemosyneImage with a name too long for the file system'; ErrorId = 'WriteFailed'; Target = "{drive}/$('n' * 300).png"; Category = 'WriteError'; Advice = 'the name is too long.*Nothing was written.*shorter name'
            Run = { param($target) $scene | Save-MnemosyneImage -Path $target } }
        @{ Name = 'Save-MnemosyneImage to a path of another provider'; ErrorId = 'NotAFileSystemPath'; Target = 'Env:/cat.png'; Category = 'InvalidArgument'; Advice = 'not a file-system path.*Give a path to a file'
            Run = { param($target) $scene | Save-MnemosyneImage -Path $target } }
        @{ Name = 'Save-MnemosyneImage -Directory under a file'; ErrorId = 'FolderIsFile'; Target = '{drive}/a-file/pictures'; Category = 'InvalidArgument'; Advice = 'a-file is a file, so the folder .*pictures cannot be made under it'
            Prepare = { param($target) Set-Content (Split-Path $target) 'not a folder' }
            Run = { param($target) $scene | Save-MnemosyneImage -Directory $target } }
        @{ Name = 'Export-MnemosyneReference into a missing folder'; ErrorId = 'FolderNotFound'; Target = '{drive}/missing/kira.json'; Category = 'ObjectNotFound'; Advice = 'Create it first'
            Run = { param($target) $reference | Export-MnemosyneReference -Path $target } }
        @{ Name = 'Export-MnemosyneReference over an existing file without -Force'; ErrorId = 'FileExists'; Target = '{drive}/kira.json'; Category = 'ResourceExists'; Advice = 'Use -Force'
            Prepare = { param($target) Set-Content $target 'keep me' -NoNewline }; Keep = 'keep me'
            Run = { param($target) $reference | Export-MnemosyneReference -Path $target } }
        @{ Name = 'Export-MnemosyneReference to a path that is a folder'; ErrorId = 'PathIsFolder'; Target = '{drive}/another-folder'; Category = 'InvalidArgument'; Advice = 'is a folder'
            Prepare = { param($target) $null = New-Item -ItemType Directory $target }
            Run = { param($target) $reference | Export-MnemosyneReference -Path $target } }
    )
    if ($IsLinux) {
        # /proc takes no new files, whoever asks.
        $badOutputs += @{ Name = 'Save-MnemosyneImage into a folder that takes no files (/proc)'; ErrorId = 'WriteFailed'; Target = '/proc/mnemosyne-cat.png'; Category = 'WriteError'; Advice = 'takes no new files.*Nothing was written.*choose another folder'
            Run = { param($target) $scene | Save-MnemosyneImage -Path $target } }
    }
    # A read-only folder: root ignores permission bits, so root writes into /sys (read-only for everyone) instead.
    $readOnly = if ($IsWindows) { $null } elseif ($isRoot) { if (Test-Path /sys/kernel) { '/sys' } } else { '{drive}/locked' }
    if ($readOnly) {
        foreach ($command in 'Save-MnemosyneImage', 'Export-MnemosyneReference') {
            $badOutputs += @{ Name = "$command into a read-only folder ($(if ($isRoot) { '/sys, as root' } else { 'mode 555' }))"
                Target = "$readOnly/mnemosyne-out.$(if ($command -eq 'Save-MnemosyneImage') { 'png' } else { 'json' })"
                Category = 'PermissionDenied'; ErrorId = 'WriteFailed'; Advice = 'may not create files in .*choose another folder or change its permissions'
                Prepare = { param($target) if ($target -notlike '/sys/*') { $null = New-Item -ItemType Directory (Split-Path $target) -Force; chmod 555 (Split-Path $target) } }
                Run = if ($command -eq 'Save-MnemosyneImage') { { param($target) $scene | Save-MnemosyneImage -Path $target } } else { { param($target) $reference | Export-MnemosyneReference -Path $target } } }
        }
    }
}

BeforeAll {
    . $PSScriptRoot/Common.ps1
    Import-Mnemosyne
    . $PSScriptRoot/BadInputHelpers.ps1
    # No model of the machine's own cache (a tiny decoder, say) may join the engine these cases open.
    Save-HubEnvironment
    Use-HubCache

    # The tiny random checkpoint (with its IP-Adapter), open as the session's engine for every case.
    $script:checkpoint = Join-Path $TestDrive 'tiny'
    [Mnemosyne.Testing.RandomCheckpoint]::Write($checkpoint, [Mnemosyne.Testing.CheckpointShape]::Tiny, 1)
    Open-MnemosyneEngine $checkpoint -ErrorAction Stop
    $script:baseline = [Convert]::ToHexString((New-MnemosyneScene 'a cat' -Seed 1 @tiny -ErrorAction Stop).Image.Rgb)
    $script:picture = Join-Path $TestDrive 'character.png'
    [IO.File]::WriteAllBytes($picture, (Get-PositionalPng 40 30))
    $script:reference = Import-MnemosyneReference $picture -Name 'kira' -ErrorAction Stop
    $script:scene = New-FakeScene -Prompt 'a cat' -Seed 1 -Width 16 -Height 16
}

AfterAll {
    # Later test files open config B only when no engine is open.
    Close-MnemosyneEngine
    Restore-HubEnvironment
}

Describe 'Bad pictures for Import-MnemosyneReference' {
    It '<Name>: <Category>, naming the file' -ForEach $badPictures {
        $path = Join-Path $TestDrive $File
        Invoke-Case $Make $path
        $failure = Get-OnlyFailure { Import-MnemosyneReference $path }
        Assert-Failure $failure -Category $Category -Target $path -Advice $Advice -ErrorId 'ReferenceImageUnusable'
        Assert-SessionUsable
    }

    It 'a missing file: ObjectNotFound, naming it' {
        $missing = Join-Path $TestDrive 'missing.png'
        Assert-Failure (Get-OnlyFailure { Import-MnemosyneReference $missing }) -Category ObjectNotFound -Target $missing -Advice 'File not found: .*Check the path'
        Assert-SessionUsable
    }

    It 'a wildcard that matches nothing: ObjectNotFound, naming the pattern' {
        $pattern = Join-Path $TestDrive 'no-match-*.gif'
        Assert-Failure (Get-OnlyFailure { Import-MnemosyneReference $pattern }) -Category ObjectNotFound -Target $pattern -Advice 'No file matches .*Check the folder and the pattern'
        Assert-SessionUsable
    }

    It 'a folder: InvalidArgument, suggesting its files' {
        $folder = New-Item -ItemType Directory (Join-Path $TestDrive 'pictures') -Force
        Assert-Failure (Get-OnlyFailure { Import-MnemosyneReference $folder.FullName }) -Category InvalidArgument -Target $folder.FullName -Advice 'is a folder; give the files in it'
        Assert-SessionUsable
    }
}

Describe 'Odd pictures that Import-MnemosyneReference takes' {
    It '<Name>: its pixels, as diffusers would see them' -ForEach $oddPictures {
        $path = Join-Path $TestDrive $File
        $expected = Invoke-Case $Make $path

        $decoded = [Mnemosyne.Engine.Imaging.SafeImageDecoder]::Default.Decode($path)
        "$($decoded.Width)×$($decoded.Height)" | Should -Be "$($expected.Width)×$($expected.Height)"
        $worst = 0
        for ($i = 0; $i -lt $expected.Rgb.Length; $i++) { $worst = [Math]::Max($worst, [Math]::Abs([int]$decoded.Rgb[$i] - [int]$expected.Rgb[$i])) }
        $worst | Should -BeLessOrEqual $Tolerance

        $all = @(Import-MnemosyneReference $path 2>&1)
        $all.Count | Should -Be 1
        $all[0] | Should -BeOfType ([Mnemosyne.Engine.Pipeline.CharacterReference])
        $all[0].Sources[0].Path | Should -Be $path
        # The cmdlet encodes exactly those pixels: a plain PNG of them gives the same embedding.
        $plain = Join-Path $TestDrive "plain-$File.png"
        [Mnemosyne.Engine.Imaging.PngFile]::Save($plain, $decoded, $null, $true)
        (Import-MnemosyneReference $plain).Embedding | Should -Be $all[0].Embedding
        Assert-SessionUsable
    }
}

Describe 'Damaged saved references' {
    BeforeAll {
        $script:saved = Join-Path $TestDrive 'saved-kira.json'
        $reference | Export-MnemosyneReference -Path $saved -Force
        $script:savedText = Get-Content -Raw $saved
    }

    It '<Name>: InvalidData, naming the file' -ForEach $badReferences {
        $path = Join-Path $TestDrive "damaged-$($Name -replace '\W', '-').json"
        Set-Content $path (Invoke-Case $Edit $savedText) -NoNewline
        $failure = Get-OnlyFailure { Import-MnemosyneReference $path }
        Assert-Failure $failure -Category $Category -Target $path -Advice $Advice -ErrorId 'SavedReferenceUnreadable'
        Assert-SessionUsable
    }

    It 'a file of 8 MB: InvalidData, asking whether it is the right file' {
        $path = Join-Path $TestDrive 'big.json'
        $stream = [IO.File]::Create($path)
        try { $stream.SetLength(8MB) } finally { $stream.Dispose() }
        Assert-Failure (Get-OnlyFailure { Import-MnemosyneReference $path }) -Category InvalidData -Target $path -Advice 'too large for a saved reference.*is it the right file'
        Assert-SessionUsable
    }

    Context 'a well-formed file whose embedding lost values' {
        BeforeAll {
            $path = Join-Path $TestDrive 'short.json'
            Set-Content $path ($savedText -replace '(?s)("embedding": \[\s*)[^,\s]+,\s*[^,\s]+,', '$1') -NoNewline
            $script:short = Import-MnemosyneReference $path -ErrorAction Stop
        }

        It 'New-MnemosyneScene: InvalidArgument, with the reference as target' {
            $short.Embedding.Length | Should -Be ($reference.Embedding.Length - 2)
            $failure = Get-OnlyFailure { New-MnemosyneScene 'a cat' -Reference $short -Seed 1 @tiny }
            Assert-Failure $failure -Category InvalidArgument -Target $short -Advice "holds $($short.Embedding.Length) values.*damaged\. Import the reference images again" -ErrorId 'SceneFailed'
            Assert-SessionUsable
        }

        It 'Measure-MnemosyneConsistency: InvalidArgument, with the reference as target' {
            $failure = Get-OnlyFailure { Measure-MnemosyneConsistency -Reference $short -Path $picture }
            Assert-Failure $failure -Category InvalidArgument -Target $short -Advice 'damaged\. Import the reference pictures again' -ErrorId 'ReferenceDamaged'
            Assert-SessionUsable
        }
    }
}

Describe 'A reference of another IP-Adapter kind' {
    BeforeAll {
        $plusAdapter = Join-Path $checkpoint 'ip-adapter/sdxl_models/ip-adapter-plus_sdxl_vit-h.safetensors'
        Open-MnemosyneEngine $checkpoint -IPAdapterPath $plusAdapter -ErrorAction Stop
        $script:plusReference = Import-MnemosyneReference $picture -Name 'kira-plus' -ErrorAction Stop
    }

    AfterAll { Open-MnemosyneEngine $checkpoint -ErrorAction Stop }

    It 'a base reference given to an IP-Adapter Plus engine: InvalidArgument, with the reference as target' {
        $plusReference.AdapterKind | Should -Be 'Plus'
        $failure = Get-OnlyFailure { New-MnemosyneScene 'a cat' -Reference $reference -Seed 1 @tiny }
        Assert-Failure $failure -Category InvalidArgument -Target $reference -Advice 'was made for the base IP-Adapter.*this engine''s IP-Adapter is IP-Adapter Plus.*Import the reference images again' -ErrorId 'SceneFailed'
        # The Plus engine goes on with its own reference.
        (New-MnemosyneScene 'a cat' -Reference $plusReference -Seed 1 @tiny -ErrorAction Stop).Image.Width | Should -Be $tiny.Width
        # Consistency reads the image embeddings every reference keeps: the reference's own picture scores 1.
        [Math]::Round((Measure-MnemosyneConsistency -Reference $plusReference -Path $picture -ErrorAction Stop).Similarity, 5) | Should -Be 1
    }

    It 'two pictures combined by concatenation on a Plus engine: InvalidArgument, with the pictures as target' {
        $second = Join-Path $TestDrive 'character-2.png'
        [IO.File]::WriteAllBytes($second, (Get-PositionalPng 30 40))
        $failure = Get-OnlyFailure { Import-MnemosyneReference $picture, $second -Combine Concatenate }
        Assert-Failure $failure -Category InvalidArgument -Target @($picture, $second) -Advice 'Concatenate combines pictures for the base IP-Adapter.*Plus averages' -ErrorId 'ReferenceImageUnusable'
        Assert-SessionUsable
    }

    It 'a Plus reference given to a base engine: InvalidArgument, with the reference as target' {
        Open-MnemosyneEngine $checkpoint -ErrorAction Stop
        $failure = Get-OnlyFailure { New-MnemosyneScene 'a cat' -Reference $plusReference -Seed 1 @tiny }
        Assert-Failure $failure -Category InvalidArgument -Target $plusReference -Advice 'was made for IP-Adapter Plus.*this engine''s IP-Adapter is the base IP-Adapter' -ErrorId 'SceneFailed'
        Assert-SessionUsable
    }

    It 'a saved Plus reference keeps its kind, and a base engine refuses the file''s reference too' {
        $path = Join-Path $TestDrive 'kira-plus.json'
        $plusReference | Export-MnemosyneReference -Path $path -Force
        (Get-Item $path).Length | Should -BeLessThan 4MB
        $loaded = Import-MnemosyneReference $path -ErrorAction Stop
        $loaded.AdapterKind | Should -Be 'Plus'
        $loaded.HiddenStates.Data | Should -Be $plusReference.HiddenStates.Data
        Assert-Failure (Get-OnlyFailure { New-MnemosyneScene 'a cat' -Reference $loaded -Seed 1 @tiny }) -Category InvalidArgument -Target $loaded -Advice 'was made for IP-Adapter Plus' -ErrorId 'SceneFailed'
        Assert-SessionUsable
    }
}

Describe 'Damaged checkpoints for Open-MnemosyneEngine' {
    It '<Name>: <Category>, naming <Target>; the open engine stays' -ForEach $badCheckpoints {
        $copy = Join-Path $TestDrive "broken-$([guid]::NewGuid().ToString('N'))"
        Copy-Item $checkpoint $copy -Recurse
        Invoke-Case $Break $copy
        try {
            $failure = Get-OnlyFailure { Open-MnemosyneEngine $copy }
            Assert-Failure $failure -Category $Category -Target (Join-Path $copy $Target) -Advice $Advice -ErrorId 'EngineOpenFailed'
            (Get-MnemosyneEngine).Path | Should -Be $checkpoint
            Assert-SessionUsable
        }
        finally {
            # A broken copy that opened after all must not be the engine of the cases after this one.
            if ((Get-MnemosyneEngine).Path -ne $checkpoint) { Open-MnemosyneEngine $checkpoint }
            Remove-Item $copy -Recurse -Force
        }
    }
}

Describe 'A GPU engine on a machine without CUDA (issue 15)' {
    # The module ships ONNX Runtime's CPU build; where its CUDA build was added (a GPU machine) the error would name the next thing missing.
    It '-ExecutionProvider Cuda: one NotInstalled error naming the CUDA build; the open engine stays, and a CPU engine opens after it' {
        if (Test-Path (Join-Path ([Mnemosyne.Engine.Onnx.OnnxRuntimeNative]::CudaFolder) '*onnxruntime.*')) {
            Set-ItResult -Skipped -Because 'ONNX Runtime''s CUDA build is installed beside this module'
            return
        }
        $failure = Get-OnlyFailure { Open-MnemosyneEngine $checkpoint -ExecutionProvider Cuda }
        Assert-Failure $failure -Category NotInstalled -Target ([Mnemosyne.Engine.Onnx.ExecutionProvider]::Cuda) -ErrorId 'CudaOnnxRuntimeBuildUnavailable' `
            -Advice "needs ONNX Runtime's CUDA build, which is not installed.*Microsoft\.ML\.OnnxRuntime\.Gpu\.Linux.*build\.ps1 Package -Gpu"
        (Get-MnemosyneEngine).Path | Should -Be $checkpoint
        Assert-SessionUsable
        Open-MnemosyneEngine $checkpoint -ExecutionProvider Cpu -ErrorAction Stop
        (Get-MnemosyneEngine).ExecutionProvider | Should -Be 'Cpu'
        Assert-SessionUsable
    }
}

Describe 'Batches with nowhere to run (issue 15)' {
    It '<Name>: one InvalidArgument error, nothing made' -ForEach @(
        @{ Name = 'neither -Session nor -LocalProcess'; ErrorId = 'NoHosts'; Target = $null; Advice = '-Session .*-LocalProcess .*or both'; Extra = @{} }
        @{ Name = '-ThreadsPerProcess without -LocalProcess'; ErrorId = 'ThreadsWithoutLocalProcess'; Target = 2; Advice = 'give -LocalProcess too'
            Extra = @{ ThreadsPerProcess = 2 } }
    ) {
        $folder = New-Item -ItemType Directory (Join-Path $TestDrive "nowhere-$([guid]::NewGuid().ToString('N'))")
        $failure = Get-OnlyFailure { 'a cat' | Invoke-MnemosyneBatch -Directory $folder @Extra }
        Assert-Failure $failure -Category InvalidArgument -Target $Target -Advice $Advice -ErrorId $ErrorId
        Get-ChildItem $folder -Force | Should -BeNullOrEmpty
        Assert-SessionUsable
    }
}

Describe 'Bad settings for New-MnemosyneScene' {
    BeforeAll {
        Set-Content (Join-Path $TestDrive 'text.npy') 'not numpy'
        [Mnemosyne.Engine.Tensors.NpyFile]::Write((Join-Path $TestDrive 'small.npy'), [Mnemosyne.Engine.Tensors.FloatTensor]::new([float[]]::new(64), [int[]](1, 4, 4, 4)))
        # Files of one [1, 1] tensor whose name says what they are: a LyCORIS LoHa, a LoRA for SD 1.x (lora_te_).
        foreach ($file in @{ 'loha.safetensors' = 'lora_unet_conv_in.hada_w1_a'; 'sd15.safetensors' = 'lora_te_text_model_encoder_layers_0_mlp_fc1.lora_down.weight' }.GetEnumerator()) {
            $json = '{"' + $file.Value + '":{"dtype":"F32","shape":[1,1],"data_offsets":[0,4]}}'
            $header = [Text.Encoding]::UTF8.GetBytes($json.PadRight([int][Math]::Ceiling($json.Length / 8) * 8))
            [IO.File]::WriteAllBytes((Join-Path $TestDrive $file.Key), [BitConverter]::GetBytes([long]$header.Length) + $header + [byte[]]::new(4))
        }
        $img2img = Join-Path $repositoryRoot 'tests/reference/img2img-b'
        Copy-Item (Join-Path $img2img 'init-64.png') $TestDrive
        Copy-Item (Join-Path $img2img 'mask-64.png') $TestDrive
        Copy-Item (Join-Path $img2img 'init-96x64.png') (Join-Path $TestDrive 'wide.png')
        [IO.File]::WriteAllBytes((Join-Path $TestDrive 'bomb-mask.png'), (Set-PngSize (Get-PositionalPng 1 1) 100000 100000))
        [Mnemosyne.Engine.Imaging.PngFile]::Save((Join-Path $TestDrive 'black-64.png'), [Mnemosyne.Engine.Imaging.RgbImage]::new(64, 64, [byte[]]::new(64 * 64 * 3)))
    }

    It '<Name>: <ErrorId>, with the value as target' -ForEach $badSettings {
        $arguments = @{ Prompt = 'a cat'; Seed = 1 } + $tiny
        foreach ($key in $Settings.Keys) {
            $arguments[$key] = if ($Settings[$key] -is [string]) { $Settings[$key].Replace('{drive}', $TestDrive) } else { $Settings[$key] }
        }
        $target = if ($Target -is [string]) { $Target.Replace('{drive}', $TestDrive) } else { $Target }

        $failure = Get-OnlyFailure { New-MnemosyneScene @arguments }
        Assert-Failure $failure -Category $(if ($_['Category']) { $_['Category'] } else { 'InvalidArgument' }) -Target $target -Advice $Advice -ErrorId $ErrorId
        "$failure" | Should -Not -Match "\(Parameter '" -Because 'the message is one sentence, not .NET''s parameter note'
        Assert-SessionUsable
    }

    It '<Name>: <ErrorId>, with the value as target' -ForEach $badReferenceSettings {
        $arguments = @{ Prompt = 'a cat'; Seed = 1; Reference = $reference, $reference } + $tiny
        foreach ($key in $Settings.Keys) {
            $arguments[$key] = foreach ($value in $Settings[$key]) { if ($value -is [string]) { $value.Replace('{drive}', $TestDrive) } else { $value } }
            if ($Settings[$key] -is [hashtable]) { $arguments[$key] = $Settings[$key] }
        }
        $target = if ($Target -is [string]) { $Target.Replace('{drive}', $TestDrive) } elseif ($Target -is [array]) { , $Target } else { $Target }
        # The table's error names the table itself.
        if ($null -eq $Target) { $target = $arguments.ReferenceBlocks }

        $failure = Get-OnlyFailure { New-MnemosyneScene @arguments }
        Assert-Failure $failure -Category $(if ($_['Category']) { $_['Category'] } else { 'InvalidArgument' }) -Target $target -Advice $Advice -ErrorId $ErrorId
        "$failure" | Should -Not -Match "\(Parameter '" -Because 'the message is one sentence, not .NET''s parameter note'
        Assert-SessionUsable
    }

    It 'refuses a bad setting before it needs an engine' {
        Close-MnemosyneEngine
        try {
            $failure = Get-OnlyFailure { New-MnemosyneScene 'a cat' -Seed 4294967296 @tiny }
            Assert-Failure $failure -Category InvalidArgument -Target 4294967296 -Advice 'Seed must be from 0' -ErrorId 'InvalidSceneSetting'
        }
        finally { Open-MnemosyneEngine $checkpoint }
        Assert-SessionUsable
    }

    It '<Name>: works' -ForEach $oddSettings {
        $arguments = @{ Prompt = 'a cat'; Seed = 1; Reference = $reference } + $tiny
        foreach ($key in $Settings.Keys) { $arguments[$key] = $Settings[$key] }
        $all = @(New-MnemosyneScene @arguments -WarningVariable warnings -WarningAction SilentlyContinue 2>&1)
        $all.Count | Should -Be 1
        $all[0] | Should -BeOfType ([Mnemosyne.Engine.Pipeline.Scene])
        Invoke-Case $Check $all[0] $warnings
        # What was made can be saved, with the prompt intact in the PNG's parameters.
        $file = Join-Path $TestDrive "odd-$([guid]::NewGuid().ToString('N')).png"
        $all[0] | Save-MnemosyneImage -Path $file -ErrorAction Stop
        $text = ([Mnemosyne.Engine.Imaging.PngFile]::ReadText($file) | Where-Object Keyword -EQ 'parameters').Text
        $text.StartsWith($all[0].Prompt + "`n", [StringComparison]::Ordinal) | Should -BeTrue
        Assert-SessionUsable
    }

    It 'seed 2^32 − 1 and seed 0 are different pictures' {
        $top = New-MnemosyneScene 'a cat' -Seed 4294967295 @tiny
        $zero = New-MnemosyneScene 'a cat' -Seed 0 @tiny
        [Convert]::ToHexString($top.Image.Rgb) | Should -Not -Be ([Convert]::ToHexString($zero.Image.Rgb))
    }
}

Describe 'The tiny decoder and live previews' {
    It 'a tiny decoder of another architecture (the VAE''s folder): InvalidData, naming its config; the open engine stays' {
        $failure = Get-OnlyFailure { Open-MnemosyneEngine $checkpoint -TinyDecoderPath (Join-Path $checkpoint 'vae') }
        Assert-Failure $failure -Category InvalidData -Target (Join-Path $checkpoint 'vae/config.json') -ErrorId 'EngineOpenFailed' `
            -Advice "_class_name is 'AutoencoderKL', not 'AutoencoderTiny'.*madebyollin/taesdxl"
        (Get-MnemosyneEngine).Path | Should -Be $checkpoint
        Assert-SessionUsable
    }

    It 'a tiny decoder that is not there: ObjectNotFound, naming it' {
        $missing = Join-Path $TestDrive 'no-taesd'
        $failure = Get-OnlyFailure { Open-MnemosyneEngine $checkpoint -TinyDecoderPath $missing }
        Assert-Failure $failure -Category ObjectNotFound -Target $missing -ErrorId 'TinyDecoderNotFound' -Advice 'No tiny decoder at .*Install-MnemosyneModel taesdxl'
        Assert-SessionUsable
    }

    It '-Decoder Tiny with no tiny decoder: InvalidOperation, saying how to get one' {
        $failure = Get-OnlyFailure { New-MnemosyneScene 'a cat' -Seed 1 -Decoder Tiny @tiny }
        Assert-Failure $failure -Category InvalidOperation -Target ([Mnemosyne.Engine.Pipeline.SceneDecoder]::Tiny) -ErrorId 'NoTinyDecoder' `
            -Advice 'has no tiny decoder, so it cannot decode scenes with -Decoder Tiny\. Open it again with Open-MnemosyneEngine -TinyDecoderPath .*Install-MnemosyneModel taesdxl'
        Assert-SessionUsable
    }

    It '-PreviewPath with no tiny decoder: InvalidOperation, naming the preview, and no file' {
        $preview = Join-Path $TestDrive 'no-decoder.png'
        $failure = Get-OnlyFailure { New-MnemosyneScene 'a cat' -Seed 1 -PreviewPath $preview @tiny }
        Assert-Failure $failure -Category InvalidOperation -Target $preview -ErrorId 'NoTinyDecoder' -Advice 'cannot draw live previews \(-PreviewPath\)'
        $preview | Should -Not -Exist
        Assert-SessionUsable
    }

    It 'a preview path in <Name>: <Category>, naming the path' -ForEach $badPreviews {
        $target = $Target.Replace('{drive}', $TestDrive)
        if ($_['Prepare']) { Invoke-Case $_['Prepare'] $target }
        $failure = Get-OnlyFailure { New-MnemosyneScene 'a cat' -Seed 1 -PreviewPath $target @tiny }
        Assert-Failure $failure -Category $Category -Target $target -Advice $Advice -ErrorId $ErrorId
        Assert-SessionUsable
    }

    It '-PreviewEvery without -PreviewPath: InvalidArgument' {
        $failure = Get-OnlyFailure { New-MnemosyneScene 'a cat' -Seed 1 -PreviewEvery 2 @tiny }
        Assert-Failure $failure -Category InvalidArgument -Target 2 -ErrorId 'PreviewEveryWithoutPath' -Advice 'no -PreviewPath says where'
    }

    It '-PreviewEvery 0: refused at binding' {
        { New-MnemosyneScene 'a cat' -PreviewPath (Join-Path $TestDrive 'p.png') -PreviewEvery 0 -ErrorAction Stop } | Should -Throw -ErrorId 'ParameterArgumentValidationError,*'
    }
}

Describe 'Bad output paths' {
    It '<Name>: <Category>, naming the path' -ForEach $badOutputs {
        $target = $Target.Replace('{drive}', $TestDrive)
        $prepare, $keep = $_['Prepare'], $_['Keep']
        if ($prepare) { Invoke-Case $prepare $target }
        try {
            $failure = Get-OnlyFailure { Invoke-Case $Run $target }
            Assert-Failure $failure -Category $Category -Target $target -Advice $Advice -ErrorId $ErrorId
            "$failure" | Should -Not -Match '\.tmp\b' -Because 'the message is about the file asked for'
            if ($keep) { Get-Content -Raw $target | Should -Be $keep }
            elseif (-not [IO.Directory]::Exists($target)) { [IO.File]::Exists($target) | Should -BeFalse }
            $folder = Split-Path $target
            if ((Test-Path -LiteralPath $folder -PathType Container) -and $folder -like "$TestDrive*") {
                Get-ChildItem -LiteralPath $folder -Force -Filter '*.tmp' | Should -BeNullOrEmpty
            }
        }
        finally { if ($target -like "$TestDrive/locked/*") { chmod 755 (Split-Path $target) } }
        Assert-SessionUsable
    }

    It 'a name that only just fits the file system: saved' {
        $target = Join-Path $TestDrive "$('n' * 246).png"
        $scene | Save-MnemosyneImage -Path $target -ErrorAction Stop
        $target | Should -Exist
        Get-ChildItem $TestDrive -Force -Filter '*.tmp' | Should -BeNullOrEmpty
    }
}

Describe 'A stream with one bad input: the others are made (-ErrorAction Continue)' {
    It 'prompts: a scene for each good one, an error for each bad one, in order' {
        $all = @('on a beach', "in a`0forest", '', 'at a cafe' | New-MnemosyneScene -Seed 5 @tiny -ErrorAction Continue 2>&1)
        $all.Count | Should -Be 4
        $all[0].Prompt | Should -Be 'on a beach'
        $all[1].TargetObject | Should -BeExactly "in a`0forest"
        $all[2].TargetObject | Should -BeExactly ''
        $all[3].Prompt | Should -Be 'at a cafe'
        $all[1], $all[2] | ForEach-Object { $_.CategoryInfo.Category | Should -Be 'InvalidArgument' }
    }

    It 'CSV rows: a bad seed and a bad size are reported, the other rows made' {
        $rows = @'
Prompt,Seed,Width,Height,Steps
first,1,64,64,2
second,4294967296,64,64,2
third,3,64,72,2
fourth,4,60,64,2
'@ | ConvertFrom-Csv
        $all = @($rows | New-MnemosyneScene -ErrorAction Continue 2>&1)
        $scenes = $all | Where-Object { $_ -is [Mnemosyne.Engine.Pipeline.Scene] }
        $failures = $all | Where-Object { $_ -is [System.Management.Automation.ErrorRecord] }
        $scenes.Prompt | Should -Be 'first', 'third'
        $scenes[1].Height | Should -Be 72
        $failures.TargetObject | Should -Be 4294967296, 60
    }

    It 'reference pictures: a missing and a damaged one are reported, the reference made from the others' {
        $good = 'left', 'right' | ForEach-Object {
            $path = Join-Path $TestDrive "$_.png"
            [IO.File]::WriteAllBytes($path, (Get-PositionalPng $(if ($_ -eq 'left') { 40 } else { 30 }) 30))
            $path
        }
        $missing = Join-Path $TestDrive 'gone.png'
        $damaged = Join-Path $TestDrive 'half.png'
        $png = Get-PositionalPng 32 32
        [IO.File]::WriteAllBytes($damaged, $png[0..($png.Length / 2)])

        $all = @($good[0], $missing, $damaged, $good[1] | Import-MnemosyneReference -Name 'kira' -ErrorAction Continue 2>&1)

        $failures = @($all | Where-Object { $_ -is [System.Management.Automation.ErrorRecord] })
        $failures.TargetObject | Should -Be $missing, $damaged
        $failures.CategoryInfo.Category | Should -Be 'ObjectNotFound', 'InvalidData'
        $references = @($all | Where-Object { $_ -is [Mnemosyne.Engine.Pipeline.CharacterReference] })
        $references.Count | Should -Be 1
        $references[0].Sources.Path | Should -Be $good
        $references[0].Embedding | Should -Be ($good | Import-MnemosyneReference).Embedding
    }

    It 'prompts to files: a bad row and a taken file name are reported, the other files written' {
        $folder = New-Item -ItemType Directory (Join-Path $TestDrive 'stream-out')
        Set-Content (Join-Path $folder '3-taken.png') 'keep'
        $rows = @'
Prompt,Seed
free,1
bad,-5
taken,3
also free,4
'@ | ConvertFrom-Csv
        $all = @(& { $rows | New-MnemosyneScene @tiny -ErrorAction Continue | Save-MnemosyneImage -Directory $folder -PassThru -ErrorAction Continue } 2>&1)
        ($all | Where-Object { $_ -is [Mnemosyne.Engine.Pipeline.Scene] }).Path | Split-Path -Leaf | Should -Be '1-free.png', '4-also-free.png'
        ($all | Where-Object { $_ -is [System.Management.Automation.ErrorRecord] }).CategoryInfo.Category | Should -Be 'InvalidArgument', 'ResourceExists'
        (Get-ChildItem $folder -Force).Name | Sort-Object | Should -Be '1-free.png', '3-taken.png', '4-also-free.png'
        Get-Content -Raw (Join-Path $folder '3-taken.png') | Should -Be "keep$([Environment]::NewLine)"
    }
}

Describe 'Faults' {
    It 'Ctrl+C in the middle of a denoising step: stopped, no file, no temporary file, and the engine goes on' {
        $folder = New-Item -ItemType Directory (Join-Path $TestDrive 'stopped')
        $target = Join-Path $folder 'stopped.png'
        $ps = [powershell]::Create()
        try {
            # At 1024² a step of the tiny UNet takes a good part of a second, so the stop lands inside a UNet run
            # (the engine's SceneCancellationTests show that such a stop ends the run inside ONNX Runtime).
            $null = $ps.AddScript("Import-Module '$manifest'; New-MnemosyneScene 'a slow cat' -Seed 1 -Steps 50 -Width 1024 -Height 1024 | Save-MnemosyneImage -Path '$target'")
            $running = $ps.BeginInvoke()
            Wait-Until { @($ps.Streams.Progress | Where-Object StatusDescription -Match '^Step').Count -gt 0 -or $running.IsCompleted } | Should -BeTrue
            $ps.Stop()
            $ps.InvocationStateInfo.State | Should -Be 'Stopped'
            $steps = @($ps.Streams.Progress | Where-Object StatusDescription -Match '^Step (\d+) of 50' | ForEach-Object { [int]($_.StatusDescription -replace '^Step (\d+).*', '$1') })
            ($steps | Measure-Object -Maximum).Maximum | Should -BeLessThan 50
        }
        finally { $ps.Dispose() }
        $target | Should -Not -Exist
        Get-ChildItem $folder -Force | Should -BeNullOrEmpty
        Assert-SessionUsable
    }

    It 'a PNG write that the file system cuts short (a file size limit, as a full disk would): nothing partial, the old file intact' {
        if ($IsWindows -or -not (Get-Command bash -ErrorAction SilentlyContinue)) {
            Set-ItResult -Skipped -Because 'the file size limit is set with bash''s ulimit'
            return
        }
        $folder = New-Item -ItemType Directory (Join-Path $TestDrive 'limited')
        Set-Content (Join-Path $folder 'existing.png') 'precious' -NoNewline
        $report = Join-Path $TestDrive 'limited.json'
        # In a child pwsh whose files may not grow past 100 KB (RLIMIT_FSIZE): writing more fails with EFBIG,
        # as it would on a full disk. SIGXFSZ is ignored so the write fails instead of killing the process, and
        # .NET's W^X double mapping (a memory file that would also hit the limit) is off.
        $script = @"
`$ErrorActionPreference = 'Stop'
. '$PSScriptRoot/Common.ps1'
Import-Mnemosyne
`$big = New-FakeScene -Seed 7 -Width 256 -Height 256
`$big | Save-MnemosyneImage -Path '$folder/new.png' -ErrorVariable +failures -ErrorAction SilentlyContinue
`$big | Save-MnemosyneImage -Path '$folder/existing.png' -Force -ErrorVariable +failures -ErrorAction SilentlyContinue
New-FakeScene -Seed 8 | Save-MnemosyneImage -Path '$folder/small.png'
@(`$failures | ForEach-Object { @{ Category = "`$(`$_.CategoryInfo.Category)"; Target = `$_.TargetObject; Message = "`$_" } }) | ConvertTo-Json | Set-Content '$report'
"@
        $pwsh = Get-PwshCommand
        $encoded = [Convert]::ToBase64String([Text.Encoding]::Unicode.GetBytes($script))
        $output = bash -c 'trap "" XFSZ; ulimit -f 100; export DOTNET_EnableWriteXorExecute=0; exec "$@"' limited @pwsh -NoProfile -NonInteractive -EncodedCommand $encoded 2>&1
        $LASTEXITCODE | Should -Be 0 -Because ($output -join "`n")

        $failures = @(Get-Content -Raw $report | ConvertFrom-Json)
        $failures.Count | Should -Be 2
        $failures.Category | Should -Be 'WriteError', 'WriteError'
        $failures.Target | Should -Be (Join-Path $folder 'new.png'), (Join-Path $folder 'existing.png')
        $failures.Message | ForEach-Object { $_ | Should -Match 'larger than the file system or a size limit allows.*Nothing was written' }
        $failures[1].Message | Should -Match 'the existing file is unchanged'
        (Get-ChildItem $folder -Force).Name | Sort-Object | Should -Be 'existing.png', 'small.png'
        Get-Content -Raw (Join-Path $folder 'existing.png') | Should -Be 'precious'
    }
}

Describe 'Saving: special files, same-run collisions, unclear names (issue 16)' {
    It 'Save-MnemosyneImage -Force onto a <Name>: InvalidArgument, naming it, and it is left as it was' -ForEach @(
        @{ Name = 'named pipe'; Kind = 'not a regular file but a named pipe'; ErrorId = 'NotARegularFile'; Make = { param($path) mkfifo $path } }
        @{ Name = 'symbolic link'; Kind = 'a symbolic link to .*linked\.png'; ErrorId = 'PathIsLink'
            Make = { param($path) Set-Content (Join-Path (Split-Path $path) 'linked.png') 'linked' -NoNewline; $null = New-Item -ItemType SymbolicLink $path -Target (Join-Path (Split-Path $path) 'linked.png') } }
        @{ Name = 'dangling symbolic link'; Kind = 'a symbolic link to .*nowhere\.png'; ErrorId = 'PathIsLink'
            Make = { param($path) $null = New-Item -ItemType SymbolicLink $path -Target (Join-Path (Split-Path $path) 'nowhere.png') } }
    ) {
        if ($IsWindows) { Set-ItResult -Skipped -Because 'named pipes and links are made with Unix tools here'; return }
        $folder = New-Item -ItemType Directory (Join-Path $TestDrive "special-$([guid]::NewGuid().ToString('N'))")
        $target = Join-Path $folder 'out.png'
        Invoke-Case $Make $target
        $failure = Get-OnlyFailure { $scene | Save-MnemosyneImage -Path $target -Force }
        Assert-Failure $failure -Category InvalidArgument -Target $target -ErrorId $ErrorId -Advice "is $Kind.*nothing was written"
        $item = Get-Item -LiteralPath $target -Force
        if ($Name -eq 'named pipe') { $item.UnixStat.ItemType | Should -Be 'NamedPipe' } else { $item.LinkType | Should -Be 'SymbolicLink' }
        if ($Name -eq 'symbolic link') { Get-Content -Raw (Join-Path $folder 'linked.png') | Should -Be 'linked' }
        Get-ChildItem $folder -Force -Filter '*.tmp' | Should -BeNullOrEmpty
        Assert-SessionUsable
    }

    It 'Save-MnemosyneImage -Force onto a character device: refused, the device left alone' {
        if ($IsWindows) { Set-ItResult -Skipped -Because 'Windows has no device files'; return }
        # Root could replace /dev/null itself if this regressed, so root makes a null device of its own; others cannot replace /dev/null anyway.
        $device = if ((id -u) -eq 0) { Join-Path $TestDrive 'null-device'; mknod (Join-Path $TestDrive 'null-device') c 1 3 } else { '/dev/null' }
        $failure = Get-OnlyFailure { $scene | Save-MnemosyneImage -Path $device -Force }
        Assert-Failure $failure -Category InvalidArgument -Target $device -ErrorId 'NotARegularFile' -Advice 'is not a regular file but a character device'
        (Get-Item $device -Force).UnixStat.ItemType | Should -Be 'CharacterDevice'
    }

    It 'two prompts that make one file name under -Directory -Force: both kept, the second numbered' {
        $folder = New-Item -ItemType Directory (Join-Path $TestDrive 'collide')
        $first = New-FakeScene -Prompt 'dog!' -Seed 9
        $second = New-FakeScene -Prompt 'dog?' -Seed 9 -Width 16
        $files = @($first, $second | Save-MnemosyneImage -Directory $folder -Force -PassThru -ErrorAction Stop)
        $files.Path | Split-Path -Leaf | Should -Be '9-dog.png', '9-dog-2.png'
        ([Mnemosyne.Engine.Imaging.PngFile]::ReadText($files[0].Path) | Where-Object Keyword -EQ 'parameters').Text | Should -Match '^dog!'
        ([Mnemosyne.Engine.Imaging.PngFile]::ReadText($files[1].Path) | Where-Object Keyword -EQ 'parameters').Text | Should -Match '^dog\?'
    }

    It '-NameTemplate {seed} -Force with one seed: every scene kept' {
        $folder = New-Item -ItemType Directory (Join-Path $TestDrive 'one-seed')
        Set-Content (Join-Path $folder '5.png') 'from an earlier run'
        $files = @(1..3 | ForEach-Object { New-FakeScene -Prompt "cat $_" -Seed 5 } | Save-MnemosyneImage -Directory $folder -NameTemplate '{seed}' -Force -PassThru -ErrorAction Stop)
        $files.Path | Split-Path -Leaf | Should -Be '5.png', '5-2.png', '5-3.png'
        (Get-ChildItem $folder).Count | Should -Be 3
    }

    It 'one -Path for two scenes with -Force: the first kept, the second a ResourceExists error' {
        $target = Join-Path $TestDrive 'twice.png'
        $all = @((New-FakeScene -Prompt 'first' -Seed 1), (New-FakeScene -Prompt 'second' -Seed 2) | Save-MnemosyneImage -Path $target -Force -ErrorAction Continue 2>&1)
        $failures = @($all | Where-Object { $_ -is [System.Management.Automation.ErrorRecord] })
        $failures.Count | Should -Be 1
        Assert-Failure $failures[0] -Category ResourceExists -Target $target -ErrorId 'FileWrittenThisRun' -Advice 'already written by this command.*its own file'
        ([Mnemosyne.Engine.Imaging.PngFile]::ReadText($target) | Where-Object Keyword -EQ 'parameters').Text | Should -Match '^first'
    }

    It '-Directory that is a file: InvalidArgument, saying it is a file' {
        $file = Join-Path $TestDrive 'not-a-folder.txt'
        Set-Content $file 'x'
        $failure = Get-OnlyFailure { $scene | Save-MnemosyneImage -Directory $file }
        Assert-Failure $failure -Category InvalidArgument -Target $file -ErrorId 'DirectoryIsFile' -Advice 'is a file, not a folder'
    }

    It 'a name template with a brace without its pair (<Template>): refused' -ForEach @(@{ Template = '{seed' }, @{ Template = 'seed}' }, @{ Template = '{{seed}}' }) {
        $folder = New-Item -ItemType Directory (Join-Path $TestDrive "braces-$([guid]::NewGuid().ToString('N'))")
        $failure = Get-OnlyFailure { $scene | Save-MnemosyneImage -Directory $folder -NameTemplate $Template }
        Assert-Failure $failure -Category InvalidArgument -Target $Template -ErrorId 'InvalidNameTemplate' -Advice 'without its pair; write each setting in braces'
        "$failure" | Should -Not -Match "\(Parameter '"
        Get-ChildItem $folder | Should -BeNullOrEmpty
    }

    It 'a .jpg path: saved (PNG bytes) with a warning that says so' {
        $target = Join-Path $TestDrive 'photo.jpg'
        $scene | Save-MnemosyneImage -Path $target -WarningVariable warnings -WarningAction SilentlyContinue -ErrorAction Stop
        @($warnings).Count | Should -Be 1
        "$($warnings[0])" | Should -Match 'holds a PNG picture.*Name it \.png'
        [IO.File]::ReadAllBytes($target)[1..3] | Should -Be 0x50, 0x4E, 0x47
        $scene | Save-MnemosyneImage -Path (Join-Path $TestDrive 'plain.png') -WarningVariable none -ErrorAction Stop
        $none | Should -BeNullOrEmpty
    }
}

Describe 'Piped rows New-MnemosyneScene cannot use (issue 16)' {
    It 'cells that do not convert (<Cell>): one error naming the row and the column, no scene for that row, the others made' -ForEach @(
        @{ Cell = 'Seed=abc'; Column = 'Seed'; Value = 'abc'; Expected = 'a whole number' }
        @{ Cell = 'Steps=two'; Column = 'Steps'; Value = 'two'; Expected = 'a whole number' }
        @{ Cell = 'Scheduler=NoSuchScheduler'; Column = 'Scheduler'; Value = 'NoSuchScheduler'; Expected = 'one of Euler, .*Ddim, Lcm' }
        @{ Cell = 'Quality=Bogus'; Column = 'Quality'; Value = 'Bogus'; Expected = 'one of Fast, Draft, Standard, Best' }
        @{ Cell = 'GuidanceScale=high'; Column = 'GuidanceScale'; Value = 'high'; Expected = 'a number' }
        @{ Cell = 'PromptStyle=Compel'; Column = 'PromptStyle'; Value = 'Compel'; Expected = 'one of A1111, Diffusers' }
    ) {
        # The rows give the steps: a setting given on the command line is not taken from the rows.
        $rows = @(1..3 | ForEach-Object { [pscustomobject]@{ Prompt = ('first', 'second', 'third')[$_ - 1]; Seed = "$_"; Steps = '2' } })
        $rows[1] | Add-Member -Force $Column $Value
        $all = @($rows | New-MnemosyneScene -Width 64 -Height 64 -ErrorAction Continue 2>&1)
        ($all | Where-Object { $_ -is [Mnemosyne.Engine.Pipeline.Scene] }).Prompt | Should -Be 'first', 'third'
        $failures = @($all | Where-Object { $_ -is [System.Management.Automation.ErrorRecord] })
        $failures.Count | Should -Be 1
        $failures[0].CategoryInfo.Category | Should -Be 'InvalidArgument'
        $failures[0].FullyQualifiedErrorId | Should -BeLike 'InvalidPipedValue,*'
        [object]::ReferenceEquals($failures[0].TargetObject.PSObject.BaseObject, $rows[1].PSObject.BaseObject) | Should -BeTrue
        "$($failures[0])" | Should -Match "^Piped object 2: $Column is '$Value', which is not $Expected\. Correct that value, or leave it empty"
        Assert-SessionUsable
    }

    It 'two bad cells in one row: one error naming both' {
        $row = 'Prompt,Seed,Steps', 'a cat,abc,two' | ConvertFrom-Csv
        $failure = Get-OnlyFailure { $row | New-MnemosyneScene -Width 64 -Height 64 }
        "$failure" | Should -Match "Seed is 'abc', which is not a whole number; Steps is 'two', which is not a whole number\. Correct those values"
    }

    It 'a CSV delimited by '';'': an error naming its one column and -Delimiter, not a scene of the row''s text' {
        $row = 'Prompt;Seed', 'a cat;1' | ConvertFrom-Csv
        $failure = Get-OnlyFailure { $row | New-MnemosyneScene @tiny }
        Assert-Failure $failure -Category InvalidArgument -Target $row -ErrorId 'NoPromptProperty' -Advice "has no Prompt property \(it has only 'Prompt;Seed'\).*-Delimiter ';'"
        Assert-SessionUsable
    }

    It 'a CSV without a Prompt column: an error naming the columns it has' {
        $row = 'Seed,Steps', '1,2' | ConvertFrom-Csv
        $failure = Get-OnlyFailure { $row | New-MnemosyneScene @tiny }
        Assert-Failure $failure -Category InvalidArgument -Target $row -ErrorId 'NoPromptProperty' -Advice "Piped object 1 has no Prompt property \(it has only 'Seed', 'Steps'\).*Give each row a Prompt column, or give -Prompt"
    }

    It 'rows without a Prompt column and -Prompt given: the rows give the settings' {
        $rows = 'Seed', '1', '2' | ConvertFrom-Csv
        $scenes = @($rows | New-MnemosyneScene 'a cat' @tiny -ErrorAction Stop)
        $scenes.Seed | Should -Be 1, 2
        $scenes.Prompt | Should -Be 'a cat', 'a cat'
    }

    It 'an unknown column (Seeds): one warning naming it, the scene made' {
        $rows = 'Prompt,Seeds', 'a cat,1', 'a dog,2' | ConvertFrom-Csv
        $scenes = @($rows | New-MnemosyneScene @tiny -WarningVariable warnings -WarningAction SilentlyContinue -ErrorAction Stop)
        $scenes.Count | Should -Be 2
        @($warnings).Count | Should -Be 1
        "$($warnings[0])" | Should -Match "The column 'Seeds' names no parameter of New-MnemosyneScene, so it is ignored\. The columns it takes: .*Seed"
    }

    It 'a scene piped back in: made again without warnings' {
        $first = New-MnemosyneScene 'a cat' -Seed 3 @tiny
        $again = @($first | New-MnemosyneScene -WarningVariable warnings -ErrorAction Stop)
        $warnings | Should -BeNullOrEmpty
        [Convert]::ToHexString($again[0].Image.Rgb) | Should -Be ([Convert]::ToHexString($first.Image.Rgb))
    }

    It 'a blank line of a prompt file: the error names its line and file' {
        $file = Join-Path $TestDrive 'prompts.txt'
        Set-Content $file 'a cat', '', 'a dog'
        $all = @(Get-Content $file | New-MnemosyneScene -Seed 1 @tiny -ErrorAction Continue 2>&1)
        ($all | Where-Object { $_ -is [Mnemosyne.Engine.Pipeline.Scene] }).Prompt | Should -Be 'a cat', 'a dog'
        $failure = @($all | Where-Object { $_ -is [System.Management.Automation.ErrorRecord] })
        $failure.Count | Should -Be 1
        Assert-Failure $failure[0] -Category InvalidArgument -Target '' -ErrorId 'EmptyPrompt' -Advice "The prompt \(line 2 of $([regex]::Escape($file))\) is empty"
    }
}

Describe 'Text and references that could not be saved (issue 16)' {
    It 'a prompt with the noncharacter <Name>: InvalidArgument naming it and its position, not .NET''s normalization error' -ForEach @(
        @{ Name = 'U+FFFE'; Prompt = "a cat$([char]0xFFFE)"; Advice = 'The prompt has the noncharacter U\+FFFE at position 6' }
        @{ Name = 'U+1FFFF'; Prompt = "a $([char]::ConvertFromUtf32(0x1FFFF)) cat"; Advice = 'The prompt has the noncharacter U\+1FFFF at position 3' }
        @{ Name = 'U+FDD0'; Prompt = "$([char]0xFDD0)a cat"; Advice = 'The prompt has the noncharacter U\+FDD0 at position 1' }
    ) {
        $failure = Get-OnlyFailure { New-MnemosyneScene $Prompt -Seed 1 @tiny }
        Assert-Failure $failure -Category InvalidArgument -Target $Prompt -ErrorId 'InvalidSceneSetting' -Advice "$Advice, which Unicode reserves.*remove it"
        "$failure" | Should -Not -Match "\(Parameter '"
        Assert-SessionUsable
    }

    It 'a reference -Name with a NUL: refused at import, before any picture is read' {
        $name = "ki`0ra"
        $failure = Get-OnlyFailure { Import-MnemosyneReference $picture -Name $name }
        Assert-Failure $failure -Category InvalidArgument -Target $name -ErrorId 'InvalidReferenceName' -Advice 'The reference name has the control character U\+0000 at position 3; remove it'
        "$failure" | Should -Not -Match "\(Parameter '"
        Assert-SessionUsable
    }

    It 'a saved reference whose name holds a NUL: InvalidData, naming the file' {
        $path = Join-Path $TestDrive 'nul-name.json'
        $saved = Join-Path $TestDrive 'plain-name.json'
        $reference | Export-MnemosyneReference -Path $saved -Force
        Set-Content $path ((Get-Content -Raw $saved) -replace '"name": "kira"', '"name": "ki\u0000ra"') -NoNewline
        (Get-Content -Raw $path) | Should -Match 'ki\\u0000ra'
        $failure = Get-OnlyFailure { Import-MnemosyneReference $path }
        Assert-Failure $failure -Category InvalidData -Target $path -ErrorId 'SavedReferenceUnreadable' -Advice "saved reference's name has the control character U\+0000 at position 3.*Correct it in the file"
    }

    It 'Export-MnemosyneReference of a reference holding NaN: refused (Import would refuse the file), nothing written' {
        $embedding = [float[]]$reference.Embedding.Clone()
        $embedding[7] = [float]::NaN
        $damaged = [Mnemosyne.Engine.Pipeline.CharacterReference]@{ Name = 'kira'; Encoder = $reference.Encoder; Created = $reference.Created; Sources = $reference.Sources; Embedding = $embedding }
        $path = Join-Path $TestDrive 'nan-kira.json'
        $failure = Get-OnlyFailure { $damaged | Export-MnemosyneReference -Path $path }
        Assert-Failure $failure -Category InvalidArgument -Target $damaged -ErrorId 'ReferenceDamaged' -Advice "The reference 'kira' holds NaN at position 8 of its embedding.*cannot be saved.*Import its pictures again"
        "$failure" | Should -Not -Match "\(Parameter '"
        $path | Should -Not -Exist
        Get-ChildItem $TestDrive -Force -Filter '*.tmp' | Should -BeNullOrEmpty
    }
}

Describe 'Bad install settings for Install-MnemosyneModel' {
    AfterEach {
        $env:HF_ENDPOINT = $null
        $env:MNEMOSYNE_MODELS_PATH = $null
    }

    It 'a broken and a repeated manifest in MNEMOSYNE_MODELS_PATH: each skipped with a warning naming it, the other models listed' {
        $folder = New-Item -ItemType Directory (Join-Path $TestDrive 'manifests')
        Copy-Item (Join-Path $PSScriptRoot '../../models/*.json') $folder
        Copy-Item (Join-Path $folder 'taesdxl.json') (Join-Path $folder 'zz-taesdxl-copy.json')
        Set-Content (Join-Path $folder 'broken.json') '{ "name": '
        $env:MNEMOSYNE_MODELS_PATH = $folder.FullName
        $models = Get-MnemosyneModel -CachePath (Join-Path $TestDrive 'hub-manifests') -WarningVariable warnings -WarningAction SilentlyContinue -ErrorAction Stop
        $models.Name | Should -Contain 'sdxl-base-1.0'
        @($models | Where-Object Name -EQ 'taesdxl').Count | Should -Be 1
        $warnings.Count | Should -Be 2
        "$($warnings[0])" | Should -Match 'broken\.json: not a valid model manifest.*skipped'
        "$($warnings[1])" | Should -Match "both named 'taesdxl'.*zz-taesdxl-copy\.json; the second is skipped"
        Assert-SessionUsable
    }

    It 'HF_ENDPOINT that is not http(s): InvalidArgument, naming the value, before anything is fetched' {
        $env:HF_ENDPOINT = 'ftp://mirror.example'
        $failure = Get-OnlyFailure { Install-MnemosyneModel taesdxl -CachePath (Join-Path $TestDrive 'hub-ftp') -Confirm:$false }
        Assert-Failure $failure -Category InvalidArgument -Target 'ftp://mirror.example' -Advice 'not an http\(s\) URL\. Set it to one such as https://huggingface\.co' -ErrorId 'InvalidHubEndpoint'
        Assert-SessionUsable
    }

    It '-CachePath that is a file: InvalidArgument at once, naming it, not a missing lock file after retries' {
        $file = Join-Path $TestDrive 'hub-cache-file'
        Set-Content $file 'not a folder'
        $env:HF_ENDPOINT = 'http://127.0.0.1:9'
        $elapsed = Measure-Command {
            $script:failure = Get-OnlyFailure { Install-MnemosyneModel taesdxl -CachePath $file -Confirm:$false }
        }
        Assert-Failure $failure -Category InvalidArgument -Target $file -Advice 'is a file, not a folder\. Give the folder of a Hugging Face hub cache' -ErrorId 'ModelCacheNotAFolder'
        $elapsed.TotalSeconds | Should -BeLessThan 5
        Get-Content $file | Should -Be 'not a folder'
        Assert-SessionUsable
    }
}

Describe 'Non-finite values, refused where they enter' {
    BeforeAll {
        # Every value of one tensor of a weights file set to NaN, in place.
        function Set-TensorNaN([string] $File, [string] $Tensor) {
            $weights = [Mnemosyne.Engine.Safetensors.SafetensorsFile]::Open($File)
            try { $info = $weights.Tensors[$Tensor] } finally { $weights.Dispose() }
            $nan = if ("$($info.DType)" -eq 'F16') { [byte[]](0x00, 0x7E) } else { [BitConverter]::GetBytes([float]::NaN) }
            $stream = [IO.File]::Open($File, 'Open', 'ReadWrite')
            try {
                $stream.Position = $info.Offset
                for ($i = 0; $i -lt $info.ElementCount; $i++) { $stream.Write($nan, 0, $nan.Length) }
            }
            finally { $stream.Dispose() }
        }
    }

    It 'NaN weights in <Name>: InvalidData naming that file, when they first show' -ForEach @(
        @{ Name = 'the UNet'; File = 'unet/diffusion_pytorch_model.safetensors'; Tensor = 'conv_in.bias'; Advice = 'The UNet gave NaN at value 1 of \d+ of its first noise prediction, from finite inputs: its weights or config in .*Download or copy the model again' }
        @{ Name = 'the VAE'; File = 'vae/diffusion_pytorch_model.safetensors'; Tensor = 'post_quant_conv.bias'; Advice = 'The decoder gave NaN at value 1 of \d+ of its picture' }
        @{ Name = 'the first text encoder'; File = 'text_encoder/model.safetensors'; Tensor = 'text_model.embeddings.position_embedding.weight'; Advice = 'The first text encoder gave NaN at value 1 of \d+ of the prompt''s hidden states' }
        @{ Name = 'the second text encoder'; File = 'text_encoder_2/model.safetensors'; Tensor = 'text_model.embeddings.position_embedding.weight'; Advice = 'The second text encoder gave NaN at value \d+ of \d+ of the prompt''s hidden states' }
        @{ Name = 'the image encoder'; File = 'ip-adapter/models/image_encoder/model.safetensors'; Tensor = 'vision_model.embeddings.position_embedding.weight'; Advice = 'The image encoder gave NaN at value 1 of \d+ of the embedding of .*character\.png' }
        @{ Name = 'the VAE encoder'; File = 'vae/diffusion_pytorch_model.safetensors'; Tensor = 'quant_conv.bias'; Advice = 'The VAE encoder gave NaN at value 1 of \d+ of the latents of the starting picture' }
    ) {
        $copy = Join-Path $TestDrive "nan-$([guid]::NewGuid().ToString('N'))"
        Copy-Item $checkpoint $copy -Recurse
        $weights = Join-Path $copy $File
        Set-TensorNaN $weights $Tensor
        try {
            Open-MnemosyneEngine $copy -ErrorAction Stop
            $start = Join-Path $TestDrive 'start.png'
            [IO.File]::WriteAllBytes($start, (Get-PositionalPng $tiny.Width $tiny.Height))
            $failure = if ($Name -eq 'the image encoder') { Get-OnlyFailure { Import-MnemosyneReference $picture } }
                       elseif ($Name -eq 'the VAE encoder') { Get-OnlyFailure { New-MnemosyneScene 'a cat' -Seed 1 -InitImagePath $start -Strength 0.5 @tiny } }
                       else { Get-OnlyFailure { New-MnemosyneScene 'a cat' -Seed 1 @tiny } }
            Assert-Failure $failure -Category InvalidData -Target $weights -Advice $Advice
        }
        finally { Open-MnemosyneEngine $checkpoint }
        Assert-SessionUsable
    }

    It 'a noise file holding NaN: InvalidArgument naming the file, before the scene is computed' {
        $path = Join-Path $TestDrive 'nan-noise.npy'
        $values = [float[]]::new(256)
        $values[37] = [float]::NaN
        [Mnemosyne.Engine.Tensors.NpyFile]::Write($path, [Mnemosyne.Engine.Tensors.FloatTensor]::new($values, [int[]](1, 4, 8, 8)))
        $failure = Get-OnlyFailure { New-MnemosyneScene 'a cat' -Seed 1 @tiny -InitialNoisePath $path }
        Assert-Failure $failure -Category InvalidArgument -Target $path -Advice 'The initial noise holds NaN at value 37 of 256; noise must be finite numbers\. Make the file again\.$' -ErrorId 'InvalidSceneSetting'
        Assert-SessionUsable
    }
}

Describe 'Hostile pictures and paths (issue 16)' {
    BeforeDiscovery {
        $hostilePictures = @(
            @{ Name = 'a PNG whose zTXt chunk inflates to 64 MB (a text bomb)'; File = 'text-bomb.png'; Category = 'LimitsExceeded'; Advice = 'zTXt chunk inflates to over 1048576 bytes.*without its metadata'
                Make = { param($path) [IO.File]::WriteAllBytes($path, (Get-TextBombPng 'Comment')) } }
            @{ Name = 'a PNG whose pixel data is cut in half (checksum fixed, end marker present)'; File = 'half.png'; Category = 'InvalidData'; Advice = 'incomplete: the pixel data inflates to \d+ bytes, fewer than the 12352 its 64×64 pixels need.*get a complete copy'
                Make = { param($path) [IO.File]::WriteAllBytes($path, (Edit-PngPixelData (Get-PositionalPng 64 64) { param($data) , $data[0..($data.Length / 2 - 1)] })) } }
            @{ Name = 'a PNG whose compressed pixel bytes are overwritten (checksum fixed)'; File = 'overwritten.png'; Category = 'InvalidData'; Advice = 'damaged: the pixel data is not a valid zlib stream.*re-save it as PNG or JPEG'
                Make = {
                    param($path)
                    # Stored (uncompressed) deflate blocks: overwritten bytes still inflate, to the wrong pixels; only the Adler-32 tells.
                    $scanlines = [IO.MemoryStream]::new()
                    $rgb = Get-Gradient 64 64
                    for ($y = 0; $y -lt 64; $y++) { $scanlines.WriteByte(0); $scanlines.Write($rgb, 192 * $y, 192) }
                    $compressed = [IO.MemoryStream]::new()
                    $zlib = [IO.Compression.ZLibStream]::new($compressed, [IO.Compression.CompressionLevel]::NoCompression, $true)
                    $zlib.Write($scanlines.ToArray(), 0, $scanlines.Length); $zlib.Dispose()
                    $overwritten = $compressed.ToArray()
                    for ($i = 1000; $i -lt 1100; $i++) { $overwritten[$i] = 0x55 }
                    [IO.File]::WriteAllBytes($path, (Edit-PngPixelData (Get-PositionalPng 64 64) { , $overwritten }))
                } }
            @{ Name = 'a WebP whose VP8X header declares 16777216×16777216'; File = 'vast.webp'; Category = 'LimitsExceeded'; Advice = 'declares 16777216×16777216 pixels, over the limit.*scale it down'
                Make = {
                    param($path)
                    $vp8x = [byte[]](@(0, 0, 0, 0) + @(0xFF) * 6)
                    $body = [byte[]]([Text.Encoding]::ASCII.GetBytes('WEBPVP8X') + [BitConverter]::GetBytes([uint32]10) + $vp8x)
                    [IO.File]::WriteAllBytes($path, [byte[]]([Text.Encoding]::ASCII.GetBytes('RIFF') + [BitConverter]::GetBytes([uint32]$body.Length) + $body))
                } }
            @{ Name = 'a 4096×4096 PNG with 100 bytes of pixel data'; File = 'sparse.png'; Category = 'InvalidData'; Advice = 'fewer than the 50335744 its 4096×4096 pixels need.*get a complete copy'
                Make = {
                    param($path)
                    $compressed = [IO.MemoryStream]::new()
                    $zlib = [IO.Compression.ZLibStream]::new($compressed, [IO.Compression.CompressionLevel]::Fastest, $true)
                    $noise = [byte[]]::new(90); [Random]::new(3).NextBytes($noise); $zlib.Write($noise, 0, $noise.Length); $zlib.Dispose()
                    [IO.File]::WriteAllBytes($path, (Edit-PngPixelData (Set-PngSize (Get-PositionalPng 4 4) 4096 4096) { param($data) , $compressed.ToArray()[0..99] }))
                } }
        )
    }

    BeforeAll {
        # A copy of a PNG whose IDAT data (one chunk) is replaced by what Edit makes of it, its CRC fixed.
        function Edit-PngPixelData([byte[]] $Png, [scriptblock] $Edit) {
            $position = 8
            $length = 0
            while ($true) {
                $length = ([long]$Png[$position] -shl 24) + ($Png[$position + 1] -shl 16) + ($Png[$position + 2] -shl 8) + $Png[$position + 3]
                if ([Text.Encoding]::ASCII.GetString($Png, $position + 4, 4) -eq 'IDAT') { break }
                $position += 12 + $length
            }
            $data = [byte[]]$Png[($position + 8)..($position + 7 + $length)]
            $edited = [byte[]](& $Edit $data)
            , [byte[]]($Png[0..($position - 1)] + (Get-PngChunk 'IDAT' $edited) + $Png[($position + 12 + $length)..($Png.Length - 1)])
        }
    }

    It '<Name>: <Category>, naming the file' -ForEach $hostilePictures {
        $path = Join-Path $TestDrive $File
        Invoke-Case $Make $path
        $failure = Get-OnlyFailure { Import-MnemosyneReference $path }
        Assert-Failure $failure -Category $Category -Target $path -Advice $Advice -ErrorId 'ReferenceImageUnusable'
        Assert-SessionUsable
    }

    Context 'paths that are not regular files' {
        BeforeAll {
            $script:special = -not $IsWindows -and (Get-Command mkfifo -ErrorAction SilentlyContinue) -and (Test-Path /dev/zero)
        }

        It 'a named pipe: InvalidArgument, naming it, without waiting for a writer' {
            if (-not $special) { Set-ItResult -Skipped -Because 'named pipes are made with mkfifo'; return }
            $fifo = Join-Path $TestDrive 'pipe.png'
            mkfifo $fifo
            # Were the pipe opened (it is, twice, by a regression), this writer would free it after 10 s, so that the test fails instead of hanging.
            $writer = [Diagnostics.Process]::Start('timeout', [string[]]@('20', 'bash', '-c', "sleep 10; for i in 1 2 3 4 5; do : > '$fifo'; done"))
            try {
                $watch = [Diagnostics.Stopwatch]::StartNew()
                $failure = Get-OnlyFailure { Import-MnemosyneReference $fifo }
                $watch.Elapsed.TotalSeconds | Should -BeLessThan 5
                Assert-Failure $failure -Category InvalidArgument -Target $fifo -Advice 'is a named pipe \(FIFO\), not a regular file.*Give the path of a file on disk' -ErrorId 'NotARegularFile'
            }
            finally { $writer.Kill($true); $writer.Dispose() }
            Assert-SessionUsable
        }

        It '/dev/zero as a picture: InvalidArgument, a character device (not "empty")' {
            if (-not $special) { Set-ItResult -Skipped -Because 'there is no /dev/zero'; return }
            Assert-Failure (Get-OnlyFailure { Import-MnemosyneReference /dev/zero }) -Category InvalidArgument -Target '/dev/zero' -Advice 'is a character device, not a regular file' -ErrorId 'NotARegularFile'
            Assert-SessionUsable
        }

        It 'Open-MnemosyneEngine -Path of a named pipe: InvalidArgument, naming it, without waiting; the open engine stays' {
            if (-not $special) { Set-ItResult -Skipped -Because 'named pipes are made with mkfifo'; return }
            $fifo = Join-Path $TestDrive 'model.safetensors'
            mkfifo $fifo
            $failure = Get-OnlyFailure { Open-MnemosyneEngine $fifo }
            Assert-Failure $failure -Category InvalidArgument -Target $fifo -Advice 'is a named pipe \(FIFO\), not a regular file.*single-file \.safetensors checkpoint' -ErrorId 'CheckpointNotSupported'
            (Get-MnemosyneEngine).Path | Should -Be $checkpoint
            Assert-SessionUsable
        }

        It 'a named pipe in place of a weights file of the folder: InvalidData, naming it, without waiting' {
            if (-not $special) { Set-ItResult -Skipped -Because 'named pipes are made with mkfifo'; return }
            $copy = Join-Path $TestDrive 'piped-checkpoint'
            Copy-Item $checkpoint $copy -Recurse
            $weights = Join-Path $copy 'text_encoder/model.safetensors'
            Remove-Item $weights
            mkfifo $weights
            try {
                $failure = Get-OnlyFailure { Open-MnemosyneEngine $copy }
                Assert-Failure $failure -Category InvalidData -Target $weights -Advice 'is a named pipe \(FIFO\), not a regular file' -ErrorId 'EngineOpenFailed'
                (Get-MnemosyneEngine).Path | Should -Be $checkpoint
            }
            finally { if ((Get-MnemosyneEngine).Path -ne $checkpoint) { Open-MnemosyneEngine $checkpoint } }
        }

        It 'a symbolic link loop as <Command> -Path: InvalidArgument, saying it loops' -ForEach @(
            @{ Command = 'Open-MnemosyneEngine'; ErrorId = 'CheckpointNotSupported'; Invoke = { param($path) Open-MnemosyneEngine $path } }
            @{ Command = 'Import-MnemosyneReference'; ErrorId = 'NotARegularFile'; Invoke = { param($path) Import-MnemosyneReference $path } }
        ) {
            if (-not $special) { Set-ItResult -Skipped -Because 'the links are made with ln -s'; return }
            $first = Join-Path $TestDrive "$Command-a.safetensors"
            $second = Join-Path $TestDrive "$Command-b.safetensors"
            ln -s $second $first
            ln -s $first $second
            $failure = Get-OnlyFailure { & $Invoke $first }
            Assert-Failure $failure -Category InvalidArgument -Target $first -Advice 'is a symbolic link that loops' -ErrorId $ErrorId
            (Get-MnemosyneEngine).Path | Should -Be $checkpoint
            Assert-SessionUsable
        }

        It '/dev/urandom as a noise file: InvalidArgument, a character device' {
            if (-not $special) { Set-ItResult -Skipped -Because 'there is no /dev/urandom'; return }
            Assert-Failure (Get-OnlyFailure { New-MnemosyneScene 'a cat' -Seed 1 @tiny -InitialNoisePath /dev/urandom }) -Category InvalidArgument -Target '/dev/urandom' -Advice 'is a character device, not a regular file' -ErrorId 'NotARegularFile'
            Assert-SessionUsable
        }
    }
}

Describe 'Pictures Get-MnemosyneSceneSetting cannot read, and A1111 columns that do not convert (issues 13, 14)' {
    BeforeDiscovery {
        $badSettingFiles = @(
            @{ Name = 'a JPEG'; File = 'photo.png'; Advice = 'not a PNG file, so it has no PNG text'
                Make = { param($path) [IO.File]::WriteAllBytes($path, (Get-Jpeg (New-Rgb24 8 8 (Get-Gradient 8 8)))) } }
            @{ Name = 'a PNG without a parameters text'; File = 'bare.png'; Advice = "has no 'parameters' text, so it records no settings"
                Make = { param($path) [IO.File]::WriteAllBytes($path, (Get-PositionalPng 8 8)) } }
            @{ Name = 'a PNG cut short'; File = 'cut.png'; Advice = 'ends before its IEND chunk.*get a complete copy'
                Make = { param($path) $png = Get-PositionalPng 8 8; [IO.File]::WriteAllBytes($path, [byte[]]$png[0..($png.Length - 20)]) } }
            @{ Name = 'a PNG whose zTXt parameters inflate to 64 MB (a text bomb)'; File = 'text-bomb.png'; Advice = 'zTXt chunk inflates to over 1048576 bytes'
                Make = { param($path) [IO.File]::WriteAllBytes($path, (Get-TextBombPng 'parameters')) } }
            @{ Name = 'parameters whose Seed is not a number'; File = 'bad-seed.png'; Advice = "Seed is 'abc', which is not a whole number"
                Make = { param($path) $png = Get-PositionalPng 8 8; $text = [byte[]]([Text.Encoding]::ASCII.GetBytes("parameters`0a cat`nSteps: 2, Sampler: Euler, Seed: abc"))
                    [IO.File]::WriteAllBytes($path, [byte[]]($png[0..32] + (Get-PngChunk 'tEXt' $text) + $png[33..($png.Length - 1)])) } }
        )
    }

    It '<Name>: InvalidData, naming the file' -ForEach $badSettingFiles {
        $path = Join-Path $TestDrive $File
        Invoke-Case $Make $path
        $failure = Get-OnlyFailure { Get-MnemosyneSceneSetting $path }
        Assert-Failure $failure -Category InvalidData -Target $path -Advice $Advice -ErrorId 'SceneSettingsUnreadable'
        Assert-SessionUsable
    }

    It 'an A1111 cell that does not convert (<Column>=<Value>): one error naming the row and the column, the other rows made' -ForEach @(
        @{ Column = 'Sampler'; Value = 'Heun'; Expected = "Sampler is 'Heun', which is not one of Euler, .*Ddim, Lcm or A1111's Euler, Euler a, .*DDIM, LCM" }
        @{ Column = 'Schedule type'; Value = 'Exponential'; Expected = "Sampler is 'Euler a' with Schedule type 'Exponential', which is not one of" }
        @{ Column = 'CFG scale'; Value = 'high'; Expected = "CFG scale is 'high', which is not a number" }
        @{ Column = 'Size'; Value = '1024'; Expected = "Size is '1024', which is not WIDTHxHEIGHT \(for example 1024x768\)" }
    ) {
        $rows = @(1..3 | ForEach-Object { [pscustomobject]@{ Prompt = ('first', 'second', 'third')[$_ - 1]; Seed = "$_"; Steps = '2'; Sampler = 'Euler a'; Size = '64x64' } })
        $rows[1] | Add-Member -Force $Column $Value
        $all = @($rows | New-MnemosyneScene -ErrorAction Continue 2>&1)
        ($all | Where-Object { $_ -is [Mnemosyne.Engine.Pipeline.Scene] }).Prompt | Should -Be 'first', 'third'
        $failures = @($all | Where-Object { $_ -is [System.Management.Automation.ErrorRecord] })
        $failures.Count | Should -Be 1
        $failures[0].CategoryInfo.Category | Should -Be 'InvalidArgument'
        $failures[0].FullyQualifiedErrorId | Should -BeLike 'InvalidPipedValue,*'
        [object]::ReferenceEquals($failures[0].TargetObject.PSObject.BaseObject, $rows[1].PSObject.BaseObject) | Should -BeTrue
        "$($failures[0])" | Should -Match "^Piped object 2: $Expected"
        Assert-SessionUsable
    }
}
