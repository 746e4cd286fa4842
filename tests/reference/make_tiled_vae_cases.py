"""Tiled VAE decoding reference cases: diffusers v0.30.0's AutoencoderKL with enable_tiling() on config B's VAE.

Config B's VAE has sample_size 128 and four blocks, so a tile is 16 latents (128 pixels), tiles start every 12
latents, and each tile's first 32 pixels are blended with the tile above and the one to the left. The latents are
standard normal (np.random.RandomState(13), cases in order), as the sampler leaves them (scaled); they are decoded
as the pipeline decodes: vae.decode(latents / scaling_factor). Writes OUT/<case>-latents.npy, OUT/<case>-sample.npy
(vae.decode(...).sample: no clamp, no /2 + 0.5) and OUT/manifest.json.

Tiled encoding (tiled_encode): tiles of 128 pixels every 96, the moments' first 4 latents blended. The picture is
8-bit RGB (np.random.RandomState(14)), given to the encoder as the pipelines' VaeImageProcessor gives it
(v / 255 * 2 - 1, float32); writes OUT/<case>-picture.png, OUT/<case>-mean.npy and OUT/<case>-logvar.npy
(vae.encode(...).latent_dist's mean and logvar).

    /usr/bin/python3 tests/reference/make_tiled_vae_cases.py --model out/tiny-b --out tests/reference/vae-tiled-b
"""
import argparse
import json
import os

import numpy as np
import torch
from PIL import Image
from diffusers import AutoencoderKL

from make_pipeline_cases import CONFIG_B_COMMAND

# (name, latent height, latent width): 2 × 2 tiles, the last row and column short; one row of three tiles, lower
# than the blend.
CASES = [("tiled-18x22", 18, 22), ("tiled-8x30", 8, 30)]
# (name, picture height, width): 2 × 2 tiles, the last row (40 pixels) and column (72) short.
ENCODE_CASES = [("encode-136x168", 136, 168)]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    os.makedirs(args.out, exist_ok=True)
    vae = AutoencoderKL.from_pretrained(os.path.join(args.model, "vae"))
    vae.enable_tiling()
    rng = np.random.RandomState(13)
    manifest = {"diffusers": "0.30.0", "torch": torch.__version__, "model": args.model, "command": CONFIG_B_COMMAND,
                "tile_sample_min_size": vae.tile_sample_min_size, "tile_latent_min_size": vae.tile_latent_min_size,
                "tile_overlap_factor": vae.tile_overlap_factor, "cases": []}
    for name, height, width in CASES:
        latents = rng.standard_normal((1, 4, height, width)).astype(np.float32)
        with torch.no_grad():
            sample = vae.decode(torch.from_numpy(latents) / vae.config.scaling_factor).sample
        np.save(os.path.join(args.out, f"{name}-latents.npy"), latents)
        np.save(os.path.join(args.out, f"{name}-sample.npy"), sample.numpy().astype(np.float32))
        manifest["cases"].append({"name": name, "latents": [1, 4, height, width], "sample": list(sample.shape)})
    rng = np.random.RandomState(14)
    for name, height, width in ENCODE_CASES:
        picture = rng.randint(0, 256, size=(height, width, 3)).astype(np.uint8)
        pixels = torch.from_numpy(picture.astype(np.float32) / 255.0 * 2.0 - 1.0).permute(2, 0, 1)[None].contiguous()
        with torch.no_grad():
            posterior = vae.encode(pixels).latent_dist
        Image.fromarray(picture).save(os.path.join(args.out, f"{name}-picture.png"))
        np.save(os.path.join(args.out, f"{name}-mean.npy"), posterior.mean.numpy().astype(np.float32))
        np.save(os.path.join(args.out, f"{name}-logvar.npy"), posterior.logvar.numpy().astype(np.float32))
        manifest["cases"].append({"name": name, "picture": [height, width, 3], "mean": list(posterior.mean.shape)})
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)


if __name__ == "__main__":
    main()
