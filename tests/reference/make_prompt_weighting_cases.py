"""Weighted and long prompts as AUTOMATIC1111 encodes them for SDXL, on diffusers v0.30.0's text encoders.

A1111's rules, from its published description (the wiki's "Attention/emphasis" and "BREAK" sections and the
docstring of modules/prompt_parser.py's parse_prompt_attention), written here from scratch:

- (text) multiplies the weight of text by 1.1, [text] divides it by 1.1, (text:w) multiplies it by w; nesting
  multiplies. \\( \\) \\[ \\] \\\\ are the characters themselves; a backslash before anything else is dropped. A bracket
  left open weights everything after it; a ) or ] that closes nothing, and a : without a number and ), are text.
  Neighbouring runs of the same weight are joined; each run is tokenized on its own.
- BREAK (upper case, a word of its own) ends the chunk.
- The token ids fill chunks of 75; a token that does not fit starts the next chunk, and when the full chunk has a comma
  among its last 20 ids, the ids after that comma move to the next chunk with it (comma_padding_backtrack = 20).
  Each chunk is BOS, its ids, EOS, then the tokenizer's pad id up to 77 (for tokenizer_2, "!" = 0).
- Each chunk goes through the encoder alone (penultimate hidden states, as SDXL uses); its states are multiplied by
  the tokens' weights and then by (mean before ÷ mean after), over the whole [1, 77, C] chunk; the chunks are joined
  along the sequence, the two encoders' states side by side. The pooled embedding is text_encoder_2's of the first
  chunk, unweighted.
- Mnemosyne's own rules where A1111 has none: if the two tokenizers make different chunk counts (tokenizer_2 splits
  "!" out as its pad token), the shorter gets empty chunks; the prompt and negative prompt are padded to the same
  length with the empty prompt's encoded chunk (A1111's "pad prompt/negative prompt" option; compel's way).

Writes OUT/manifest.json and per case OUT/<case>/ {chunks.json, prompt-embeds.npy, pooled-prompt-embeds.npy,
negative-prompt-embeds.npy, negative-pooled-prompt-embeds.npy}; per scene OUT/<scene>/ {final-latents.npy,
image.png}, made by StableDiffusionXLPipeline with these embeddings passed in. See README.md for set-up.

    /usr/bin/python3 tests/reference/make_prompt_weighting_cases.py --model out/tiny-b \\
        --reference tests/reference/pipeline-b/reference.png --out tests/reference/prompts-b
"""
import argparse
import json
import os
import re

import numpy as np
import torch
from PIL import Image

from make_pipeline_cases import CONFIG_B_COMMAND, attention_scores_from_zeros, guidance_cutoff, load_pipeline, \
    use_checkpoint_vocabulary

LONG = ("a lighthouse keeper with a brass lantern, standing on a stormy cliff above the sea, rain and wind, "
        "dramatic clouds, (golden light:1.2) through a gap in the clouds, waves breaking on black rocks, "
        "seagulls in the air, a small red boat far away, oil painting, highly detailed, [muted colours], "
        "cinematic composition, volumetric fog, a path of stones leading to the tower")
NEGATIVE_LONG = ("blurry, low quality, jpeg artefacts, watermark, signature, text, extra fingers, bad hands, "
                 "deformed face, cropped, out of frame, oversaturated, underexposed, noisy, grainy, duplicate, "
                 "ugly, disfigured, mutated, poorly drawn, bad anatomy, wrong proportions, long neck, "
                 "missing limbs, floating limbs, disconnected limbs, malformed hands, out of focus, worst quality")

CASES = [
    dict(name="weighted", prompt="a (red:1.3) fox in a [dark] forest, ((masterpiece)), \\(not weighted\\) (sunlight",
         negative="blurry, (low quality:1.4)"),
    dict(name="long", prompt=LONG, negative="blurry"),
    dict(name="break", prompt="a castle on a hill BREAK a (dragon:1.2) in the sky BREAK", negative=None),
    dict(name="negative-longer", prompt="a cat in a [red] hat", negative=NEGATIVE_LONG),
    dict(name="unbalanced", prompt="((a cat in a hat:1.2) on a [[red chair) BREAK BREAK (tail:abc) \\x ]", negative=""),
    dict(name="plain", prompt="a photo of a cat wearing a red hat", negative="blurry"),
]

SCENES = [
    dict(name="scene-long", case="long", w=64, h=64, steps=4, g=5.0, ip=0.6, seed=42),
    dict(name="scene-negative-longer-cutoff", case="negative-longer", w=64, h=64, steps=5, g=5.0, ip=0.6, seed=7, cutoff=0.5),
]

ATTENTION = re.compile(r"\\[()\[\]\\]|\\|\(|\[|:\s*([+-]?[.\d]+)\s*\)|\)|]|[^\\()\[\]:]+|:")
BREAK = re.compile(r"\s*\bBREAK\b\s*")
CHUNK = 75
COMMA_BACKTRACK = 20


def parse(prompt):
    """[(text, weight)] with None as the weight of a BREAK."""
    runs, rounds, squares = [], [], []

    def multiply(start, factor):
        for run in runs[start:]:
            if run[1] is not None:
                run[1] *= factor

    for m in ATTENTION.finditer(prompt):
        token, number = m.group(0), m.group(1)
        if token.startswith("\\"):
            runs.append([token[1:], 1.0])
        elif token == "(":
            rounds.append(len(runs))
        elif token == "[":
            squares.append(len(runs))
        elif number is not None and rounds:
            multiply(rounds.pop(), float(number))
        elif token == ")" and rounds:
            multiply(rounds.pop(), 1.1)
        elif token == "]" and squares:
            multiply(squares.pop(), 1 / 1.1)
        else:
            for i, part in enumerate(BREAK.split(token)):
                if i:
                    runs.append(["", None])
                runs.append([part, 1.0])
    for start in rounds:
        multiply(start, 1.1)
    for start in squares:
        multiply(start, 1 / 1.1)
    merged = []
    for run in runs or [["", 1.0]]:
        if merged and run[1] is not None and merged[-1][1] == run[1]:
            merged[-1][0] += run[0]
        else:
            merged.append(list(run))
    return merged


def chunks_of(tokenizer, runs):
    comma = tokenizer._t.encoder[",</w>"]
    chunks, ids, weights, last_comma = [], [], [], -1

    def close():
        nonlocal ids, weights, last_comma
        body = [tokenizer.bos_token_id] + ids + [tokenizer.eos_token_id]
        chunks.append((body + [tokenizer.pad_token_id] * (CHUNK + 2 - len(body)),
                       [1.0] + weights + [1.0] * (CHUNK + 1 - len(weights))))
        ids, weights, last_comma = [], [], -1

    for text, weight in runs:
        if weight is None:
            close()
            continue
        for token in tokenizer.ids(text):
            if token == comma:
                last_comma = len(ids)
            elif len(ids) == CHUNK and last_comma >= 0 and len(ids) - last_comma <= COMMA_BACKTRACK:
                moved_ids, moved_weights = ids[last_comma + 1:], weights[last_comma + 1:]
                ids, weights = ids[:last_comma + 1], weights[:last_comma + 1]
                close()
                ids, weights = moved_ids, moved_weights
            if len(ids) == CHUNK:
                close()
            ids.append(token)
            weights.append(weight)
    if ids or not chunks:
        close()
    return chunks


def emphasised(z, weights):
    """A1111's "Original" emphasis on one chunk's [1, 77, C] states."""
    original_mean = z.mean()
    z = z * torch.tensor(weights, dtype=torch.float32)[None, :, None]
    return z * (original_mean / z.mean())


def encode(pipe, prompt):
    runs = parse(prompt)
    chunks = [chunks_of(pipe.tokenizer, runs), chunks_of(pipe.tokenizer_2, runs)]
    count = max(len(c) for c in chunks)
    for tokenizer, c in zip([pipe.tokenizer, pipe.tokenizer_2], chunks):
        c += chunks_of(tokenizer, [["", 1.0]]) * (count - len(c))
    states, pooled = [[], []], None
    with torch.no_grad():
        for i, encoder in enumerate([pipe.text_encoder, pipe.text_encoder_2]):
            for k, (ids, weights) in enumerate(chunks[i]):
                out = encoder(torch.tensor([ids]), output_hidden_states=True)
                states[i].append(emphasised(out.hidden_states[-2], weights))
                if i == 1 and k == 0:
                    pooled = out.text_embeds
    embeds = torch.cat([torch.cat(states[0], dim=1), torch.cat(states[1], dim=1)], dim=-1)
    return embeds, pooled, {"runs": runs, "tokenizer": chunks[0], "tokenizer_2": chunks[1]}


def padded(embeds, empty, length):
    while embeds.shape[1] < length:
        embeds = torch.cat([embeds, empty], dim=1)
    return embeds


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
    manifest = {"diffusers": "0.30.0", "torch": torch.__version__, "model": args.model, "command": CONFIG_B_COMMAND,
                "reference": args.reference, "cases": CASES, "scenes": SCENES}
    empty = encode(pipe, "")[0]
    encoded = {}
    for case in CASES:
        folder = os.path.join(args.out, case["name"])
        os.makedirs(folder, exist_ok=True)
        embeds, pooled, chunks = encode(pipe, case["prompt"])
        negative, negative_pooled, negative_chunks = encode(pipe, case["negative"] or "")
        length = max(embeds.shape[1], negative.shape[1])
        embeds, negative = padded(embeds, empty, length), padded(negative, empty, length)
        encoded[case["name"]] = (embeds, pooled, negative, negative_pooled)
        for name, tensor in [("prompt-embeds", embeds), ("pooled-prompt-embeds", pooled),
                             ("negative-prompt-embeds", negative), ("negative-pooled-prompt-embeds", negative_pooled)]:
            np.save(os.path.join(folder, name + ".npy"), tensor.numpy().astype(np.float32))
        with open(os.path.join(folder, "chunks.json"), "w") as f:
            json.dump({"prompt": chunks, "negative": negative_chunks}, f)
        print("case", case["name"], "chunks", length // 77, flush=True)

    for scene in SCENES:
        folder = os.path.join(args.out, scene["name"])
        os.makedirs(folder, exist_ok=True)
        embeds, pooled, negative, negative_pooled = encoded[scene["case"]]
        pipe.set_ip_adapter_scale(scene["ip"])
        settings = dict(prompt_embeds=embeds, pooled_prompt_embeds=pooled, negative_prompt_embeds=negative,
                        negative_pooled_prompt_embeds=negative_pooled, ip_adapter_image=reference,
                        height=scene["h"], width=scene["w"], num_inference_steps=scene["steps"], guidance_scale=scene["g"])
        if "cutoff" in scene:
            callback, tensor_inputs = guidance_cutoff(scene["cutoff"])
            settings.update(callback_on_step_end=callback, callback_on_step_end_tensor_inputs=tensor_inputs)
        images = {}
        for output_type in ["latent", "np"]:
            with torch.no_grad():
                images[output_type] = pipe(**settings, generator=torch.Generator("cpu").manual_seed(scene["seed"]),
                                           output_type=output_type).images
        np.save(os.path.join(folder, "final-latents.npy"), images["latent"].numpy().astype(np.float32))
        Image.fromarray((images["np"][0] * 255).round().astype("uint8")).save(os.path.join(folder, "image.png"))
        print("scene", scene["name"], "done", flush=True)
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)


if __name__ == "__main__":
    main()
