"""The device interface: wrap an NCHW network so it takes and returns what Metis does.

The wrapped graph takes int8 NHWC inputs padded like the hardware and returns int8
NHWC outputs with padded channels. Per input: Slice (depad) → DequantizeLinear →
Transpose to NCHW → the network; per output: the network → Transpose to NHWC →
QuantizeLinear → Pad with the zero point. Tensor names at the boundary are kept,
so a postamble graph's inputs still match the device outputs by name.
"""

from __future__ import annotations

from collections.abc import Sequence

import onnx

from axrun.graphs import from_device, int8_tensor, to_device
from axrun.tensors import TensorSpec


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
        n, i = from_device(t, t.name, rename[t.name], f"axrun_in/{t.name}")
        nodes += n
        inits += i
    tail: list[onnx.NodeProto] = []
    for t, rank in zip(outputs, output_ranks, strict=True):
        n, i = to_device(t, out_rename[t.name], t.name, f"axrun_out/{t.name}", rank)
        tail += n
        inits += i
    new_nodes = nodes + list(graph.node) + tail
    del graph.node[:]
    graph.node.extend(new_nodes)
    graph.initializer.extend(inits)
    del graph.input[:]
    graph.input.extend(int8_tensor(t, t.name) for t in inputs)
    del graph.output[:]
    graph.output.extend(int8_tensor(t, t.name) for t in outputs)
    kept = {t.name for t in inputs} | {t.name for t in outputs}
    value_info = [v for v in graph.value_info if v.name not in kept]
    del graph.value_info[:]
    graph.value_info.extend(value_info)
    return model
