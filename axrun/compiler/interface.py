"""The device interface: wrap an NCHW network so it takes and returns what Metis does.

The wrapped graph takes int8 NHWC inputs padded like the hardware and returns int8
NHWC outputs with padded channels. Per input: Slice (depad) → DequantizeLinear →
Transpose to NCHW → the network; per output: the network → Transpose to NHWC →
QuantizeLinear → Pad with the zero point. Tensor names at the boundary are kept,
so a postamble graph's inputs still match the device outputs by name.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from axrun.modelfolder import TensorSpec


def pad_to_multiple(value: int, multiple: int) -> int:
    """How much to add to ``value`` to reach a multiple of ``multiple``."""
    return (-value) % multiple if multiple > 1 else 0


def nhwc_spec(
    name: str,
    shape_nchw: Sequence[int],
    scale: float,
    zero_point: int,
    *,
    channel_multiple: int,
    spatial: tuple[int, int, int, int] = (0, 0, 0, 0),
) -> TensorSpec:
    """A device tensor spec for an NCHW (or N,C) tensor, padded the hardware way.

    ``spatial`` is ``(top, bottom, left, right)`` extra rows/columns.
    """
    if len(shape_nchw) == 2:
        n, c = shape_nchw
        h = w = 1
    elif len(shape_nchw) == 4:
        n, c, h, w = shape_nchw
    else:
        raise ValueError(f"tensor {name!r} has rank {len(shape_nchw)}; 2 or 4 supported")
    top, bottom, left, right = spatial
    cpad = pad_to_multiple(c, channel_multiple)
    padding = ((0, 0), (top, bottom), (left, right), (0, cpad))
    shape = (n, h + top + bottom, w + left + right, c + cpad)
    return TensorSpec(name, shape, padding, float(scale), int(zero_point))


def _const(name: str, value: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(value, name)


def wrap_device_graph(
    network: onnx.ModelProto,
    inputs: Sequence[TensorSpec],
    outputs: Sequence[TensorSpec],
    output_ranks: Sequence[int],
) -> onnx.ModelProto:
    """Wrap ``network`` (float NCHW in/out, names as in ``inputs``/``outputs``).

    ``output_ranks`` gives each network output's rank (2 for ``(N, C)``, 4 for NCHW).
    Returns a new model whose graph inputs/outputs are the int8 padded NHWC tensors.
    """
    model = onnx.ModelProto()
    model.CopyFrom(network)
    graph = model.graph
    rename = {t.name: f"{t.name}__float" for t in inputs}
    out_rename = {t.name: f"{t.name}__float" for t in outputs}
    for node in graph.node:
        node.input[:] = [rename.get(n, n) for n in node.input]
        node.output[:] = [out_rename.get(n, n) for n in node.output]
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    for t in inputs:
        p = f"axrun_in/{t.name}"
        starts = [lo for lo, _ in t.padding]
        ends = [d - hi for d, (_, hi) in zip(t.shape, t.padding, strict=True)]
        inits += [
            _const(f"{p}/starts", np.array(starts, np.int64)),
            _const(f"{p}/ends", np.array(ends, np.int64)),
            _const(f"{p}/scale", np.array(t.scale, np.float32)),
            _const(f"{p}/zp", np.array(t.zero_point, np.int8)),
        ]
        nodes += [
            helper.make_node("Slice", [t.name, f"{p}/starts", f"{p}/ends"], [f"{p}/depadded"]),
            helper.make_node(
                "DequantizeLinear", [f"{p}/depadded", f"{p}/scale", f"{p}/zp"], [f"{p}/nhwc"]
            ),
            helper.make_node("Transpose", [f"{p}/nhwc"], [rename[t.name]], perm=[0, 3, 1, 2]),
        ]
    tail: list[onnx.NodeProto] = []
    for t, rank in zip(outputs, output_ranks, strict=True):
        p = f"axrun_out/{t.name}"
        src = out_rename[t.name]
        if rank == 2:
            inits.append(_const(f"{p}/shape4", np.array([0, 0, 1, 1], np.int64)))
            tail.append(helper.make_node("Reshape", [src, f"{p}/shape4"], [f"{p}/nchw"]))
            src = f"{p}/nchw"
        elif rank != 4:
            raise ValueError(f"output {t.name!r} has rank {rank}; 2 or 4 supported")
        pads = [lo for lo, _ in t.padding] + [hi for _, hi in t.padding]
        inits += [
            _const(f"{p}/scale", np.array(t.scale, np.float32)),
            _const(f"{p}/zp", np.array(t.zero_point, np.int8)),
            _const(f"{p}/pads", np.array(pads, np.int64)),
            _const(f"{p}/padval", np.array(t.zero_point, np.int8)),
        ]
        tail += [
            helper.make_node("Transpose", [src], [f"{p}/nhwc"], perm=[0, 2, 3, 1]),
            helper.make_node(
                "QuantizeLinear", [f"{p}/nhwc", f"{p}/scale", f"{p}/zp"], [f"{p}/q"]
            ),
            helper.make_node("Pad", [f"{p}/q", f"{p}/pads", f"{p}/padval"], [t.name]),
        ]
    new_nodes = nodes + list(graph.node) + tail
    del graph.node[:]
    graph.node.extend(new_nodes)
    graph.initializer.extend(inits)
    del graph.input[:]
    graph.input.extend(
        helper.make_tensor_value_info(t.name, TensorProto.INT8, list(t.shape)) for t in inputs
    )
    del graph.output[:]
    graph.output.extend(
        helper.make_tensor_value_info(t.name, TensorProto.INT8, list(t.shape)) for t in outputs
    )
    kept = {t.name for t in inputs} | {t.name for t in outputs}
    value_info = [v for v in graph.value_info if v.name not in kept]
    del graph.value_info[:]
    graph.value_info.extend(value_info)
    return model
