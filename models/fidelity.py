"""INT8-vs-float fidelity of the bundled models on the sample photos (run by ``make
models``), through the same code as ``axrun check`` (:mod:`axrun.fidelity`): the table
goes into models/README.md, and the build fails when a required result is missed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from axrun.fidelity import Comparison, check_model
from axrun.sources import expand

MARK_BEGIN = "<!-- fidelity:begin -->"
MARK_END = "<!-- fidelity:end -->"
# What the bundled models must get right: INT8 top-1 equals float top-1 and is one of
# these class ids; the detector finds an object of this class where float does.
CLASSIFY_MUST = {"coffee": {967}, "camera": {872}, "chelsea": {281, 282, 285}}
DETECT_MUST = {"astronaut": "person", "camera": "person", "coffee": "cup", "chelsea": "cat",
               "stereo_motorcycle": "motorcycle"}


def _run(folder: Path, float_model: Path, samples: Path) -> tuple[list[Comparison], str]:
    """Compare, and store the figures in the folder (``fidelity.json``, which ``axrun
    info`` shows)."""
    seen: list[Comparison] = []
    fidelity = check_model(folder, float_model, expand([str(samples)]), backend="emulator",
                           images_from=f"models/{samples.name}/ (also calibrated on)",
                           on_image=lambda c: seen.append(c) if isinstance(c, Comparison)
                           else None)
    fidelity.save(folder)
    return seen, fidelity.tally.summary()


def _verdict(passed: bool) -> str:
    return "pass" if passed else "FAIL"


def classification_row(c: Comparison) -> tuple[str, bool]:
    d: dict[str, Any] = c.detail
    name = Path(c.source).stem
    must = CLASSIFY_MUST.get(name)
    passed = must is None or (c.agrees and d["int8"]["id"] in must)
    return (f"| {name} | {d['float']['label']} {d['float']['score']:.2f} | "
            f"{d['int8']['label']} {d['int8']['score']:.2f} | {'yes' if c.agrees else 'no'} | "
            f"{'yes' if d['float_top1_in_int8_top5'] else 'no'} | {d['score_diff']:.3f} | "
            f"{_verdict(passed) if must else ''} |"), passed


def detection_row(c: Comparison) -> tuple[str, bool]:
    d: dict[str, Any] = c.detail
    name = Path(c.source).stem
    must = DETECT_MUST.get(name)
    missed = {b["label"] for b in d["missed"]}
    passed = must is None or (must in d["float_labels"] and must not in missed)
    differs = "; ".join([f"missed {', '.join(b['label'] for b in d['missed'])}"] * bool(d["missed"])
                        + [f"added {', '.join(b['label'] for b in d['extra'])}"] * bool(d["extra"]))
    iou = "-" if d["mean_iou"] is None else f"{d['mean_iou']:.2f}"
    return (f"| {name} | {d['float_boxes']}: {', '.join(d['float_labels']) or '-'} | "
            f"{d['int8_boxes']}: {', '.join(d['int8_labels']) or '-'} | {d['matched']} | {iou} | "
            f"{differs or '-'} | {f'{must} {_verdict(passed)}' if must else ''} |"), passed


def report(effnet: Path, yolox: Path, cls: Path, det: Path, samples: Path, readme: Path) -> None:
    c_seen, c_summary = _run(cls, effnet, samples)
    d_seen, d_summary = _run(det, yolox, samples)
    c_rows = [classification_row(c) for c in c_seen]
    d_rows = [detection_row(c) for c in d_seen]
    text = "\n".join([
        MARK_BEGIN,
        "Classification, `efficientnet-lite0-imagenet` (`axrun check efficientnet-lite0-imagenet "
        "--float build/models-cache/efficientnet-lite0.onnx models/samples/`):",
        "",
        "| photo | float top-1 | INT8 top-1 | top-1 agrees | float top-1 in INT8 top-5 | "
        "score difference | required |",
        "|---|---|---|---|---|---|---|",
        *(row for row, _ in c_rows),
        "",
        f"Summary: {c_summary}.",
        "",
        "Detection, `yolox-nano-coco` (`axrun check yolox-nano-coco --float "
        "build/models-cache/yolox-nano.onnx models/samples/`; conf 0.25, NMS IoU 0.45; boxes "
        "matched by class at IoU ≥ 0.5):",
        "",
        "| photo | float boxes | INT8 boxes | matched | mean IoU | INT8 differs | required |",
        "|---|---|---|---|---|---|---|",
        *(row for row, _ in d_rows),
        "",
        f"Summary: {d_summary}.",
        MARK_END,
    ])
    print(text)
    body = readme.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(MARK_BEGIN) + ".*?" + re.escape(MARK_END), re.S)
    readme.write_text(pattern.sub(lambda _: text, body) if pattern.search(body)
                      else body + "\n" + text + "\n", encoding="utf-8")
    if not all(ok for _, ok in c_rows + d_rows):
        raise SystemExit("error: the INT8 models miss a required result (see FAIL above)")
