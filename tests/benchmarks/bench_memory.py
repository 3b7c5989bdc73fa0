"""Memory stays flat: peak RSS of real ``axrun`` runs over few and many inputs.

Each run is its own process (``python -m axrun ... -o FILE``); its peak RSS is the
``VmHWM`` of ``/proc/self/status`` at exit. (``getrusage``'s ``ru_maxrss`` is no good
here: Linux carries it across ``execve``, so a child forked from a big parent reports
the parent's size.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import ROOT, make_video, photo_folder

RUNNER = """
import runpy, sys
sys.argv = ["axrun"] + sys.argv[1:]
try:
    runpy.run_module("axrun", run_name="__main__")
except SystemExit as exc:
    code = exc.code
else:
    code = 0
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
print(hwm, file=sys.stderr)
sys.exit(code)
"""


def peak_rss_mb(args: list[str]) -> float:
    out = Path(tempfile.mkdtemp()) / "r.jsonl"
    proc = subprocess.run([sys.executable, "-c", RUNNER, *args, "-o", str(out), "-q"],
                          capture_output=True, text=True, cwd=ROOT, timeout=1800,
                          env={**os.environ, "AXRUN_BACKEND": "emulator"})
    if proc.returncode not in (0, 1):
        raise SystemExit(f"axrun {' '.join(args)} failed: {proc.stderr[-500:]}")
    return int(proc.stderr.strip().splitlines()[-1]) / 1024


def run(small: int = 1000, large: int = 10000, short: int = 200, long: int = 2000) -> \
        list[dict]:
    rows = []
    few, many = photo_folder(small), photo_folder(large)
    a, b = peak_rss_mb(["classify", str(few)]), peak_rss_mb(["classify", str(many)])
    rows.append({"benchmark": f"peak RSS, classify {small:,} vs {large:,} images",
                 "axrun": f"{b:,.0f} MB", "baseline": f"{a:,.0f} MB", "ratio": b / a,
                 "note": "1.0 = flat"})
    folder = Path(tempfile.mkdtemp(prefix="axrun-bench-"))
    v1 = make_video(folder / "short.mp4", short)
    v2 = make_video(folder / "long.mp4", long)
    a, b = peak_rss_mb(["detect", str(v1)]), peak_rss_mb(["detect", str(v2)])
    rows.append({"benchmark": f"peak RSS, detect 720p video {short:,} vs {long:,} frames",
                 "axrun": f"{b:,.0f} MB", "baseline": f"{a:,.0f} MB", "ratio": b / a,
                 "note": "1.0 = flat"})
    return rows


if __name__ == "__main__":
    for row in run():
        print(row)
