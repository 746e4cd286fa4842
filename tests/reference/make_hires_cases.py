"""Hires fix reference cases: diffusers v0.30.0's StableDiffusionXLPipeline then StableDiffusionXLImg2ImgPipeline
(the same modules, the IP-Adapter loaded) on config B, chained as Mnemosyne's HiresFix chains them:

1. the base scene at its size (text-to-image, generator seeded with the seed);
2. its result upscaled by the scale: "latent", the final latents (scaled, before the VAE) resized with
   torch.nn.functional.interpolate(mode="bilinear", align_corners=False, antialias=False), A1111's "Latent"
   upscaler; or "pixel", the 8-bit picture (output_type "pil") resized with Pillow's LANCZOS;
3. img2img at the larger size with the same prompts, reference, scheduler, steps and guidance, image= the upscaled
   latents (a 4-channel tensor: prepare_latents takes it as the latents, unscaled, without the VAE encoder) or the
   upscaled picture, the strength, and a generator seeded again with the same seed.

Writes per case OUT/<case>/final-latents.npy (the refined latents, before the VAE) and OUT/<case>/image.png (8-bit,
rounded as numpy_to_pil does), for "pixel" cases also OUT/<case>/base.png (the base scene's picture) and
OUT/<case>/upscaled.png (its Lanczos resize, img2img's starting picture), plus OUT/manifest.json.

    /usr/bin/python3 tests/reference/make_hires_cases.py --model out/tiny-b \
        --reference tests/reference/pipeline-b/reference.png --out tests/reference/hires-b
"""
import argparse
import json
import os

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from diffusers import StableDiffusionXLImg2ImgPipeline

from make_pipeline_cases import CONFIG_B_COMMAND, SCHEDULERS, attention_scores_from_zeros, load_pipeline, \
    use_checkpoint_vocabulary

CASES = [
    dict(name="hires-latent-euler", upscale="latent", prompt="a portrait in the rain", negative="blurry",
         steps=4, g=5.0, ip=0.6, seed=42, sched="Euler", w=64, h=64, scale=1.5, strength=0.5),
    dict(name="hires-pixel-euler-noref", upscale="pixel", prompt="a red barn in a snowy field", negative=None,
         steps=4, g=5.0, ip=0.0, seed=7, sched="Euler", w=64, h=64, scale=1.5, strength=0.5),
]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--reference", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    attention_scores_from_zeros()
    use_checkpoint_vocabulary(args.model)
    os.makedirs(args.out, exist_ok=True)
    base = load_pipeline(args.model)
    refine = StableDiffusionXLImg2ImgPipeline(**base.components)
    refine.set_progress_bar_config(disable=True)
    reference = Image.open(args.reference).convert("RGB")
    base_config = base.scheduler.config
    manifest = {"diffusers": "0.30.0", "torch": torch.__version__, "model": args.model, "reference": args.reference,
                "command": CONFIG_B_COMMAND, "cases": []}
    for case in CASES:
        folder = os.path.join(args.out, case["name"])
        os.makedirs(folder, exist_ok=True)
        width, height = int(case["w"] * case["scale"]), int(case["h"] * case["scale"])
        common = dict(prompt=case["prompt"], negative_prompt=case["negative"], ip_adapter_image=reference,
                      num_inference_steps=case["steps"], guidance_scale=case["g"])
        for pipe in (base, refine):
            pipe.scheduler = SCHEDULERS[case["sched"]](base_config)
            pipe.set_ip_adapter_scale(case["ip"])
        with torch.no_grad():
            if case["upscale"] == "latent":
                latents = base(**common, height=case["h"], width=case["w"], output_type="latent",
                               generator=torch.Generator("cpu").manual_seed(case["seed"])).images
                start = F.interpolate(latents, size=(height // 8, width // 8), mode="bilinear", align_corners=False,
                                      antialias=False)
            else:
                picture = base(**common, height=case["h"], width=case["w"], output_type="pil",
                               generator=torch.Generator("cpu").manual_seed(case["seed"])).images[0]
                start = picture.resize((width, height), Image.LANCZOS)
                picture.save(os.path.join(folder, "base.png"))
                start.save(os.path.join(folder, "upscaled.png"))

            def run(output_type):
                return refine(**common, image=start, strength=case["strength"], output_type=output_type,
                              generator=torch.Generator("cpu").manual_seed(case["seed"])).images

            final = run("latent")
            image = run("np")
        np.save(os.path.join(folder, "final-latents.npy"), final.numpy().astype(np.float32))
        Image.fromarray((image[0] * 255).round().astype("uint8")).save(os.path.join(folder, "image.png"))
        manifest["cases"].append(case)
        print("case", case["name"], "done", final.shape, flush=True)
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)


if __name__ == "__main__":
    main()
