"""torch.randn reference draws for the engine's TorchGenerator: raw little-endian float32 files in C order and a
manifest.json listing seed, shape and file of each, as ../shared/reference/torch-randn lays them out.

    /usr/bin/python3 tests/reference/make_torch_randn_cases.py tests/reference/torch-randn
"""
import json
import os
import sys

import numpy as np
import torch

SMALL_SHAPES = [[3], [15], [16], [17], [100], [1, 4, 8, 8]]
# 0, a usual seed, 2^32 + 7 (only the low 32 bits seed the Mersenne twister) and the largest int64.
SEEDS = [0, 42, 4294967303, 9223372036854775807]
# One latent-shaped draw long enough to hold several blocks of 16 and what a later small draw continues.
LARGE = [(0, [1, 4, 96, 64])]


def main(out):
    os.makedirs(out, exist_ok=True)
    cases = []
    for seed, shape in [(s, shape) for s in SEEDS for shape in SMALL_SHAPES] + LARGE:
        values = torch.randn(*shape, generator=torch.Generator("cpu").manual_seed(seed), dtype=torch.float32)
        name = f"seed{seed}_{'x'.join(map(str, shape))}.f32"
        values.numpy().astype("<f4").tofile(os.path.join(out, name))
        cases.append({"seed": seed, "shape": shape, "file": name})
    manifest = {"what": "torch.randn(*shape, generator=torch.Generator('cpu').manual_seed(seed), dtype=torch.float32), "
                        "raw little-endian float32 in C order", "torch": torch.__version__, "cases": cases}
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
