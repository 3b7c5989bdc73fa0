"""What a user sees in a real terminal: the command runs under a pseudo-terminal (stdout
and stderr both on it, 100 columns) and its output is played through a terminal
emulator (pyte); the screen, scrolled-off lines included, must hold clean rows."""

from __future__ import annotations

import json
import os
import pty
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from terminal import read_until_closed, run_on_terminal, screen_lines

SAMPLES = Path(__file__).resolve().parents[2] / "models" / "samples"
COLUMNS, LINES = 100, 30
BAR = "━"


def run_in_terminal(args: list[str], cwd: Path, columns: int = COLUMNS) -> \
        tuple[int, list[str]]:
    """Run ``python -m axrun ARGS`` on a pty; its status and every line it showed."""
    code, screen = run_on_terminal(args, cwd, columns, LINES)
    return code, screen_lines(screen)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """80 photos with long names, and one broken file: long enough for the bar to
    draw many times between rows."""
    root = tmp_path_factory.mktemp("terminal")
    photos = root / "a-folder-with-a-rather-long-name"
    photos.mkdir()
    for i in range(16):
        for p in SAMPLES.glob("*.jpg"):
            shutil.copy(p, photos / f"{p.stem}-{i:02d}-with-a-long-suffix.jpg")
    (photos / "broken.jpg").write_bytes(b"not a jpeg")
    return root


def test_table_rows_and_progress_never_tangle(folder: Path) -> None:
    code, lines = run_in_terminal(["classify", "a-folder-with-a-rather-long-name"], folder)
    assert code == 1, "\n".join(lines)  # broken.jpg failed
    assert not any(BAR in line for line in lines), "a bar fragment was left on screen"
    # rows: the input (shortened from the left past half the width), then its result
    rows = [line for line in lines if line.startswith(("a-folder-with", "…"))]
    assert len(rows) == 16 * len(list(SAMPLES.glob("*.jpg"))) + 1
    headers = [i for i, line in enumerate(lines) if line.startswith("input ")]
    assert len(headers) == 1
    # every row is one line, no wider than the terminal, its result on the same line
    for row in rows:
        assert len(row) <= COLUMNS
        assert ("broken.jpg" in row and "decode" in row) or ("-with-a-long-suffix.jpg  " in row \
            and " 0." in row), row
    # nothing but rows between the header and the summary
    body = lines[headers[0] + 1:]
    summary = [i for i, line in enumerate(body) if "input(s), 1 failed" in line]
    assert len(summary) == 1 and body[:summary[0]] == rows
    assert sum(line.startswith("plan: ") for line in lines) == 1


def test_json_lines_on_a_terminal_stay_whole(folder: Path) -> None:
    # a terminal wide enough that no record wraps: each record is one screen line
    code, lines = run_in_terminal(["classify", "a-folder-with-a-rather-long-name", "-o", "-",
                                   "-k", "1"], folder, columns=400)
    assert code == 1
    assert not any(BAR in line for line in lines), "a bar fragment was left on screen"
    records = [json.loads(line) for line in lines if line.startswith("{")]
    assert len(records) == 16 * len(list(SAMPLES.glob("*.jpg"))) + 1
    others = [line for line in lines if not line.startswith("{")]
    assert [line.split(":")[0] for line in others] == ["plan", others[-1].split(":")[0]]
    assert "input(s), 1 failed" in others[-1]


def test_no_bar_when_stdout_is_a_pipe(folder: Path) -> None:
    """``axrun classify ... | jq``: jq prints to the terminal the bar is drawn on, so no
    bar; the summary still comes."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "axrun", "classify",
                             "a-folder-with-a-rather-long-name"], cwd=folder,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=follower)
    os.close(follower)
    records = proc.stdout.read() if proc.stdout else b""
    err = read_until_closed(leader)
    assert proc.wait(timeout=60) == 1
    assert len(records.splitlines()) == 16 * len(list(SAMPLES.glob("*.jpg"))) + 1
    assert BAR.encode() not in err and b"input(s), 1 failed" in err


def test_table_columns_line_up_when_the_inputs_are_known(folder: Path) -> None:
    code, lines = run_in_terminal(["classify", "a-folder-with-a-rather-long-name",
                                   "a-folder-with-a-rather-long-name/broken.jpg"], folder,
                                  columns=200)
    assert code == 1
    rows = [line for line in lines if line.startswith("a-folder-with")]
    starts = {len(row) - len(row[row.index(".jpg") + 4:].lstrip()) for row in rows}
    assert len(rows) == 16 * len(list(SAMPLES.glob("*.jpg"))) + 2 and len(starts) == 1
