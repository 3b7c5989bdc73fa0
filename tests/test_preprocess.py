"""The fused lookup-table path is bit-exact with the seed's formulas."""

from __future__ import annotations

import numpy as np
import pytest
from reference import reference_input

from axrun.modelfolder import TensorSpec
from axrun.preprocess import Geometry, Preprocessor, PreprocessRecipe, quantize_table
from axrun.tensors import quantize

RECIPES = {
    "imagenet-rgb-crop": PreprocessRecipe(mode="crop", resize=36, color="rgb",
                                          mean=(127, 127, 127), std=(128, 128, 128)),
    "torch-mean-std": PreprocessRecipe(mode="crop", color="rgb", mean=(123.675, 116.28, 103.53),
                                       std=(58.395, 57.12, 57.375)),
    "yolo-bgr-letterbox": PreprocessRecipe(mode="letterbox", color="bgr"),
    "rgb-letterbox-topleft": PreprocessRecipe(mode="letterbox", color="rgb", align="topleft",
                                              std=(255, 255, 255)),
    "stretch": PreprocessRecipe(mode="stretch", color="bgr", mean=(10, 20, 30)),
}
SPECS = {
    "c4": TensorSpec("in", (1, 32, 32, 4), ((0, 0), (0, 0), (0, 0), (0, 1)), 0.0171, -3),
    "c4-spatial": TensorSpec("in", (1, 34, 48, 4), ((0, 0), (1, 1), (1, 15), (0, 1)), 0.0078, 0),
    "c3": TensorSpec("in", (1, 32, 32, 3), ((0, 0), (0, 0), (0, 0), (0, 0)), 1.0, -128),
    "c8-offset": TensorSpec("in", (1, 32, 32, 8), ((0, 0), (0, 0), (0, 0), (2, 3)), 0.05, 7),
}


@pytest.mark.parametrize("recipe", RECIPES.values(), ids=RECIPES.keys())
@pytest.mark.parametrize("spec", SPECS.values(), ids=SPECS.keys())
def test_fused_path_is_bit_exact_on_random_images(recipe, spec) -> None:
    rng = np.random.default_rng(0)
    pre = Preprocessor(recipe, spec)
    for shape in [(32, 32, 3), (45, 61, 3), (70, 20, 3), (1, 1, 3)]:
        image = rng.integers(0, 256, shape, dtype=np.uint8)
        buf = pre.new_buffer()
        pre(image, buf[0])
        np.testing.assert_array_equal(buf[0], reference_input(image, recipe, spec))


@pytest.mark.parametrize("recipe", RECIPES.values(), ids=RECIPES.keys())
def test_every_pixel_value_per_channel(recipe) -> None:
    """All 256 values in every channel, through the real path (stretch keeps pixels)."""
    spec = SPECS["c4"]
    values = np.arange(256, dtype=np.uint8).reshape(16, 16)
    pre = Preprocessor(PreprocessRecipe(mode="stretch", color=recipe.color, mean=recipe.mean,
                                        std=recipe.std), TensorSpec(
        "in", (1, 16, 16, 4), spec.padding, spec.scale, spec.zero_point))
    for channel in range(3):
        image = np.zeros((16, 16, 3), np.uint8)
        image[..., channel] = values
        buf = pre.new_buffer()
        pre(image, buf[0])
        net_channel = 2 - channel if recipe.color == "rgb" else channel
        x = values.astype(np.float32)
        expected = quantize((x - np.float32(recipe.mean[net_channel]))
                            / np.float32(recipe.std[net_channel]), spec.scale, spec.zero_point)
        np.testing.assert_array_equal(buf[0, :, :, net_channel], expected)
        assert (buf[0, :, :, 3] == spec.zero_point).all()


def test_table_matches_formula_for_all_values() -> None:
    recipe = RECIPES["torch-mean-std"]
    table = quantize_table(recipe, 0.0213, 5)
    for c in range(3):
        x = np.arange(256, dtype=np.float32)
        expected = quantize((x - np.float32(recipe.mean[c])) / np.float32(recipe.std[c]),
                            0.0213, 5)
        np.testing.assert_array_equal(table[c], expected)


def test_padding_is_never_written() -> None:
    spec = SPECS["c4-spatial"]
    pre = Preprocessor(RECIPES["yolo-bgr-letterbox"], spec)
    buf = pre.new_buffer()
    buf[0, 0, :, :] = 99  # a marker in the top padding row
    pre(np.full((10, 30, 3), 200, np.uint8), buf[0])
    assert (buf[0, 0] == 99).all()


def test_letterbox_geometry_round_trip_on_non_square_images() -> None:
    spec = TensorSpec("in", (1, 416, 416, 4), ((0, 0), (0, 0), (0, 0), (0, 1)), 1.0, 0)
    for align in ("center", "topleft"):
        pre = Preprocessor(PreprocessRecipe(mode="letterbox", color="bgr", align=align), spec)
        for h, w in [(480, 640), (1080, 1920), (300, 100)]:
            geometry = pre(np.zeros((h, w, 3), np.uint8), pre.new_buffer()[0])
            box = np.array([[0.1 * w, 0.2 * h, 0.6 * w, 0.9 * h]], np.float32)
            model_box = np.empty_like(box)
            model_box[:, 0::2] = box[:, 0::2] * geometry.scale_x + geometry.offset_x
            model_box[:, 1::2] = box[:, 1::2] * geometry.scale_y + geometry.offset_y
            np.testing.assert_allclose(geometry.to_original(model_box), box, atol=1e-3)


def test_boxes_are_clipped_to_the_image() -> None:
    g = Geometry(width=100, height=50, scale_x=1, scale_y=1, offset_x=0, offset_y=0)
    out = g.to_original(np.array([[-5, -5, 120, 70]], np.float32))
    np.testing.assert_array_equal(out, [[0, 0, 100, 50]])
