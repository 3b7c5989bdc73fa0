"""The postamble: the float ONNX graph the compiler cut off the network's tail, run on
the host after the device (``postprocess_graph.onnx``), for every task."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from axrun.errors import ModelError
from axrun.graphs import fed_from_device
from axrun.modelfolder import ModelFolder, TensorSpec


def match_postamble_inputs(
    names: Sequence[str], shapes: Sequence[Sequence[int | str]], outputs: Sequence[TensorSpec]
) -> list[int]:
    """For each postamble input, the index of the device output that feeds it.

    By name first; otherwise by unpadded NCHW shape, which must be unambiguous.

    Raises:
        ModelError: no device output fits an input, or several do.
    """
    by_name = {o.name: i for i, o in enumerate(outputs)}
    nchw = [(o.unpadded_shape[0], o.unpadded_shape[3], *o.unpadded_shape[1:3]) for o in outputs]
    chosen: list[int] = []
    for name, shape in zip(names, shapes, strict=True):
        if name in by_name:
            chosen.append(by_name[name])
            continue
        fits = [i for i, s in enumerate(nchw) if len(s) == len(shape) and all(
            not isinstance(d, int) or d == e for d, e in zip(shape, s, strict=True))]
        free = [i for i in fits if i not in chosen]
        if not free:
            raise ModelError(f"postamble input {name!r} {list(shape)}: no device output has "
                             "that name or shape")
        if len(free) > 1:
            listed = ", ".join(outputs[i].name for i in free)
            raise ModelError(f"postamble input {name!r} {list(shape)} could be fed by several "
                             f"device outputs ({listed}); name them alike to disambiguate")
        chosen.append(free[0])
    return chosen


def host_session(model: bytes | str, path: Path, what: str) -> Any:
    """An ONNX Runtime session for a host graph (preamble, postamble) on the CPU, one
    thread: the host threads already run several frames at once.

    Raises:
        ModelError: the graph cannot be loaded (naming ``path`` and ``what`` it is).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ModelError(f"{path}: cannot load the {what} graph: {exc}") from exc


RESHAPING_OPS = ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Transpose")


def last_computing_op(graph: Any, name: str) -> str:
    """The type of the node that computes tensor ``name``'s values in ``graph`` (an ONNX
    ``GraphProto``), looking through ops that only move them (:data:`RESHAPING_OPS`);
    ``""`` for a graph input or initializer."""
    producers = {o: n for n in graph.node for o in n.output}
    node = producers.get(name)
    while node is not None and node.op_type in RESHAPING_OPS and node.input:
        node = producers.get(node.input[0])
    return node.op_type if node is not None else ""


class Postamble:
    """The float postamble graph, fed from the device outputs (thread-safe).

    Its inputs are matched to the device outputs once (:func:`match_postamble_inputs`);
    depad → dequantize → NCHW is then prepended to the graph itself, so that ONNX
    Runtime takes the raw padded int8 outputs and does all of it in one call.
    """

    def __init__(self, folder: ModelFolder) -> None:
        import onnx

        path = folder.postamble_path
        assert path is not None
        try:
            graph = onnx.load(str(path))
        except Exception as exc:
            raise ModelError(f"{path}: cannot read the postamble graph: {exc}") from exc
        inits = {i.name for i in graph.graph.initializer}
        inputs = [v for v in graph.graph.input if v.name not in inits]
        shapes = [[d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
                  for v in inputs]
        self.specs = folder.manifest.outputs
        self.sources = match_postamble_inputs([v.name for v in inputs], shapes, self.specs)
        #: the operator that computes each output's values, past reshaping ones
        #: (``Softmax``: probabilities)
        self.output_ops = [last_computing_op(graph.graph, o.name) for o in graph.graph.output]
        graph = fed_from_device(graph, list(self.specs), self.sources)
        self.session = host_session(graph.SerializeToString(), path, "postamble")
        self.names = [i.name for i in self.session.get_inputs()]

    @property
    def output_shapes(self) -> list[list[int]]:
        """The graph's output shapes, a dimension without a fixed size as 0."""
        return [[d if isinstance(d, int) else 0 for d in o.shape]
                for o in self.session.get_outputs()]

    @property
    def output_names(self) -> list[str]:
        return [o.name for o in self.session.get_outputs()]

    def __call__(self, outputs: list[np.ndarray]) -> list[np.ndarray]:
        """Whole-batch padded int8 outputs → the postamble's float outputs."""
        feed = {name: outputs[src] for name, src in zip(self.names, self.sources, strict=True)}
        result: list[np.ndarray] = self.session.run(None, feed)
        return result
