"""Preprocessing (decode excluded): axrun's fused lookup-table path vs the seed's formulas.

Both resize with the same OpenCV call; the reference then converts colour, normalizes
in float32, quantizes with ``np.round``/``clip`` and pads with ``np.pad``, as the
runtime documentation writes it. Outputs must be identical, byte for byte.
"""

from __future__ import annotations

import numpy as np
from common import SAMPLES, best_of
from reference import reference_input

from axrun.images import decode_image
from axrun.modelfolder import TensorSpec
from axrun.preprocess import Preprocessor, PreprocessRecipe

CASES = {
    "classify 224 (crop, RGB, mean/std)": (
        PreprocessRecipe(mode="crop", resize=256, color="rgb", mean=(127.0,) * 3,
                         std=(128.0,) * 3),
        TensorSpec("input", (1, 224, 224, 4), ((0, 0), (0, 0), (0, 0), (0, 1)), 0.0078125, -1),
    ),
    "detect 640 (letterbox, BGR, /255)": (
        PreprocessRecipe(mode="letterbox", color="bgr", std=(255.0,) * 3),
        TensorSpec("images", (1, 642, 656, 4), ((0, 0), (1, 1), (1, 15), (0, 1)),
                   1 / 255, -128),
    ),
}


def measure(name: str, recipe: PreprocessRecipe, spec: TensorSpec, images: list,
            repeats: int, rounds: int) -> dict:
    pre = Preprocessor(recipe, spec)
    buf = pre.new_buffer()
    for image in images:  # identical int8 output, byte for byte
        pre(image, buf[0])
        if not np.array_equal(buf[0], reference_input(image, recipe, spec)):
            raise SystemExit(f"{name}: fused output differs from the reference")

    def fused() -> None:
        for _ in range(rounds):
            for image in images:
                pre(image, buf[0])

    def reference() -> None:
        for _ in range(rounds):
            for image in images:
                buf[0] = reference_input(image, recipe, spec)

    t_fused, t_ref = best_of(repeats, fused), best_of(repeats, reference)
    n = rounds * len(images)
    return {"benchmark": f"preprocess {name}", "axrun": f"{n / t_fused:,.0f} img/s",
            "baseline": f"{n / t_ref:,.0f} img/s (seed formulas)",
            "ratio": t_ref / t_fused, "note": "identical int8 output"}


def run(repeats: int = 5, rounds: int = 20) -> list[dict]:
    images = [decode_image(p) for p in sorted(SAMPLES.glob("*.jpg"))]
    return [measure(name, recipe, spec, images, repeats, rounds)
            for name, (recipe, spec) in CASES.items()]


if __name__ == "__main__":
    for row in run():
        print(row)
