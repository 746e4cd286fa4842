"""Whole-pipeline reference cases: diffusers v0.30.0's StableDiffusionXLPipeline with the IP-Adapter loaded.

Config A (the shared fidelity checkpoint, beyond ../shared/fidelity/cases): no guidance, the other
schedulers, reference weight 0, a prompt that CLIP truncates, a guidance cutoff. Config B (the engine's own tiny
random checkpoint, which the tests regenerate, so its cases need nothing outside the repository): the shared
cases' settings and config A's, guidance cutoffs, SDXL-Lightning's 2-, 4- and 8-step sampling (Euler, trailing
timesteps, no guidance; the tiny UNet stands in for Lightning's), LCM (LCM-LoRA's sampling, and guided) and
DeepCache, with the repository's reference picture.

Optional case keys beyond ../shared/fidelity/manifest.json's: "cutoff" (SDXLCFGCutoffCallback's
cutoff_step_ratio), "spacing" (the scheduler's timestep_spacing), "unet_model" and "lora_model" (the models/*.json of a
few-step UNet or speed LoRA whose sampling the case follows), "deepcache" (DeepCache's interval) and "initial_noise".

Writes per case final-latents.npy (before the VAE, still scaled) and image.png (8-bit, rounded as
diffusers' numpy_to_pil does) under OUT/<case>/, plus OUT/manifest.json. See README.md for set-up.

    /usr/bin/python3 tests/reference/make_pipeline_cases.py --model ../shared/fidelity/model \
        --reference ../shared/fidelity/reference.png --out tests/reference/pipeline-a
    /usr/bin/python3 tests/reference/make_pipeline_cases.py --config b --model out/tiny-b \
        --reference tests/reference/pipeline-b/reference.png --out tests/reference/pipeline-b

Config B's DeepCache cases need horseee/DeepCache's DeepCache/ folder on PYTHONPATH (see README.md).

--plus (with --config b) loads config B's IP-Adapter Plus (ip-adapter/sdxl_models/ip-adapter-plus_sdxl_vit-h.safetensors)
instead of the base adapter and runs CASES_PLUS:

    /usr/bin/python3 tests/reference/make_pipeline_cases.py --config b --plus --model out/tiny-b \
        --reference tests/reference/pipeline-b/reference.png --out tests/reference/pipeline-plus-b
"""
import argparse
import gzip
import inspect
import json
import os
import tempfile

import numpy as np
import torch
from PIL import Image
from diffusers.callbacks import SDXLCFGCutoffCallback
from diffusers.models.attention_processor import Attention
from diffusers import (AutoencoderKL, DDIMScheduler, DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler,
                       EulerDiscreteScheduler, LCMScheduler, StableDiffusionXLPipeline, UNet2DConditionModel)
from transformers import CLIPImageProcessor, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer, \
    CLIPVisionModelWithProjection

SCHEDULERS = {
    "Euler": lambda config, **kw: EulerDiscreteScheduler.from_config(config, **kw),
    "EulerAncestral": lambda config, **kw: EulerAncestralDiscreteScheduler.from_config(config, **kw),
    "DpmPlusPlus2M": lambda config, **kw: DPMSolverMultistepScheduler.from_config(config, **kw),
    "DpmPlusPlus2MKarras": lambda config, **kw: DPMSolverMultistepScheduler.from_config(config, use_karras_sigmas=True, **kw),
    "Ddim": lambda config, **kw: DDIMScheduler.from_config(config, **kw),
    "Lcm": lambda config, **kw: LCMScheduler.from_config(config, **kw),
}

LONG_PROMPT = " ".join(["a lighthouse keeper with a lantern on a stormy cliff"] * 12)

CASES_A = [
    dict(name="euler-unguided", prompt="a cat astronaut floating in space", negative=None, w=64, h=64, steps=4, g=1.0, ip=0.7, seed=3, sched="Euler"),
    dict(name="euler-ancestral-wide", prompt="the same girl riding a bicycle", negative="ugly", w=96, h=64, steps=5, g=6.0, ip=0.5, seed=11, sched="EulerAncestral"),
    dict(name="dpm2m-noref", prompt="a red barn in a snowy field", negative=None, w=64, h=64, steps=5, g=4.0, ip=0.0, seed=5, sched="DpmPlusPlus2M"),
    dict(name="ddim-tall", prompt="a wizard reading a book by candlelight", negative="blurry", w=64, h=96, steps=5, g=5.0, ip=0.9, seed=123456789, sched="Ddim"),
    dict(name="euler-long-prompt", prompt=LONG_PROMPT, negative=None, w=64, h=64, steps=3, g=5.0, ip=0.6, seed=2024, sched="Euler"),
    dict(name="euler-guidance-cutoff", prompt="a fox in a library", negative="low quality", w=64, h=64, steps=5, g=5.0, ip=0.6, seed=77, sched="Euler", cutoff=0.5),
]

# The shared fidelity cases' settings (the noise-file case's noise is drawn here, from NOISE_SEED) and config A's.
NOISE_SEED = 31337
CASES_B = [
    dict(name="euler-seed", prompt="a photo of a cat wearing a red hat", negative=None, w=64, h=64, steps=4, g=5.0, ip=0.7, seed=42, sched="Euler"),
    dict(name="euler-noisefile-wide", prompt="A knight, standing in the rain; 35mm film, 4K!", negative="blurry, low quality", w=96, h=64,
         steps=5, g=7.0, ip=0.6, seed=None, sched="Euler", initial_noise="initial-noise.npy"),
    dict(name="dpm2m-karras-tall", prompt="portrait of the same woman at a cafe in Paris", negative="", w=64, h=96, steps=6, g=5.0, ip=0.8, seed=7,
         sched="DpmPlusPlus2MKarras"),
] + CASES_A + [
    # DeepCache (horseee/DeepCache's DeepCacheSDHelper, uniform, branch 0): full UNet every `deepcache` steps.
    dict(name="euler-deepcache3", prompt="a photo of a cat wearing a red hat", negative="blurry", w=64, h=64, steps=7, g=5.0, ip=0.7, seed=42,
         sched="Euler", deepcache=3),
    dict(name="dpm2m-deepcache2-unguided", prompt="a red barn in a snowy field", negative=None, w=64, h=96, steps=6, g=1.0, ip=0.5, seed=5,
         sched="DpmPlusPlus2M", deepcache=2),
    # Guidance cutoffs (SDXLCFGCutoffCallback) and SDXL-Lightning's sampling.
    dict(name="euler-guided", prompt="a knight in the rain", negative="blurry", w=64, h=64, steps=6, g=5.0, ip=0.6, seed=5, sched="Euler"),
    dict(name="euler-guidance-cutoff-knight", prompt="a knight in the rain", negative="blurry", w=64, h=64, steps=6, g=5.0, ip=0.6, seed=5, sched="Euler", cutoff=0.4),
    # 10 * 0.7 is 7.000000000000001 in doubles: 8 guided steps (7 from a float32 0.7 widened to double).
    dict(name="dpm2m-guidance-cutoff-wide", prompt="a lighthouse at dusk", negative=None, w=96, h=64, steps=10, g=6.0, ip=0.8, seed=9, sched="DpmPlusPlus2M", cutoff=0.7),
    dict(name="lightning-2step", prompt="a cat astronaut", negative=None, w=64, h=64, steps=2, g=0.0, ip=0.7, seed=3, sched="Euler", spacing="trailing", unet_model="sdxl-lightning-2step-unet"),
    dict(name="lightning-4step", prompt="a cat astronaut", negative=None, w=64, h=64, steps=4, g=0.0, ip=0.7, seed=3, sched="Euler", spacing="trailing", unet_model="sdxl-lightning-4step-unet"),
    dict(name="lightning-8step", prompt="a cat astronaut", negative=None, w=64, h=64, steps=8, g=0.0, ip=0.7, seed=3, sched="Euler", spacing="trailing", unet_model="sdxl-lightning-8step-unet"),
    # LCM-LoRA's sampling (LCMScheduler, 4 steps, guidance 1 = off), the tiny UNet without a LoRA standing in; and LCM guided at 2, the most its card suggests.
    dict(name="lcm-4step", prompt="a cat astronaut", negative=None, w=64, h=64, steps=4, g=1.0, ip=0.7, seed=3, sched="Lcm", lora_model="lcm-lora-sdxl"),
    dict(name="lcm-guided-wide", prompt="a lighthouse at dusk", negative="blurry", w=96, h=64, steps=3, g=2.0, ip=0.6, seed=9, sched="Lcm"),
]

# IP-Adapter Plus on config B: guided (the unconditional branch is the resampled states of an all-zero pixel
# tensor), unguided, and another scheduler and size.
CASES_PLUS = [
    dict(name="plus-euler-guided", prompt="a knight in the rain", negative="blurry", w=64, h=64, steps=6, g=5.0, ip=0.6, seed=5, sched="Euler"),
    dict(name="plus-euler-unguided", prompt="a cat astronaut floating in space", negative=None, w=64, h=64, steps=4, g=1.0, ip=0.7, seed=3, sched="Euler"),
    dict(name="plus-dpm2m-karras-wide", prompt="portrait of the same woman at a cafe in Paris", negative="", w=96, h=64, steps=5, g=6.0, ip=0.8,
         seed=7, sched="DpmPlusPlus2MKarras"),
]

CONFIG_B_COMMAND = "dotnet pwsh ./build.ps1 TinyModel -Output out/tiny-b -Seed 20240607 -Size Tiny"


def attention_scores_from_zeros():
    """Without a mask, diffusers' Attention.get_attention_scores hands torch.baddbmm an uninitialised torch.empty
    with beta=0. torch 1.13's CPU baddbmm does not ignore that input for small batches (0 * NaN is NaN), so a NaN
    left in freed memory makes a whole case NaN, now and then (finite garbage times 0 gives the right scores). A
    zero input with beta=1 adds exact zeros: the same scores, every run."""
    get_attention_scores = Attention.get_attention_scores

    def from_zeros(self, query, key, attention_mask=None):
        if attention_mask is None:
            attention_mask = torch.zeros(query.shape[0], query.shape[1], key.shape[1], dtype=query.dtype)
        return get_attention_scores(self, query, key, attention_mask)

    Attention.get_attention_scores = from_zeros


def use_checkpoint_vocabulary(model):
    """The harness's tokenizer is OpenAI's SimpleTokenizer over a gzipped merges file; give it the checkpoint's own
    (the engine's synthetic vocabulary is laid out as CLIP's: bytes, bytes with </w>, merges, start, end)."""
    from clip import simple_tokenizer
    with open(os.path.join(model, "tokenizer", "merges.txt"), "rb") as f:
        merges = f.read().rstrip(b"\n")  # SimpleTokenizer keeps every line it splits, a last empty one too
    path = os.path.join(tempfile.mkdtemp(), "merges.txt.gz")
    with gzip.open(path, "wb") as f:
        f.write(merges)
    simple_tokenizer.default_bpe = lambda: path


def guidance_cutoff(ratio):
    """diffusers' SDXLCFGCutoffCallback(cutoff_step_ratio=ratio): after step int(num_timesteps * ratio) guidance is
    off and prompt_embeds, add_text_embeds and add_time_ids keep their conditional half. The IP-Adapter's
    image_embeds are no callback tensor input, so the official callback leaves them a batch of two [negative,
    reference]; the unguided UNet would then read both as one sequence of 2 x 4 ip tokens (IPAdapterAttnProcessor2_0
    views them with the batch size of the latents, 1), the reference half-drowned in the zero image's tokens. So
    that the reference keeps acting as in a pipeline run without guidance, this cuts them to their conditional half
    too: the list lives in __call__'s frame, and is changed in place."""
    official = SDXLCFGCutoffCallback(cutoff_step_ratio=ratio)

    def callback(pipe, step_index, timestep, callback_kwargs):
        callback_kwargs = official(pipe, step_index, timestep, callback_kwargs)
        if step_index == int(pipe.num_timesteps * ratio):
            image_embeds = inspect.currentframe().f_back.f_locals["image_embeds"]
            image_embeds[:] = [embeds.chunk(2)[1] for embeds in image_embeds]
        return callback_kwargs

    return callback, official.tensor_inputs


def load_pipeline(model, adapter="ip-adapter_sdxl_vit-h.safetensors"):
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
                         weight_name=adapter, image_encoder_folder=None)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--reference", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--config", choices=["a", "b"], default="a")
    parser.add_argument("--plus", action="store_true", help="config B's IP-Adapter Plus and CASES_PLUS")
    args = parser.parse_args()
    if args.plus and args.config != "b":
        parser.error("--plus needs --config b (config B's checkpoint has the tiny Plus adapter)")

    attention_scores_from_zeros()
    if args.config == "b":
        use_checkpoint_vocabulary(args.model)
    pipe = load_pipeline(args.model, "ip-adapter-plus_sdxl_vit-h.safetensors" if args.plus else "ip-adapter_sdxl_vit-h.safetensors")
    reference = Image.open(args.reference).convert("RGB")
    base_config = pipe.scheduler.config
    manifest = {"diffusers": "0.30.0", "torch": torch.__version__, "model": args.model, "reference": args.reference, "cases": []}
    if args.config == "b":
        manifest["command"] = CONFIG_B_COMMAND
    if args.plus:
        manifest["ip_adapter"] = "ip-adapter/sdxl_models/ip-adapter-plus_sdxl_vit-h.safetensors"
    if args.config == "b" and not args.plus:
        # What the reference picture becomes on the way in: CLIP's pixels and the image encoder's embeds.
        pixels = pipe.feature_extractor(reference, return_tensors="pt").pixel_values
        with torch.no_grad():
            embeds = pipe.image_encoder(pixels).image_embeds
        np.save(os.path.join(args.out, "reference-pixel-values.npy"), pixels.numpy().astype(np.float32))
        np.save(os.path.join(args.out, "reference-image-embeds.npy"), embeds.numpy().astype(np.float32))
    for case in CASES_PLUS if args.plus else CASES_B if args.config == "b" else CASES_A:
        folder = os.path.join(args.out, case["name"])
        os.makedirs(folder, exist_ok=True)
        spacing = {"timestep_spacing": case["spacing"]} if "spacing" in case else {}
        pipe.scheduler = SCHEDULERS[case["sched"]](base_config, **spacing)
        pipe.set_ip_adapter_scale(case["ip"])
        settings = dict(prompt=case["prompt"], negative_prompt=case["negative"], ip_adapter_image=reference,
                        height=case["h"], width=case["w"], num_inference_steps=case["steps"], guidance_scale=case["g"])
        if "cutoff" in case:
            callback, tensor_inputs = guidance_cutoff(case["cutoff"])
            settings.update(callback_on_step_end=callback, callback_on_step_end_tensor_inputs=tensor_inputs)
        if case.get("initial_noise"):
            shape = (1, 4, case["h"] // 8, case["w"] // 8)
            noise = torch.randn(shape, generator=torch.Generator("cpu").manual_seed(NOISE_SEED))
            np.save(os.path.join(folder, case["initial_noise"]), noise.numpy().astype(np.float32))
            settings["latents"] = noise
        seed = case["seed"] if case["seed"] is not None else 0

        def run(output_type):
            deep_cache = None
            if case.get("deepcache"):
                from DeepCache import DeepCacheSDHelper
                deep_cache = DeepCacheSDHelper(pipe=pipe)
                deep_cache.set_params(cache_interval=case["deepcache"], cache_branch_id=0)
                deep_cache.enable()
            try:
                with torch.no_grad():
                    return pipe(**settings, generator=torch.Generator("cpu").manual_seed(seed), output_type=output_type).images
            finally:
                if deep_cache:
                    deep_cache.disable()

        latents = run("latent")
        image = run("np")
        np.save(os.path.join(folder, "final-latents.npy"), latents.numpy().astype(np.float32))
        if args.config == "b" and case["name"] == "euler-seed":
            np.save(os.path.join(folder, "image-float.npy"), image.astype(np.float32))
        Image.fromarray((image[0] * 255).round().astype("uint8")).save(os.path.join(folder, "image.png"))
        manifest["cases"].append(case)
        print("case", case["name"], "done", flush=True)
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)


if __name__ == "__main__":
    main()
