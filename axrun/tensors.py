"""The Axelera host-side tensor transformations, as the runtime documentation states them.

``quantize`` → ``pad`` before the device, ``depad`` → ``dequantize`` after it. These
are the reference formulas; the hot input path (:mod:`axrun.preprocess`) uses
lookup tables computed with :func:`quantize` and is tested bit-exact against it.
:class:`TensorSpec` describes one device tensor (also importable from
:mod:`axrun.modelfolder`, which reads it from ``manifest.json``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Padding = Sequence[tuple[int, int]]


@dataclass(frozen=True)
class TensorSpec:
    """One device tensor as the manifest describes it (NHWC, int8).

    ``padding`` is ``np.pad`` style, one ``(start, end)`` pair per dimension,
    batch first; ``unpadded_shape`` is ``shape`` minus that padding.
    """

    name: str
    shape: tuple[int, ...]
    padding: tuple[tuple[int, int], ...]
    scale: float
    zero_point: int

    @property
    def unpadded_shape(self) -> tuple[int, ...]:
        return tuple(d - lo - hi for d, (lo, hi) in zip(self.shape, self.padding, strict=True))

    @property
    def size(self) -> int:
        """Bytes of the padded int8 tensor."""
        return math.prod(self.shape)


def quantize(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """float → int8: ``clip(round(x / scale + zero_point), -128, 127)`` (half to even)."""
    x = np.asarray(x, dtype=np.float32)
    q: np.ndarray = np.round(x / np.float32(scale) + np.float32(zero_point))
    return q.clip(-128, 127).astype(np.int8)


def pad(q: np.ndarray, padding: Padding, zero_point: int) -> np.ndarray:
    """Pad an int8 tensor with the zero point (``padding`` as for ``np.pad``)."""
    return np.pad(q, list(padding), mode="constant", constant_values=zero_point)


def interior(shape: tuple[int, ...], padding: Padding) -> tuple[slice, ...]:
    """The index of the unpadded part of a padded tensor of ``shape``."""
    return tuple(slice(lo, shape[i] - hi) for i, (lo, hi) in enumerate(padding))


def depad(q: np.ndarray, padding: Padding) -> np.ndarray:
    """Remove padding; returns a view (no copy)."""
    return q[interior(q.shape, padding)]


def dequantize(q: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """int8 → float32: ``(q - zero_point) * scale``."""
    out: np.ndarray = (q.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)
    return out

