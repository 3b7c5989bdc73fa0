"""``--help`` reads well at 80 columns, and arguments written the Ultralytics way get a
hint instead of an unrelated suggestion."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from axrun.cli.ultralytics import foreign_argument

SAMPLES = Path(__file__).resolve().parents[2] / "models" / "samples"
COMMANDS = ["classify", "detect", "info", "devices", "models", "compile", "bench", "exec"]


def axrun(*args: str, columns: int = 80) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": str(columns), "TERM": "dumb"}
    return subprocess.run([sys.executable, "-m", "axrun", *args], capture_output=True,
                          text=True, env=env, timeout=60)


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_fits_80_columns_and_shows_flags_as_flags(command: str | None) -> None:
    result = axrun(*([command] if command else []), "--help")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), max(lines, key=len)
    assert "…" not in result.stdout  # nothing cut off
    assert "<bool>" not in result.stdout  # flags take no value
    if command != "devices":
        assert "Examples" in result.stdout
        # examples keep their indentation (a command per line, not reflowed)
        examples = result.stdout.split("Examples")[1].splitlines()[2]
        assert examples.strip().startswith(("axrun ", "find ")) and \
            examples.startswith("   "), examples


@pytest.mark.parametrize(("args", "said"), [
    (["--source", "x.jpg"], "--source: inputs are arguments"),
    (["source=x.jpg"], "source=x.jpg: inputs are arguments"),
    (["--imgsz", "640"], "--imgsz: the input size is fixed when the model is compiled"),
    (["--half"], "--half: precision is fixed when the model is compiled"),
    (["conf=0.5"], "conf=0.5: write --conf 0.5"),
    (["save_txt=True"], "save_txt=True: write --save-txt DIR"),
    (["save_conf=True"], "save_conf=True: write --save-conf"),
    (["--save_txt", "labels/"], "--save_txt: the option is --save-txt"),
    (["--agnostic_nms"], "--agnostic_nms: use --agnostic"),
    (["--device", "0"], "--device: use --devices"),
])
def test_ultralytics_arguments_get_a_hint(args: list[str], said: str) -> None:
    result = axrun("detect", str(SAMPLES), *args)
    assert result.returncode == 2
    assert result.stderr == f"error: {said}" + result.stderr.split(said, 1)[1]
    assert result.stderr.count("\n") == 1 and result.stdout == ""


def test_what_is_not_foreign_is_left_to_the_parser(tmp_path: Path) -> None:
    options = {"--conf": "NUM", "--save-txt": "DIR", "--save-dir": "DIR", "-o": "FILE",
               "--agnostic": None}
    odd = tmp_path / "conf=0.5.jpg"  # a file that happens to look like a setting
    odd.write_bytes(b"")
    assert foreign_argument([str(odd), "--conf", "0.3"], options) is None
    assert foreign_argument([str(tmp_path / "conf=*.jpg")], options) is None  # a glob
    # values of our own options
    assert foreign_argument(["x/", "--save-dir", "name=run1", "-o", "conf=1.jsonl",
                             "--save-txt", "save=1"], options) is None
    assert foreign_argument(["photos/", "--", "--source"], options) is None
    assert foreign_argument(["photos/", "--bogus"], options) is None  # the parser's job


def test_exec_passes_ultralytics_style_arguments_on() -> None:
    result = axrun("exec", "--", sys.executable, "-c", "import sys; print(sys.argv[1:])",
                   "model=y", "--imgsz", "640")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['model=y', '--imgsz', '640']"
