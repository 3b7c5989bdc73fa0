"""Where INT8 loses precision: the 8-bit activations of a compiled device graph, ranked
by how much each one's rounding alone costs the device outputs.

The device graph ``axrun compile`` writes (``model.onnx``) is an ONNX QDQ graph:
every 8-bit activation ``x`` is written ``QuantizeLinear(x) → DequantizeLinear``.
:func:`gated_graph` adds, for each such activation, a switch (``Where``) that passes
``x`` on unrounded instead (clipped to the same range, as a 16-bit activation would
be), all switches fed from one boolean input. The reference is
the graph with every activation unrounded (int8 weights, float activations within
the calibrated ranges); each
activation is then rounded alone, the others left unrounded, and the device outputs
compared with the reference: the lower their SQNR, the more that activation's 8 bits
cost, and the better a candidate for ``--int16``. (Rounding all but one and leaving
that one out says little: the other 250 roundings drown a single one.)

SQNR (signal-to-quantization-noise ratio, dB) = ``-10 log10(mean over outputs of
sum (ref - x)² / sum ref²)``, sums over the images, taken before each output's own
int8 boundary: every output weighs alike, whatever its scale.

This is a simulation in float of the quantized graph: the QDQ pairs run unfused,
where the emulator's ONNX Runtime fuses them into integer kernels. The two round
alike but not bit for bit (their outputs are 23-31 dB apart on the bundled models);
the all-8-bit figure here was within 0.6 dB of the emulator's. Clipping an
unrounded activation to its 8-bit range is close to, not exactly, what 16 bits do:
the 16-bit grid's ends differ by up to half an 8-bit step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from axrun.compiler.quantize import constant_value
from axrun.errors import ModelError

GATES = "axrun_gates"  # the boolean input [K]: switch k on = activation k unrounded
FLOAT_SUFFIX = "__float"  # the device interface's name for a tensor before the boundary


@dataclass(frozen=True)
class LayerError:
    """One 8-bit activation: its tensor name (what ``--int16`` takes), the operator
    that computes it, and the device outputs' SQNR (dB) when it alone is rounded."""

    tensor: str
    op: str
    sqnr_db: float

    def to_dict(self) -> dict[str, object]:
        return {"tensor": self.tensor, "op": self.op, "output_sqnr_db": round(self.sqnr_db, 2)}


@dataclass(frozen=True)
class LayerReport:
    """The outputs' SQNR (dB) with every activation rounded (the INT8 model), and every
    activation alone, the costliest (lowest SQNR) first."""

    int8_sqnr_db: float
    layers: tuple[LayerError, ...]
    images: int

    def worst(self, n: int) -> list[str]:
        """The ``n`` activations whose rounding costs the most."""
        return [layer.tensor for layer in self.layers[:n]]

    def to_dict(self) -> dict[str, object]:
        return {"images": self.images, "int8_output_sqnr_db": round(self.int8_sqnr_db, 2),
                "layers": [layer.to_dict() for layer in self.layers]}


def _candidates(model: onnx.ModelProto, input_names: set[str]) -> \
        list[tuple[onnx.NodeProto, float, float]]:
    """The QuantizeLinear nodes of 8-bit activations inside the graph (not the device
    interface's, the input's or the outputs', not 16-bit ones), each with the float
    range its grid represents: ``(qmin - zp) * scale`` to ``(qmax - zp) * scale``."""
    out: list[tuple[onnx.NodeProto, float, float]] = []
    for node in model.graph.node:
        if node.op_type != "QuantizeLinear" or node.name.startswith("axrun_") or \
                node.output[0].startswith("axrun_"):
            continue
        if node.input[0] in input_names or node.input[0].startswith("axrun_"):
            continue
        zp = constant_value(model, node.input[2]) if len(node.input) > 2 else None
        scale = constant_value(model, node.input[1])
        if zp is None or zp.dtype not in (np.uint8, np.int8) or zp.size != 1 or \
                scale is None or scale.size != 1:
            continue  # 16-bit, or not an activation written by the quantizer
        info = np.iinfo(zp.dtype)
        s, z = float(scale.reshape(())), int(zp.reshape(()))
        out.append((node, (info.min - z) * s, (info.max - z) * s))
    return out


def _unrounded(producers: dict[str, onnx.NodeProto], name: str) -> str:
    """The float tensor a device output is quantized from (before its QDQ pair), else
    ``name`` itself."""
    dq = producers.get(name)
    q = producers.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" \
        else None
    return q.input[0] if q is not None and q.op_type == "QuantizeLinear" else name


def gated_graph(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[tuple[str, str]]]:
    """``model`` (a device graph ``axrun compile`` wrote) with a switch at each 8-bit
    activation, fed from input :data:`GATES` (bool ``[K]``), and its outputs before the
    int8 boundary (``<name>__float``) as the graph's outputs. Returns it and the
    ``(tensor, operator)`` of each switch, in order.

    Raises:
        ModelError: the graph has no QDQ activations (not a graph axrun compile wrote).
    """
    graph = model.graph
    inputs = {v.name for v in graph.input}
    producers = {o: n for n in graph.node for o in n.output}
    outputs = [_unrounded(producers, f"{o.name}{FLOAT_SUFFIX}") for o in graph.output]
    # the device outputs' own quantization is the int8 boundary: not a candidate
    candidates = [q for q in _candidates(model, inputs | {f"{i}{FLOAT_SUFFIX}" for i in inputs})
                  if q[0].input[0] not in outputs]
    if not candidates or any(o not in producers for o in outputs):
        raise ModelError("the device graph has no 8-bit activations axrun can switch "
                         "(QuantizeLinear → DequantizeLinear): a per-layer report needs a "
                         "model folder axrun compile wrote")
    gated = onnx.ModelProto()
    gated.CopyFrom(model)
    g = gated.graph
    switches: list[tuple[str, str]] = []
    extra: list[onnx.NodeProto] = []
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in g.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    for k, (q, low, high) in enumerate(candidates):
        x = q.input[0]
        dqs = [n for n in consumers.get(q.output[0], []) if n.op_type == "DequantizeLinear"]
        if not dqs:
            continue
        producer = producers.get(x)
        switches.append((x, producer.op_type if producer is not None else "input"))
        index = f"axrun_gate/{k}/index"
        g.initializer.append(numpy_helper.from_array(np.array([len(switches) - 1], np.int64),
                                                     index))
        extra.append(helper.make_node("Gather", [GATES, index], [f"axrun_gate/{k}/on"]))
        # Unrounded, but clipped to the same range: the quantizer drops a Relu or Clip
        # before an activation whose range starts at 0 (the range does the clipping),
        # and a 16-bit activation keeps the range. Only the rounding is switched off.
        for bound, value in (("low", low), ("high", high)):
            g.initializer.append(numpy_helper.from_array(np.array(value, np.float32),
                                                         f"axrun_gate/{k}/{bound}"))
        extra.append(helper.make_node("Clip", [x, f"axrun_gate/{k}/low",
                                               f"axrun_gate/{k}/high"],
                                      [f"axrun_gate/{k}/clipped"]))
        for j, dq in enumerate(dqs):
            rounded = dq.output[0]
            passed = f"axrun_gate/{k}/{j}"
            extra.append(helper.make_node("Where", [f"axrun_gate/{k}/on",
                                                    f"axrun_gate/{k}/clipped", rounded],
                                          [passed]))
            for user in consumers.get(rounded, []):
                user.input[:] = [passed if n == rounded else n for n in user.input]
    g.node.extend(extra)
    g.input.append(helper.make_tensor_value_info(GATES, TensorProto.BOOL, [len(switches)]))
    del g.output[:]
    g.output.extend(helper.make_empty_tensor_value_info(o) for o in outputs)
    del g.value_info[:]
    return gated, switches


MAX_SQNR_DB = 99.0  # no noise at all (an activation whose rounding changes nothing)


def _sqnr(reference: list[list[np.ndarray]], got: list[list[np.ndarray]]) -> float:
    """Output SQNR (dB) as the module says: per output, noise over signal summed over
    the images; outputs averaged in the linear domain."""
    ratios = []
    for ref_out, got_out in zip(zip(*reference, strict=True), zip(*got, strict=True),
                                strict=True):
        signal = sum(float(np.square(r).sum()) for r in ref_out)
        noise = sum(float(np.square(r - x).sum()) for r, x in zip(ref_out, got_out, strict=True))
        ratios.append(noise / signal if signal > 0 else 0.0)
    mean = float(np.mean(ratios))
    return MAX_SQNR_DB if mean <= 0 else min(MAX_SQNR_DB, float(-10 * np.log10(mean)))


def layer_sensitivity(
    model: onnx.ModelProto,
    inputs: Sequence[np.ndarray],
    on_progress: Callable[[int, int], None] | None = None,
) -> LayerReport:
    """Rank the 8-bit activations of ``model`` (a device graph ``axrun compile`` wrote)
    by the output SQNR when each alone is rounded, on ``inputs`` (device inputs:
    padded int8 NHWC batches ``[N, H, W, C]``, as the preprocessing writes them).

    Cost: one run of the graph per activation and input (YOLOX-Nano: 247 activations,
    about 40 ms a run here). ``on_progress(done, total)`` after each activation.

    Raises:
        ModelError: not a QDQ device graph (see :func:`gated_graph`).
    """
    import onnxruntime as ort

    gated, switches = gated_graph(model)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(gated.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    feed_name = next(i.name for i in session.get_inputs() if i.name != GATES)
    count = len(switches)

    def run(gates: np.ndarray) -> list[list[np.ndarray]]:
        return [session.run(None, {feed_name: x, GATES: gates}) for x in inputs]

    reference = run(np.ones(count, bool))
    int8 = _sqnr(reference, run(np.zeros(count, bool)))
    layers = []
    for k, (tensor, op) in enumerate(switches):
        gates = np.ones(count, bool)
        gates[k] = False
        layers.append(LayerError(tensor, op, _sqnr(reference, run(gates))))
        if on_progress:
            on_progress(k + 1, count)
    layers.sort(key=lambda layer: layer.sqnr_db)
    return LayerReport(int8, tuple(layers), len(inputs))
