"""ONNX graph pieces for the device's tensor layout, shared by the compiler (device
interface) and the postamble (host side): int8 NHWC padded ↔ float NCHW."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from axrun.tensors import TensorSpec


def _const(name: str, value: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(value, name)


def from_device(spec: TensorSpec, src: str, dst: str, prefix: str) -> tuple[
    list[onnx.NodeProto], list[onnx.TensorProto]
]:
    """Nodes turning int8 NHWC padded ``src`` into float NCHW ``dst``:
    Slice (depad) → DequantizeLinear → Transpose."""
    starts = [lo for lo, _ in spec.padding]
    ends = [d - hi for d, (_, hi) in zip(spec.shape, spec.padding, strict=True)]
    inits = [
        _const(f"{prefix}/starts", np.array(starts, np.int64)),
        _const(f"{prefix}/ends", np.array(ends, np.int64)),
        _const(f"{prefix}/scale", np.array(spec.scale, np.float32)),
        _const(f"{prefix}/zp", np.array(spec.zero_point, np.int8)),
    ]
    nodes = [
        helper.make_node("Slice", [src, f"{prefix}/starts", f"{prefix}/ends"],
                         [f"{prefix}/depadded"]),
        helper.make_node("DequantizeLinear", [f"{prefix}/depadded", f"{prefix}/scale",
                                              f"{prefix}/zp"], [f"{prefix}/nhwc"]),
        helper.make_node("Transpose", [f"{prefix}/nhwc"], [dst], perm=[0, 3, 1, 2]),
    ]
    return nodes, inits


def to_device(spec: TensorSpec, src: str, dst: str, prefix: str, rank: int) -> tuple[
    list[onnx.NodeProto], list[onnx.TensorProto]
]:
    """Nodes turning float NCHW (or ``(N, C)`` when ``rank`` is 2) ``src`` into int8 NHWC
    padded ``dst``: Transpose → QuantizeLinear → Pad with the zero point."""
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    if rank == 2:
        inits.append(_const(f"{prefix}/shape4", np.array([0, 0, 1, 1], np.int64)))
        nodes.append(helper.make_node("Reshape", [src, f"{prefix}/shape4"], [f"{prefix}/nchw"]))
        src = f"{prefix}/nchw"
    elif rank != 4:
        raise ValueError(f"output {spec.name!r} has rank {rank}; 2 or 4 supported")
    pads = [lo for lo, _ in spec.padding] + [hi for _, hi in spec.padding]
    inits += [
        _const(f"{prefix}/scale", np.array(spec.scale, np.float32)),
        _const(f"{prefix}/zp", np.array(spec.zero_point, np.int8)),
        _const(f"{prefix}/pads", np.array(pads, np.int64)),
        _const(f"{prefix}/padval", np.array(spec.zero_point, np.int8)),
    ]
    nodes += [
        helper.make_node("Transpose", [src], [f"{prefix}/nhwc"], perm=[0, 2, 3, 1]),
        helper.make_node("QuantizeLinear", [f"{prefix}/nhwc", f"{prefix}/scale", f"{prefix}/zp"],
                         [f"{prefix}/q"]),
        helper.make_node("Pad", [f"{prefix}/q", f"{prefix}/pads", f"{prefix}/padval"], [dst]),
    ]
    return nodes, inits


def int8_tensor(spec: TensorSpec, name: str) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.INT8, list(spec.shape))


def fed_from_device(postamble: onnx.ModelProto, specs: list[TensorSpec],
                    sources: list[int]) -> onnx.ModelProto:
    """The postamble taking the raw padded int8 device outputs directly: input *i* of
    the result is device output ``sources[i]`` (named ``axrun_dev/<name>``)."""
    model = onnx.ModelProto()
    model.CopyFrom(postamble)
    graph = model.graph
    inits_names = {i.name for i in graph.initializer}
    originals = [v.name for v in graph.input if v.name not in inits_names]
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    new_inputs = []
    for name, src in zip(originals, sources, strict=True):
        spec = specs[src]
        raw = f"axrun_dev/{spec.name}"
        n, i = from_device(spec, raw, name, f"axrun_post/{spec.name}")
        nodes += n
        inits += i
        new_inputs.append(int8_tensor(spec, raw))
    all_nodes = nodes + list(graph.node)
    del graph.node[:]
    graph.node.extend(all_nodes)
    graph.initializer.extend(inits)
    kept = [v for v in graph.input if v.name in inits_names]
    del graph.input[:]
    graph.input.extend(new_inputs + kept)
    return model
