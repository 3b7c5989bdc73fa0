"""What users coming from Ultralytics ``yolo predict`` type, and what to say to them.

``yolo predict model=yolo11n.pt source=bus.jpg imgsz=640 half=True save_txt=True`` takes
``key=value`` settings; axrun takes inputs as arguments and options as ``--flags``,
and some settings (input size, precision, batch) are fixed when a model is compiled
for Metis. :func:`foreign_argument` turns such an argument into a one-line hint
before the command line parser would say "No such option" (or suggest an unrelated
option that happens to be spelled alike: ``--source`` → ``--iou``).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Mapping, Sequence

COMPILED = "is fixed when the model is compiled for Metis"

# Ultralytics predict settings axrun has no option for → what to use instead.
HINTS = {
    "source": "inputs are arguments: axrun detect PATH... (files, folders, globs, -, "
              "URLs, cameras)",
    "model": "use -m MODEL (a model folder or a bundled model's name: axrun models)",
    "imgsz": f"the input size {COMPILED} (axrun info MODEL shows it); images are "
             "resized to it",
    "half": f"precision {COMPILED}: it runs INT8",
    "int8": f"precision {COMPILED}: it runs INT8",
    "dynamic": f"the input size {COMPILED}",
    "batch": f"the batch size {COMPILED}; axrun runs cores // batch instances "
             "(--aipu-cores)",
    "device": "use --devices (Metis devices by index or name) and axrun --backend",
    "save": "use --save-dir DIR for annotated copies",
    "project": "use --save-dir DIR (the folder, named in full)",
    "name": "use --save-dir DIR (the folder, named in full)",
    "exist-ok": "annotated copies axrun wrote are replaced; --overwrite replaces a "
                "results file",
    "show": "axrun opens no windows: --save-dir DIR writes annotated copies",
    "save-frames": "--save-dir writes annotated videos; --save-crop DIR cuts out boxes",
    "stream": "inputs are always streamed (memory stays flat)",
    "stream-buffer": "live streams are read as they come; frames are not buffered",
    "visualize": "not supported: the model runs as compiled",
    "augment": "not supported: the model runs as compiled",
    "agnostic-nms": "use --agnostic",
    "retina-masks": "segmentation models are not supported",
    "show-labels": "labels are shown; --hide-labels hides them",
    "show-conf": "scores are shown; --hide-conf hides them",
    "show-boxes": "boxes are always drawn",
    "verbose": "output is verbose by default; -q/--quiet silences it",
    "embed": "not supported",
}


def foreign_argument(args: Sequence[str], options: Mapping[str, str | None]) -> str | None:
    """A hint for the first argument in ``args`` (a command's arguments, after its
    name) written the Ultralytics way, given the command's own ``options`` (``--conf``
    → what its value is called, ``NUM``; None for a flag); None when there is none.

    Not looked at: the values of the command's options (``--save-dir name=run1``),
    ``key=value`` arguments that name existing files (or match some, as globs), and
    anything past ``--``."""
    skip = False
    for arg in args:
        if skip or arg == "--":
            if arg == "--":
                return None
            skip = False
            continue
        if options.get(arg) is not None:  # an option of ours whose value comes next
            skip = True
            continue
        dashed = arg.startswith("--")
        key, sep, value = arg.removeprefix("--").partition("=")
        if not dashed and (not sep or os.path.exists(arg) or glob.glob(arg)):
            continue
        flag = "--" + key.replace("_", "-")
        if dashed and f"--{key}" in options:
            continue
        if flag in options:
            if dashed:
                return f"{arg}: the option is {flag}"
            named = options[flag]
            boolean = value.lower() in ("true", "false", "")  # save_txt=True: DIR here
            written = flag if named is None else f"{flag} {named if boolean else value}"
            return f"{arg}: write {written}"
        hint = HINTS.get(key.replace("_", "-"))
        if hint is not None:
            return f"{arg}: {hint}"
    return None
