"""IP-Adapter control cases: several references with region masks, per-block scales, a start/end window and several
pictures of one character with their tokens side by side, from diffusers v0.30.0's StableDiffusionXLPipeline on config B.

Each case runs the pipeline as make_pipeline_cases.py does (same loading, same work-arounds), with:
- "refs": the reference pictures (files beside the cases) as one adapter's list of images (ip_adapter_image=[[...]]);
- "masks": per reference a mask picture file, or [x, y, w, h] for a rectangle drawn here as a picture of the scene's
  size; made into ip_adapter_masks by IPAdapterMaskProcessor.preprocess and reshaped to [1, images, h, w] as
  diffusers' documentation does; "weights" are then the per-image scales, set_ip_adapter_scale([[w1, w2]]);
- "blocks": a set_ip_adapter_scale dict (InstantStyle's), with "ip" multiplied into every number;
- "start"/"end": the adapter's scale is set from callback_on_step_end, step i acting unless i/n < start or
  (i+1)/n > end (diffusers' controlnet_guidance_start/end rule);
- no "masks" with several "refs": the pictures' tokens side by side in one attention (token concatenation).

Writes OUT/<case>/final-latents.npy and image.png, OUT/manifest.json, and the pictures it draws (second-reference.png,
mask-ellipse.png). See README.md.

    /usr/bin/python3 tests/reference/make_ipa_control_cases.py --model out/tiny-b --out tests/reference/ipa-control-b
"""
import argparse
import copy
import json
import os
import sys

import numpy as np
import torch
from PIL import Image, ImageDraw
from diffusers.image_processor import IPAdapterMaskProcessor
from diffusers.schedulers import EulerDiscreteScheduler

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_pipeline_cases import CONFIG_B_COMMAND, attention_scores_from_zeros, load_pipeline, use_checkpoint_vocabulary  # noqa: E402

REFERENCE = "../pipeline-b/reference.png"
SECOND = "second-reference.png"
ELLIPSE = "mask-ellipse.png"

STYLE = {"up": {"block_0": [0.0, 1.0, 0.0]}}
TABLE = {"down": {"block_1": [1.0, 0.25]}, "mid": 0.5, "up": {"block_0": 0.75}}

CASES = [
    dict(name="two-masked", prompt="two friends at a cafe", negative="blurry", w=96, h=64, steps=5, g=5.0, seed=21,
         refs=[REFERENCE, SECOND], weights=[0.7, 0.6], masks=[ELLIPSE, [48, 0, 48, 64]]),
    dict(name="style-only", prompt="a knight in the rain", negative="blurry", w=64, h=64, steps=5, g=5.0, seed=5,
         refs=[REFERENCE], weights=[0.8], blocks="Style"),
    dict(name="block-table", prompt="a knight in the rain", negative=None, w=64, h=96, steps=4, g=4.0, seed=8,
         refs=[REFERENCE], weights=[1.0], blocks=TABLE),
    dict(name="window", prompt="a lighthouse at dusk", negative="blurry", w=64, h=64, steps=6, g=5.0, seed=9,
         refs=[REFERENCE], weights=[0.9], start=0.2, end=0.7),
    dict(name="concatenated", prompt="portrait of the same woman at a cafe", negative=None, w=64, h=64, steps=5, g=5.0, seed=7,
         refs=[REFERENCE, SECOND], weights=[0.7]),
]


def draw_pictures(out):
    """The second reference (another crop of the project's own kira.png, mirrored) and an elliptic mask."""
    kira = Image.open(os.path.join(os.path.dirname(__file__), "..", "..", "module", "Samples", "kira.png")).convert("RGB")
    kira.crop((200, 120, 360, 320)).transpose(Image.FLIP_LEFT_RIGHT).resize((80, 100), Image.BICUBIC).save(os.path.join(out, SECOND))
    mask = Image.new("RGB", (96, 64), (0, 0, 0))
    ImageDraw.Draw(mask).ellipse((4, 6, 50, 60), fill=(255, 255, 255))
    mask.save(os.path.join(out, ELLIPSE))


def scaled(blocks, weight):
    """A set_ip_adapter_scale dict with every number times the reference's weight."""
    if isinstance(blocks, dict):
        return {k: scaled(v, weight) for k, v in blocks.items()}
    if isinstance(blocks, list):
        return [scaled(v, weight) for v in blocks]
    return blocks * weight


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    attention_scores_from_zeros()
    use_checkpoint_vocabulary(args.model)
    pipe = load_pipeline(args.model)
    base_config = pipe.scheduler.config
    os.makedirs(args.out, exist_ok=True)
    draw_pictures(args.out)
    manifest = {"diffusers": "0.30.0", "torch": torch.__version__, "model": args.model, "command": CONFIG_B_COMMAND, "cases": []}
    for case in CASES:
        folder = os.path.join(args.out, case["name"])
        os.makedirs(folder, exist_ok=True)
        pipe.scheduler = EulerDiscreteScheduler.from_config(base_config)
        pictures = [Image.open(os.path.join(args.out, r)).convert("RGB") for r in case["refs"]]
        settings = dict(prompt=case["prompt"], negative_prompt=case["negative"], ip_adapter_image=[pictures],
                        height=case["h"], width=case["w"], num_inference_steps=case["steps"], guidance_scale=case["g"])
        weights = case["weights"]
        if "masks" in case:
            masks = []
            for m in case["masks"]:
                if isinstance(m, str):
                    masks.append(Image.open(os.path.join(args.out, m)))
                else:
                    x, y, w, h = m
                    rectangle = Image.new("L", (case["w"], case["h"]), 0)
                    rectangle.paste(255, (x, y, x + w, y + h))
                    masks.append(rectangle)
            processed = IPAdapterMaskProcessor().preprocess(masks, height=case["h"], width=case["w"])
            settings["cross_attention_kwargs"] = {"ip_adapter_masks": [processed.reshape(1, processed.shape[0], processed.shape[2], processed.shape[3])]}
            scale = [weights]
        elif "blocks" in case:
            scale = scaled(STYLE if case["blocks"] == "Style" else case["blocks"], weights[0])
        else:
            scale = weights[0]
        if "start" in case:
            steps, start, end = case["steps"], case["start"], case["end"]

            def acts(i):
                return not (i / steps < start or (i + 1) / steps > end)

            def window(pipe, step_index, timestep, callback_kwargs):
                pipe.set_ip_adapter_scale(scale if acts(step_index + 1) else 0.0)
                return callback_kwargs

            settings["callback_on_step_end"] = window

        def run(output_type):
            pipe.set_ip_adapter_scale(copy.deepcopy(scale) if "start" not in case or acts(0) else 0.0)
            with torch.no_grad():
                return pipe(**settings, generator=torch.Generator("cpu").manual_seed(case["seed"]), output_type=output_type).images

        latents = run("latent")
        image = run("np")
        np.save(os.path.join(folder, "final-latents.npy"), latents.numpy().astype(np.float32))
        Image.fromarray((image[0] * 255).round().astype("uint8")).save(os.path.join(folder, "image.png"))
        manifest["cases"].append(case)
        print("case", case["name"], "done", flush=True)
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)


if __name__ == "__main__":
    main()
