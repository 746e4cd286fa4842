"""Tiny-decoder reference numbers from Hugging Face diffusers v0.30.0 (torch CPU, float32) for Mnemosyne's
equivalence tests: AutoencoderTiny (TAESD, madebyollin/taesdxl's layout) decoding fixed latents as the SDXL
pipeline does it (latents / vae.config.scaling_factor, then vae.decode(...).sample).

Run (see README.md beside this file for the set-up):
  PYTHONPATH=$HARNESS/stubs:$VENDOR /usr/bin/python3 make_taesd_cases.py --model TINY_DECODER_DIR \
      --checkpoint-command "..." --out OUTDIR
Writes OUTDIR/*.npy (float32), OUTDIR/manifest.json (every file with its shape) and OUTDIR/checkpoint.json."""
import argparse, json, os
import numpy as np
import torch

from diffusers import AutoencoderTiny

LATENT_SEED = 11  # np.random.RandomState(LATENT_SEED) draws every case's latents, in the order below
LATENT_SCALE = 2.5  # about the range of SDXL's scaled latents, so that DecoderTiny's tanh clamp bends them
CASES = [
    dict(name="taesd-8x12", shape=(1, 4, 8, 12)),
    dict(name="taesd-7x9", shape=(1, 4, 7, 9)),
    dict(name="taesd-batch2-5x6", shape=(2, 4, 5, 6)),
]


def save(out, files, name, tensor, meaning):
    array = np.ascontiguousarray(tensor.detach().numpy() if torch.is_tensor(tensor) else tensor, dtype=np.float32)
    np.save(os.path.join(out, name + ".npy"), array)
    files[name + ".npy"] = {"shape": list(array.shape), "dtype": "float32", "meaning": meaning}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True, help="the tiny decoder folder (config.json + diffusion_pytorch_model.safetensors)")
    parser.add_argument("--checkpoint-command", help="how the folder was made; written to checkpoint.json")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    os.makedirs(args.out, exist_ok=True)

    vae = AutoencoderTiny.from_pretrained(args.model).eval()
    # The generator writes the decoder only: check that diffusers took every decoder tensor from the file.
    from safetensors.torch import load_file
    stored = load_file(os.path.join(args.model, "diffusion_pytorch_model.safetensors"))
    state = vae.state_dict()
    decoder_keys = sorted(k for k in state if k.startswith("decoder."))
    assert sorted(stored) == decoder_keys, "the file's tensors are not exactly AutoencoderTiny's decoder tensors"
    for key in decoder_keys:
        assert torch.equal(state[key], stored[key]), key

    rng = np.random.RandomState(LATENT_SEED)
    files, cases = {}, []
    with torch.no_grad():
        for case in CASES:
            latents = torch.from_numpy((rng.standard_normal(case["shape"]) * LATENT_SCALE).astype(np.float32))
            # What StableDiffusionXLPipeline does before decoding when the VAE config has no latents_mean / latents_std.
            sample = vae.decode(latents / vae.config.scaling_factor, return_dict=False)[0]
            save(args.out, files, case["name"] + "-latents", latents,
                 f"decoder input as the sampler leaves it: standard normal x {LATENT_SCALE} (RandomState({LATENT_SEED}), cases in order)")
            save(args.out, files, case["name"] + "-sample", sample,
                 "vae.decode(latents / scaling_factor).sample: no clamp, no /2 + 0.5")
            cases.append({"name": case["name"], "latent_shape": list(case["shape"]), "sample_shape": list(sample.shape),
                          "sample_range": [float(sample.min()), float(sample.max())]})
            print(case["name"], list(sample.shape), "range", round(float(sample.min()), 4), round(float(sample.max()), 4))

    with open(os.path.join(args.model, "config.json")) as f:
        config = json.load(f)
    # The real TAESDXL is AutoencoderTiny's defaults: its decoder's tensors, for a test of the engine's names and shapes.
    taesdxl = {k: list(v.shape) for k, v in AutoencoderTiny().state_dict().items() if k.startswith("decoder.")}
    manifest = {"diffusers": "0.30.0", "torch": torch.__version__, "class": type(vae).__name__, "config": config,
                "scaling_factor": vae.config.scaling_factor, "cases": cases, "files": files,
                "taesdxl_decoder_tensors": taesdxl}
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    if args.checkpoint_command:
        with open(os.path.join(args.out, "checkpoint.json"), "w") as f:
            json.dump({"command": args.checkpoint_command, "model": os.path.basename(os.path.normpath(args.model)),
                       "note": "the tiny decoder is not stored: this command writes it again, byte for byte"}, f, indent=1)


if __name__ == "__main__":
    main()
