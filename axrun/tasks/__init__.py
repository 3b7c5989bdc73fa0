"""Tasks: what to do before and after the device for one kind of network.

:func:`make_task` builds the task a model folder is for, with its options.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from typing import Any

from axrun.errors import ParameterError, UsageError
from axrun.modelfolder import ModelFolder, graph_io
from axrun.preprocess import PreprocessRecipe
from axrun.tasks.base import Task
from axrun.tasks.classify import Classifier
from axrun.tasks.detect import DetectOptions, Detector

TASKS = ("classify", "detect")
OPTIONS = {"classify": ("top_k", "scores"),
           "detect": ("conf", "iou", "max_det", "agnostic", "classes", "decoder")}


def class_ids(classes: Iterable[int | str] | int | str | None, labels: tuple[str, ...]) -> \
        frozenset[int] | None:
    """Class ids from ids and/or names (``["person", 2]``, or one of them alone; names in
    any case, ids as ints or digit strings).

    Raises:
        ParameterError: a name that is not among ``labels``, or a value that is neither.
    """
    if classes is None:
        return None
    if isinstance(classes, str | numbers.Integral):
        values: Iterable[object] = [classes]  # one class alone: not its name's characters
    elif isinstance(classes, Iterable):
        values = classes
    else:
        raise ParameterError("classes", f"must be class ids or names, not {classes!r}")
    lowered = [name.lower() for name in labels]
    ids = set()
    for value in values:
        text = value.strip() if isinstance(value, str) else None
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            ids.add(int(value))
        elif text is not None and text.isdigit():
            ids.add(int(text))
        elif text is not None and text.lower() in lowered:
            ids.add(lowered.index(text.lower()))
        elif text is not None:
            raise ParameterError("classes", f"has an unknown class {value!r}")
        else:
            raise ParameterError("classes", f"must be class ids or names, not {value!r}")
    return frozenset(ids)


def check_task_name(task: str) -> None:
    """Raises ParameterError unless ``task`` is one of :data:`TASKS`."""
    if task not in TASKS:
        raise ParameterError("task", f"must be one of {', '.join(TASKS)}, not {task!r}")


def task_name(folder: ModelFolder, task: str | None = None) -> str:
    """The task to run ``folder`` with: ``task``, else what its ``axrun.json`` says.

    Raises:
        ParameterError: neither says (a classifier's top-k of a detector's outputs would
            be a wrong answer, not an error), or not one of :data:`TASKS`.
    """
    name = task or folder.task
    if task is not None:
        check_task_name(task)
    if name is None:
        info = folder.info
        if info and info.categories and not info.tasks:
            raise UsageError(f"{info.path} says {'|'.join(info.categories)}: axrun runs "
                             f"{' and '.join(TASKS)} models")
        raise ParameterError("task", f"is needed: {folder.root} does not say what its model "
                             "does (no task in axrun.json or model_info.json); give classify "
                             "or detect")
    check_task_name(name)
    return name


def task_from_outputs(folder: ModelFolder) -> str | None:
    """The task the model's outputs fit, for folders whose metadata does not say
    (``axrun bench``): a postamble giving ``[N, C]`` (or ``[N, C, 1, 1]``), or one device
    output of 1x1, is a classifier's; a postamble giving ``[N, anchors, k]`` or two
    outputs, or several device outputs of more than 1x1, a detector's. None otherwise.

    Raises:
        ModelError: the postamble is not a readable ONNX graph.
    """
    if folder.postamble_path is not None:
        shapes = [o["shape"] for o in graph_io(folder.postamble_path)["outputs"]]
        if len(shapes) == 1 and (len(shapes[0]) == 2 or shapes[0][2:] == [1, 1]):
            return "classify"
        if len(shapes) == 2 or (len(shapes) == 1 and len(shapes[0]) == 3):
            return "detect"
        return None
    spatial = [o.unpadded_shape[1:3] for o in folder.manifest.outputs]
    if spatial == [(1, 1)]:
        return "classify"
    if len(spatial) > 1 and all(hw != (1, 1) for hw in spatial):
        return "detect"
    return None


def make_task(folder: ModelFolder, task: str | None = None, *,
              recipe: PreprocessRecipe | None = None, labels: tuple[str, ...] | None = None,
              **options: Any) -> Classifier | Detector:
    """The :class:`Classifier` or :class:`Detector` for ``folder`` (see
    :func:`task_name`). ``options``: ``top_k``, ``scores`` (classify); ``conf``,
    ``iou``, ``max_det``, ``agnostic``, ``classes`` (ids or names), ``decoder``
    (settings over ``axrun.json``'s, e.g. ``{"format": "yolox-decoded"}``) (detect).

    Raises:
        ParameterError: an option this task does not have, or a value it cannot use.
    """
    name = task_name(folder, task)
    unknown = sorted(set(options) - set(OPTIONS[name]))
    if unknown:
        raise ParameterError(unknown[0], f"is not an option of {name} models (those are: "
                             f"{', '.join(OPTIONS[name])})")
    if name == "classify":
        return Classifier(folder, recipe=recipe, labels=labels, **options)
    known = labels or folder.labels or ()
    options["classes"] = class_ids(options.get("classes"), known)
    decoder = options.pop("decoder", None)
    if decoder is not None and not isinstance(decoder, dict):
        raise ParameterError("decoder", f"must be a dict of settings, not {decoder!r}")
    return Detector(folder, recipe=recipe, labels=labels, options=DetectOptions(**options),
                    decoder=decoder)


__all__ = ["TASKS", "Classifier", "DetectOptions", "Detector", "Task", "class_ids",
           "make_task", "task_from_outputs", "task_name"]
