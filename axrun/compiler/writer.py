"""Writing a model folder, atomically: all files or none.

The folder is assembled in a temporary sibling and moved into place with one
rename; an existing folder of the same name is replaced only once the new one is
complete.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx

from axrun.emulator import EMULATOR_FORMAT
from axrun.modelfolder import MANIFEST, MODEL_JSON, SIDECAR, manifest_dict
from axrun.tensors import TensorSpec

DEVICE_GRAPH = "model.onnx"
POSTAMBLE_GRAPH = "postprocess_graph.onnx"


@dataclass
class FolderContents:
    """Everything a compiled model folder holds."""

    device_graph: onnx.ModelProto
    inputs: Sequence[TensorSpec]
    outputs: Sequence[TensorSpec]
    originals_nchw: tuple[Sequence[Sequence[int]], Sequence[Sequence[int]]]
    postamble: onnx.ModelProto | None = None
    sidecar: dict[str, Any] | None = None
    labels: Sequence[str] | None = None
    labels_name: str = "labels.txt"
    extra: dict[str, Any] = field(default_factory=dict)


def _dump(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def write_model_folder(dest: str | os.PathLike[str], contents: FolderContents) -> Path:
    """Write ``contents`` as a model folder at ``dest`` (replacing it atomically)."""
    dest = Path(dest).resolve()
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        onnx.save_model(contents.device_graph, tmp / DEVICE_GRAPH)
        postamble_rel = ""
        if contents.postamble is not None:
            onnx.save_model(contents.postamble, tmp / POSTAMBLE_GRAPH)
            postamble_rel = POSTAMBLE_GRAPH
        manifest = manifest_dict(
            contents.inputs,
            contents.outputs,
            originals_nchw=contents.originals_nchw,
            postprocess_graph=postamble_rel,
            quantized_model_file=DEVICE_GRAPH,
        )
        _dump(tmp / MANIFEST, manifest)
        _dump(tmp / MODEL_JSON, {
            "format": EMULATOR_FORMAT,
            "format_version": 1,
            "device_graph": DEVICE_GRAPH,
            "batch": contents.inputs[0].shape[0],
            **contents.extra,
        })
        if contents.sidecar is not None:
            sidecar = dict(contents.sidecar)
            if contents.labels:
                (tmp / contents.labels_name).write_text(
                    "\n".join(contents.labels) + "\n", encoding="utf-8"
                )
                sidecar["labels"] = contents.labels_name
            _dump(tmp / SIDECAR, {"axrun_version": 1, **sidecar})
        os.chmod(tmp, 0o755)
        if dest.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old.", dir=dest.parent))
            os.rename(dest, old / "x")
            os.rename(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest
