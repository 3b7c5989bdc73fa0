"""``axrun classify`` through the real CLI, on the bundled model and tiny ones."""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from modelgen import reference_outputs
from test_sources import write_image, write_video
from typer.testing import CliRunner

from axrun.cli import app
from axrun.modelfolder import load_model_folder
from axrun.preprocess import Preprocessor, PreprocessRecipe

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "models" / "samples"
CATS = {281, 282, 285}
runner = CliRunner()


def records(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_bundled_model_labels_real_photos() -> None:
    result = runner.invoke(app, ["classify", str(SAMPLES), "-q"])
    assert result.exit_code == 0, result.output
    by_name = {Path(r["source"]).stem: r for r in records(result.stdout)}
    assert by_name["coffee"]["top"][0]["label"] == "espresso"
    assert by_name["chelsea"]["top"][0]["id"] in CATS
    assert by_name["camera"]["top"][0]["label"] == "tripod"
    first = by_name["coffee"]
    assert (first["width"], first["height"]) == (600, 400) and first["v"] == 1
    assert len(first["top"]) == 5
    assert sum(t["score"] for t in first["top"]) <= 1.0


def test_order_errors_and_exit_status(tmp_path: Path) -> None:
    write_image(tmp_path / "a.png")
    (tmp_path / "b.jpg").write_bytes(b"garbage")
    write_image(tmp_path / "c.png")
    result = runner.invoke(app, ["classify", str(tmp_path), str(tmp_path / "nope.png"), "-q"])
    assert result.exit_code == 1
    recs = records(result.stdout)
    assert [Path(r["source"]).name for r in recs] == ["a.png", "b.jpg", "c.png", "nope.png"]
    assert recs[1]["error"]["type"] == "decode" and "top" not in recs[1]
    assert recs[3]["error"]["type"] == "not_found"


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv"])
def test_output_formats_parse_back(tmp_path: Path, fmt: str) -> None:
    (tmp_path / "bad.jpg").write_bytes(b"x")
    out = tmp_path / f"results.{fmt}"
    result = runner.invoke(app, ["classify", str(SAMPLES / "coffee.jpg"), str(tmp_path / "bad.jpg"),
                                 "-o", str(out), "-k", "3", "-q"])
    assert result.exit_code == 1 and result.stdout == ""
    text = out.read_text()
    if fmt == "jsonl":
        recs = records(text)
        assert recs[0]["top"][0]["label"] == "espresso" and recs[1]["error"]["type"] == "decode"
    elif fmt == "json":
        recs = json.loads(text)
        assert recs[0]["top"][0]["label"] == "espresso" and recs[1]["error"]["type"] == "decode"
    else:
        rows = list(csv.DictReader(io.StringIO(text)))
        assert rows[0]["label_1"] == "espresso" and rows[0]["id_1"] == "967"
        assert rows[0]["width"] == "600" and "score_3" in rows[0]
        assert rows[1]["error_type"] == "decode" and rows[1]["label_1"] in ("", None)


def test_unknown_output_suffix_is_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["classify", str(SAMPLES), "-o", str(tmp_path / "r.xml")])
    assert result.exit_code == 2 and "unknown output format" in result.stderr


def test_top_k_matches_float_reference_on_tiny_model(tiny, tmp_path: Path) -> None:
    gen = tiny(kind="classifier", classes=10, size=8)
    folder = load_model_folder(gen.path)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(5):
        image = rng.integers(0, 256, (10 + i, 12, 3), dtype=np.uint8)
        cv2.imwrite(str(tmp_path / f"{i}.png"), image)
        paths.append(tmp_path / f"{i}.png")
    result = runner.invoke(app, ["classify", "-m", str(gen.path), str(tmp_path), "-k", "3",
                                 "--resize", "9", "--mean", "127", "--std", "128",
                                 "--color", "rgb", "-q"])
    assert result.exit_code == 0, result.output
    recipe = PreprocessRecipe(mode="crop", resize=9, color="rgb", mean=(127,) * 3,
                              std=(128,) * 3)
    pre = Preprocessor(recipe, folder.manifest.inputs[0])
    for rec, path in zip(records(result.stdout), paths, strict=True):
        x = pre.new_buffer()
        pre(cv2.imread(str(path)), x[0])
        (q,) = reference_outputs(gen, folder.manifest.inputs[0], folder.manifest.outputs, x)
        logits = (q[0, 0, 0].astype(np.float32) - folder.manifest.outputs[0].zero_point)
        expected = list(np.argsort(-logits, kind="stable")[:3])
        assert [t["id"] for t in rec["top"]] == expected
        assert rec["top"][0]["label"] == f"class_{expected[0]}"


def test_video_frames_get_frame_and_time(tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.mp4", 5)
    result = runner.invoke(app, ["classify", str(video), "--vid-stride", "2", "-q"])
    recs = records(result.stdout)
    assert [(r["frame"], r["time_s"]) for r in recs] == [(0, 0.0), (2, 0.2), (4, 0.4)]
    assert all(r["width"] == 64 and r["height"] == 48 for r in recs)


def run_cli(args: list[str], stdin: bytes = b"", **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "axrun", *args], input=stdin,
                          capture_output=True, timeout=120, **kw)


def test_stdin_paths_with_spaces_and_unicode_and_nul(tmp_path: Path) -> None:
    names = ["a photo.jpg", "кот ☕.jpg"]
    for n in names:
        (tmp_path / n).write_bytes((SAMPLES / "coffee.jpg").read_bytes())
    lines = "".join(f"{tmp_path / n}\n" for n in names).encode()
    proc = run_cli(["classify", "-", "-q", "-k", "1"], lines)
    assert proc.returncode == 0, proc.stderr
    recs = records(proc.stdout.decode())
    assert [r["source"] for r in recs] == [str(tmp_path / n) for n in names]
    assert all(r["top"][0]["label"] == "espresso" for r in recs)
    nul = b"\0".join(os.fsencode(tmp_path / n) for n in names)
    proc = run_cli(["classify", "-0", "-", "-q", "-k", "1"], nul)
    assert [r["source"] for r in records(proc.stdout.decode())] == [str(tmp_path / n)
                                                                    for n in names]


def _pty_run(args: list[str], stdout_tty: bool) -> tuple[str, bytes, int]:
    """Run with stderr (and optionally stdout) on a pseudo-terminal."""
    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": "120", "TERM": "xterm"}
    proc = subprocess.Popen([sys.executable, "-m", "axrun", *args], stdin=subprocess.DEVNULL,
                            stdout=slave if stdout_tty else subprocess.PIPE, stderr=slave,
                            env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    out = proc.stdout.read() if proc.stdout else b""
    code = proc.wait(60)
    os.close(master)
    return b"".join(chunks).decode(errors="replace"), out, code


def test_json_reaches_the_pipe_and_the_terminal_gets_the_summary() -> None:
    tty, out, code = _pty_run(["classify", str(SAMPLES)], stdout_tty=False)
    assert code == 0
    assert len(records(out.decode())) == 6  # nothing rerouted to stderr by rich
    # no bar (the pipe's reader may print to this terminal), the summary
    assert "6/6" not in tty and "input(s), 0 failed" in tty
    assert '"source"' not in tty


def test_table_on_a_terminal() -> None:
    tty, _, code = _pty_run(["classify", str(SAMPLES), "-k", "2"], stdout_tty=True)
    assert code == 0
    assert "top classes" in tty and "espresso" in tty and '{"v"' not in tty
