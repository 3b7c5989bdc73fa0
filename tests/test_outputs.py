"""Outputs never land on inputs or silently replace earlier results."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from test_reliability import SAMPLES, axrun

pytestmark = pytest.mark.timeout(120)


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("coffee.jpg", "astronaut.jpg"):
        (folder / name).write_bytes((SAMPLES / name).read_bytes())
    return folder


@pytest.mark.parametrize("how", ["folder", "folder-inside", "file-in-cwd", "glob"])
def test_annotated_copies_never_replace_an_input(photos: Path, how) -> None:
    before = digest(photos)
    args = {"folder": ([str(photos), "--save-dir", str(photos)], None),
            "folder-inside": ([str(photos), "--save-dir", str(photos / "out")], None),
            "file-in-cwd": (["coffee.jpg", "--save-dir", "."], photos),
            "glob": ([str(photos / "*.jpg"), "--save-dir", str(photos)], None)}[how]
    result = axrun("detect", *args[0], "-o", "-", cwd=args[1])
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "--save-dir" in result.stderr
    assert result.stdout == ""  # refused before anything ran
    assert digest(photos) == before


def test_paths_from_stdin_are_checked_when_written(photos: Path) -> None:
    before = digest(photos)
    result = axrun("detect", "-", "--save-dir", str(photos), "-o", "-",
                   input=f"{photos / 'coffee.jpg'}\n")
    assert result.returncode == 2 and "would replace it" in result.stderr
    assert digest(photos) == before


def test_an_existing_results_file_is_kept_unless_asked(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    assert axrun("classify", str(photos), "-o", str(out)).returncode == 0
    first = out.read_bytes()
    again = axrun("classify", str(photos / "coffee.jpg"), "-o", str(out))
    assert again.returncode == 2 and "already exists" in again.stderr
    assert "--overwrite" in again.stderr and out.read_bytes() == first
    replaced = axrun("classify", str(photos / "coffee.jpg"), "-o", str(out), "--overwrite")
    assert replaced.returncode == 0 and len(out.read_text().splitlines()) == 1
    resumed = axrun("classify", str(photos), "-o", str(out), "--resume")
    assert resumed.returncode == 0 and len(out.read_text().splitlines()) == 2


def test_the_results_file_cannot_be_an_input(photos: Path) -> None:
    before = digest(photos)
    result = axrun("classify", str(photos / "coffee.jpg"), "-o",
                   str(photos / "coffee.jpg"), "--overwrite")
    assert result.returncode == 2 and "is the input" in result.stderr
    assert digest(photos) == before
