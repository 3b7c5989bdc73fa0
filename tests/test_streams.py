"""Inputs that stream or may never end: stdin, pipes, devices, URLs, live streams, lists."""

from __future__ import annotations

import http.server
import json
import os
import selectors
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_reliability import SAMPLES, axrun, big_folder, start, wait_for_lines
from test_sources import write_video

from axrun.errors import UsageError
from axrun.sources import SourceOptions, expand, parse_bytes

pytestmark = pytest.mark.timeout(120)


def records(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_nul_separated_stdin_streams_record_by_record(tmp_path: Path) -> None:
    # A producer that sends the next path only after it saw the last record: -0 used
    # to read stdin to its end first, so this waited forever.
    proc = subprocess.Popen([sys.executable, "-m", "axrun", "classify", "-0", "-", "-o", "-",
                             "-q"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    got = []
    try:
        for name in ("coffee.jpg", "rocket.jpg"):
            proc.stdin.write(os.fsencode(SAMPLES / name) + b"\0")
            proc.stdin.flush()
            assert selector.select(timeout=60), "no record while stdin is still open"
            got.append(json.loads(proc.stdout.readline()))
    finally:
        proc.stdin.close()
        proc.wait(30)
    assert [Path(r["source"]).name for r in got] == ["coffee.jpg", "rocket.jpg"]
    assert proc.returncode == 0


@pytest.fixture
def specials(tmp_path: Path) -> Path:
    """A folder of two images with a named pipe (image-like name and none) and a
    socket between them."""
    folder = tmp_path / "d"
    folder.mkdir()
    os.link(SAMPLES / "coffee.jpg", folder / "a.jpg")
    os.mkfifo(folder / "b.jpg")
    os.mkfifo(folder / "c")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(folder / "d.sock"))
    os.link(SAMPLES / "rocket.jpg", folder / "e.jpg")
    yield folder
    sock.close()


@pytest.mark.parametrize("how", ["folder", "glob"])
def test_pipes_and_sockets_found_by_a_scan_are_never_opened(specials: Path, how) -> None:
    spec = str(specials) if how == "folder" else str(specials / "*")
    result = axrun("classify", spec, "-o", "-", "-q")
    recs = records(result.stdout)
    assert [Path(r["source"]).name for r in recs] == ["a.jpg", "b.jpg", "c", "d.sock", "e.jpg"]
    assert [r.get("error", {}).get("type") for r in recs] == [
        None, "not_regular", "not_regular", "not_regular", None]
    assert "named pipe" in recs[1]["error"]["message"]
    assert "socket" in recs[3]["error"]["message"]
    assert result.returncode == 1


def test_a_named_pipe_named_on_the_command_line_is_read(tmp_path: Path) -> None:
    fifo = tmp_path / "in.jpg"
    os.mkfifo(fifo)

    def feed() -> None:
        with open(fifo, "wb") as f:
            f.write((SAMPLES / "coffee.jpg").read_bytes())

    writer = threading.Thread(target=feed)
    writer.start()
    result = axrun("classify", str(fifo), "-o", "-", "-q", "-k", "1")
    writer.join(10)
    (rec,) = records(result.stdout)
    assert rec["top"][0]["label"] == "espresso" and result.returncode == 0


def peak_rss_of(*args: str) -> tuple[subprocess.CompletedProcess, int]:
    """Run axrun in a wrapper that reports its child's peak RSS (bytes)."""
    code = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], "
            "capture_output=True, text=True); sys.stdout.write(r.stdout); "
            "sys.stderr.write(r.stderr); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
            "sys.exit(r.returncode)")
    result = subprocess.run([sys.executable, "-c", code, sys.executable, "-m", "axrun", *args],
                            capture_output=True, text=True, timeout=100)
    return result, int(result.stderr.split()[-1]) * 1024


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_an_endless_device_gets_an_error_record_and_memory_stays_bounded() -> None:
    result, peak = peak_rss_of("classify", "/dev/zero", "-o", "-", "-q")
    (rec,) = records(result.stdout)
    assert rec["error"]["type"] == "too_large" and "1 GiB" in rec["error"]["message"]
    assert result.returncode == 1
    assert peak < (1 << 30) + (600 << 20)  # the 1 GiB cap plus the process itself
    small = axrun("classify", "/dev/zero", "-o", "-", "-q", "--max-read-bytes", "2M")
    assert "more than 2 MiB" in records(small.stdout)[0]["error"]["message"]


def test_byte_sizes_parse_with_binary_suffixes() -> None:
    assert parse_bytes("1G") == parse_bytes("1GiB") == 1 << 30
    assert parse_bytes("300m") == 300 << 20 and parse_bytes("512") == 512
    for bad in ("", "lots", "0", "-1M"):
        with pytest.raises(UsageError):
            parse_bytes(bad)


def test_decode_threads_are_capped() -> None:
    result = axrun("classify", str(SAMPLES), "--decode-threads", "4000")
    assert result.returncode == 2
    assert f"must be 1-{4 * (os.cpu_count() or 1)}" in result.stderr
    assert "Traceback" not in result.stderr


def test_sigint_stops_a_run_at_the_thread_cap_at_once(tmp_path: Path) -> None:
    folder = big_folder(tmp_path)
    out = tmp_path / "r.jsonl"
    proc = start("classify", str(folder), "-o", str(out), "--decode-threads",
                 str(4 * (os.cpu_count() or 1)), env={"AXRUN_EMULATOR_LATENCY_MS": "40"})
    wait_for_lines(out, 5, proc)
    t0 = time.monotonic()
    proc.send_signal(2)
    proc.communicate(timeout=30)
    assert time.monotonic() - t0 < 2.0 and proc.returncode == 130


# -- URLs and live streams, from a server on the loopback interface ------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    root: Path
    live_frames = 6
    live_connections = 3  # a look at what it serves, two streams, then it is gone (404)
    served = 0

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/live":
            return self._live()
        if self.path == "/endless":
            return self._mjpeg(10**6, interval=0.15)
        path = self.root / self.path.lstrip("/")
        if not path.is_file():
            return self.send_error(404)
        self.send_response(200)
        # an extensionless image is served as octet-stream, as plain servers do
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(path.stat().st_size))
        self.end_headers()
        self.wfile.write(path.read_bytes())

    def _live(self) -> None:
        """An MJPEG stream (what IP cameras serve) that drops after a few frames."""
        type(self).served += 1
        if self.served > self.live_connections:
            return self.send_error(404)
        self._mjpeg(self.live_frames)

    def _mjpeg(self, frames: int, interval: float = 0.02) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        for i in range(frames):
            _, jpg = cv2.imencode(".jpg", np.full((48, 64, 3), i * 30, np.uint8))
            self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d"
                             b"\r\n\r\n%s\r\n" % (len(jpg), jpg.tobytes()))
            try:
                self.wfile.flush()
            except OSError:  # the client went away
                return
            time.sleep(interval)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    root = tmp_path / "www"
    root.mkdir()
    os.link(SAMPLES / "coffee.jpg", root / "coffee.jpg")
    os.link(SAMPLES / "coffee.jpg", root / "photo")  # no extension
    write_video(root / "clip.mp4", 12)
    handler = type("Handler", (_Handler,), {"root": root, "served": 0})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()


def test_http_images_and_videos_are_inputs(server: str) -> None:
    urls = [f"{server}/coffee.jpg", f"{server}/photo", f"{server}/missing.jpg",
            f"{server}/clip.mp4"]
    result = axrun("classify", *urls, "-o", "-", "-q", "-k", "1", "--vid-stride", "5")
    recs = records(result.stdout)
    assert [(r["source"].rsplit("/", 1)[1], r["frame"]) for r in recs] == [
        ("coffee.jpg", None), ("photo", None), ("missing.jpg", None), ("clip.mp4", 0),
        ("clip.mp4", 5), ("clip.mp4", 10)]
    assert recs[0]["top"][0]["label"] == recs[1]["top"][0]["label"] == "espresso"
    assert recs[2]["error"] == {"type": "url", "message": f"{urls[2]}: HTTP 404 Not Found"}
    assert [r["time_s"] for r in recs[3:]] == [0.0, 0.5, 1.0]  # the container's clock
    assert result.returncode == 1


def test_a_live_stream_that_drops_is_reopened_then_gets_an_error_record(server: str) -> None:
    options = SourceOptions(reconnects=1)
    items = list(expand([f"{server}/live"], options))
    frames, last = items[:-1], items[-1]
    # both connections' frames, numbered on, with seconds since the stream was opened
    assert [i.frame for i in frames] == list(range(2 * _Handler.live_frames))
    times = [i.time_s for i in frames]
    assert times == sorted(times) and times[-1] > 1.0  # the reconnect waited 1 s
    assert last.error is not None and last.error.kind == "stream"
    assert "lost after frame 11, reopened 1 time(s)" in str(last.error)
    assert expand([f"{server}/live"]).may_wait


def test_ctrl_c_on_an_endless_live_stream_exits_130_with_every_record(server: str,
                                                                      tmp_path: Path) -> None:
    # The thread reading the stream is inside FFmpeg (waiting for the next frame) when
    # the run ends: the process used to abort at exit ("FATAL: exception not
    # rethrown", SIGABRT).
    out = tmp_path / "r.json"
    proc = start("classify", f"{server}/endless", "-o", str(out))
    deadline = time.monotonic() + 60
    while not out.exists() or out.read_text().count('"frame"') < 3:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    t0 = time.monotonic()
    proc.send_signal(2)
    _, err = proc.communicate(timeout=30)
    assert time.monotonic() - t0 < 2.0 and proc.returncode == 130, err
    assert "FATAL" not in err
    recs = json.loads(out.read_text())  # a complete JSON array
    assert [r["frame"] for r in recs] == list(range(len(recs)))


def test_a_camera_that_is_not_there_gets_an_error_record(tmp_path: Path) -> None:
    index = "97"  # no such camera, and no file of that name in the working folder
    result = axrun("classify", index, "-o", "-", "-q", cwd=tmp_path)
    (rec,) = records(result.stdout)
    assert rec["error"] == {"type": "stream",
                            "message": "97: cannot open camera (and no file has that name)"}
    assert result.returncode == 1


def test_a_list_file_names_inputs(tmp_path: Path, monkeypatch) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    os.link(SAMPLES / "coffee.jpg", photos / "a.jpg")
    os.link(SAMPLES / "rocket.jpg", photos / "b.jpg")
    here = tmp_path / "cwd"
    here.mkdir()
    os.link(SAMPLES / "chelsea.jpg", here / "c.jpg")
    listing = photos / "list.txt"
    listing.write_text("# inputs\na.jpg\n\nc.jpg\n%s\nother.txt\n" % (photos / "b.jpg"))
    monkeypatch.chdir(here)
    items = list(expand([str(listing)]))
    # relative: from the working folder first (c.jpg), else from the list's (a.jpg)
    assert [i.source for i in items] == [str(photos / "a.jpg"), "c.jpg", str(photos / "b.jpg"),
                                         "other.txt"]
    assert [i.error is None for i in items] == [True, True, True, False]
    assert "list file named in a list file" in str(items[3].error)


def test_ctrl_c_while_stdin_waits_exits_at_once_with_every_record(tmp_path: Path) -> None:
    # The producer keeps stdin open: a host thread waits inside the read. Nothing is in
    # flight, so the stop needs no grace period, and that thread must not hold a lock
    # the interpreter needs at exit (it did: 2.7 s, then "Fatal Python error" and
    # SIGABRT, or a hang).
    out = tmp_path / "r.jsonl"
    read_end, write_end = os.pipe()  # (communicate() would close a PIPE: EOF)
    proc = subprocess.Popen([sys.executable, "-m", "axrun", "classify", "-", "-o", str(out)],
                            stdin=read_end, stderr=subprocess.PIPE, text=True)
    os.close(read_end)
    try:
        os.write(write_end, os.fsencode(SAMPLES / "coffee.jpg") + b"\n")
        wait_for_lines(out, 1, proc)
        time.sleep(0.5)  # the host threads settle: one of them waits inside stdin
        t0 = time.monotonic()
        proc.send_signal(2)
        _, err = proc.communicate(timeout=30)
    finally:
        os.close(write_end)
        proc.kill()
    assert time.monotonic() - t0 < 2.0 and proc.returncode == 130, err
    assert "Fatal" not in err and "Traceback" not in err
    assert len(out.read_text().splitlines()) == 1

