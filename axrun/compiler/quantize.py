"""Static INT8 quantization of the device part (QDQ, per-channel weights), calibrated
on real images through the model's own preprocessing recipe.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from axrun.errors import CompileError, InputError
from axrun.images import decode_image
from axrun.preprocess import PreprocessRecipe, network_input
from axrun.sources import IMAGE_SUFFIXES


def calibration_images(folder: Path, limit: int, seed: int = 0, holdout: int = 0) -> \
        tuple[list[Path], list[Path], str]:
    """At most ``limit`` image files under ``folder`` (those with a suffix
    :mod:`axrun.sources` reads as an image) for calibration, and up to ``holdout``
    others set aside to check the result on, both spread over the whole folder: its
    sub-folders take turns (each in a seeded shuffle of its own), so that a folder of
    ``a_night/`` and ``b_day/`` gives both, not the first ``limit`` names in sorted
    order. The held-out images, at most a fifth of the folder, come from each
    sub-folder in proportion to its size, never its last image. The same
    sample for the same folder and ``seed``. Also a line saying how many of how many
    were taken for calibration, and from where.

    Raises:
        CompileError: not a folder, or no images in it.
    """
    if not folder.is_dir():
        raise CompileError(f"--calibration {folder}: not a folder")
    try:
        found = sorted(p for p in folder.rglob("*")
                       if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    except OSError as exc:
        raise CompileError(f"--calibration {folder}: cannot list ({exc.strerror})") from exc
    if not found:
        raise CompileError(f"--calibration {folder}: no images (.jpg, .png, ...) found")
    groups: dict[str, list[Path]] = {}
    for path in found:
        groups.setdefault(path.parent.relative_to(folder).as_posix(), []).append(path)
    rng = np.random.default_rng(seed)
    queues = {name: [paths[i] for i in rng.permutation(len(paths))]
              for name, paths in sorted(groups.items())}
    held = _held_out_shares({n: len(q) for n, q in queues.items()},
                            min(holdout, len(found) // 5))
    kept = {name: queue[held[name]:] for name, queue in queues.items()}
    longest = max(len(q) for q in kept.values())
    order = [queue[i] for i in range(longest) for queue in kept.values()
             if i < len(queue)]  # the sub-folders taking turns
    chosen = order[:limit]
    taken = dict.fromkeys(queues, 0)
    for path in chosen:
        taken[path.parent.relative_to(folder).as_posix()] += 1
    where = ", ".join(f"{'top level' if n == '.' else n + '/'} {taken[n]} of {len(q)}"
                      for n, q in queues.items())
    total_held = sum(held.values())
    said = f"calibration: {len(chosen)} of {len(found)} images ({where})" + (
        f"; {total_held} others held out to check the result" if total_held else "")
    held_out = [p for name, queue in queues.items() for p in queue[:held[name]]]
    return sorted(chosen), sorted(held_out), said


def _held_out_shares(sizes: dict[str, int], total: int) -> dict[str, int]:
    """How many images of each sub-folder to hold out, ``total`` in all: in proportion
    to their sizes (largest remainders first), and never a sub-folder's last image, so
    that calibration sees every sub-folder."""
    count = sum(sizes.values())
    exact = {n: total * size / count for n, size in sizes.items()}
    shares = {n: min(int(e), max(sizes[n] - 1, 0)) for n, e in exact.items()}
    # what is still owed goes one image at a time, largest remainder first, to the
    # sub-folders that can give one more (a capped one's share passes on)
    order = sorted(exact, key=lambda n: exact[n] - shares[n], reverse=True)
    while sum(shares.values()) < total:
        open_ = [n for n in order if shares[n] < sizes[n] - 1]
        if not open_:
            break
        for name in open_[:total - sum(shares.values())]:
            shares[name] += 1
    return shares



def check_calibration(samples: Sequence[np.ndarray], recipe: PreprocessRecipe) -> list[str]:
    """Warnings about calibration inputs (float network inputs, NCHW) that do not look
    like the images the model will see: pixel values spanning less than half of 0-255
    between their 1st and 99th percentiles (INT8 ranges fitted to dark or flat images
    clip everything else), or an average far from the mean the recipe subtracts."""
    mean = np.asarray(recipe.mean, np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(recipe.std, np.float32).reshape(1, 3, 1, 1)
    pixels = np.concatenate([s * std + mean for s in samples]).ravel()
    low, high = (float(v) for v in np.percentile(pixels, [1, 99]))
    warnings = []
    if high - low < 128:
        warnings.append(f"calibration images span pixel values {low:.0f}-{high:.0f} only "
                        "(1st-99th percentile): INT8 ranges fitted to them will clip "
                        "brighter or darker images; calibrate on images like the ones the "
                        "model will see")
    if float(np.mean(recipe.mean)) > 1 and abs(float(pixels.mean()) -
                                                float(np.mean(recipe.mean))) > 64:
        warnings.append(f"calibration images average pixel value {pixels.mean():.0f}, far "
                        f"from the recipe's mean {float(np.mean(recipe.mean)):.0f}")
    return warnings


def load_calibration(
    paths: Sequence[Path],
    recipe: PreprocessRecipe,
    shape_nchw: Sequence[int],
    on_progress: Callable[[int, int], None] | None = None,
) -> list[np.ndarray]:
    """Decode and preprocess calibration images into batches of the model's batch size.

    Unreadable files are skipped with a warning; none readable is an error.
    """
    log = logging.getLogger("axrun")
    samples = []
    for i, path in enumerate(paths):
        try:
            samples.append(network_input(decode_image(path), recipe, shape_nchw[2:])[0])
        except InputError as exc:
            log.warning("calibration: skipping %s", exc)
        if on_progress:
            on_progress(i + 1, len(paths))
    if not samples:
        raise CompileError("--calibration: none of the images could be read")
    batch = shape_nchw[0]
    out = []
    for start in range(0, len(samples), batch):
        chunk = samples[start:start + batch]
        chunk += [chunk[-1]] * (batch - len(chunk))
        out.append(np.concatenate(chunk))
    return out


@dataclass(frozen=True)
class QuantParams:
    scale: float
    zero_point: int


def constant_value(model: onnx.ModelProto, name: str) -> np.ndarray | None:
    """The value of initializer or ``Constant`` ``name`` in ``model``; None if neither."""
    for init in model.graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output[0] == name:
            return numpy_helper.to_array(node.attribute[0].t)
    return None


def _param_value(model: onnx.ModelProto, name: str) -> np.ndarray:
    value = constant_value(model, name)
    if value is None:
        raise CompileError(f"quantized model: no constant {name!r}")
    return value


def params_from_range(lo: float, hi: float) -> QuantParams:
    """Asymmetric int8 parameters covering ``[lo, hi]`` (and 0)."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = (hi - lo) / 255.0 or 1.0
    zp = int(np.clip(np.round(-128 - lo / scale), -128, 127))
    return QuantParams(float(np.float32(scale)), zp)


def boundary_params(
    qdq: onnx.ModelProto, input_name: str, output_names: Sequence[str],
    batches: Sequence[np.ndarray],
) -> tuple[QuantParams, list[QuantParams]]:
    """Scale/zero point the quantizer chose for the graph input and each device output.

    When the quantizer left the input float (e.g. it feeds only Slice/Concat), the
    input's parameters come from the calibration data's range.
    """

    def params(node: onnx.NodeProto) -> QuantParams:
        scale = _param_value(qdq, node.input[1])
        zp = _param_value(qdq, node.input[2]) if len(node.input) > 2 else np.array(0, np.uint8)
        if scale.size != 1 or zp.dtype not in (np.int8, np.uint8):
            raise CompileError(f"{node.name}: per-tensor 8-bit quantization expected at the "
                               "device boundary (is this tensor in --int16?)")
        offset = 128 if zp.dtype == np.uint8 else 0  # uint8 grid → the same int8 grid
        return QuantParams(float(scale.reshape(())), int(zp.reshape(())) - offset)

    q_in = [n for n in qdq.graph.node if n.op_type == "QuantizeLinear" and n.input[0] == input_name]
    if q_in:
        p_in = params(q_in[0])
    else:
        p_in = params_from_range(min(float(b.min()) for b in batches),
                                 max(float(b.max()) for b in batches))
    outs = []
    for name in output_names:
        dq = [n for n in qdq.graph.node if n.op_type == "DequantizeLinear" and n.output[0] == name]
        if not dq:
            raise CompileError(f"the quantizer did not quantize device output {name!r}; "
                               "cut at a tensor produced by a quantizable operator")
        outs.append(params(dq[0]))
    return p_in, outs


class _Reader:
    """ONNX Runtime calibration data reader over preprocessed batches."""

    def __init__(self, name: str, batches: list[np.ndarray]) -> None:
        self._it: Iterator[np.ndarray] = iter(batches)
        self._name = name

    def get_next(self) -> dict[str, np.ndarray] | None:
        x = next(self._it, None)
        return None if x is None else {self._name: x}

    def rewind(self) -> None:  # pragma: no cover - not used by MinMax
        raise NotImplementedError


# Element-wise activations (SiLU/Swish = x * sigmoid(x)) run on the device as one fused
# int8 → int8 lookup: they get no quantization of their own, only their inputs and
# outputs are quantized (by the operators around them).
FUSED_ELEMENTWISE = frozenset({"Sigmoid", "Mul"})


def quantize_device(
    device: onnx.ModelProto, input_name: str, batches: list[np.ndarray],
    int16: Sequence[str] = (),
) -> onnx.ModelProto:
    """Static QDQ 8-bit: per-channel symmetric int8 weights, asymmetric 8-bit activations
    (MinMax calibration). Tensors named in ``int16`` keep 16-bit activations.

    Activations are stored as uint8 inside the graph: the same 256-value grid as int8
    with the zero point shifted by 128 (so identical numbers), but ONNX Runtime's x86
    integer kernels (U8S8) run it about twice as fast. The device interface stays int8
    (:func:`boundary_params` converts).
    """
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    produced = {o for n in device.graph.node for o in n.output}
    unknown = [t for t in int16 if t not in produced]
    if unknown:
        raise CompileError(f"--int16: no tensor named {', '.join(map(repr, unknown))} in the "
                           "device part")
    op_types = sorted((set(QLinearOpsRegistry) | set(QDQRegistry)) - FUSED_ELEMENTWISE)
    extra: dict[str, object] = {"ActivationSymmetric": False, "WeightSymmetric": True}
    if int16:
        extra["TensorQuantOverrides"] = {t: [{"quant_type": QuantType.QInt16}] for t in int16}

    with tempfile.TemporaryDirectory(prefix="axrun-compile-") as tmp:
        src, dst = Path(tmp) / "device.onnx", Path(tmp) / "device.int8.onnx"
        onnx.save_model(device, src)
        cwd = os.getcwd()
        root = logging.getLogger()
        level = root.level
        try:
            root.setLevel(logging.ERROR)  # ORT's quantizer logs advice to the root logger
            os.chdir(tmp)  # the calibrator writes an augmented model to the cwd
            quantize_static(
                str(src), str(dst), _Reader(input_name, batches),
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=op_types,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                calibrate_method=CalibrationMethod.MinMax,
                extra_options=extra,
            )
        except Exception as exc:
            raise CompileError(f"quantization failed: {exc}") from exc
        finally:
            os.chdir(cwd)
            root.setLevel(level)
        return onnx.load(str(dst))
