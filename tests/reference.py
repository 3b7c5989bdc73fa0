"""The seed's reference formulas, applied the slow, obvious way (for comparisons)."""

from __future__ import annotations

import numpy as np

from axrun.preprocess import PreprocessRecipe, fit
from axrun.tensors import pad, quantize


def reference_input(image: np.ndarray, recipe: PreprocessRecipe, spec) -> np.ndarray:
    """One padded int8 batch slot: fit → colour → normalize → quantize → pad."""
    _, h, w, _ = spec.unpadded_shape
    pixels, _, (py, px) = fit(image, recipe, (h, w))
    canvas = np.full((h, w, 3), recipe.pad_value, np.uint8)
    canvas[py:py + pixels.shape[0], px:px + pixels.shape[1]] = pixels
    if recipe.color == "rgb":
        canvas = canvas[..., ::-1]
    x = canvas.astype(np.float32)
    normalized = (x - np.array(recipe.mean, np.float32)) / np.array(recipe.std, np.float32)
    q = quantize(normalized, spec.scale, spec.zero_point)
    return pad(q, spec.padding[1:], spec.zero_point)
