"""img2img and inpainting reference cases: diffusers v0.30.0's StableDiffusionXLImg2ImgPipeline and
StableDiffusionXLInpaintPipeline (SDXL base's 4-channel UNet: the noised original blended in outside the mask after
every step) on config B, with the IP-Adapter loaded, and the VAE encoder's own outputs for the starting pictures.

Writes OUT/init-64.png, OUT/init-96x64.png (starting pictures cut from module/Samples/kira.png), OUT/mask-64.png
(a rectangle to repaint, white, with a stripe of grey 128 that binarises to "repaint" and one of grey 127 that does
not), OUT/vae-encoder-<picture>-mean.npy and -logvar.npy (the encoder's latent distribution of each picture:
vae.encode(pixels).latent_dist, log-variance clamped), and per case OUT/<case>/final-latents.npy (before the VAE,
still scaled) and OUT/<case>/image.png (8-bit, rounded as numpy_to_pil does), plus OUT/manifest.json.

    /usr/bin/python3 tests/reference/make_img2img_cases.py --model out/tiny-b \
        --reference tests/reference/pipeline-b/reference.png --out tests/reference/img2img-b
"""
import argparse
import json
import os

import numpy as np
import torch
from PIL import Image
from diffusers import StableDiffusionXLImg2ImgPipeline, StableDiffusionXLInpaintPipeline

from make_pipeline_cases import CONFIG_B_COMMAND, SCHEDULERS, attention_scores_from_zeros, load_pipeline, \
    use_checkpoint_vocabulary

SAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "module", "Samples", "kira.png")

# "ip" 0 is a scene without a reference: the adapter's branch is computed and multiplied by 0, as the engine's is.
CASES = [
    dict(name="img2img-euler-s0p6", mode="img2img", init="init-64.png", prompt="a portrait in the rain", negative="blurry",
         steps=5, strength=0.6, g=5.0, ip=0.6, seed=42, sched="Euler"),
    dict(name="img2img-euler-s0p3-noref", mode="img2img", init="init-64.png", prompt="a portrait in the rain", negative=None,
         steps=10, strength=0.3, g=5.0, ip=0.0, seed=42, sched="Euler"),
    dict(name="img2img-ancestral-wide-s0p75", mode="img2img", init="init-96x64.png", prompt="the same girl riding a bicycle", negative="ugly",
         steps=6, strength=0.75, g=6.0, ip=0.5, seed=11, sched="EulerAncestral"),
    dict(name="img2img-dpm2m-s0p5-noref", mode="img2img", init="init-64.png", prompt="a red barn in a snowy field", negative=None,
         steps=8, strength=0.5, g=4.0, ip=0.0, seed=5, sched="DpmPlusPlus2M"),
    dict(name="inpaint-euler-s0p8", mode="inpaint", init="init-64.png", mask="mask-64.png", prompt="a knight's helmet", negative="blurry",
         steps=5, strength=0.8, g=5.0, ip=0.7, seed=7, sched="Euler"),
    dict(name="inpaint-ancestral-s1-noref", mode="inpaint", init="init-64.png", mask="mask-64.png", prompt="a cat face", negative=None,
         steps=4, strength=1.0, g=5.0, ip=0.0, seed=3, sched="EulerAncestral"),
    dict(name="inpaint-ddim-s0p6", mode="inpaint", init="init-64.png", mask="mask-64.png", prompt="a wizard's hat", negative="low quality",
         steps=6, strength=0.6, g=5.0, ip=0.6, seed=123456789, sched="Ddim"),
    # LCM entered part-way (set_begin_index) with its noise between steps: LCM-LoRA's 4 steps, guidance off.
    dict(name="img2img-lcm-s0p5", mode="img2img", init="init-64.png", prompt="a portrait in the rain", negative=None,
         steps=4, strength=0.5, g=1.0, ip=0.6, seed=42, sched="Lcm"),
]


def write_pictures(out):
    sample = Image.open(SAMPLE).convert("RGB")
    sample.resize((64, 64), Image.LANCZOS).save(os.path.join(out, "init-64.png"))
    sample.crop((0, 96, 512, 437)).resize((96, 64), Image.LANCZOS).save(os.path.join(out, "init-96x64.png"))
    mask = np.zeros((64, 64, 3), dtype=np.uint8)
    mask[16:40, 8:48] = 255
    mask[40:48, 8:48] = 128  # binarised to 1 (128/255 >= 0.5)
    mask[48:56, 8:48] = 127  # binarised to 0
    Image.fromarray(mask).save(os.path.join(out, "mask-64.png"))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--reference", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    attention_scores_from_zeros()
    use_checkpoint_vocabulary(args.model)
    os.makedirs(args.out, exist_ok=True)
    write_pictures(args.out)
    base = load_pipeline(args.model)
    # The text-to-image pipeline's modules, its UNet carrying the loaded IP-Adapter; requires_aesthetics_score stays
    # False (SDXL base), so the time ids are those of text-to-image.
    pipes = {"img2img": StableDiffusionXLImg2ImgPipeline(**base.components),
             "inpaint": StableDiffusionXLInpaintPipeline(**base.components)}
    for pipe in pipes.values():
        pipe.set_progress_bar_config(disable=True)
    reference = Image.open(args.reference).convert("RGB")
    base_config = base.scheduler.config
    manifest = {"diffusers": "0.30.0", "torch": torch.__version__, "model": args.model, "reference": args.reference,
                "command": CONFIG_B_COMMAND, "encoder": {}, "cases": []}

    for picture in ("init-64.png", "init-96x64.png"):
        pixels = base.image_processor.preprocess(Image.open(os.path.join(args.out, picture)).convert("RGB"))
        with torch.no_grad():
            dist = base.vae.encode(pixels).latent_dist
        stem = picture[:-4]
        np.save(os.path.join(args.out, f"vae-encoder-{stem}-mean.npy"), dist.mean.numpy().astype(np.float32))
        np.save(os.path.join(args.out, f"vae-encoder-{stem}-logvar.npy"), dist.logvar.numpy().astype(np.float32))
        manifest["encoder"][picture] = [f"vae-encoder-{stem}-mean.npy", f"vae-encoder-{stem}-logvar.npy"]

    for case in CASES:
        folder = os.path.join(args.out, case["name"])
        os.makedirs(folder, exist_ok=True)
        pipe = pipes[case["mode"]]
        pipe.scheduler = SCHEDULERS[case["sched"]](base_config)
        pipe.set_ip_adapter_scale(case["ip"])
        init = Image.open(os.path.join(args.out, case["init"])).convert("RGB")
        settings = dict(prompt=case["prompt"], negative_prompt=case["negative"], ip_adapter_image=reference, image=init,
                        strength=case["strength"], num_inference_steps=case["steps"], guidance_scale=case["g"])
        if case["mode"] == "inpaint":
            settings.update(mask_image=Image.open(os.path.join(args.out, case["mask"])).convert("RGB"),
                            height=init.height, width=init.width)

        def run(output_type):
            with torch.no_grad():
                return pipe(**settings, generator=torch.Generator("cpu").manual_seed(case["seed"]), output_type=output_type).images

        latents = run("latent")
        image = run("np")
        np.save(os.path.join(folder, "final-latents.npy"), latents.numpy().astype(np.float32))
        Image.fromarray((image[0] * 255).round().astype("uint8")).save(os.path.join(folder, "image.png"))
        manifest["cases"].append(dict(case, w=init.width, h=init.height))
        print("case", case["name"], "done", flush=True)
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)


if __name__ == "__main__":
    main()
