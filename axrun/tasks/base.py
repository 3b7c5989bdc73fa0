"""What the tasks share: the task interface, preprocessing recipes and their defaults,
labels, and the model/task check."""

from __future__ import annotations

import dataclasses
from typing import Protocol

import numpy as np

from axrun.errors import ModelError, ParameterError, UsageError
from axrun.modelfolder import ModelFolder, network_input_hw
from axrun.preprocess import Geometry, InputWriter, PreprocessRecipe
from axrun.results import Prediction

# For model folders without axrun.json, the conventions their families were trained
# with: torchvision's ImageNet normalization (classify), Ultralytics' RGB 0-1 centred
# letterbox padded with 114 (detect).
DEFAULT_RECIPES = {
    "classify": PreprocessRecipe(mode="crop", color="rgb", mean=(123.675, 116.28, 103.53),
                                 std=(58.395, 57.12, 57.375)),
    "detect": PreprocessRecipe(mode="letterbox", color="rgb", std=(255.0, 255.0, 255.0)),
}
CROP_RATIO = 224 / 256  # the usual ImageNet centre crop: 224 of a 256 short side


class Task(Protocol):
    """What the engine needs from a task (classify, detect...)."""

    @property
    def preprocessor(self) -> InputWriter:
        """What writes images into the device input (its recipe and input size tell
        how far a JPEG may be decoded reduced)."""
        ...

    def preprocess(self, image: np.ndarray, slots: list[np.ndarray]) -> Geometry:
        """Write one BGR ``uint8`` image (H, W, 3) into its batch slot of each padded
        int8 input; return how its pixels map to the network's."""
        ...

    def postprocess(self, outputs: list[np.ndarray],
                    geometries: list[Geometry | None]) -> list[Prediction | None]:
        """The prediction for each batch slot (``geometries[i]`` None: no frame there)
        from the padded int8 outputs. Must not keep references to ``outputs``."""
        ...


def _triple(values: tuple[float, ...] | float) -> tuple[float, float, float]:
    """One value for every channel, or three."""
    if isinstance(values, int | float):
        return (float(values),) * 3
    if len(values) == 1:
        return (float(values[0]),) * 3
    if len(values) != 3:
        raise ValueError("give one value or three (R, G, B)")
    return (float(values[0]), float(values[1]), float(values[2]))


def preprocess_recipe(folder: ModelFolder, task: str, *, resize: int | None = None,
                      crop: float | None = None,
                      mean: tuple[float, ...] | float | None = None,
                      std: tuple[float, ...] | float | None = None,
                      color: str | None = None) -> PreprocessRecipe:
    """The preprocessing recipe for ``folder``: its ``axrun.json``, else the task's
    default (:data:`DEFAULT_RECIPES`), with any of the given settings applied.

    ``resize``: short side in pixels before the centre crop; ``crop``: the crop as a
    fraction of the short side (resize = input size / crop); ``mean``/``std``: 0-255
    units, one value or three in the network's channel order; ``color``: rgb or bgr.

    Raises:
        ParameterError: a setting cannot be used (named as above).
    """
    sidecar = folder.sidecar.preprocess if folder.sidecar else None
    base = sidecar or DEFAULT_RECIPES[task]
    size = min(network_input_hw(folder))
    if sidecar is None and base.mode == "crop" and base.resize is None:
        base = dataclasses.replace(base, resize=round(size / CROP_RATIO))
    if resize is not None and crop is not None:
        raise ParameterError("resize", "and crop cannot both be given")
    changes: dict[str, object] = {}
    if resize is not None:
        changes.update(mode="crop", resize=resize)
    if crop is not None:
        if not 0 < crop <= 1:
            raise ParameterError("crop", f"is a fraction in (0, 1], not {crop}")
        changes.update(mode="crop", resize=round(size / crop))
    for name, value in (("mean", mean), ("std", std)):
        if value is not None:
            try:
                changes[name] = _triple(value)
            except (TypeError, ValueError) as exc:
                raise ParameterError(name, f"must be one number or three: {exc}") from None
    if color is not None:
        changes["color"] = color.lower()
    try:
        return dataclasses.replace(base, **changes)  # type: ignore[arg-type]
    except ValueError as exc:  # its messages start with the setting's name
        name, _, problem = str(exc).partition(" ")
        raise ParameterError(name, problem) from exc


def declared_classes(folder: ModelFolder, override: tuple[str, ...] | None) -> int | None:
    """How many classes the metadata says the model has: the labels given, else the
    folder's (``axrun.json``'s file, else ``model_info.json``'s), else
    ``model_info.json``'s ``num_classes``; None when nothing says.

    Raises:
        ModelError: ``model_info.json``'s labels and ``num_classes`` disagree (and no
            labels were given to settle it).
    """
    if override:
        return len(override)
    info = folder.info
    if info and info.labels and info.num_classes and len(info.labels) != info.num_classes \
            and folder.labels == info.labels:
        raise ModelError(f"{info.path}: labels has {len(info.labels)} names but num_classes "
                         f"says {info.num_classes}: give the right labels (--labels)")
    if folder.labels:
        return len(folder.labels)
    return info.num_classes if info else None


def label_names(folder: ModelFolder, override: tuple[str, ...] | None, classes: int) -> \
        tuple[str, ...]:
    """Labels from the override or the folder; ``class_<id>`` where none are known.

    Raises:
        ModelError: the labels, or ``model_info.json``'s ``num_classes``, do not count
            the model's classes (names off by one would be wrong names, not an error).
    """
    declared = declared_classes(folder, override)
    if declared is not None and declared != classes:
        what = (f"the labels list has {declared} names" if override or folder.labels else
                f"{folder.info.path if folder.info else ''}: num_classes says {declared}")
        raise ModelError(f"{what}; the model has {classes} classes")
    labels = override or folder.labels
    if labels is None:
        return tuple(f"class_{i}" for i in range(classes))
    return labels


def check_task(folder: ModelFolder, task: str) -> None:
    """Refuse a model whose ``axrun.json`` or SDK ``model_info.json`` says it is for
    another task (a keypoint or segmentation model, say, is no detector), or that the
    tasks cannot feed: several device inputs (one image feeds one input)."""
    manifest = folder.manifest
    if len(manifest.inputs) != 1:
        raise ModelError(f"{folder.root}: the model has {len(manifest.inputs)} device inputs; "
                         "axrun's tasks feed one image to one input")
    if folder.sidecar and folder.sidecar.task:  # axrun.json, when it says, has the word
        if folder.sidecar.task != task:
            raise UsageError(f"{folder.root} is a {folder.sidecar.task} model (axrun.json), "
                             f"not a {task} model")
        return
    info = folder.info
    if info and info.categories and task not in info.tasks:
        raise UsageError(f"{info.path} says {'|'.join(info.categories)}: not a {task} model")
