"""Per-network reference numbers from Hugging Face diffusers v0.30.0 (torch CPU, float32) for Mnemosyne's
equivalence tests: text encoders, image encoder, IP-Adapter image projection, UNet (IP-Adapter loaded) and VAE decoder.

Run (see README.md beside this file for the set-up):
  PYTHONPATH=$HARNESS/stubs:$VENDOR /usr/bin/python3 make_network_cases.py \
      --model CHECKPOINT --ip-adapter IP_ADAPTER.safetensors --image-encoder IMAGE_ENCODER_DIR \
      --pixel-values REFERENCE_PIXELS.npy --out OUTDIR
Writes OUTDIR/*.npy (float32), OUTDIR/text-ids.json and OUTDIR/manifest.json (every file with its shape).

With --plus (IP-Adapter Plus: --ip-adapter names an ip-adapter-plus file), only the image side: the image encoder's
penultimate hidden states (as encode_image(output_hidden_states=True) takes them) and the resampler
(IPAdapterPlusImageProjection) on them."""
import argparse, json, os
import numpy as np
import torch

from transformers import (CLIPImageProcessor, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer,
                          CLIPVisionModelWithProjection)
from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel

TEXT_PROMPTS = [
    "a photo of a cat wearing a red hat",
    "",
    "A knight, standing in the rain!! 35mm film, 4K",
]
UNET_PROMPT = "portrait of the same woman at a cafe in Paris"
UNET_NEGATIVE = "blurry, low quality"
IP_SCALE = 0.6
# Latent sizes (height x width): one a multiple of every down-sampling factor, and two that make diffusers pass
# the skip connection's size to the up-samplers (odd sizes; 10x6 also does so wherever the factor is 4, as in SDXL).
UNET_CASES = [
    dict(name="unet-8x12", height=8, width=12, timestep=999.0),
    dict(name="unet-9x7", height=9, width=7, timestep=341.75),
    dict(name="unet-10x6", height=10, width=6, timestep=1.0),
]
VAE_CASES = [dict(name="vae-8x12", height=8, width=12), dict(name="vae-7x9", height=7, width=9)]
PIXEL_SEED = 1234  # torch.Generator('cpu').manual_seed(PIXEL_SEED) draws the random pixel tensor


class Writer:
    def __init__(self, out):
        self.out, self.files = out, {}
        os.makedirs(out, exist_ok=True)

    def npy(self, name, tensor, meaning):
        array = np.ascontiguousarray(tensor.detach().cpu().numpy() if torch.is_tensor(tensor) else tensor, dtype=np.float32)
        np.save(os.path.join(self.out, name + ".npy"), array)
        self.files[name + ".npy"] = {"shape": list(array.shape), "dtype": "float32", "meaning": meaning}
        return array

    def json(self, name, obj, meaning):
        with open(os.path.join(self.out, name), "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=1, ensure_ascii=False)
        self.files[name] = {"dtype": "json", "meaning": meaning}


def is_openai_vocabulary(tokenizers):
    """The harness's CLIPTokenizer reads only OpenAI's CLIP vocabulary (49408 entries)."""
    with open(os.path.join(tokenizers, "tokenizer", "vocab.json"), encoding="utf-8") as f:
        return len(json.load(f)) == 49408


class IdRows:
    """Token id rows shaped as the SDXL tokenizers make them (start, ids, end, padding to 77), drawn at random from a
    checkpoint's own vocabulary: for checkpoints whose tokenizer the harness cannot read (e.g. a synthetic vocabulary)."""

    def __init__(self, model):
        self.special = {}
        for name in ("tokenizer", "tokenizer_2"):
            with open(os.path.join(model, name, "vocab.json"), encoding="utf-8") as f:
                vocab = json.load(f)
            with open(os.path.join(model, name, "special_tokens_map.json"), encoding="utf-8") as f:
                pad = json.load(f)["pad_token"]
            pad = pad if isinstance(pad, str) else pad["content"]
            self.special[name] = (vocab["<|startoftext|>"], vocab["<|endoftext|>"], vocab[pad])
        self.rng = np.random.RandomState(3)

    def rows(self, lengths):
        out = {}
        bos, eos = self.special["tokenizer"][:2]
        bodies = [self.rng.randint(0, min(bos, eos), size=n).tolist() for n in lengths]
        for name, (bos, eos, pad) in self.special.items():
            out[name] = torch.tensor([[bos] + b + [eos] + [pad] * (75 - len(b)) for b in bodies], dtype=torch.long)
        return out


def load_pipe(model, ip_adapter_file, image_encoder_dir, tokenizers):
    pipe = StableDiffusionXLPipeline(
        vae=AutoencoderKL.from_pretrained(os.path.join(model, "vae")),
        text_encoder=CLIPTextModel.from_pretrained(os.path.join(model, "text_encoder")),
        text_encoder_2=CLIPTextModelWithProjection.from_pretrained(os.path.join(model, "text_encoder_2")),
        tokenizer=CLIPTokenizer.from_pretrained(os.path.join(tokenizers, "tokenizer")) if tokenizers else None,
        tokenizer_2=CLIPTokenizer.from_pretrained(os.path.join(tokenizers, "tokenizer_2")) if tokenizers else None,
        unet=UNet2DConditionModel.from_pretrained(os.path.join(model, "unet")),
        scheduler=EulerDiscreteScheduler.from_pretrained(os.path.join(model, "scheduler")),
        image_encoder=CLIPVisionModelWithProjection.from_pretrained(image_encoder_dir),
        feature_extractor=CLIPImageProcessor())
    pipe.load_ip_adapter(os.path.dirname(os.path.abspath(ip_adapter_file)), subfolder="",
                         weight_name=os.path.basename(ip_adapter_file), image_encoder_folder=None)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def text_encoders(pipe, w, id_rows):
    if id_rows is None:
        ids1 = pipe.tokenizer(TEXT_PROMPTS).input_ids
        ids2 = pipe.tokenizer_2(TEXT_PROMPTS).input_ids
        w.json("text-ids.json", {"prompts": TEXT_PROMPTS, "tokenizer": ids1.tolist(), "tokenizer_2": ids2.tolist()},
               "prompts and their token ids (int, [P][77]) from tokenizer and tokenizer_2, padded/truncated to 77")
    else:
        rows = id_rows.rows([7, 0, 75])
        ids1, ids2 = rows["tokenizer"], rows["tokenizer_2"]
        w.json("text-ids.json", {"prompts": None, "tokenizer": ids1.tolist(), "tokenizer_2": ids2.tolist()},
               "random token ids (int, [P][77]) of the checkpoint's own vocabulary, laid out as each tokenizer pads: "
               "7 ids, none, 75 ids")
    out1 = pipe.text_encoder(ids1, output_hidden_states=True)
    out2 = pipe.text_encoder_2(ids2, output_hidden_states=True)
    w.npy("text-encoder-penultimate", out1.hidden_states[-2],
          "text_encoder(ids tokenizer).hidden_states[-2]: output of the second-to-last layer, no final layer norm")
    w.npy("text-encoder-2-penultimate", out2.hidden_states[-2],
          "text_encoder_2(ids tokenizer_2).hidden_states[-2]: output of the second-to-last layer, no final layer norm")
    w.npy("text-encoder-2-text-embeds", out2.text_embeds,
          "text_encoder_2(ids tokenizer_2).text_embeds: final layer norm at the first end-of-text token, then text_projection")


def image_encoder_and_projection(pipe, w, reference_pixels_path):
    size = pipe.image_encoder.config.image_size
    random_pixels = torch.randn(1, 3, size, size, generator=torch.Generator("cpu").manual_seed(PIXEL_SEED))
    w.npy("image-encoder-random-pixel-values", random_pixels,
          f"random pixel tensor (torch.randn, torch.Generator('cpu').manual_seed({PIXEL_SEED}))")
    w.npy("image-encoder-random-image-embeds", pipe.image_encoder(random_pixels).image_embeds,
          "image_encoder(image-encoder-random-pixel-values).image_embeds")
    inputs = [torch.zeros(1, pipe.image_encoder.config.projection_dim)]
    if reference_pixels_path:
        reference = torch.from_numpy(np.load(reference_pixels_path).astype(np.float32))
        reference_embeds = pipe.image_encoder(reference).image_embeds
        w.npy("image-encoder-reference-image-embeds", reference_embeds,
              f"image_encoder(pixel values read from {os.path.basename(reference_pixels_path)}, not copied here).image_embeds")
        inputs.append(reference_embeds)
    inputs.append(torch.from_numpy(np.random.RandomState(5).standard_normal(inputs[0].shape).astype(np.float32)))
    embeds = torch.cat(inputs)
    projection = pipe.unet.encoder_hid_proj.image_projection_layers[0]
    w.npy("image-projection-embeds", embeds,
          "image embeds fed to the IP-Adapter image projection: row 0 zeros (the unconditional branch), then "
          + ("the reference image's embeds, then " if reference_pixels_path else "") + "standard normal (RandomState(5))")
    w.npy("image-projection-ip-tokens", projection(embeds),
          "image_proj(image-projection-embeds): proj, reshape to [rows, tokens, cross dim], layer norm")
    return embeds[1:2]  # the reference image's embeds, or the random ones without --pixel-values


def plus_image_side(pipe, w):
    """IP-Adapter Plus's inputs and resampler: hidden_states[-2] of a random pixel tensor and of torch.zeros_like of it
    (the unconditional branch, as encode_image makes it), and the projection of both and of a standard-normal input."""
    size = pipe.image_encoder.config.image_size
    pixels = torch.randn(1, 3, size, size, generator=torch.Generator("cpu").manual_seed(PIXEL_SEED))
    states = pipe.image_encoder(pixels, output_hidden_states=True).hidden_states[-2]
    zero_states = pipe.image_encoder(torch.zeros_like(pixels), output_hidden_states=True).hidden_states[-2]
    projection = pipe.unet.encoder_hid_proj.image_projection_layers[0]
    assert type(projection).__name__ == "IPAdapterPlusImageProjection", type(projection).__name__
    noise = torch.from_numpy(np.random.RandomState(5).standard_normal(tuple(states.shape)).astype(np.float32))
    inputs = w.npy("plus-projection-hidden-states", torch.cat([zero_states, states, noise]),
                   "image_encoder(x, output_hidden_states=True).hidden_states[-2] for x = torch.zeros_like(pixels) (the "
                   "unconditional branch's), then the pixels (torch.randn [1, 3, S, S], "
                   f"torch.Generator('cpu').manual_seed({PIXEL_SEED})); then standard normal (RandomState(5)): the resampler's input")
    w.npy("plus-projection-ip-tokens", projection(torch.from_numpy(inputs)),
          "image_proj(plus-projection-hidden-states): IPAdapterPlusImageProjection, [rows, queries, cross dim]")
    return {"depth": len(projection.layers), "heads": projection.layers[0].attn.heads,
            "queries": projection.latents.shape[1], "hidden_dims": projection.latents.shape[2]}


def unet(pipe, w, image_embeds, id_rows):
    if id_rows is None:
        pe, npe, ppe, nppe = pipe.encode_prompt(prompt=UNET_PROMPT, negative_prompt=UNET_NEGATIVE,
                                               do_classifier_free_guidance=True)
        what = f"encode_prompt({UNET_PROMPT!r}, negative {UNET_NEGATIVE!r})"
    else:
        # What encode_prompt does with token ids: both penultimate states side by side, pooled from encoder 2.
        rows = id_rows.rows([4, 12])
        w.json("unet-text-ids.json", {"tokenizer": rows["tokenizer"].tolist(), "tokenizer_2": rows["tokenizer_2"].tolist()},
               "random token ids [negative, positive] the UNet's prompt embeds were made from")
        out1 = pipe.text_encoder(rows["tokenizer"], output_hidden_states=True)
        out2 = pipe.text_encoder_2(rows["tokenizer_2"], output_hidden_states=True)
        embeds = torch.cat([out1.hidden_states[-2], out2.hidden_states[-2]], dim=-1)
        npe, pe, nppe, ppe = embeds[:1], embeds[1:], out2.text_embeds[:1], out2.text_embeds[1:]
        what = "the text encoders on unet-text-ids.json (penultimate states concatenated)"
    prompt_embeds = w.npy("unet-encoder-hidden-states", torch.cat([npe, pe]), f"[negative, positive] prompt embeds of {what}")
    pooled = w.npy("unet-text-embeds", torch.cat([nppe, ppe]), "[negative, positive] pooled prompt embeds (added text_embeds)")
    ip_embeds = torch.cat([torch.zeros_like(image_embeds), image_embeds])[:, None]  # [2, 1 image, embed dim]
    w.npy("unet-image-embeds", ip_embeds[:, 0],
          "[zeros, row 1 of image-projection-embeds] as the pipeline's [uncond, cond]; the UNet forward receives these as "
          "added_cond_kwargs image_embeds (unsqueezed to [2, 1, dim]) and projects them itself")
    w.npy("unet-ip-tokens", pipe.unet.encoder_hid_proj.image_projection_layers[0](ip_embeds[:, 0]),
          "the projection of unet-image-embeds: the IP-Adapter key/value tokens of each row")
    vae_scale = pipe.vae_scale_factor
    rng = np.random.RandomState(11)
    cases = []
    for c in UNET_CASES:
        latents = torch.from_numpy(rng.standard_normal((2, pipe.unet.config.in_channels, c["height"], c["width"]))
                                   .astype(np.float32))
        h, wd = c["height"] * vae_scale, c["width"] * vae_scale
        time_ids = torch.tensor([[h, wd, 0, 0, h, wd]] * 2, dtype=torch.float32)
        timestep = torch.tensor(c["timestep"], dtype=torch.float32)
        w.npy(c["name"] + "-sample", latents, "UNet input sample (the scaled model input), batch [uncond, cond]")
        w.npy(c["name"] + "-time-ids", time_ids, "added time_ids: [orig h, orig w, crop top, crop left, target h, target w]")
        outputs = {}
        for scale in (IP_SCALE, 0.0):
            pipe.set_ip_adapter_scale(scale)
            out = pipe.unet(latents, timestep, encoder_hidden_states=torch.from_numpy(prompt_embeds),
                            added_cond_kwargs={"text_embeds": torch.from_numpy(pooled), "time_ids": time_ids,
                                               "image_embeds": [ip_embeds]}, return_dict=False)[0]
            name = f"{c['name']}-out-scale{scale:g}".replace(".", "p")
            w.npy(name, out, f"UNet out sample at IP-Adapter scale {scale:g}")
            outputs[f"{scale:g}"] = name + ".npy"
        cases.append(dict(c, sample=c["name"] + "-sample.npy", time_ids=c["name"] + "-time-ids.npy", out=outputs))
    return cases


def vae(pipe, w):
    rng = np.random.RandomState(21)
    factor = pipe.vae.config.scaling_factor
    cases = []
    for c in VAE_CASES:
        z = torch.from_numpy((rng.standard_normal((1, pipe.vae.config.latent_channels, c["height"], c["width"]))
                              / factor).astype(np.float32))
        w.npy(c["name"] + "-latents", z, f"vae.decode input: already divided by scaling_factor {factor}")
        w.npy(c["name"] + "-sample", pipe.vae.decode(z, return_dict=False)[0],
              "vae.decode(latents).sample, in about [-1, 1] (no clamp, no /2+0.5)")
        cases.append(dict(c, latents=c["name"] + "-latents.npy", sample=c["name"] + "-sample.npy"))
    return cases


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="diffusers-layout SDXL checkpoint folder")
    ap.add_argument("--ip-adapter", required=True, help="ip-adapter_sdxl_vit-h.safetensors")
    ap.add_argument("--image-encoder", required=True, help="CLIPVisionModelWithProjection folder")
    ap.add_argument("--pixel-values", help="a preprocessed [1, 3, S, S] pixel tensor (.npy), read, not copied")
    ap.add_argument("--tokenizers", help="checkpoint folder whose tokenizer/ and tokenizer_2/ to use (default: --model)")
    ap.add_argument("--checkpoint-command", help="the command that made --model, recorded in OUT/checkpoint.json")
    ap.add_argument("--plus", action="store_true", help="--ip-adapter is an IP-Adapter Plus file: write its image side only")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    tokenizers = a.tokenizers or a.model
    if not os.path.isfile(os.path.join(tokenizers, "tokenizer_2", "vocab.json")):
        ap.error(f"{tokenizers} has no tokenizer_2/vocab.json: pass --tokenizers with a checkpoint folder that has "
                 "the CLIP tokenizers (e.g. ../shared/fidelity/model)")
    id_rows = None
    if not is_openai_vocabulary(tokenizers):
        id_rows, tokenizers = IdRows(tokenizers), None
    torch.manual_seed(0)
    torch.set_num_threads(1)
    w = Writer(os.path.abspath(a.out))
    pipe = load_pipe(a.model, a.ip_adapter, a.image_encoder, tokenizers)
    if a.plus:
        with torch.no_grad():
            resampler = plus_image_side(pipe, w)
        w.json("manifest.json", {"diffusers": "0.30.0", "torch": torch.__version__, "dtype": "float32",
                                 "model": a.model, "ip_adapter": a.ip_adapter, "image_encoder": a.image_encoder,
                                 "checkpoint_command": a.checkpoint_command, "resampler": resampler, "files": w.files},
               "this file")
        for name, info in sorted(w.files.items()):
            print(f"{name:48s} {info.get('shape', '')}")
        return
    with torch.no_grad():
        text_encoders(pipe, w, id_rows)
        image_embeds = image_encoder_and_projection(pipe, w, a.pixel_values)
        unet_cases = unet(pipe, w, image_embeds, id_rows)
        vae_cases = vae(pipe, w)
    manifest = {
        "diffusers": "0.30.0", "torch": torch.__version__, "dtype": "float32",
        "paths_note": "as given on the command line (run from the repository root, ../shared is the shared folder)",
        "model": a.model, "tokenizers": a.tokenizers or a.model,
        "token_ids": "from the tokenizers" if id_rows is None else "random ids of the checkpoint's own vocabulary",
        "ip_adapter": a.ip_adapter, "image_encoder": a.image_encoder,
        "reference_pixel_values": a.pixel_values,
        "unet": {"prompt": UNET_PROMPT if id_rows is None else None,
                 "negative_prompt": UNET_NEGATIVE if id_rows is None else None, "ip_adapter_scales": [IP_SCALE, 0.0],
                 "encoder_hidden_states": "unet-encoder-hidden-states.npy", "text_embeds": "unet-text-embeds.npy",
                 "image_embeds": "unet-image-embeds.npy", "ip_tokens": "unet-ip-tokens.npy", "cases": unet_cases},
        "vae": {"scaling_factor": pipe.vae.config.scaling_factor, "latents_already_divided_by_scaling_factor": True,
                "cases": vae_cases},
        "files": w.files,
    }
    if a.checkpoint_command:
        w.json("checkpoint.json", {"command": a.checkpoint_command, "model": a.model,
                                   "note": "run the command from the repository root to make the same checkpoint again"},
               "how the checkpoint these numbers belong to was made")
    w.json("manifest.json", manifest, "this file")
    for name, info in sorted(w.files.items()):
        print(f"{name:48s} {info.get('shape', '')}")


if __name__ == "__main__":
    main()
