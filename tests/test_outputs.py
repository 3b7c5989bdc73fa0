"""Outputs never land on inputs or silently replace earlier results."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
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


@pytest.mark.parametrize("flag", ["--save-dir", "--save-txt", "--save-crop"])
@pytest.mark.parametrize("how", ["folder", "folder-inside", "file-in-cwd", "glob"])
def test_annotated_copies_never_replace_an_input(photos: Path, how, flag) -> None:
    before = digest(photos)
    args = {"folder": ([str(photos), flag, str(photos)], None),
            "folder-inside": ([str(photos), flag, str(photos / "out")], None),
            "file-in-cwd": (["coffee.jpg", flag, "."], photos),
            "glob": ([str(photos / "*.jpg"), flag, str(photos)], None)}[how]
    result = axrun("detect", *args[0], "-o", "-", cwd=args[1])
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and f"{flag} " in result.stderr
    assert result.stdout == ""  # refused before anything ran
    assert digest(photos) == before


def test_paths_from_stdin_are_checked_when_written(photos: Path) -> None:
    # `cd photos && ls | axrun detect - --save-dir .`: not known before the run
    before = digest(photos)
    result = axrun("detect", "-", "--save-dir", ".", "-o", "-", input="coffee.jpg\n",
                   cwd=photos)
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


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
def test_a_full_disk_is_an_output_error_naming_the_file(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    out.symlink_to("/dev/full")  # every write: ENOSPC
    result = axrun("classify", str(SAMPLES), "-o", str(out))
    assert result.returncode == 4, result.stderr
    assert f"error: {out}: cannot write (No space left on device)" in result.stderr
    assert "Traceback" not in result.stderr


def model_copy(tmp_path: Path, name: str = "efficientnet-lite0-imagenet") -> Path:
    folder = tmp_path / name
    shutil.copytree(SAMPLES.parents[1] / "axrun" / "models" / name, folder)
    return folder


@pytest.mark.parametrize(("file", "damage", "message"), [
    ("model.onnx", b"", "cannot load device graph"),
    ("model.onnx", b"\x08\x07garbage" * 10, "cannot load device graph"),
    ("manifest.json", b"\xff\xfe{}", "not UTF-8 text"),
    ("axrun.json", b"\xff\xfe{}", "not UTF-8 text"),
    ("labels.txt", b"caf\xe9\n", "not UTF-8 text"),
])
def test_a_damaged_model_folder_is_one_line_and_exit_3(tmp_path: Path, file, damage,
                                                        message) -> None:
    folder = model_copy(tmp_path)
    (folder / file).write_bytes(damage)
    result = axrun("classify", str(SAMPLES), "-m", str(folder), "-o", "-")
    assert result.returncode == 3, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(folder / file) in errors[0] and message in errors[0]
    assert "Traceback" not in result.stderr and result.stdout == ""


@pytest.mark.parametrize(("option", "message"), [
    (["--devices", ",,"], "--devices ',,' names no device"),
    (["--resize", "100000"], "--resize must be at most 3584"),
])
def test_bad_option_values_are_refused_before_the_device_opens(option, message) -> None:
    result = axrun("classify", str(SAMPLES), "-o", "-", *option)
    assert result.returncode == 2 and message in result.stderr
    assert "plan:" not in result.stderr  # no device was opened
    assert "Traceback" not in result.stderr


def test_a_very_deep_folder_tree_is_walked(tmp_path: Path) -> None:
    deep = tmp_path / "deep"
    deep.mkdir()
    levels = [deep]
    try:
        for _ in range(1200):  # deeper than Python's recursion limit (one at a time:
            levels.append(levels[-1] / "d")  # mkdir(parents=True) recurses too)
            levels[-1].mkdir()
        (levels[-1] / "a.jpg").write_bytes((SAMPLES / "coffee.jpg").read_bytes())
        (deep / "b.jpg").write_bytes((SAMPLES / "rocket.jpg").read_bytes())
        result = axrun("classify", str(deep), "-o", "-", "-k", "1")
        recs = [json.loads(line) for line in result.stdout.splitlines()]
        assert result.returncode == 0, result.stderr[-500:]
        assert [r["source"].rsplit("/", 1)[1] for r in recs] == ["b.jpg", "a.jpg"]
    finally:  # bottom up: pytest's own clean-up (shutil.rmtree) recurses, and would fail
        for level in reversed(levels):
            for child in level.iterdir():
                if not child.is_dir():
                    child.unlink()
            if level != deep:
                level.rmdir()


@pytest.fixture
def latin1(tmp_path: Path) -> Path:
    """A folder holding an image whose name is Latin-1 bytes (not UTF-8)."""
    folder = tmp_path / "latin1"
    folder.mkdir()
    name = os.fsdecode(b"caf\xe9.jpg")
    (folder / name).write_bytes((SAMPLES / "coffee.jpg").read_bytes())
    (folder / "plain.jpg").write_bytes((SAMPLES / "rocket.jpg").read_bytes())
    return folder


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv"])
def test_a_name_that_is_not_utf8_round_trips_in_every_output(latin1: Path, tmp_path: Path,
                                                               fmt) -> None:
    out = tmp_path / f"r.{fmt}"
    result = axrun("classify", str(latin1), "-o", str(out), "-k", "1")
    assert result.returncode == 0, result.stderr[-800:]
    text = out.read_bytes().decode("utf-8")  # valid UTF-8 throughout
    if fmt == "csv":
        import csv
        import io
        recs = list(csv.DictReader(io.StringIO(text)))
    else:
        recs = ([json.loads(line) for line in text.splitlines()] if fmt == "jsonl"
                else json.loads(text))
    odd = recs[0]
    assert odd["source"] == f"{latin1}/caf\ufffd.jpg"  # readable, and...
    assert base64.b64decode(odd["source_b64"]) == os.fsencode(latin1) + b"/caf\xe9.jpg"
    assert recs[1].get("source_b64") in (None, "")  # ...only names that need it


def test_resume_finds_inputs_whose_names_are_not_utf8(latin1: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    assert axrun("classify", str(latin1), "-o", str(out), "--limit", "1").returncode == 0
    resumed = axrun("classify", str(latin1), "-o", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr[-800:]
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert [Path(r["source"]).name for r in recs] == ["caf\ufffd.jpg", "plain.jpg"]


@pytest.mark.parametrize("content", [b"\x00\xff\xfe binary \x80\n", b"[1, 2]\n",
                                     b'{"source": 5}\n'])
def test_resume_of_a_file_axrun_did_not_write_is_refused(tmp_path: Path, content) -> None:
    out = tmp_path / "r.jsonl"
    assert axrun("classify", str(SAMPLES / "coffee.jpg"), "-o", str(out)).returncode == 0
    out.write_bytes(content)
    result = axrun("classify", str(SAMPLES / "coffee.jpg"), "-o", str(out), "--resume")
    assert result.returncode == 2 and "line 1 is not an axrun record" in result.stderr
    assert "Traceback" not in result.stderr and out.read_bytes() == content


def test_resume_from_another_working_folder(photos: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    first = axrun("classify", "photos", "-o", "r.jsonl", "--limit", "1", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    resumed = axrun("classify", "../photos", "-o", str(out), "--resume", cwd=elsewhere)
    assert resumed.returncode == 0, resumed.stderr
    assert "1 input(s) already recorded" in resumed.stderr  # not dropped and rerun
    assert "\n1 input(s), 0 failed" in resumed.stderr
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    # the earlier record was found (not rerun), and every source is now relative to here
    assert [r["source"] for r in recs] == ["../photos/astronaut.jpg", "../photos/coffee.jpg"]
    again = axrun("classify", "../photos", "-o", str(out), "--resume", cwd=elsewhere)
    assert again.returncode == 0 and "0 input(s)" in again.stderr
    assert out.read_text().splitlines() == [json.dumps(r, ensure_ascii=False,
                                                       separators=(", ", ": ")) for r in recs]


def count_frames(path: Path) -> int:
    import cv2

    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def test_an_annotated_video_killed_plays_to_its_last_frame_and_resume_completes(
        tmp_path: Path) -> None:
    from test_reliability import start, wait_for_lines
    from test_sources import write_video

    video = write_video(tmp_path / "clip.mp4", 60, size=(96, 64))
    out, results = tmp_path / "out", tmp_path / "r.jsonl"
    proc = start("detect", str(video), "--save-dir", str(out), "-o", str(results),
                 env={"AXRUN_EMULATOR_LATENCY_MS": "60"})
    wait_for_lines(results, 15, proc)
    proc.kill()  # SIGKILL: nothing is closed or renamed
    proc.wait(30)
    recorded = len(results.read_text().splitlines())
    partial = out / "clip.partial.mp4"
    # nothing hidden: the partial video, and the list of what axrun wrote there
    assert sorted(p.name for p in out.iterdir()) == [".axrun-written", partial.name]
    assert recorded - 2 <= count_frames(partial) <= recorded  # plays to its last frame
    resumed = axrun("detect", str(video), "--save-dir", str(out), "-o", str(results),
                    "--resume")
    assert resumed.returncode == 0, resumed.stderr[-500:]
    first = json.loads(results.read_text().splitlines()[recorded])["frame"]
    rest = out / f"clip.from-{first}.mp4"
    assert sorted(p.name for p in out.iterdir()) == sorted([".axrun-written",
                                                            partial.name, rest.name])
    assert count_frames(rest) == 60 - first


def test_resume_puts_a_changed_file_back_in_input_order(photos: Path, tmp_path: Path) -> None:
    (photos / "rocket.jpg").write_bytes((SAMPLES / "rocket.jpg").read_bytes())
    out = tmp_path / "r.jsonl"
    assert axrun("classify", str(photos), "-o", str(out), "-k", "1").returncode == 0
    (photos / "astronaut.jpg").write_bytes((SAMPLES / "chelsea.jpg").read_bytes())
    resumed = axrun("classify", str(photos), "-o", str(out), "-k", "1", "--resume")
    assert resumed.returncode == 0 and "1 record(s) of changed files dropped" in resumed.stderr
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    assert [Path(r["source"]).name for r in recs] == ["astronaut.jpg", "coffee.jpg",
                                                      "rocket.jpg"]
    assert "cat" in recs[0]["top"][0]["label"]  # the new content's record, in its place


@pytest.mark.parametrize("how", ["files", "folders", "stdin"])
def test_an_input_deeper_inside_the_save_dir_is_never_replaced(tmp_path: Path, how) -> None:
    # cam1/f.jpg's copy goes to bk/cam1/f.jpg, which is the other input
    (tmp_path / "cam1").mkdir()
    (tmp_path / "bk" / "cam1").mkdir(parents=True)
    (tmp_path / "cam1" / "f.jpg").write_bytes((SAMPLES / "astronaut.jpg").read_bytes())
    kept = tmp_path / "bk" / "cam1" / "f.jpg"
    kept.write_bytes((SAMPLES / "rocket.jpg").read_bytes())
    before = kept.read_bytes()
    inputs = {"files": ["cam1/f.jpg", "bk/cam1/f.jpg"], "folders": ["cam1", "bk/cam1"],
              "stdin": ["-"]}[how]
    result = axrun("detect", *inputs, "--save-dir", "bk", "-o", "-", cwd=tmp_path,
                   input="cam1/f.jpg\nbk/cam1/f.jpg\n")
    # found before the run (inputs named) or when the copy would be written (stdin)
    said = "save folder bk: bk/cam1/f.jpg exists" if how == "stdin" else "--save-dir bk holds"
    assert result.returncode == 2 and said in result.stderr, result.stderr
    assert kept.read_bytes() == before


@pytest.mark.parametrize("link", ["symlink", "hardlink"])
@pytest.mark.parametrize("how", ["folder", "stdin"])
def test_overwrite_replaces_a_linked_results_file_never_the_input(photos: Path,
                                                                  tmp_path: Path, link,
                                                                  how) -> None:
    out = tmp_path / "r.jsonl"
    if link == "symlink":
        out.symlink_to(photos / "coffee.jpg")
    else:
        os.link(photos / "coffee.jpg", out)
    before = digest(photos)
    inputs = [str(photos)] if how == "folder" else ["-"]
    result = axrun("classify", *inputs, "-o", str(out), "--overwrite",
                   input=f"{photos / 'coffee.jpg'}\n")
    assert result.returncode == 0, result.stderr
    assert digest(photos) == before  # the input is intact; r.jsonl is now the results
    assert not out.is_symlink() and json.loads(out.read_text().splitlines()[0])["top"]


def test_records_to_a_device_are_written_through_it_never_replace_it() -> None:
    import stat

    for extra in ([], ["--overwrite"]):
        result = axrun("classify", str(SAMPLES / "coffee.jpg"), "-o", os.devnull, *extra)
        assert result.returncode == 0, result.stderr
        assert stat.S_ISCHR(os.stat(os.devnull).st_mode)  # still the device
        assert not os.path.exists(os.devnull + ".partial")
        assert not os.path.exists(os.devnull + ".run.json")  # nothing written beside it
