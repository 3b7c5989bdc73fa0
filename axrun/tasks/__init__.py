"""Tasks: what to do before and after the device for one kind of network.

:func:`make_task` builds the task a model folder is for, with its options.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from axrun.errors import ParameterError
from axrun.modelfolder import ModelFolder
from axrun.preprocess import PreprocessRecipe
from axrun.tasks.base import Task
from axrun.tasks.classify import Classifier
from axrun.tasks.detect import DetectOptions, Detector

TASKS = ("classify", "detect")
OPTIONS = {"classify": ("top_k", "scores"),
           "detect": ("conf", "iou", "max_det", "agnostic", "classes")}


def class_ids(classes: Iterable[int | str] | None, labels: tuple[str, ...]) -> \
        frozenset[int] | None:
    """Class ids from ids and/or names (``["person", 2]``; names in any case).

    Raises:
        ParameterError: a name that is not among ``labels``.
    """
    if classes is None:
        return None
    lowered = [name.lower() for name in labels]
    ids = set()
    for value in classes:
        if isinstance(value, int):
            ids.add(value)
        elif value.strip().isdigit():
            ids.add(int(value))
        elif value.strip().lower() in lowered:
            ids.add(lowered.index(value.strip().lower()))
        else:
            raise ParameterError("classes", f"unknown class {value!r}")
    return frozenset(ids)


def task_name(folder: ModelFolder, task: str | None = None) -> str:
    """The task to run ``folder`` with: ``task``, else what its ``axrun.json`` says.

    Raises:
        ParameterError: neither says (a classifier's top-k of a detector's outputs would
            be a wrong answer, not an error), or not one of :data:`TASKS`.
    """
    name = task or folder.task
    if name is None:
        raise ParameterError("task", f"is needed: {folder.root} does not say what its model "
                             "does (no task in axrun.json); give classify or detect")
    if name not in TASKS:
        raise ParameterError("task", f"must be one of {', '.join(TASKS)}, not {name!r}")
    return name


def make_task(folder: ModelFolder, task: str | None = None, *,
              recipe: PreprocessRecipe | None = None, labels: tuple[str, ...] | None = None,
              **options: Any) -> Classifier | Detector:
    """The :class:`Classifier` or :class:`Detector` for ``folder`` (see
    :func:`task_name`). ``options``: ``top_k``, ``scores`` (classify); ``conf``,
    ``iou``, ``max_det``, ``agnostic``, ``classes`` (ids or names) (detect).

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
    return Detector(folder, recipe=recipe, labels=labels, options=DetectOptions(**options))


__all__ = ["TASKS", "Classifier", "DetectOptions", "Detector", "Task", "class_ids",
           "make_task", "task_name"]
