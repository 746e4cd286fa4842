"""LoRA reference cases on config B: LoRA files made here from a seed, and diffusers v0.30.0's
StableDiffusionXLPipeline (IP-Adapter loaded) with those LoRAs fused into its modules.

diffusers' load_lora_weights/fuse_lora need the peft package, which is not available here, so the LoRAs are fused
with sd-scripts' merge arithmetic (networks/merge_lora.py): for each layer, on the diffusers module the key names,
W += weight * (alpha / rank) * up @ down, the kernel's taps flattened (a 3x3 conv LoRA's down is [r, in, 3, 3] and
its up [out, r, 1, 1]); a file without alpha scales by 1. The modules are found by their diffusers names: dotted
in the PEFT file, '.' made '_' in the kohya files (as diffusers' and kohya's converters resolve them).

Files (OUT/): kira.safetensors (kohya: every linear layer of the UNet's transformer blocks and of both text
encoders' attention and MLP, rank 4, alpha 2), film.safetensors (diffusers/PEFT lora_A/lora_B: the UNet's attention
keys/values/outputs and the encoders' q/v projections, rank 2, no alpha), texture.safetensors (kohya conv LoRA:
the resnets' 3x3 convolutions and 1x1 shortcuts, conv_in, the time-embedding projections; rank 3, alpha 3).
All in float16, as most downloaded LoRAs are. Cases: OUT/<case>/final-latents.npy and image.png, OUT/manifest.json.

    /usr/bin/python3 tests/reference/make_lora_cases.py --model out/tiny-b \
        --reference tests/reference/pipeline-b/reference.png --out tests/reference/lora-b
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file
from diffusers import EulerDiscreteScheduler

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_pipeline_cases import CONFIG_B_COMMAND, attention_scores_from_zeros, load_pipeline, use_checkpoint_vocabulary  # noqa: E402

SEED = 20241204
PREFIXES = {"unet": ("lora_unet_", "unet."), "text_encoder": ("lora_te1_", "text_encoder."), "text_encoder_2": ("lora_te2_", "text_encoder_2.")}

CASES = [
    dict(name="kohya-kira", loras=[["kira.safetensors", 0.8]]),
    dict(name="peft-film", loras=[["film.safetensors", 1.0]]),
    dict(name="kira-and-film", loras=[["kira.safetensors", 0.8], ["film.safetensors", -0.5]]),
    dict(name="conv-texture", loras=[["texture.safetensors", 0.7]]),
]
SCENE = dict(prompt="a photo of a cat wearing a red hat", negative="blurry", w=64, h=64, steps=3, g=5.0, ip=0.6, seed=42, sched="Euler")


def pick(pipe, network, test):
    """The network's modules with a weight that `test(name, module)` selects, by diffusers name, in order."""
    return [(name, m) for name, m in getattr(pipe, network).named_modules()
            if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)) and test(name, m)]


def make_lora(pipe, selection, rank, alpha, kohya, generator):
    """A LoRA of random factors for the selected modules: {key: tensor}."""
    tensors = {}
    for network, test in selection.items():
        kohya_prefix, peft_prefix = PREFIXES[network]
        for name, module in pick(pipe, network, test):
            w = module.weight
            down_shape = (rank, w.shape[1], *w.shape[2:]) if w.dim() == 4 else (rank, w.shape[1])
            up_shape = (w.shape[0], rank, 1, 1) if w.dim() == 4 else (w.shape[0], rank)
            # Stored in float16, as most downloaded LoRAs are; the fused values are the stored ones.
            down = (torch.randn(down_shape, generator=generator) * 0.1).half()
            up = (torch.randn(up_shape, generator=generator) * 0.1).half()
            if kohya:
                key = kohya_prefix + name.replace(".", "_")
                tensors[key + ".lora_down.weight"] = down
                tensors[key + ".lora_up.weight"] = up
                tensors[key + ".alpha"] = torch.tensor(float(alpha)).half()
            else:
                tensors[peft_prefix + name + ".lora_A.weight"] = down
                tensors[peft_prefix + name + ".lora_B.weight"] = up
    return tensors


def fuse(pipe, tensors, weight):
    """sd-scripts' merge of one LoRA file into the pipeline's modules."""
    modules = {}
    for network, (kohya_prefix, peft_prefix) in PREFIXES.items():
        for name, module in getattr(pipe, network).named_modules():
            modules[kohya_prefix + name.replace(".", "_")] = module
            modules[peft_prefix + name] = module
    for key in tensors:
        for down_suffix, up_suffix in ((".lora_down.weight", ".lora_up.weight"), (".lora_A.weight", ".lora_B.weight")):
            if not key.endswith(down_suffix):
                continue
            layer = key[:-len(down_suffix)]
            down, up = tensors[key].float(), tensors[layer + up_suffix].float()
            rank = down.shape[0]
            alpha = tensors[layer + ".alpha"].item() if layer + ".alpha" in tensors else rank
            w = modules[layer].weight
            with torch.no_grad():
                w += weight * (alpha / rank) * (up.flatten(1) @ down.flatten(1)).reshape(w.shape)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--reference", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    attention_scores_from_zeros()
    use_checkpoint_vocabulary(args.model)
    pipe = load_pipeline(args.model)
    reference = Image.open(args.reference).convert("RGB")
    generator = torch.Generator("cpu").manual_seed(SEED)
    linear = lambda name, m: isinstance(m, torch.nn.Linear)
    loras = {
        "kira.safetensors": make_lora(pipe, {
            "unet": lambda name, m: linear(name, m) and ".transformer_blocks." in name and ".processor." not in name,
            "text_encoder": lambda name, m: linear(name, m) and ".layers." in name,
            "text_encoder_2": lambda name, m: linear(name, m) and ".layers." in name,
        }, rank=4, alpha=2, kohya=True, generator=generator),
        "film.safetensors": make_lora(pipe, {
            "unet": lambda name, m: linear(name, m) and name.split(".")[-1] in ("to_k", "to_v") or name.endswith("to_out.0"),
            "text_encoder": lambda name, m: name.endswith(("q_proj", "v_proj")),
            "text_encoder_2": lambda name, m: name.endswith(("q_proj", "v_proj")),
        }, rank=2, alpha=None, kohya=False, generator=generator),
        "texture.safetensors": make_lora(pipe, {
            "unet": lambda name, m: isinstance(m, torch.nn.Conv2d) and (".resnets." in name or name == "conv_in") or name.endswith("time_emb_proj"),
        }, rank=3, alpha=3, kohya=True, generator=generator),
    }
    os.makedirs(args.out, exist_ok=True)
    for file, tensors in loras.items():
        save_file(tensors, os.path.join(args.out, file))

    original = {network: {k: v.clone() for k, v in getattr(pipe, network).state_dict().items()} for network in PREFIXES}
    pipe.scheduler = EulerDiscreteScheduler.from_config(pipe.scheduler.config)
    pipe.set_ip_adapter_scale(SCENE["ip"])
    manifest = {"diffusers": "0.30.0", "torch": torch.__version__, "model": args.model, "command": CONFIG_B_COMMAND,
                "reference": args.reference, "seed": SEED, "scene": SCENE, "cases": []}
    for case in CASES:
        for network, state in original.items():
            getattr(pipe, network).load_state_dict(state)
        for file, weight in case["loras"]:
            fuse(pipe, loras[file], weight)
        settings = dict(prompt=SCENE["prompt"], negative_prompt=SCENE["negative"], ip_adapter_image=reference, height=SCENE["h"], width=SCENE["w"],
                        num_inference_steps=SCENE["steps"], guidance_scale=SCENE["g"])

        def run(output_type):
            with torch.no_grad():
                return pipe(**settings, generator=torch.Generator("cpu").manual_seed(SCENE["seed"]), output_type=output_type).images

        folder = os.path.join(args.out, case["name"])
        os.makedirs(folder, exist_ok=True)
        np.save(os.path.join(folder, "final-latents.npy"), run("latent").numpy().astype(np.float32))
        image = run("np")
        Image.fromarray((image[0] * 255).round().astype("uint8")).save(os.path.join(folder, "image.png"))
        manifest["cases"].append(case)
        print("case", case["name"], "done", flush=True)
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)


if __name__ == "__main__":
    main()
