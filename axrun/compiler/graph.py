"""Preparing the float ONNX graph: static shapes, opset ≥ 13, the device/postamble cut."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import onnx
from onnx import shape_inference, utils, version_converter

from axrun.errors import CompileError

MIN_OPSET = 13

# Operators the device part may contain: the convolutional vocabulary of vision
# networks. Anything else (control flow, NMS, TopK, dynamic shapes...) must go to the
# postamble with --postamble-from.
DEVICE_OPS = frozenset({
    "Add", "AveragePool", "BatchNormalization", "Cast", "Clip", "Concat", "Constant", "Conv",
    "ConvTranspose", "DepthToSpace", "Div", "Dropout", "Elu", "Flatten", "Gather", "Gemm",
    "GlobalAveragePool", "GlobalMaxPool", "HardSigmoid", "HardSwish", "Identity",
    "InstanceNormalization", "LeakyRelu", "MatMul", "Max", "MaxPool", "Min", "Mul", "Pad",
    "PRelu", "ReduceMean", "Relu", "Reshape", "Resize", "Sigmoid", "Slice", "Softmax",
    "SpaceToDepth", "Split", "Squeeze", "Sub", "Tanh", "Transpose", "Unsqueeze", "Upsample",
})


@dataclass
class PreparedGraph:
    """The float network, split into the device part and the optional postamble."""

    device: onnx.ModelProto
    postamble: onnx.ModelProto | None
    input_name: str
    input_shape: tuple[int, ...]  # NCHW
    output_names: list[str]  # device outputs (the cut tensors, or the model outputs)
    output_shapes: list[tuple[int, ...]]
    model_output_shapes: list[list[int | str]]  # the whole network's outputs


def infer_task(shapes: Sequence[Sequence[int | str]], cut: bool = False,
               decoder: bool = False) -> tuple[str, str]:
    """The task a float network says, and why, only where nothing points the other way:
    decoder settings (``decoder``), a 3-D output ``[N, anchors, k]`` or several outputs
    are a detector's; one ``[N, C]`` (or ``[N, C, 1, 1]``) output of a network compiled
    whole (no ``cut``) and without decoder settings a classifier's.

    Raises:
        CompileError: anything else, or signs of both (``--task`` must say).
    """
    text = ", ".join(str(list(s)) for s in shapes)
    scores = len(shapes) == 1 and (len(shapes[0]) == 2 or list(shapes[0][2:]) == [1, 1])
    boxes = (len(shapes) == 1 and len(shapes[0]) == 3) or len(shapes) >= 2
    if decoder and not scores:
        return "detect", f"decoder settings given; output(s) {text}"
    if boxes and not decoder:
        return "detect", f"output(s) {text}: boxes"
    if scores and not (cut or decoder):
        return "classify", f"one output {text}: class scores"
    raise CompileError(f"give --task classify or --task detect: the outputs ({text})"
                       + (" and the decoder settings" if decoder else "")
                       + " do not say which for sure")


def load(path: Path) -> onnx.ModelProto:
    try:
        return onnx.load(str(path))
    except FileNotFoundError:
        raise CompileError(f"{path}: no such file") from None
    except Exception as exc:
        raise CompileError(f"{path}: not a readable ONNX model ({exc})") from exc


def _dims(value: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_param or (d.dim_value if d.HasField("dim_value") else "?")
            for d in value.type.tensor_type.shape.dim]


def _graph_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    inits = {i.name for i in model.graph.initializer}
    return [v for v in model.graph.input if v.name not in inits]


def fix_input_shape(
    model: onnx.ModelProto, shape: Sequence[int] | None
) -> tuple[str, tuple[int, ...]]:
    """Make the single image input static (``shape`` overrides); returns name and shape."""
    inputs = _graph_inputs(model)
    if len(inputs) != 1:
        names = ", ".join(v.name for v in inputs)
        raise CompileError(f"the model has {len(inputs)} inputs ({names}); one image input needed")
    value = inputs[0]
    dims = _dims(value)
    if shape is not None:
        if len(shape) != len(dims):
            raise CompileError(f"--input-shape has {len(shape)} dims; input {value.name!r} "
                               f"has {len(dims)}: {dims}")
        for d, s in zip(value.type.tensor_type.shape.dim, shape, strict=True):
            d.Clear()
            d.dim_value = int(s)
        dims = list(shape)
    if any(not isinstance(d, int) or d <= 0 for d in dims):
        raise CompileError(
            f"input {value.name!r} has dynamic shape {dims}; give a static one with "
            "--input-shape N,C,H,W (e.g. 1,3,224,224)"
        )
    if len(dims) != 4 or dims[1] != 3:
        raise CompileError(f"input {value.name!r} has shape {dims}; an NCHW image with 3 "
                           "channels is needed")
    return value.name, tuple(int(d) for d in dims)


def upgrade_opset(model: onnx.ModelProto) -> onnx.ModelProto:
    """Convert to opset 13 when older (needed for per-channel quantization)."""
    version = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if version >= MIN_OPSET:
        return model
    try:
        return version_converter.convert_version(model, MIN_OPSET)
    except Exception as exc:
        raise CompileError(f"cannot upgrade opset {version} to {MIN_OPSET}: {exc}") from exc


def _infer(model: onnx.ModelProto) -> onnx.ModelProto:
    try:
        return shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception as exc:
        raise CompileError(f"shape inference failed: {exc}") from exc


def _shapes(model: onnx.ModelProto) -> dict[str, list[int | str]]:
    out = {}
    for v in [*model.graph.value_info, *model.graph.output, *model.graph.input]:
        out[v.name] = _dims(v)
    return out


def _tensor_names(model: onnx.ModelProto) -> list[str]:
    return [o for node in model.graph.node for o in node.output if o]


def _check_cut_names(model: onnx.ModelProto, cut: Sequence[str]) -> None:
    produced = _tensor_names(model)
    known = set(produced)
    unknown = [c for c in cut if c not in known]
    if not unknown:
        return
    near = []
    for name in unknown:
        near += difflib.get_close_matches(name, produced, n=4, cutoff=0.5)
    tail = produced[-12:]
    hint = ", ".join(dict.fromkeys(near or tail))
    raise CompileError(
        f"--postamble-from: no tensor named {', '.join(map(repr, unknown))} in the model; "
        f"candidates: {hint}"
    )


def check_device_ops(model: onnx.ModelProto, cut_hint: bool) -> None:
    """Reject operators the device cannot run, naming them and where they are."""
    bad: dict[str, list[str]] = {}
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx") or node.op_type not in DEVICE_OPS:
            bad.setdefault(node.op_type, []).append(node.name or node.output[0])
    if bad:
        what = "; ".join(f"{op} ({', '.join(names[:3])}{'...' if len(names) > 3 else ''})"
                         for op, names in sorted(bad.items()))
        hint = "" if cut_hint else " — cut before them with --postamble-from TENSOR..."
        raise CompileError(f"unsupported operators for the device part: {what}{hint}")


def _check_postamble_inputs(
    device: onnx.ModelProto, postamble: onnx.ModelProto, cut: Sequence[str]
) -> None:
    """The postamble may consume only the cut tensors from the device part."""
    device_made = {o for n in device.graph.node for o in n.output} | {
        v.name for v in _graph_inputs(device)}
    post_made = {o for n in postamble.graph.node for o in n.output}
    for node in postamble.graph.node:
        if all(o in device_made for o in node.output):
            continue  # recomputed from the device side; the leak is further down
        for name in node.input:
            if name in device_made and name not in cut:
                raise CompileError(
                    f"the part after the cut still needs {name!r} from before it (through "
                    f"{node.op_type} {node.name or node.output[0]!r}); add the tensors where "
                    "each branch leaves the device to --postamble-from"
                )
            if name and name not in post_made and name not in cut and name not in {
                    i.name for i in postamble.graph.initializer}:
                raise CompileError(f"the postamble needs {name!r}, which is not available")


def prepare(
    model: onnx.ModelProto,
    *,
    input_shape: Sequence[int] | None = None,
    postamble_from: Sequence[str] = (),
) -> PreparedGraph:
    """Static shapes, opset upgrade, cut at ``postamble_from`` (if given), op check."""
    input_name, shape = fix_input_shape(model, input_shape)
    model = upgrade_opset(model)
    model = _infer(model)
    outputs = [o.name for o in model.graph.output]
    postamble = None
    if postamble_from:
        cut = list(dict.fromkeys(postamble_from))
        _check_cut_names(model, cut)
        extractor = utils.Extractor(model)
        device = extractor.extract_model([input_name], cut)
        postamble = extractor.extract_model(cut, outputs)
        _check_postamble_inputs(device, postamble, cut)
        output_names = cut
    else:
        device = model
        output_names = outputs
    check_device_ops(device, cut_hint=bool(postamble_from))
    shapes = _shapes(_infer(device))
    out_shapes = []
    for name in output_names:
        dims = shapes.get(name)
        if not dims or any(not isinstance(d, int) or d <= 0 for d in dims):
            raise CompileError(f"device output {name!r} has no static shape ({dims}); "
                               "fix the input shape with --input-shape")
        if len(dims) not in (2, 4):
            raise CompileError(f"device output {name!r} has shape {dims}; the device returns "
                               "NCHW (4-D) or (N, C) tensors — cut earlier with --postamble-from")
        out_shapes.append(tuple(int(d) for d in dims))
    whole = _shapes(model)
    return PreparedGraph(device, postamble, input_name, shape, output_names, out_shapes,
                         [whole.get(name, []) for name in outputs])
