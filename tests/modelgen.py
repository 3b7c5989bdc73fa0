"""Tiny model folders built at test time: random weights, seconds to build.

Each generated folder comes with its float network, so tests can compare what the
emulator computes with a float reference of the same network.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from axrun.compiler.interface import nhwc_spec, wrap_device_graph
from axrun.compiler.writer import FolderContents, write_model_folder
from axrun.tensors import dequantize, quantize

OPSET = 17


@dataclass
class Generated:
    path: Path
    network: onnx.ModelProto  # float NCHW network (the device part)
    postamble: onnx.ModelProto | None

    def float_outputs(self, x_nchw: np.ndarray) -> list[np.ndarray]:
        sess = ort.InferenceSession(self.network.SerializeToString(),
                                    providers=["CPUExecutionProvider"])
        return sess.run(None, {sess.get_inputs()[0].name: x_nchw.astype(np.float32)})


def _w(rng: np.random.Generator, name: str, *shape: int) -> onnx.TensorProto:
    return numpy_helper.from_array(
        (rng.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))).astype(np.float32), name
    )


def classifier_network(batch: int, size: int, classes: int, seed: int = 0) -> onnx.ModelProto:
    """Conv → Relu → GlobalAveragePool → Flatten → Gemm: ``(N,3,S,S)`` → logits ``(N,C)``."""
    rng = np.random.default_rng(seed)
    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("GlobalAveragePool", ["r1"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "w2", "b2"], ["logits"], transB=1),
    ]
    inits = [
        _w(rng, "w1", 8, 3, 3, 3),
        numpy_helper.from_array(rng.standard_normal(8).astype(np.float32) * 0.1, "b1"),
        numpy_helper.from_array(rng.standard_normal((classes, 8)).astype(np.float32) * 2, "w2"),
        numpy_helper.from_array(np.zeros(classes, np.float32), "b2"),
    ]
    graph = helper.make_graph(
        nodes, "tiny_classifier",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, classes])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def two_head_network(batch: int, size: int, seed: int = 0) -> onnx.ModelProto:
    """Two NCHW heads at strides 1 and 2: ``head_a (N,5,S,S)``, ``head_b (N,7,S/2,S/2)``."""
    rng = np.random.default_rng(seed)
    nodes = [
        helper.make_node("Conv", ["images", "w1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "wa"], ["head_a"]),
        helper.make_node("Conv", ["r1", "wb"], ["head_b"], strides=[2, 2]),
    ]
    inits = [_w(rng, "w1", 6, 3, 3, 3), _w(rng, "wa", 5, 6, 1, 1), _w(rng, "wb", 7, 6, 1, 1)]
    half = size // 2
    graph = helper.make_graph(
        nodes, "tiny_two_head",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [batch, 3, size, size])],
        [
            helper.make_tensor_value_info("head_a", TensorProto.FLOAT, [batch, 5, size, size]),
            helper.make_tensor_value_info("head_b", TensorProto.FLOAT, [batch, 7, half, half]),
        ],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


def two_head_postamble(batch: int, size: int) -> onnx.ModelProto:
    """Float postamble: sigmoid of each head, flattened and concatenated → ``(N, k)``."""
    half = size // 2
    nodes = [
        helper.make_node("Sigmoid", ["head_a"], ["sa"]),
        helper.make_node("Sigmoid", ["head_b"], ["sb"]),
        helper.make_node("Flatten", ["sa"], ["fa"]),
        helper.make_node("Flatten", ["sb"], ["fb"]),
        helper.make_node("Concat", ["fa", "fb"], ["scores"], axis=1),
    ]
    total = 5 * size * size + 7 * half * half
    graph = helper.make_graph(
        nodes, "tiny_postamble",
        [
            helper.make_tensor_value_info("head_b", TensorProto.FLOAT, [batch, 7, half, half]),
            helper.make_tensor_value_info("head_a", TensorProto.FLOAT, [batch, 5, size, size]),
        ],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [batch, total])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])


INPUT_SCALE = 2.0 / 255.0
INPUT_ZP = -1


def output_scales(network: onnx.ModelProto, batch: int, size: int) -> list[float]:
    """Symmetric output scales covering the float outputs on random inputs."""
    rng = np.random.default_rng(1)
    x = rng.integers(-128, 128, (batch, 3, size, size)).astype(np.int8)
    xf = dequantize(x, INPUT_SCALE, INPUT_ZP)
    sess = ort.InferenceSession(network.SerializeToString(), providers=["CPUExecutionProvider"])
    outs = sess.run(None, {sess.get_inputs()[0].name: xf})
    return [float(np.abs(o).max() * 1.5 / 127 + 1e-6) for o in outs]


def make_model_folder(
    dest: Path,
    *,
    kind: str = "classifier",
    batch: int = 1,
    size: int = 8,
    classes: int = 10,
    spatial: tuple[int, int, int, int] = (0, 0, 0, 0),
    channel_multiple: int = 4,
    out_channel_multiple: int = 64,
    with_postamble: bool = False,
    sidecar: dict | None = None,
    seed: int = 0,
) -> Generated:
    """Build and write a tiny model folder; returns it with its float network."""
    if kind == "classifier":
        network = classifier_network(batch, size, classes, seed)
        in_name, outs = "input", [("logits", [batch, classes])]
    else:
        network = two_head_network(batch, size, seed)
        half = size // 2
        in_name = "images"
        outs = [("head_a", [batch, 5, size, size]), ("head_b", [batch, 7, half, half])]
    scales = output_scales(network, batch, size)
    in_spec = nhwc_spec(in_name, [batch, 3, size, size], INPUT_SCALE, INPUT_ZP,
                        channel_multiple=channel_multiple, spatial=spatial)
    out_specs = [
        nhwc_spec(name, shape, scale, 0, channel_multiple=out_channel_multiple)
        for (name, shape), scale in zip(outs, scales, strict=True)
    ]
    device = wrap_device_graph(network, [in_spec], out_specs, [len(s) for _, s in outs])
    postamble = two_head_postamble(batch, size) if with_postamble else None
    labels = [f"class_{i}" for i in range(classes)] if kind == "classifier" else None
    write_model_folder(dest, FolderContents(
        device_graph=device,
        inputs=[in_spec],
        outputs=out_specs,
        originals_nchw=([[batch, 3, size, size]], [s for _, s in outs]),
        postamble=postamble,
        sidecar=sidecar if sidecar is not None else {"task": "classify"} if labels else None,
        labels=labels,
    ))
    return Generated(dest, network, postamble)


def random_padded_input(info, rng: np.random.Generator) -> np.ndarray:
    """A random int8 input buffer with its padding set to the zero point."""
    from axrun.tensors import pad

    interior = rng.integers(-128, 128, info.unpadded_shape[1:]).astype(np.int8)
    rows = [pad(interior, info.padding[1:], info.zero_point) for _ in range(info.shape[0])]
    return np.ascontiguousarray(np.stack(rows))


def reference_outputs(gen: Generated, info_in, infos_out, x: np.ndarray) -> list[np.ndarray]:
    """What the device should return for padded input ``x``: float network, quantized."""
    from axrun.tensors import depad

    xf = dequantize(depad(x, info_in.padding), info_in.scale, info_in.zero_point)
    outs = gen.float_outputs(xf.transpose(0, 3, 1, 2))
    result = []
    for o, info in zip(outs, infos_out, strict=True):
        if o.ndim == 2:
            o = o[:, :, None, None]
        result.append(quantize(o.transpose(0, 2, 3, 1), info.scale, info.zero_point))
    return result


def tiny_detector_network(size: int = 16, seed: int = 0, batch: int | str = 1) -> onnx.ModelProto:
    """A whole float 'detector': two conv heads, then a sigmoid/flatten/concat tail.

    Cut at ``head_a``/``head_b`` to move the tail into the postamble.
    """
    body = two_head_network(1, size, seed)
    tail = two_head_postamble(1, size)
    graph = body.graph
    graph.node.extend(tail.graph.node)
    del graph.output[:]
    graph.output.extend(tail.graph.output)
    graph.input[0].type.tensor_type.shape.dim[0].Clear()
    if isinstance(batch, str):
        graph.input[0].type.tensor_type.shape.dim[0].dim_param = batch
        graph.output[0].type.tensor_type.shape.dim[0].dim_param = batch
    else:
        graph.input[0].type.tensor_type.shape.dim[0].dim_value = batch
    return body
