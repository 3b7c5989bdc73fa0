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
from axrun.errors import CompileError
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


FIDELITY = "fidelity.json"  # written after the folder, by the compile-time check


def check_replaceable(dest: str | os.PathLike[str]) -> None:
    """Refuse an output folder that holds anything but a model folder ``axrun compile``
    wrote (its files and nothing else): compile replaces the folder whole, and the
    user's own files (photos, notes, the calibration folder itself) must not go with it.

    Raises:
        CompileError: naming what is in the way.
    """
    dest = Path(dest)
    if not dest.exists() and not dest.is_symlink():
        return
    if not dest.is_dir():
        raise CompileError(f"-o {dest}: a file is there, not a folder")
    try:
        names = sorted(p.name for p in dest.iterdir())
    except OSError as exc:
        raise CompileError(f"-o {dest}: cannot list it ({exc.strerror})") from exc
    if not names:
        return
    ours = {MODEL_JSON, MANIFEST, DEVICE_GRAPH, POSTAMBLE_GRAPH, SIDECAR, FIDELITY}
    try:
        model = json.loads((dest / MODEL_JSON).read_text(encoding="utf-8"))
        sidecar = json.loads((dest / SIDECAR).read_text(encoding="utf-8"))
        compiled = model.get("format") == EMULATOR_FORMAT and isinstance(sidecar, dict)
        ours.add(str(sidecar.get("labels") or ""))
    except (OSError, ValueError, AttributeError):
        compiled = False
    others = [n for n in names if n not in ours or not (dest / n).is_file()]
    if not compiled or others:
        listed = ", ".join((others or names)[:4]) + (", ..." if len(others or names) > 4 else "")
        raise CompileError(f"-o {dest} holds files axrun compile did not write ({listed}); "
                           "compile replaces its output folder whole: give a new folder, or "
                           "empty this one")


def write_model_folder(dest: str | os.PathLike[str], contents: FolderContents) -> Path:
    """Write ``contents`` as a model folder at ``dest``, replacing a model folder that
    was there atomically (see :func:`check_replaceable`).

    Raises:
        CompileError: ``dest`` holds other files.
    """
    check_replaceable(dest)
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
