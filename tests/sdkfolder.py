"""Model folders in the Voyager SDK's layout (DESIGN.md §3a), whose device gives planted
outputs: ``build/<net>/<net>/1/`` with ``model.json``, ``manifest.json`` as the SDK
writes it (version 1.0 without original shapes or 1.1 with them, the original model's
dtypes, 8-value padding, no tensor names), an optional postamble, and
``model_info.json`` one level up.

The device graph ignores its input's values and returns fixed int8 tensors: a test
plants an object in the device outputs (or in the postamble's) and knows its box.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from axrun.emulator import EMULATOR_FORMAT
from axrun.tensors import quantize

OPSET = 17


@dataclass
class Planted:
    """One device output: its float values ``[H, W, C]`` (exactly representable at
    ``scale``), and the padding the device adds (``spatial``: top, bottom, left,
    right; channels padded up to ``channels``)."""

    values: np.ndarray
    scale: float
    zero_point: int = 0
    spatial: tuple[int, int, int, int] = (0, 0, 0, 0)
    channels: int | None = None

    @property
    def padding(self) -> list[int]:
        """N_lo, N_hi, H_lo, H_hi, W_lo, W_hi, C_lo, C_hi (the manifest's 8 values)."""
        top, bottom, left, right = self.spatial
        c = self.values.shape[2]
        return [0, 0, top, bottom, left, right, 0, (self.channels or c) - c]

    @property
    def padded_shape(self) -> list[int]:
        p = self.padding
        h, w, c = self.values.shape
        return [1, h + p[2] + p[3], w + p[4] + p[5], c + p[6] + p[7]]

    def device_array(self) -> np.ndarray:
        q = quantize(self.values, self.scale, self.zero_point)
        p = self.padding
        return np.pad(q, [(p[2], p[3]), (p[4], p[5]), (p[6], p[7])],
                      constant_values=self.zero_point)[None]


def planted_device(input_shape: Sequence[int], outputs: Sequence[Planted]) -> onnx.ModelProto:
    """An int8 NHWC device graph, input ``input0``, whose outputs ``output<i>`` are the
    planted tensors (the input is read, so that the graph depends on it)."""
    nodes = [helper.make_node("Cast", ["input0"], ["x"], to=TensorProto.FLOAT),
             helper.make_node("ReduceMean", ["x"], ["m"], keepdims=0),
             helper.make_node("Mul", ["m", "zero"], ["z"])]
    inits = [numpy_helper.from_array(np.zeros((), np.float32), "zero")]
    for i, out in enumerate(outputs):
        inits.append(numpy_helper.from_array(out.device_array().astype(np.float32), f"p{i}"))
        nodes += [helper.make_node("Add", [f"p{i}", "z"], [f"f{i}"]),
                  helper.make_node("Cast", [f"f{i}"], [f"output{i}"], to=TensorProto.INT8)]
    graph = helper.make_graph(
        nodes, "planted_device",
        [helper.make_tensor_value_info("input0", TensorProto.INT8, list(input_shape))],
        [helper.make_tensor_value_info(f"output{i}", TensorProto.INT8, o.padded_shape)
         for i, o in enumerate(outputs)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def fixed_graph(inputs: dict[str, Sequence[int]], **outputs: np.ndarray) -> onnx.ModelProto:
    """A float graph (a postamble) reading ``inputs`` (name → NCHW shape) and giving
    these fixed tensors."""
    nodes, inits, first = [], [numpy_helper.from_array(np.zeros((), np.float32), "zero")], None
    for name in inputs:
        nodes.append(helper.make_node("ReduceMean", [name], [f"{name}_m"], keepdims=0))
        first = first or f"{name}_m"
    nodes.append(helper.make_node("Mul", [first or "zero", "zero"], ["z"]))
    for name, value in outputs.items():
        nodes.append(helper.make_node("Add", [f"planted_{name}", "z"], [name]))
        inits.append(numpy_helper.from_array(value.astype(np.float32), f"planted_{name}"))
    graph = helper.make_graph(
        nodes, "fixed",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(s)) for n, s in inputs.items()],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(v.shape))
         for n, v in outputs.items()], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def sdk_folder(
    root: Path,
    outputs: Sequence[Planted],
    *,
    size: int = 32,
    input_padding: Sequence[int] = (0, 0, 1, 1, 1, 15, 0, 1),
    postamble: onnx.ModelProto | None = None,
    preamble: onnx.ModelProto | None = None,
    input_channels: int = 3,
    version: str = "1.1",
    model_info: dict | None = None,
    name: str = "net",
) -> Path:
    """Write ``root/build/<name>/<name>/1/`` and return that folder.

    The device input is ``[1, size, size, input_channels]`` with ``input_padding`` (the
    YOLOv8n example's by default: rows above and below, 1 column left, 15 right, one
    channel), quantized at ``(1/255, -128)``.
    """
    folder = root / "build" / name / name / "1"
    folder.mkdir(parents=True)
    p = list(input_padding)
    in_shape = [1, size + p[2] + p[3], size + p[4] + p[5], input_channels + p[6] + p[7]]
    onnx.save(planted_device(in_shape, outputs), folder / "model.onnx")
    (folder / "model.json").write_text(json.dumps(
        {"format": EMULATOR_FORMAT, "format_version": 1, "device_graph": "model.onnx",
         "batch": 1}))
    manifest = {
        "quantized_model_file": "model.onnx",
        "model_lib_file": "model.json",
        "model_params_file": "model_params.bin",
        "input_shapes": [in_shape],
        "output_shapes": [o.padded_shape for o in outputs],
        "quantize_params": [[1 / 255, -128]],
        "dequantize_params": [[o.scale, o.zero_point] for o in outputs],
        "n_padded_ch_inputs": [p],
        "n_padded_ch_outputs": [o.padding for o in outputs],
        "input_dtypes": ["uint8"],  # the original model's, as the SDK's fixtures write
        "output_dtypes": ["float32"] * len(outputs),
        "postprocess_graph": "",
        "preprocess_graph": "",
        "manifest_version": version,
    }
    if version != "1.0":
        manifest["input_shapes_original"] = [[1, input_channels, size, size]]
        manifest["output_shapes_original"] = [
            [1, o.values.shape[2], *o.values.shape[:2]] for o in outputs]
    if postamble is not None:
        onnx.save(postamble, folder / "postprocess_graph.onnx")
        manifest["postprocess_graph"] = "postprocess_graph.onnx"
    if preamble is not None:
        onnx.save(preamble, folder / "preprocess_graph.onnx")
        manifest["preprocess_graph"] = "preprocess_graph.onnx"
    (folder / "manifest.json").write_text(json.dumps(manifest))
    if model_info is not None:
        (folder.parent / "model_info.json").write_text(json.dumps({"name": name, **model_info}))
    return folder
