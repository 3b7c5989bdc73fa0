"""Nothing lost: bad inputs, limits on failures, signals, resume, device and model faults.

Everything here runs the real ``axrun`` in a subprocess.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_sources import write_video

SAMPLES = Path(__file__).resolve().parents[1] / "models" / "samples"
pytestmark = pytest.mark.timeout(180)


def axrun(*args: str, env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "axrun", *args], capture_output=True,
                          text=True, timeout=150, env={**os.environ, **(env or {})}, **kw)


def start(*args: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "axrun", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(
        ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def exif_rotated_jpeg(path: Path) -> None:
    """A 40x20 JPEG whose EXIF says: rotate 90° clockwise to display (orientation 6)."""
    ok, data = cv2.imencode(".jpg", np.zeros((20, 40, 3), np.uint8))
    assert ok
    tiff = (b"MM\x00\x2a\x00\x00\x00\x08" + struct.pack(">H", 1)
            + struct.pack(">HHIHH", 0x0112, 3, 1, 6, 0) + struct.pack(">I", 0))
    app1 = b"Exif\x00\x00" + tiff
    body = data.tobytes()
    path.write_bytes(body[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + body[2:])


def make_corpus(folder: Path) -> dict[str, str | None]:
    """Every bad input of the issue; value = expected error type, None = a result."""
    folder.mkdir()
    coffee = (SAMPLES / "coffee.jpg").read_bytes()
    _, png = cv2.imencode(".png", cv2.imread(str(SAMPLES / "chelsea.jpg")))
    png = png.tobytes()
    expected: dict[str, str | None] = {}

    def put(name: str, data: bytes, kind: str | None) -> None:
        (folder / name).write_bytes(data)
        expected[name] = kind

    put("zero.jpg", b"", "empty")
    put("truncated.png", png[: len(png) // 3], "decode")
    put("random.jpg", np.random.default_rng(0).bytes(5000), "decode")
    put("text.png", b"hello, I am text\n" * 20, "decode")
    put("bomb.png", b"\x89PNG\r\n\x1a\n" + png_chunk(
        b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)) + png_chunk(
        b"IDAT", zlib.compress(b"\x00" * 1000)) + png_chunk(b"IEND", b""), "too_large")
    gray = cv2.cvtColor(cv2.imread(str(SAMPLES / "coffee.jpg")), cv2.COLOR_BGR2GRAY)
    cv2.imwrite(str(folder / "gray.png"), gray)
    expected["gray.png"] = None
    cv2.imwrite(str(folder / "deep16.png"), (gray.astype(np.uint16) * 257))
    expected["deep16.png"] = None
    rgba = cv2.cvtColor(cv2.imread(str(SAMPLES / "coffee.jpg")), cv2.COLOR_BGR2BGRA)
    cv2.imwrite(str(folder / "alpha.png"), rgba)
    expected["alpha.png"] = None
    cv2.imwrite(str(folder / "tiny.png"), np.full((1, 1, 3), 128, np.uint8))
    expected["tiny.png"] = None
    # palette PNG: 8x8, 2-colour palette
    raw = b"".join(b"\x00" + bytes([(x + y) % 2 for x in range(8)]) for y in range(8))
    put("palette.png", b"\x89PNG\r\n\x1a\n" + png_chunk(
        b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 3, 0, 0, 0)) + png_chunk(
        b"PLTE", b"\xff\x00\x00\x00\x00\xff") + png_chunk(b"IDAT", zlib.compress(raw))
        + png_chunk(b"IEND", b""), None)
    from PIL import Image  # installed with scikit-image; OpenCV cannot write CMYK

    Image.fromarray(cv2.imread(str(SAMPLES / "coffee.jpg"))[..., ::-1]).convert("CMYK").save(
        folder / "cmyk.jpg")
    expected["cmyk.jpg"] = None
    exif_rotated_jpeg(folder / "exif.jpg")
    expected["exif.jpg"] = None
    put("naïve café ☕ photo.jpg", coffee, None)
    (folder / "dangling.jpg").symlink_to(folder / "nowhere.jpg")
    expected["dangling.jpg"] = "broken_symlink"
    (folder / "loop_a.jpg").symlink_to(folder / "loop_b.jpg")
    (folder / "loop_b.jpg").symlink_to(folder / "loop_a.jpg")
    expected["loop_a.jpg"] = expected["loop_b.jpg"] = "symlink_loop"
    put("corrupt.mp4", b"\x00\x00\x00\x18ftypmp42" + os.urandom(3000), "video")
    write_video(folder / "empty.mp4", 0)
    expected["empty.mp4"] = "video"
    # pipes, sockets and links to them, found by the scan: never opened
    os.mkfifo(folder / "fifo.jpg")
    os.mkfifo(folder / "fifo_noext")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(folder / "sock"))
    sock.close()  # the socket file stays
    (folder / "link_to_fifo.jpg").symlink_to(folder / "fifo.jpg")
    expected.update(dict.fromkeys(("fifo.jpg", "fifo_noext", "sock", "link_to_fifo.jpg"),
                                  "not_regular"))
    (folder / "link_ok.jpg").symlink_to(SAMPLES / "rocket.jpg")
    expected["link_ok.jpg"] = None
    photo = cv2.imread(str(SAMPLES / "rocket.jpg"))
    for name in ("other.webp", "other.bmp", "other.tif", "UPPER.JPG"):
        cv2.imwrite(str(folder / name.lower()), photo)
        (folder / name.lower()).rename(folder / name)
        expected[name] = None
    put("png_inside", png, None)  # no extension: found by content
    put("png_named.jpg", png, None)  # content decides, not the extension
    put("page.jpg", b"<!doctype html><html><body>not found</body></html>\n", "decode")
    put("soi_only.jpg", b"\xff\xd8\xff\xe0" + b"\x00" * 100, "decode")
    put(".hidden.jpg", coffee, None)
    put("new\nline.jpg", coffee, None)
    put("long_" + "x" * 200 + ".jpg", coffee, None)
    (folder / os.fsdecode(b"latin1_caf\xe9.jpg")).write_bytes(coffee)
    expected["latin1_caf\ufffd.jpg"] = None  # as the record shows it (source_b64 exact)
    (folder / "notes.txt").write_text("skipped: not an image")
    return expected


def test_bad_input_corpus_gives_one_record_each_and_goes_on(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    expected = make_corpus(corpus)
    out = tmp_path / "r.jsonl"
    proc = axrun("classify", str(corpus), "-o", str(out))
    assert proc.returncode == 1, proc.stderr
    recs = lines(out)
    by_name = {}
    for r in recs:
        name = Path(r["source"]).name
        assert name not in by_name, f"two records for {name}"
        by_name[name] = r
    assert set(by_name) == set(expected)
    for name, kind in expected.items():
        rec = by_name[name]
        if kind is None:
            assert rec.get("top"), name
        else:
            assert rec["error"]["type"] == kind, (name, rec["error"])
            assert rec["error"]["message"]
    assert (by_name["exif.jpg"]["width"], by_name["exif.jpg"]["height"]) == (20, 40)
    assert (by_name["tiny.png"]["width"], by_name["tiny.png"]["height"]) == (1, 1)
    assert len(expected) >= 30
    assert re.search(r"failed \([^)]*\bdecode 5\b", proc.stderr), proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file(tmp_path: Path) -> None:
    shutil.copy(SAMPLES / "coffee.jpg", tmp_path / "secret.jpg")
    (tmp_path / "secret.jpg").chmod(0)
    proc = axrun("classify", str(tmp_path / "secret.jpg"), "-q")
    assert proc.returncode == 1 and '"permission"' in proc.stdout


def test_permission_error_becomes_a_record(tmp_path: Path, monkeypatch) -> None:
    from axrun import files
    from axrun.sources import Item

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(files, "open", denied, raising=False)
    # What OpenCV does with a file it cannot read: no image, no reason.
    monkeypatch.setattr(cv2, "imread", lambda *args: None)
    with pytest.raises(Exception) as info:
        Item(str(SAMPLES / "coffee.jpg")).load()
    assert getattr(info.value, "kind", None) == "permission"


def test_max_errors_and_fail_fast(tmp_path: Path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    for i in range(150):  # far more than can be in flight when the stop comes
        if i % 3 == 0:
            (folder / f"{i:03d}.jpg").write_bytes(b"bad")
        else:
            os.link(SAMPLES / "coffee.jpg", folder / f"{i:03d}.jpg")
    out = tmp_path / "r.jsonl"
    proc = axrun("classify", str(folder), "-o", str(out), "--max-errors", "2")
    recs = lines(out)
    assert proc.returncode == 1 and "stopped early (max-errors)" in proc.stderr
    assert sum("error" in r for r in recs) >= 2 and len(recs) < 150
    assert [Path(r["source"]).name for r in recs] == [f"{i:03d}.jpg" for i in range(len(recs))]
    proc = axrun("classify", str(folder), "-o", str(out), "--fail-fast", "--overwrite")
    assert proc.returncode == 1 and len(lines(out)) < 150


SLOW = {"AXRUN_EMULATOR_LATENCY_MS": "40"}


def big_folder(tmp_path: Path, n: int = 300) -> Path:
    folder = tmp_path / "big"
    folder.mkdir()
    for i in range(n):
        os.link(SAMPLES / "coffee.jpg", folder / f"{i:04d}.jpg")
    return folder


def wait_for_lines(path: Path, count: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while not path.exists() or path.read_text().count("\n") < count:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_flushes_everything_and_exits_130_within_2s(tmp_path: Path, sig) -> None:
    folder = big_folder(tmp_path)
    out = tmp_path / "r.jsonl"
    proc = start("classify", str(folder), "-o", str(out), env=SLOW)
    wait_for_lines(out, 10, proc)
    t0 = time.monotonic()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert time.monotonic() - t0 < 2.0
    assert proc.returncode == 130, err
    recs = lines(out)  # every line is complete JSON
    assert 10 <= len(recs) < 300
    assert [Path(r["source"]).name for r in recs] == [f"{i:04d}.jpg" for i in range(len(recs))]
    assert f"{len(recs)} input(s)" in err and "stopped early (interrupted)" in err


def test_second_ctrl_c_exits_at_once_with_a_valid_file(tmp_path: Path) -> None:
    folder = big_folder(tmp_path)
    out = tmp_path / "r.json"
    proc = start("classify", str(folder), "-o", str(out), env={"AXRUN_EMULATOR_LATENCY_MS":
                                                                 "400"})
    deadline = time.monotonic() + 60
    while not out.exists() or out.stat().st_size < 50:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.2)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert time.monotonic() - t0 < 2.0
    assert proc.returncode == 130, err
    assert isinstance(json.loads(out.read_text()), list)  # a complete JSON array


def test_resume_after_sigkill_skips_done_and_duplicates_nothing(tmp_path: Path) -> None:
    folder = big_folder(tmp_path, 120)
    out = tmp_path / "r.jsonl"
    proc = start("classify", str(folder), "-o", str(out), env=SLOW)
    wait_for_lines(out, 15, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with out.open("a") as f:  # what a kill in the middle of a write leaves
        f.write('{"v": 1, "source": "' + str(folder / "9999.jpg"))
    done_before = out.read_text().count("\n")
    proc = axrun("classify", str(folder), "-o", str(out), "--resume")
    assert proc.returncode == 0, proc.stderr
    assert f"resuming: {done_before} input(s) already recorded" in proc.stderr
    assert "partial last line was removed" in proc.stderr
    names = [Path(r["source"]).name for r in lines(out)]
    assert names == [f"{i:04d}.jpg" for i in range(120)]
    # resuming a finished run does nothing more
    proc = axrun("classify", str(folder), "-o", str(out), "--resume", "-q")
    assert proc.returncode == 0 and len(lines(out)) == 120


def test_resume_reruns_changed_files_and_refuses_other_settings(tmp_path: Path) -> None:
    folder = tmp_path / "f"
    folder.mkdir()
    for name in ("a.jpg", "b.jpg"):
        shutil.copy(SAMPLES / "coffee.jpg", folder / name)
    out = tmp_path / "r.jsonl"
    assert axrun("classify", str(folder), "-o", str(out), "-q").returncode == 0
    shutil.copy(SAMPLES / "chelsea.jpg", folder / "b.jpg")  # b changed since
    proc = axrun("classify", str(folder), "-o", str(out), "--resume")
    assert "1 record(s) of changed files dropped" in proc.stderr
    recs = lines(out)
    assert [Path(r["source"]).name for r in recs] == ["a.jpg", "b.jpg"]
    assert recs[1]["top"][0]["id"] in (281, 282, 285)
    proc = axrun("classify", str(folder), "-o", str(out), "--resume", "-k", "3")
    assert proc.returncode == 2 and "other settings" in proc.stderr and "top_k=5" in proc.stderr
    proc = axrun("classify", str(folder), "-o", str(tmp_path / "r.csv"), "--resume")
    assert proc.returncode == 2 and "JSON-lines" in proc.stderr


def test_device_in_use_names_the_holder(tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", (
        "import time; from axrun import emulator as e; c = e.Context();"
        "c.device_connect(None, 4); print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        proc = axrun("classify", str(SAMPLES), "-q")
        assert proc.returncode == 3
        assert proc.stderr.count("\n") == 1 and f"pid {holder.pid}" in proc.stderr
    finally:
        holder.kill()
        holder.wait()


def test_run_failure_mid_stream_keeps_done_frames(tmp_path: Path) -> None:
    folder = big_folder(tmp_path, 60)
    out = tmp_path / "r.jsonl"
    t0 = time.monotonic()
    proc = axrun("classify", str(folder), "-o", str(out), "--no-double-buffer",
                 env={"AXRUN_EMULATOR_FAIL_AFTER": "20"})
    assert time.monotonic() - t0 < 60
    assert proc.returncode == 3
    assert "injected fault" in proc.stderr and "run() failed on" in proc.stderr
    recs = lines(out)
    assert 0 < len(recs) <= 20
    assert [Path(r["source"]).name for r in recs] == [f"{i:04d}.jpg" for i in range(len(recs))]


def test_a_device_failure_on_a_video_names_the_frame(tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.mp4", 40)
    proc = axrun("classify", str(video), "-o", "-", "--no-double-buffer",
                 env={"AXRUN_EMULATOR_FAIL_AFTER": "20"})
    assert proc.returncode == 3
    assert f"run() failed on {video} frame " in proc.stderr, proc.stderr


def test_model_folder_error_exit_3_naming_file_and_field(tmp_path: Path) -> None:
    model = tmp_path / "m"
    shutil.copytree(Path(__file__).resolve().parents[1] / "axrun" / "models" /
                    "efficientnet-lite0-imagenet", model)
    manifest = json.loads((model / "manifest.json").read_text())
    del manifest["quantize_params"]
    (model / "manifest.json").write_text(json.dumps(manifest))
    proc = axrun("classify", "-m", str(model), str(SAMPLES))
    assert proc.returncode == 3
    assert "manifest.json: field 'quantize_params' is missing" in proc.stderr


def test_closed_pipe_stops_quietly(tmp_path: Path) -> None:
    folder = big_folder(tmp_path, 60)
    proc = subprocess.run(f"{sys.executable} -m axrun classify {folder} | head -2",
                          shell=True, capture_output=True, text=True, timeout=120)
    assert proc.stdout.count("\n") == 2
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("delay", [0.15, 0.25, 0.3, 0.4, 0.45, 0.5, 0.8, 1.2])
def test_ctrl_c_while_starting_exits_130_without_a_traceback(tmp_path: Path, delay,
                                                             sig) -> None:
    # imports (OpenCV, ONNX Runtime), building the commands and loading the model take
    # about a second (the first ~50 ms are Python's own start, before any axrun code);
    # 300 frames at 40 ms a call keep the run going well past the last moment tried
    folder = big_folder(tmp_path, 300)
    proc = start("classify", str(folder), "-o", str(tmp_path / "r.jsonl"), env=SLOW)
    time.sleep(delay)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "Error" not in err, err


def test_closed_stdout_is_an_output_error_before_anything_runs(tmp_path: Path) -> None:
    result = subprocess.run(f"exec {sys.executable} -m axrun classify {SAMPLES} >&-",
                            shell=True, capture_output=False, stderr=subprocess.PIPE,
                            text=True, timeout=100)
    assert result.returncode == 4
    assert result.stderr.strip() == ("error: stdout is closed: nowhere to write the "
                                     "records; give -o FILE")


def test_stderr_closed_early_does_not_fail_a_complete_run(tmp_path: Path) -> None:
    # `axrun ... 2>&1 | head -1`: the reader of stderr goes away after the first line
    out = tmp_path / "r.jsonl"
    read_end, write_end = os.pipe()
    proc = subprocess.Popen([sys.executable, "-m", "axrun", "classify", str(SAMPLES), "-o",
                             str(out)], stderr=write_end)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as stderr:
        assert stderr.readline().startswith(b"plan:")
    assert proc.wait(100) == 0
    assert len(lines(out)) == len(list(SAMPLES.glob("*.jpg")))


def test_runs_started_together_on_one_device_do_not_both_fail(tmp_path: Path) -> None:
    # Each run needs all 4 cores, one connection per instance: two started at once
    # could each get half and both fail (2 of 40 trials), each naming itself.
    for trial in range(8):
        procs = [start("classify", str(SAMPLES), "-o", str(tmp_path / f"r{trial}{k}.jsonl"))
                 for k in range(2)]
        results = [(p.pid, p.wait(100), p.stderr.read()) for p in procs]
        assert any(code == 0 for _, code, _ in results), results
        for pid, code, err in results:
            if code != 0:
                assert code == 3 and "held by" in err and f"pid {pid} " not in err, err
