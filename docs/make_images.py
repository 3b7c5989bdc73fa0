"""The README's pictures, made by axrun itself on the bundled models and photos:

- ``docs/images/hero.jpg``: detection on two sample photos side by side, annotated
  as ``--save-dir`` annotates;
- ``docs/images/terminal.svg``: what ``axrun classify`` shows in a 100-column
  terminal (run on a pseudo-terminal, its screen played through a terminal emulator,
  pyte, from the test dependencies).

    .venv/bin/python docs/make_images.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from rich.console import Console
from rich.style import Style
from rich.text import Text

import axrun
from axrun.annotate import BoxAnnotator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from terminal import run_on_terminal  # noqa: E402 - the tests' pty helper

SAMPLES = ROOT / "models" / "samples"
IMAGES = ROOT / "docs" / "images"


def hero() -> None:
    """Coffee and the cat, each 400 pixels high, side by side."""
    parts = [cv2.imread(str(SAMPLES / name)) for name in ("coffee.jpg", "chelsea.jpg")]
    parts = [cv2.resize(p, (round(p.shape[1] * 400 / p.shape[0]), 400),
                        interpolation=cv2.INTER_AREA) for p in parts]
    picture = np.hstack(parts)
    with axrun.load("yolox-nano-coco", task="detect") as model:
        [result] = model([picture])
    assert result.detections is not None
    cv2.imwrite(str(IMAGES / "hero.jpg"), BoxAnnotator().annotate(picture, result.detections),
                [cv2.IMWRITE_JPEG_QUALITY, 90])


def to_svg(screen: Any, command: str, path: Path) -> None:
    """The screen, colours and bold kept, as an SVG terminal window titled ``command``."""
    console = Console(record=True, width=screen.columns, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(Text(f"$ {command}", style="bold"))
    rows = [screen.buffer[y] for y in range(screen.lines)]
    while rows and not "".join(c.data for c in rows[-1].values()).strip():
        rows.pop()
    for row in rows:
        text = Text()
        for x in range(screen.columns):
            ch = row[x]
            color = None if ch.fg == "default" else ch.fg.replace("brown", "yellow")
            text.append(ch.data, Style(color=color if color is None or color.isalpha()
                                       else f"#{color}", bold=ch.bold))
        text.rstrip()
        console.print(text, no_wrap=True, overflow="crop")
    console.save_svg(str(path), title="axrun")


def main() -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    hero()
    command = "axrun classify models/samples/ models/calibration/"
    _, screen = run_on_terminal(command.split()[1:], ROOT, columns=100, lines=24)
    to_svg(screen, command, IMAGES / "terminal.svg")
    print(f"wrote {IMAGES / 'hero.jpg'}, {IMAGES / 'terminal.svg'}")


if __name__ == "__main__":
    main()
