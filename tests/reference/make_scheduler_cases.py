"""Scheduler reference numbers from Hugging Face diffusers v0.30.0 (torch CPU, float32) for Mnemosyne's tests.

For each scheduler built from_config of a scheduler_config.json and each step count: timesteps, sigmas (where the
class has them), init_noise_sigma, and a full denoising loop on fixed inputs with a fake model, step by step.

Run (see README.md beside this file for the set-up):
  PYTHONPATH=$HARNESS/stubs:$VENDOR /usr/bin/python3 make_scheduler_cases.py SCHEDULER_CONFIG_DIR OUTDIR"""
import json, os, sys
import numpy as np
import torch

from diffusers import DDIMScheduler, DPMSolverMultistepScheduler, EulerAncestralDiscreteScheduler, EulerDiscreteScheduler, LCMScheduler

STEP_COUNTS = [4, 6, 20, 50]
LATENT_SHAPE = (1, 4, 3, 5)
NOISE_SEED = 2024        # np.random.RandomState: the initial noise (before init_noise_sigma)
MODEL_TERM_SEED = 2025   # np.random.RandomState: the fixed term of the fake model output
ANCESTRAL_SEED = 7       # torch.Generator('cpu').manual_seed: the noise the ancestral steps draw
MODEL_GAIN = 0.1


def without(config, *keys):
    return {k: v for k, v in config.items() if k not in keys}


SCHEDULERS = {
    "euler": lambda c: EulerDiscreteScheduler.from_config(c),
    "euler-trailing": lambda c: EulerDiscreteScheduler.from_config(c, timestep_spacing="trailing"),
    "euler-ancestral": lambda c: EulerAncestralDiscreteScheduler.from_config(c),
    "dpmpp-2m": lambda c: DPMSolverMultistepScheduler.from_config(c),
    "dpmpp-2m-karras": lambda c: DPMSolverMultistepScheduler.from_config(c, use_karras_sigmas=True),
    "ddim": lambda c: DDIMScheduler.from_config(c),
    # A config without the DDIM-only keys: diffusers falls back to clip_sample=True and set_alpha_to_one=True.
    "ddim-defaults": lambda c: DDIMScheduler.from_config(without(c, "clip_sample", "set_alpha_to_one")),
    # As LCM-LoRA's model card sets it up: from SDXL's config, so original_inference_steps 50 and timestep_scaling 10
    # are the class defaults.
    "lcm": lambda c: LCMScheduler.from_config(c),
}
# Schedulers whose steps draw fresh noise from the generator (Euler ancestral every step, LCM all but the last).
NOISY = (EulerAncestralDiscreteScheduler, LCMScheduler)


def floats(tensor):
    """The float32 values as the shortest decimals that read back to them (as float32, or as double then cast)."""
    values = np.asarray(tensor, dtype=np.float32).reshape(-1)
    short = [float(repr(v)) for v in values]
    assert np.array_equal(np.asarray(short).astype(np.float32), values)
    return short


def run_case(make, config, steps, noise, model_term):
    scheduler = make(config)
    scheduler.set_timesteps(steps)
    config_used = dict(scheduler.config)
    # diffusers fills this list from a set: sort it so that runs write the same bytes.
    config_used["_use_default_values"] = sorted(config_used.get("_use_default_values", []))
    case = {"class": type(scheduler).__name__, "config": config_used, "steps": steps,
            "order": scheduler.order, "timesteps": floats(scheduler.timesteps),
            "timesteps_dtype": str(scheduler.timesteps.dtype).replace("torch.", ""),
            "init_noise_sigma": floats([float(scheduler.init_noise_sigma)])[0]}
    if hasattr(scheduler, "sigmas"):
        case["sigmas"] = floats(scheduler.sigmas)
    if hasattr(scheduler, "final_alpha_cumprod"):
        case["final_alpha_cumprod"] = floats([float(scheduler.final_alpha_cumprod)])[0]
    generator = torch.Generator("cpu").manual_seed(ANCESTRAL_SEED)
    latents = noise * scheduler.init_noise_sigma
    trajectory, originals, first_model_input = [floats(latents)], [], None
    for t in scheduler.timesteps:
        model_input = scheduler.scale_model_input(latents, t)
        first_model_input = floats(model_input) if first_model_input is None else first_model_input
        model_output = MODEL_GAIN * model_input + model_term
        result = scheduler.step(model_output, t, latents, generator=generator)
        latents = result.prev_sample
        trajectory.append(floats(latents))
        # DPM-Solver returns no pred_original_sample; the data prediction its step used is its last model output.
        # LCM's estimate is its consistency output, denoised.
        original = getattr(result, "denoised", None)
        original = getattr(result, "pred_original_sample", None) if original is None else original
        originals.append(floats(original if original is not None else scheduler.model_outputs[-1]))
    case.update(first_scaled_model_input=first_model_input, latents=trajectory, final_latents=trajectory[-1],
                pred_original=originals)
    if isinstance(scheduler, NOISY):
        # Each such step draws one randn of the latent shape from the generator; replay the draws so that a
        # test can check the step arithmetic apart from the random number generator.
        draws = steps if isinstance(scheduler, EulerAncestralDiscreteScheduler) else steps - 1
        replay = torch.Generator("cpu").manual_seed(ANCESTRAL_SEED)
        case["ancestral_noise"] = [floats(torch.randn(LATENT_SHAPE, generator=replay)) for _ in range(draws)]
        if isinstance(scheduler, LCMScheduler):
            case["lcm_note"] = ("pred_original[i] is step i's denoised (the consistency estimate); the generator above gives the noise "
                                "every step but the last adds, ancestral_noise[i] being step i's.")
        assert torch.equal(replay.get_state(), generator.get_state()), "the steps drew a different amount of noise"
    return case


def main():
    config_dir, out = sys.argv[1], sys.argv[2]
    with open(os.path.join(config_dir, "scheduler_config.json")) as f:
        config = json.load(f)
    os.makedirs(out, exist_ok=True)
    noise = torch.from_numpy(np.random.RandomState(NOISE_SEED).standard_normal(LATENT_SHAPE).astype(np.float32))
    model_term = torch.from_numpy(np.random.RandomState(MODEL_TERM_SEED).standard_normal(LATENT_SHAPE).astype(np.float32))
    common = {
        "diffusers": "0.30.0", "torch": torch.__version__, "source_config": config,
        "latent_shape": list(LATENT_SHAPE),
        "note": ("Tensors are flat float32 lists in C order of latent_shape. Loop: latents = noise * init_noise_sigma; "
                 "for each t in timesteps: model_input = scale_model_input(latents, t); model_output = "
                 f"{MODEL_GAIN} * model_input + model_term; latents = step(model_output, t, latents, generator). "
                 "latents[0] is the initial latents, latents[i+1] the result of step i; first_scaled_model_input is "
                 "scale_model_input(latents[0], timesteps[0]); pred_original[i] is step i's estimate of the denoised sample "
                 "(pred_original_sample; for DPM-Solver its data prediction, model_outputs[-1] after the step). The ancestral generator is torch.Generator('cpu')."
                 f"manual_seed({ANCESTRAL_SEED}); ancestral_noise[i] is the randn step i drew."),
        "noise": floats(noise), "model_term": floats(model_term), "model_gain": MODEL_GAIN,
    }
    index = []
    for name, make in SCHEDULERS.items():
        for steps in STEP_COUNTS:
            case = dict(common, name=name, **run_case(make, config, steps, noise, model_term))
            file = f"{name}-n{steps}.json"
            with open(os.path.join(out, file), "w") as f:
                json.dump(case, f, indent=None, separators=(",", ":"))
            index.append({"file": file, "name": name, "class": case["class"], "steps": steps})
            print(file, "final[:3]", [round(x, 5) for x in case["final_latents"][:3]])
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump({"source_config": os.path.join(config_dir, "scheduler_config.json"), "cases": index}, f, indent=1)


if __name__ == "__main__":
    main()
