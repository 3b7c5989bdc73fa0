"""``make bench``: every benchmark of this folder, one table of ratios from one run."""

from __future__ import annotations

import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bench_decode
import bench_decoders
import bench_detect
import bench_end_to_end
import bench_memory
import bench_pipeline
import bench_preprocess
import bench_ray
import bench_streams


def main() -> None:
    start = time.perf_counter()
    rows = []
    for name, fn in [("preprocess", bench_preprocess.run), ("pipeline", bench_pipeline.run),
                     ("streams", bench_streams.run),
                     ("end to end", lambda: [bench_end_to_end.classify_row()]),
                     ("detect", bench_detect.run), ("decoders", bench_decoders.run),
                     ("phone photos and 1080p video", bench_decode.run),
                     ("memory", bench_memory.run), ("ray", bench_ray.run)]:
        print(f"running {name} ...", file=sys.stderr, flush=True)
        rows += fn()
    print(f"\naxrun benchmarks — {platform.machine()}, {platform.python_version()}, "
          f"{time.perf_counter() - start:.0f} s\n")
    print("| benchmark | axrun | baseline | ratio | note |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['benchmark']} | {r['axrun']} | {r['baseline']} | "
              f"{r['ratio']:.2f}× | {r['note']} |")


if __name__ == "__main__":
    main()
