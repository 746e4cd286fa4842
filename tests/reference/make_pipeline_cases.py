"""Whole-pipeline reference cases on the shared fidelity checkpoint, beyond ../shared/fidelity/cases:
no guidance, the other schedulers, reference weight 0 and a prompt that CLIP truncates.

Runs diffusers v0.30.0's StableDiffusionXLPipeline with the IP-Adapter loaded, as the shared cases were
made, and writes per case final-latents.npy (before the VAE, still scaled) and image.png (8-bit, rounded
as diffusers' numpy_to_pil does) under OUT/<case>/, plus OUT/manifest.json. See README.md for set-up.

    /usr/bin/python3 tests/reference/make_pipeline_cases.py --model ../shared/fidelity/model \
        --reference ../shared/fidelity/reference.png --out tests/reference/pipeline-a
"""
import argparse
import json
import os

import numpy as np
import torch
from PIL import Image
from diffusers import (AutoencoderKL, DDIMScheduler, DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler,
                       EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel)
from transformers import CLIPImageProcessor, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer, \
    CLIPVisionModelWithProjection

SCHEDULERS = {
    "Euler": lambda config: EulerDiscreteScheduler.from_config(config),
    "EulerAncestral": lambda config: EulerAncestralDiscreteScheduler.from_config(config),
    "DpmPlusPlus2M": lambda config: DPMSolverMultistepScheduler.from_config(config),
    "DpmPlusPlus2MKarras": lambda config: DPMSolverMultistepScheduler.from_config(config, use_karras_sigmas=True),
    "Ddim": lambda config: DDIMScheduler.from_config(config),
}

LONG_PROMPT = " ".join(["a lighthouse keeper with a lantern on a stormy cliff"] * 12)

CASES = [
    dict(name="euler-unguided", prompt="a cat astronaut floating in space", negative=None, w=64, h=64, steps=4, g=1.0, ip=0.7, seed=3, sched="Euler"),
    dict(name="euler-ancestral-wide", prompt="the same girl riding a bicycle", negative="ugly", w=96, h=64, steps=5, g=6.0, ip=0.5, seed=11, sched="EulerAncestral"),
    dict(name="dpm2m-noref", prompt="a red barn in a snowy field", negative=None, w=64, h=64, steps=5, g=4.0, ip=0.0, seed=5, sched="DpmPlusPlus2M"),
    dict(name="ddim-tall", prompt="a wizard reading a book by candlelight", negative="blurry", w=64, h=96, steps=5, g=5.0, ip=0.9, seed=123456789, sched="Ddim"),
    dict(name="euler-long-prompt", prompt=LONG_PROMPT, negative=None, w=64, h=64, steps=3, g=5.0, ip=0.6, seed=2024, sched="Euler"),
]


def load_pipeline(model):
    pipe = StableDiffusionXLPipeline(
        vae=AutoencoderKL.from_pretrained(os.path.join(model, "vae")),
        text_encoder=CLIPTextModel.from_pretrained(os.path.join(model, "text_encoder")),
        text_encoder_2=CLIPTextModelWithProjection.from_pretrained(os.path.join(model, "text_encoder_2")),
        tokenizer=CLIPTokenizer.from_pretrained(os.path.join(model, "tokenizer")),
        tokenizer_2=CLIPTokenizer.from_pretrained(os.path.join(model, "tokenizer_2")),
        unet=UNet2DConditionModel.from_pretrained(os.path.join(model, "unet")),
        scheduler=EulerDiscreteScheduler.from_pretrained(os.path.join(model, "scheduler")),
        image_encoder=CLIPVisionModelWithProjection.from_pretrained(os.path.join(model, "ip-adapter", "models", "image_encoder")),
        feature_extractor=CLIPImageProcessor())
    pipe.load_ip_adapter(os.path.join(model, "ip-adapter"), subfolder="sdxl_models",
                         weight_name="ip-adapter_sdxl_vit-h.safetensors", image_encoder_folder=None)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--reference", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    pipe = load_pipeline(args.model)
    reference = Image.open(args.reference).convert("RGB")
    base_config = pipe.scheduler.config
    manifest = {"diffusers": "0.30.0", "torch": torch.__version__, "model": "../shared/fidelity/model",
                "reference": "../shared/fidelity/reference.png", "cases": []}
    for case in CASES:
        folder = os.path.join(args.out, case["name"])
        os.makedirs(folder, exist_ok=True)
        pipe.scheduler = SCHEDULERS[case["sched"]](base_config)
        pipe.set_ip_adapter_scale(case["ip"])
        settings = dict(prompt=case["prompt"], negative_prompt=case["negative"], ip_adapter_image=reference,
                        height=case["h"], width=case["w"], num_inference_steps=case["steps"], guidance_scale=case["g"])
        with torch.no_grad():
            latents = pipe(**settings, generator=torch.Generator("cpu").manual_seed(case["seed"]), output_type="latent").images
            image = pipe(**settings, generator=torch.Generator("cpu").manual_seed(case["seed"]), output_type="np").images
        np.save(os.path.join(folder, "final-latents.npy"), latents.numpy().astype(np.float32))
        Image.fromarray((image[0] * 255).round().astype("uint8")).save(os.path.join(folder, "image.png"))
        manifest["cases"].append(case)
        print("case", case["name"], "done", flush=True)
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)


if __name__ == "__main__":
    main()
