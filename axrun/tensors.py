"""The Axelera host-side tensor transformations, as the runtime documentation states them.

``quantize`` → ``pad`` before the device, ``depad`` → ``dequantize`` after it. These
are the reference formulas; the hot input path (:mod:`axrun.preprocess`) uses
lookup tables computed with :func:`quantize` and is tested bit-exact against it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

Padding = Sequence[tuple[int, int]]


def quantize(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """float → int8: ``clip(round(x / scale + zero_point), -128, 127)`` (half to even)."""
    x = np.asarray(x, dtype=np.float32)
    q = np.round(x / np.float32(scale) + np.float32(zero_point))
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
    return (q.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)

