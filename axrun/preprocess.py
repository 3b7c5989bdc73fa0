"""Host preprocessing: resize/crop/letterbox, then normalize + quantize + pad in one pass.

The recipe (:class:`PreprocessRecipe`) says how a network wants its pixels; the
:class:`Preprocessor` turns a decoded BGR ``uint8`` image into the int8 NHWC padded
device layout. Normalization and quantization are fused into one 256-entry lookup
table per channel (the colour swap folded in), applied by OpenCV straight into the
interior of the padded buffer. The padding itself is written once, when the buffer
is allocated (:meth:`Preprocessor.new_buffer`), with the zero point.

The tables are computed with exactly the seed's float32 formulas
(:func:`axrun.tensors.quantize`), so the result is bit-identical to them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import cv2
import numpy as np

from axrun.errors import ParameterError
from axrun.tensors import TensorSpec, quantize

MODES = ("crop", "letterbox", "stretch")
COLORS = ("rgb", "bgr")
ALIGNS = ("center", "topleft")
# A crop resize past this many times the network input only costs memory (a short side
# of 100,000 pixels asked OpenCV for 45 GB and stopped the run at its first image).
MAX_RESIZE_FACTOR = 16


@dataclass(frozen=True)
class PreprocessRecipe:
    """How a network wants its input pixels.

    ``mode``: ``crop`` (resize the short side to ``resize``, centre-crop to the input
    size), ``letterbox`` (fit inside, pad with ``pad_value``; ``align`` centre or
    top-left) or ``stretch`` (resize to the input size, aspect ignored).
    ``mean``/``std`` are in 0–255 pixel units, in the network's channel order
    (``color``): ``normalized = (pixel - mean) / std``.
    """

    mode: str = "crop"
    resize: int | None = None
    color: str = "rgb"
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    pad_value: int = 114
    align: str = "center"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.color not in COLORS:
            raise ValueError(f"color must be rgb or bgr, not {self.color!r}")
        if self.align not in ALIGNS:
            raise ValueError(f"align must be center or topleft, not {self.align!r}")
        if self.resize is not None and self.resize < 1:
            raise ValueError(f"resize must be a positive size, not {self.resize}")
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ValueError("mean and std need three values (one per channel)")
        if any(s == 0 for s in self.std):
            raise ValueError("std values must be non-zero")
        if not 0 <= self.pad_value <= 255:
            raise ValueError("pad_value must be a pixel value 0-255")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreprocessRecipe:
        """Build from the ``preprocess`` object of ``axrun.json`` (unknown keys rejected)."""
        if not isinstance(data, dict):
            raise TypeError("expected an object")
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown keys {sorted(unknown)}")
        kw = dict(data)
        for key in ("mean", "std"):
            if key in kw:
                kw[key] = tuple(float(v) for v in kw[key])
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d


@dataclass(frozen=True)
class Geometry:
    """Maps network-input pixel coordinates back to the original image.

    ``model = original * scale + offset`` per axis.
    """

    width: int
    height: int
    scale_x: float
    scale_y: float
    offset_x: float
    offset_y: float

    def of_original(self, width: int, height: int, scale_x: float,
                    scale_y: float) -> Geometry:
        """This geometry of a decoded image that is the original (``width`` x
        ``height`` pixels) reduced by ``scale_x``, ``scale_y`` (decoded = original x
        scale: a JPEG at 1/2, 1/4 or 1/8, libjpeg's own mapping, exact also where it
        rounds the size up; a video frame shrunk before its colour conversion): the
        same network pixels, mapped to the original's."""
        if (scale_x, scale_y) == (1, 1) and (width, height) == (self.width, self.height):
            return self
        return Geometry(width, height, self.scale_x * scale_x, self.scale_y * scale_y,
                        self.offset_x, self.offset_y)

    def to_original(self, xyxy: np.ndarray) -> np.ndarray:
        """Boxes ``(N, 4)`` x1,y1,x2,y2 in network pixels → original pixels, clipped."""
        out = np.empty_like(xyxy, dtype=np.float32)
        out[:, 0::2] = (xyxy[:, 0::2] - self.offset_x) / self.scale_x
        out[:, 1::2] = (xyxy[:, 1::2] - self.offset_y) / self.scale_y
        np.clip(out[:, 0::2], 0, self.width, out=out[:, 0::2])
        np.clip(out[:, 1::2], 0, self.height, out=out[:, 1::2])
        return out


class InputWriter(Protocol):
    """What writes decoded images into a device input (:class:`Preprocessor`, or a
    task's preamble): its recipe and the network input size it fits images to."""

    recipe: PreprocessRecipe

    @property
    def size_hw(self) -> tuple[int, int]: ...

    def __call__(self, image: np.ndarray, dest: np.ndarray) -> Geometry: ...


def resize_factor(recipe: PreprocessRecipe, size_hw: tuple[int, int],
                  image_hw: tuple[int, int]) -> float:
    """The factor :func:`fit` resizes an image of ``image_hw`` (H, W pixels) by for a
    network input of ``size_hw``: stretch scales each axis, so the larger of the two;
    letterbox fits inside; crop scales the short side to ``recipe.resize``. A decoder
    may reduce the image by this much without losing a pixel the network sees."""
    (h, w), (th, tw) = image_hw, size_hw
    if recipe.mode == "stretch":
        return max(th / h, tw / w)
    if recipe.mode == "letterbox":
        return min(th / h, tw / w)
    return max((recipe.resize or max(th, tw)) / min(h, w), th / h, tw / w)


def fit(image: np.ndarray, recipe: PreprocessRecipe, size_hw: tuple[int, int]) -> tuple[
    np.ndarray, Geometry, tuple[int, int]
]:
    """Resize/crop/letterbox a BGR image for a network input of ``size_hw``.

    Returns the resized pixels, the geometry back to the original image, and the
    ``(y, x)`` place of those pixels inside the network input (non-zero only for
    letterbox; the rest of the input is ``pad_value``).
    """
    h, w = image.shape[:2]
    th, tw = size_hw
    if recipe.mode == "stretch":
        out = cv2.resize(image, (tw, th), interpolation=cv2.INTER_LINEAR)
        return out, Geometry(w, h, tw / w, th / h, 0.0, 0.0), (0, 0)
    if recipe.mode == "letterbox":
        s = min(th / h, tw / w)
        nw, nh = min(tw, max(1, round(w * s))), min(th, max(1, round(h * s)))
        out = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
        if recipe.align == "center":
            y0, x0 = (th - nh) // 2, (tw - nw) // 2
        else:
            y0, x0 = 0, 0
        return out, Geometry(w, h, nw / w, nh / h, float(x0), float(y0)), (y0, x0)
    short = recipe.resize or max(th, tw)
    s = short / min(h, w)
    nw, nh = max(tw, round(w * s)), max(th, round(h * s))
    resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    y0, x0 = (nh - th) // 2, (nw - tw) // 2
    out = resized[y0 : y0 + th, x0 : x0 + tw]
    return out, Geometry(w, h, nw / w, nh / h, -float(x0), -float(y0)), (0, 0)


def network_input(image: np.ndarray, recipe: PreprocessRecipe, size_hw: tuple[int, int] |
                  Sequence[int]) -> tuple[np.ndarray, Geometry]:
    """One BGR ``uint8`` image as a float network sees it: ``(1, 3, H, W)`` float32,
    ``(pixel - mean) / std`` in the recipe's channel order, and the geometry back to
    the image. The float reference for the int8 path (:class:`Preprocessor`), which
    computes the same values quantized; used for calibration and for comparing INT8
    with float (:mod:`axrun.fidelity`)."""
    h, w = size_hw
    pixels, geometry, (py, px) = fit(image, recipe, (h, w))
    canvas = np.full((h, w, 3), recipe.pad_value, np.uint8)
    canvas[py:py + pixels.shape[0], px:px + pixels.shape[1]] = pixels
    if recipe.color == "rgb":
        canvas = canvas[..., ::-1]
    x = (canvas.astype(np.float32) - np.array(recipe.mean, np.float32)) / np.array(
        recipe.std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None]), geometry


def quantize_table(recipe: PreprocessRecipe, scale: float, zero_point: int) -> np.ndarray:
    """The ``(3, 256)`` int8 table: network channel *c*, source pixel value *v*.

    Computed with the seed's float32 formulas so that table lookups are bit-exact.
    """
    values = np.arange(256, dtype=np.float32)
    rows = []
    for c in range(3):
        normalized = (values - np.float32(recipe.mean[c])) / np.float32(recipe.std[c])
        rows.append(quantize(normalized, scale, zero_point))
    return np.stack(rows)


class Preprocessor:
    """Writes decoded BGR images into int8 padded input buffers for one network input.

    Thread-safe: holds only read-only tables.
    """

    def __init__(self, recipe: PreprocessRecipe, spec: TensorSpec) -> None:
        if spec.unpadded_shape[3] != 3:
            raise ValueError(f"input {spec.name!r} has {spec.unpadded_shape[3]} channels; 3 needed")
        self.recipe = recipe
        self.spec = spec
        (_, _), (self._y0, _), (self._x0, _), (self._c0, _) = spec.padding
        _, self.height, self.width, _ = spec.unpadded_shape
        most = MAX_RESIZE_FACTOR * max(self.height, self.width)
        if recipe.resize is not None and recipe.resize > most:
            raise ParameterError("resize", f"must be at most {most} for this "
                                 f"{self.width}x{self.height} network input "
                                 f"({MAX_RESIZE_FACTOR} times its size), not {recipe.resize}")
        self._table = quantize_table(recipe, spec.scale, spec.zero_point)
        # Network channel c comes from source (BGR) channel _src[c].
        self._src = (2, 1, 0) if recipe.color == "rgb" else (0, 1, 2)
        padded_c = spec.shape[3]
        self._fast = self._c0 == 0 and padded_c == 4
        self._to4 = cv2.COLOR_BGR2RGBA if recipe.color == "rgb" else cv2.COLOR_BGR2BGRA
        self._lut4 = np.full((1, 256, 4), spec.zero_point, np.int8)
        self._lut4[0, :, :3] = self._table.T
        self._fill = np.full(padded_c, spec.zero_point, np.int8)
        self._fill[self._c0 : self._c0 + 3] = self._table[:, recipe.pad_value]

    @property
    def size_hw(self) -> tuple[int, int]:
        return self.height, self.width

    def new_buffer(self) -> np.ndarray:
        """A padded input buffer (whole batch) with every element set to the zero point."""
        return np.full(self.spec.shape, self.spec.zero_point, np.int8)

    def __call__(self, image: np.ndarray, dest: np.ndarray) -> Geometry:
        """Preprocess one BGR ``uint8`` image into one batch slot ``dest`` (padded H,W,C).

        Only the interior of ``dest`` is written; its padding keeps the zero point.
        """
        pixels, geometry, (py, px) = fit(image, self.recipe, self.size_hw)
        interior = dest[self._y0 : self._y0 + self.height, self._x0 : self._x0 + self.width]
        ph, pw = pixels.shape[:2]
        if (ph, pw) != (self.height, self.width):
            interior[:] = self._fill  # letterbox border: the pad value, pre-quantized
            interior = interior[py : py + ph, px : px + pw]
        self.write_pixels(pixels, interior)
        return geometry

    def write_pixels(self, pixels: np.ndarray, interior: np.ndarray) -> None:
        """Quantize BGR ``uint8`` pixels into ``interior`` (``(h, w, padded C)`` int8 view)."""
        if self._fast:
            # Colour swap + 4th channel in one OpenCV pass; the 4th channel's table
            # maps every value to the zero point, so padding stays intact.
            four = cv2.cvtColor(pixels, self._to4)
            written = cv2.LUT(four, self._lut4, dst=interior)
            if not np.shares_memory(written, interior):
                interior[:] = written
            return
        for c, src in enumerate(self._src):
            interior[..., self._c0 + c] = self._table[c][pixels[..., src]]
