"""Compiled model folders: finding them and reading ``manifest.json`` and ``axrun.json``.

A model folder holds ``model.json`` (what the runtime loads), ``manifest.json``
(tensor shapes, padding and quantization, Voyager field names), optionally
``postprocess_graph.onnx`` (the float postamble) and axrun's own sidecar
``axrun.json`` (task, preprocessing recipe, labels file, decoder settings).

Wherever a model is accepted, a path that exists is taken as it is; otherwise a bare
name (no path separator) is looked up, in order, in each folder of ``AXRUN_MODELS``
(``os.pathsep``-separated), then in the package's own ``axrun/models/`` (package data:
the bundled ``efficientnet-lite0-imagenet`` and ``yolox-nano-coco``), see
:func:`find_model_json`.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from axrun.errors import ModelError
from axrun.preprocess import PreprocessRecipe
from axrun.runtime import CORES_PER_DEVICE
from axrun.tensors import TensorSpec as TensorSpec  # re-exported (defined in axrun.tensors)

MANIFEST = "manifest.json"
MODEL_JSON = "model.json"
SIDECAR = "axrun.json"
MODEL_INFO = "model_info.json"  # the Voyager SDK's model metadata, one level above <cores>/
TASKS = ("classify", "detect")


@dataclass(frozen=True)
class Manifest:
    """The parsed ``manifest.json`` of a compiled model."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    model_lib_file: str
    postprocess_graph: str
    preprocess_graph: str
    raw: dict[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @property
    def batch(self) -> int:
        return self.inputs[0].shape[0]


@dataclass(frozen=True)
class Sidecar:
    """axrun's ``axrun.json``: what the compiled folder alone does not say."""

    task: str | None
    preprocess: PreprocessRecipe | None
    labels_file: str | None
    decoder: dict[str, Any]
    device_config: dict[str, int] = field(default_factory=dict)
    int16: tuple[str, ...] = ()  # activations compile kept at 16 bits


@dataclass(frozen=True)
class ModelInfo:
    """What the Voyager SDK's ``model_info.json`` (one level above ``<cores>/``) says
    that axrun uses: ``categories``, the SDK's task categories in lower case
    (``classification``, ``objectdetection``...; the SDK may list several, ``A|B``),
    ``labels`` (None when the list is empty) and ``num_classes`` (None when absent)."""

    path: Path
    categories: tuple[str, ...]
    labels: tuple[str, ...] | None
    num_classes: int | None = None

    @property
    def tasks(self) -> tuple[str, ...]:
        """The axrun tasks those categories are (none: a kind axrun does not run)."""
        return tuple(SDK_TASKS[c] for c in self.categories if c in SDK_TASKS)


SDK_TASKS = {"classification": "classify", "objectdetection": "detect"}


@dataclass(frozen=True)
class ModelFolder:
    """A located and parsed model folder. ``labels``: from ``axrun.json``'s labels
    file, else the SDK's ``model_info.json``; ``info``: that file, when there is one."""

    root: Path
    manifest: Manifest
    sidecar: Sidecar | None
    labels: tuple[str, ...] | None
    info: ModelInfo | None = None

    @property
    def model_json(self) -> Path:
        return self.root / (self.manifest.model_lib_file or MODEL_JSON)

    @property
    def postamble_path(self) -> Path | None:
        rel = self.manifest.postprocess_graph
        return self.root / rel if rel else None

    @property
    def task(self) -> str | None:
        """The task ``axrun.json`` names, else the one ``model_info.json`` names (if it
        names exactly one axrun runs)."""
        if self.sidecar and self.sidecar.task:
            return self.sidecar.task
        if self.info and len(set(self.info.tasks)) == 1:
            return self.info.tasks[0]
        return None

    @property
    def name(self) -> str:
        return self.root.name


BUNDLED = {"classify": "efficientnet-lite0-imagenet", "detect": "yolox-nano-coco"}
MODELS_ENV = "AXRUN_MODELS"


@dataclass(frozen=True)
class NamedModel:
    """A model folder found by name on :func:`model_search_path`: ``path`` is
    ``<base>/<name>/``, which holds ``model.json``; ``source`` is ``AXRUN_MODELS`` or
    ``bundled`` (the package's own)."""

    name: str
    path: Path
    source: str


def package_models_dir() -> Path | None:
    """The package's own model folders, ``axrun/models/`` (package data, located with
    :mod:`importlib.resources`, so the same in a venv, a ``pip install --user``, a
    system-wide or an editable install); None if the package is not on the file
    system (imported from a zip archive: the runtime needs real files)."""
    from importlib.resources import files

    root = files("axrun") / "models"
    return root if isinstance(root, Path) else None


def model_search_path() -> list[Path]:
    """Where model folders are looked up by name, in order: the folders of
    ``AXRUN_MODELS`` (``os.pathsep``-separated, in their order), then the package's own
    ``axrun/models/`` (:func:`package_models_dir`). A model named N is the folder
    ``<base>/N/`` holding ``model.json``; the first base that has one wins."""
    paths = [Path(p) for p in os.environ.get(MODELS_ENV, "").split(os.pathsep) if p]
    package = package_models_dir()
    if package is not None:
        paths.append(package)
    return paths


def is_model_name(path: str | os.PathLike[str]) -> bool:
    """Whether *path* is a bare name (no path separator) that may name a model folder
    on :func:`model_search_path`."""
    text = os.fspath(path)
    separators = {"/", os.sep, os.altsep or os.sep}
    return text not in ("", ".", "..") and not any(s in text for s in separators)


def available_models() -> list[NamedModel]:
    """The models that can be named, in :func:`model_search_path` order (names sorted
    within one base); a name found twice is listed once, as the first base has it."""
    found: dict[str, NamedModel] = {}
    package = package_models_dir()
    for base in model_search_path():
        source = "bundled" if base == package else MODELS_ENV
        try:
            children = sorted(base.iterdir())
        except OSError:  # an AXRUN_MODELS entry that is missing or not a folder
            continue
        for child in children:
            if child.name not in found and not child.name.startswith(".") and \
                    (child / MODEL_JSON).is_file():
                found[child.name] = NamedModel(child.name, child, source)
    return list(found.values())


def find_named_model(name: str) -> Path | None:
    """The folder of the model called *name* on :func:`model_search_path`, or None."""
    if not is_model_name(name):
        return None
    for base in model_search_path():
        if (base / name / MODEL_JSON).is_file():
            return base / name
    return None


def _searched() -> str:
    return ", ".join(str(base) for base in model_search_path()) or "nowhere"


def _names_hint() -> str:
    names = [m.name for m in available_models()]
    if not names:
        return f"no models can be named (looked in {_searched()}; set {MODELS_ENV})"
    return f"models by name: {', '.join(names)} (axrun models lists them)"


def bundled_model(task: str) -> Path:
    """The default model folder for a task (:data:`BUNDLED`), found by name as
    :func:`find_named_model` does (``AXRUN_MODELS`` first, then the package's own).

    Raises:
        ModelError: it is in none of those folders.
    """
    name = BUNDLED[task]
    found = find_named_model(name)
    if found is None:
        raise ModelError(f"bundled model {name!r} not found (looked in {_searched()}); "
                         f"pass -m MODEL or set {MODELS_ENV}")
    return found


def find_model_json(path: str | os.PathLike[str]) -> Path:
    """Resolve *path* to a ``model.json``.

    Accepts the file itself, its folder, a parent holding exactly one compiled folder
    (the Voyager ``build/<net>/<model>/<cores>/`` layout), or a model's name. In order:
    a path that exists wins; otherwise a bare name (no path separator) is looked up on
    :func:`model_search_path` (``AXRUN_MODELS`` folders, then the bundled models:
    ``yolox-nano-coco`` is ``axrun/models/yolox-nano-coco/``).

    Raises:
        ModelError: nothing found (the message lists the models that can be named), or
            several candidates (they are listed).
    """
    p = Path(path)
    shadowed = ""  # a model of this name, hidden by a path that exists here
    if not p.exists():
        named = find_named_model(os.fspath(path))
        if named is None:
            raise ModelError(f"model path not found: {p}; {_names_hint()}")
        p = named
    elif (named := find_named_model(os.fspath(path))) is not None and named != p:
        shadowed = (f" (the path {p} here hides the model named {p}, in {named}: give "
                    "that folder, or run from another folder)")
    if p.is_file():
        if p.name == MANIFEST:
            p = p.parent
        elif shadowed and p.name != MODEL_JSON:
            raise ModelError(f"{p} is a file, not a model folder{shadowed}")
        else:
            return p
    if (p / MODEL_JSON).is_file():
        return p / MODEL_JSON
    candidates = sorted(q for q in p.rglob(MODEL_JSON) if (q.parent / MANIFEST).is_file())
    if not candidates:
        raise ModelError(f"no compiled model (model.json + manifest.json) under {p}"
                         + shadowed)
    if len(candidates) > 1:
        listed = ", ".join(str(c.parent) for c in candidates[:10])
        raise ModelError(f"{p} holds {len(candidates)} compiled models; pick one: {listed}")
    return candidates[0]


def load_model_folder(path: str | os.PathLike[str]) -> ModelFolder:
    """Locate and parse a model folder: a path, or a model's name (see
    :func:`find_model_json` for the order).

    Raises:
        ModelError: a missing or malformed file or field, named in the message.
    """
    model_json = find_model_json(path)
    root = model_json.parent
    manifest = read_manifest(root / MANIFEST)
    sidecar = read_sidecar(root / SIDECAR) if (root / SIDECAR).is_file() else None
    info = next((read_model_info(p) for p in (root / MODEL_INFO, root.parent / MODEL_INFO)
                 if p.is_file()), None)
    labels = info.labels if info else None
    if sidecar and sidecar.labels_file:
        labels = read_labels(root / sidecar.labels_file)
    return ModelFolder(root=root, manifest=manifest, sidecar=sidecar, labels=labels, info=info)


def read_model_info(path: Path) -> ModelInfo:
    """Parse the SDK's ``model_info.json``: ``task_category``, ``labels`` and
    ``num_classes`` (the rest is the SDK's bookkeeping).

    Raises:
        ModelError: the file or one of those fields is malformed.
    """
    f = _Fields(path, read_json(path))
    category = f.text("task_category", "")
    labels = f.get("labels", None)
    if labels is not None and (not isinstance(labels, list)
                               or not all(isinstance(x, str) for x in labels)):
        raise f.fail("labels", "must be a list of class names")
    num_classes = f.get("num_classes", None)
    if num_classes is not None and (isinstance(num_classes, bool)
                                    or not isinstance(num_classes, int) or num_classes < 1):
        raise f.fail("num_classes", "must be a positive integer")
    categories = tuple(c.strip().lower().replace("_", "") for c in category.split("|")
                       if c.strip())
    return ModelInfo(path, categories, tuple(labels) if labels else None, num_classes)


def read_json(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModelError(f"{path}: file not found") from None
    except OSError as exc:
        raise ModelError(f"{path}: cannot read ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise ModelError(f"{path}: not UTF-8 text (byte {exc.start}): not a JSON file "
                         "axrun can read") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelError(f"{path}: invalid JSON at line {exc.lineno}: {exc.msg}") from exc
    if not isinstance(data, dict):
        raise ModelError(f"{path}: expected a JSON object at the top level")
    return data


def read_labels(path: Path) -> tuple[str, ...]:
    """Read a labels file: one class name per line (blank lines at the end ignored)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ModelError(f"{path}: cannot read labels file ({exc.strerror})") from exc
    except UnicodeDecodeError as exc:
        raise ModelError(f"{path}: labels file is not UTF-8 text (byte {exc.start})") \
            from None
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise ModelError(f"{path}: labels file is empty")
    return tuple(line.strip() for line in lines)


class _Fields:
    """Typed access to the fields of one JSON file, with errors naming file and field."""

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path = path
        self.data = data

    def fail(self, key: str, why: str) -> ModelError:
        return ModelError(f"{self.path}: field '{key}' {why}")

    def get(self, key: str, default: Any = ...) -> Any:
        if key not in self.data:
            if default is ...:
                raise self.fail(key, "is missing")
            return default
        return self.data[key]

    def shapes(self, key: str) -> list[tuple[int, ...]]:
        value = self.get(key)
        if not isinstance(value, list) or not value or not all(_is_int_list(s) for s in value):
            raise self.fail(key, "must be a non-empty list of integer shape lists")
        return [tuple(int(d) for d in s) for s in value]

    def params(self, key: str, count: int) -> list[tuple[float, int]]:
        value = self.get(key)
        ok = isinstance(value, list) and len(value) == count
        ok = ok and all(isinstance(p, list | tuple) and len(p) == 2 for p in value)
        if not ok:
            raise self.fail(key, f"must be a list of {count} [scale, zero_point] pairs")
        out = []
        for scale, zp in value:
            if not isinstance(scale, int | float) or not scale > 0 or not math.isfinite(scale):
                raise self.fail(key, f"has an invalid scale {scale!r} (must be > 0)")
            if not isinstance(zp, int | float) or int(zp) != zp or not -128 <= zp <= 127:
                raise self.fail(key, f"has an invalid zero point {zp!r} (int8 expected)")
            out.append((float(scale), int(zp)))
        return out

    def text(self, key: str, default: str = "") -> str:
        value = self.get(key, default)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise self.fail(key, "must be a string")
        return value


def _is_int_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(d, int) and d > 0 for d in value)


def _padding_from_manifest(
    fields: _Fields, key: str, index: int, shape: tuple[int, ...],
    original: tuple[int, ...] | None,
) -> tuple[tuple[int, int], ...]:
    """Per-dimension padding of one tensor from ``n_padded_ch_*`` (8- or legacy 4-tuple).
    ``original``: the unpadded shape, None when the manifest has none (version 1.0:
    then the padding alone, as an 8-tuple, says it)."""
    rank = len(shape)
    unpadded_nhwc = _original_as_nhwc(original, rank) if original is not None else None
    entries = fields.get(key, None)
    entry = None
    if entries is not None:
        if not isinstance(entries, list) or len(entries) <= index:
            raise fields.fail(key, f"has no entry for tensor {index}")
        entry = entries[index]
        if not _is_padding_tuple(entry):
            raise fields.fail(key, f"entry {index} must be 8 or 4 non-negative integers")
    if entry is not None and len(entry) == 2 * rank:
        pads = tuple((int(entry[2 * i]), int(entry[2 * i + 1])) for i in range(rank))
    elif entry is not None and len(entry) == 4 and rank == 4:
        top, left, bottom, right = (int(v) for v in entry)
        if original is None:
            raise fields.fail(key, f"entry {index} is a legacy 4-value padding, which says "
                              "nothing of channels; without an original shape (a version "
                              "1.1 field) the tensor's channels are unknown")
        channel = shape[3] - unpadded_nhwc[3] if unpadded_nhwc else 0
        pads = ((0, 0), (top, bottom), (left, right), (0, max(channel, 0)))
    elif entry is not None:
        raise fields.fail(key, f"entry {index} has {len(entry)} values for a rank-{rank} tensor")
    else:
        if unpadded_nhwc is None:
            raise fields.fail(key, f"is missing and tensor {index}'s original shape is unclear")
        pads = tuple((0, p - u) for p, u in zip(shape, unpadded_nhwc, strict=True))
    unpadded = tuple(d - lo - hi for d, (lo, hi) in zip(shape, pads, strict=True))
    if any(d <= 0 for d in unpadded):
        raise fields.fail(key, f"entry {index} pads away the whole of shape {list(shape)}")
    if unpadded_nhwc is not None and unpadded != unpadded_nhwc:
        raise fields.fail(
            key,
            f"entry {index}: shape {list(shape)} minus padding gives {list(unpadded)}, "
            f"but the original shape {list(original or ())} is {list(unpadded_nhwc)} in NHWC",
        )
    if original is not None and unpadded_nhwc is None and \
            math.prod(unpadded) != math.prod(original):
        raise fields.fail(key, f"entry {index} does not match original shape {list(original)}")
    return pads


def _is_padding_tuple(entry: Any) -> bool:
    return (
        isinstance(entry, list | tuple)
        and len(entry) in (4, 8)
        and all(isinstance(v, int) and v >= 0 for v in entry)
    )


def _original_as_nhwc(original: tuple[int, ...], rank: int) -> tuple[int, ...] | None:
    """The unpadded NHWC shape an original (NCHW or N,C) shape stands for, if clear."""
    if rank != 4:
        return original if len(original) == rank else None
    if len(original) == 4:
        n, c, h, w = original
        return (n, h, w, c)
    if len(original) == 2:
        n, c = original
        return (n, 1, 1, c)
    return None


def read_manifest(path: Path) -> Manifest:
    """Parse a Voyager ``manifest.json``.

    Raises:
        ModelError: naming the file and the field that is missing or malformed.
    """
    f = _Fields(path, read_json(path))
    specs: dict[str, tuple[TensorSpec, ...]] = {}
    for kind in ("input", "output"):
        shapes = f.shapes(f"{kind}_shapes")
        # Version 1.0 manifests have no original shapes: the padding alone says them.
        originals: list[tuple[int, ...] | None] = [None] * len(shapes)
        if f.get(f"{kind}_shapes_original", None) is not None:
            originals = list(f.shapes(f"{kind}_shapes_original"))
            if len(originals) != len(shapes):
                raise f.fail(f"{kind}_shapes_original", f"must have {len(shapes)} entries")
        params_key = "quantize_params" if kind == "input" else "dequantize_params"
        params = f.params(params_key, len(shapes))
        names = f.get(f"{kind}_names", None)
        if names is not None and (
            not isinstance(names, list) or len(names) != len(shapes)
            or not all(isinstance(n, str) for n in names)
        ):
            raise f.fail(f"{kind}_names", f"must be a list of {len(shapes)} strings")
        # input_dtypes/output_dtypes are bookkeeping: the SDK writes the original
        # model's (uint8, float32...); device tensors are int8 whatever they say.
        tensors = []
        for i, shape in enumerate(shapes):
            if len(shape) != 4:
                raise f.fail(f"{kind}_shapes", f"entry {i} must be a 4-D NHWC shape")
            pads = _padding_from_manifest(f, f"n_padded_ch_{kind}s", i, shape, originals[i])
            name = names[i] if names else f"{kind}{i}"
            scale, zp = params[i]
            tensors.append(TensorSpec(name, shape, pads, scale, zp))
        specs[kind] = tuple(tensors)
    batches = {t.shape[0] for t in specs["input"]} | {t.shape[0] for t in specs["output"]}
    if len(batches) != 1:
        raise f.fail("input_shapes", f"tensors disagree on the batch size: {sorted(batches)}")
    postamble = f.text("postprocess_graph") or f.text("postamble_graph")
    preamble = f.text("preprocess_graph") or f.text("preamble_graph")
    for key, rel in (("postprocess_graph", postamble), ("preprocess_graph", preamble)):
        if rel and not (path.parent / rel).is_file():
            raise f.fail(key, f"names {rel!r}, which does not exist in {path.parent}")
    return Manifest(
        inputs=specs["input"],
        outputs=specs["output"],
        model_lib_file=f.text("model_lib_file", MODEL_JSON) or MODEL_JSON,
        postprocess_graph=postamble,
        preprocess_graph=preamble,
        raw=f.data,
    )


def read_sidecar(path: Path) -> Sidecar:
    """Parse axrun's ``axrun.json`` sidecar.

    Raises:
        ModelError: naming the file and the field that is malformed.
    """
    f = _Fields(path, read_json(path))
    task = f.get("task", None)
    if task is not None and task not in TASKS:
        raise f.fail("task", f"must be one of {', '.join(TASKS)}, not {task!r}")
    recipe = None
    if f.get("preprocess", None) is not None:
        try:
            recipe = PreprocessRecipe.from_dict(f.get("preprocess"))
        except (TypeError, ValueError) as exc:
            raise f.fail("preprocess", f"is invalid: {exc}") from exc
    labels = f.text("labels") or None
    if labels and not (path.parent / labels).is_file():
        raise f.fail("labels", f"names {labels!r}, which does not exist in {path.parent}")
    decoder = f.get("decoder", {})
    if not isinstance(decoder, dict):
        raise f.fail("decoder", "must be an object")
    device_config = f.get("device_config", {})
    if not isinstance(device_config, dict) or not all(
            isinstance(v, int) and not isinstance(v, bool) for v in device_config.values()):
        raise f.fail("device_config", "must be an object of integer settings")
    int16 = f.get("int16_tensors", [])
    if not isinstance(int16, list) or not all(isinstance(t, str) for t in int16):
        raise f.fail("int16_tensors", "must be a list of tensor names")
    return Sidecar(task=task, preprocess=recipe, labels_file=labels, decoder=decoder,
                   device_config=device_config, int16=tuple(int16))


def manifest_dict(
    inputs: Sequence[TensorSpec],
    outputs: Sequence[TensorSpec],
    *,
    originals_nchw: tuple[Sequence[Sequence[int]], Sequence[Sequence[int]]],
    postprocess_graph: str = "",
    quantized_model_file: str = "",
) -> dict[str, Any]:
    """Build a ``manifest.json`` document (Voyager field names) for the given tensors."""

    def pads8(t: TensorSpec) -> list[int]:
        return [v for pair in t.padding for v in pair]

    return {
        "manifest_version": 1,
        "model_lib_file": MODEL_JSON,
        "quantized_model_file": quantized_model_file,
        "input_names": [t.name for t in inputs],
        "output_names": [t.name for t in outputs],
        "input_shapes": [list(t.shape) for t in inputs],
        "output_shapes": [list(t.shape) for t in outputs],
        "input_shapes_original": [list(s) for s in originals_nchw[0]],
        "output_shapes_original": [list(s) for s in originals_nchw[1]],
        "input_dtypes": ["int8"] * len(inputs),
        "output_dtypes": ["int8"] * len(outputs),
        "quantize_params": [[t.scale, t.zero_point] for t in inputs],
        "dequantize_params": [[t.scale, t.zero_point] for t in outputs],
        "n_padded_ch_inputs": [pads8(t) for t in inputs],
        "n_padded_ch_outputs": [pads8(t) for t in outputs],
        "postprocess_graph": postprocess_graph,
        "preprocess_graph": "",
    }


def graph_io(path: Path) -> dict[str, list[dict[str, Any]]]:
    """The inputs and outputs of an ONNX graph: name and shape (ints, or the names of
    symbolic dimensions).

    Raises:
        ModelError: the file is not a readable ONNX graph.
    """
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise ModelError(f"{path}: cannot read ONNX graph ({exc})") from exc

    def dims(v: Any) -> list[int | str]:
        return [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]

    inits = {i.name for i in model.graph.initializer}
    return {
        "inputs": [{"name": v.name, "shape": dims(v)} for v in model.graph.input
                   if v.name not in inits],
        "outputs": [{"name": v.name, "shape": dims(v)} for v in model.graph.output],
    }


def network_input_hw(folder: ModelFolder) -> tuple[int, int]:
    """The image size (H, W, pixels) the network takes: its preamble's input when it
    has one (``[N, 3, H, W]``; the device input may be smaller, e.g. YOLOv5's
    space-to-depth halves it), else the device input's unpadded H, W.

    Raises:
        ModelError: the preamble's input has no fixed 4-D shape.
    """
    if folder.manifest.preprocess_graph:
        path = folder.root / folder.manifest.preprocess_graph
        shapes = [i["shape"] for i in graph_io(path)["inputs"]]
        if len(shapes) != 1 or len(shapes[0]) != 4 or \
                not all(isinstance(d, int) and d > 0 for d in shapes[0][2:]):
            raise ModelError(f"{path}: the preamble must take one [1, 3, H, W] image, "
                             f"not {shapes}")
        return int(shapes[0][2]), int(shapes[0][3])
    _, h, w, _ = folder.manifest.inputs[0].unpadded_shape
    return h, w


def describe(folder: ModelFolder, cores_per_device: int = CORES_PER_DEVICE) -> dict[str, Any]:
    """Everything ``axrun info`` reports, as a JSON-ready dict (layout documented)."""

    def tensor(t: TensorSpec) -> dict[str, Any]:
        return {
            "name": t.name,
            "shape": list(t.shape),
            "unpadded_shape": list(t.unpadded_shape),
            "padding": [list(p) for p in t.padding],
            "scale": t.scale,
            "zero_point": t.zero_point,
            "bytes": t.size,
        }

    batch = folder.manifest.batch
    side = folder.sidecar
    return {
        "model": str(folder.root),
        "model_json": str(folder.model_json),
        "batch": batch,
        "instances_per_device": cores_per_device // batch,
        "inputs": [tensor(t) for t in folder.manifest.inputs],
        "outputs": [tensor(t) for t in folder.manifest.outputs],
        "manifest_version": folder.manifest.raw.get("manifest_version"),
        "postamble": (
            {"path": folder.manifest.postprocess_graph, **graph_io(folder.postamble_path)}
            if folder.postamble_path else None
        ),
        "preamble": (
            {"path": folder.manifest.preprocess_graph,
             **graph_io(folder.root / folder.manifest.preprocess_graph)}
            if folder.manifest.preprocess_graph else None
        ),
        "task": folder.task,
        "preprocess": side.preprocess.to_dict() if side and side.preprocess else None,
        "labels": (
            {"file": side.labels_file if side and side.labels_file else
             str(folder.info.path) if folder.info else None, "count": len(folder.labels)}
            if folder.labels else None
        ),
        "decoder": side.decoder if side else None,
    }
