"""``axrun bench``: the three figures, the verdict, the JSON layout and the time budget."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from axrun.bench import verdict

ROOT = Path(__file__).resolve().parents[2]
SHARES = {"decode": 0.5, "preprocess": 0.1, "device": 0.3, "postprocess": 0.1}


def test_verdict_device_bound() -> None:
    limit, text = verdict(100, 500, 95, SHARES, double_buffer=True, emulated=False)
    assert limit == "device" and "more devices" in text and "--aipu-cores" not in text
    assert "--aipu-cores 4" in verdict(100, 500, 95, SHARES, True, False, cores_used=2)[1]
    assert "--devices all" in verdict(100, 500, 95, SHARES, True, False, all_devices=False)[1]
    limit, text = verdict(100, 500, 95, SHARES, double_buffer=False, emulated=True)
    assert "--double-buffer" in text and "AXRUN_EMULATOR_LATENCY_MS" in text


def test_verdict_host_bound_names_the_busiest_stage() -> None:
    limit, text = verdict(2000, 300, 290, SHARES, double_buffer=True, emulated=False)
    assert limit == "decode" and "--decode-threads" in text
    post = {**SHARES, "postprocess": 0.6, "decode": 0.1}
    assert verdict(2000, 300, 290, post, True, False)[0] == "postprocess"


def test_verdict_pipeline_overhead() -> None:
    limit, text = verdict(2000, 300, 100, SHARES, double_buffer=True, emulated=False)
    assert limit == "pipeline" and "33%" in text


@pytest.mark.timeout(60)
def test_json_report_within_the_time_budget() -> None:
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "axrun", "bench",
                           "efficientnet-lite0-imagenet",  # by name: the bundled model
                           "--seconds", "3", "--json"], capture_output=True, text=True,
                          timeout=60)
    elapsed = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert elapsed < 3 + 5
    assert report["version"] == 1 and report["task"] == "classify"
    for phase in ("device", "host", "system"):
        assert report[phase]["fps"] > 0 and report[phase]["frames"] > 0
    assert set(report["device"]["latency_ms"]) == {"p50", "p90", "p99"}
    assert report["host"]["latency_ms"] is None and report["system"]["latency_ms"] is None
    assert report["emulated"] is True and report["emulator"]["compute"] is True
    assert report["limit"] in ("device", "decode", "preprocess", "postprocess", "pipeline")
    assert report["verdict"]
    assert set(report["stage_share"]) == {"decode", "preprocess", "device", "postprocess"}
    assert report["plan"]["instances"] == 4 and "synthetic" in report["inputs"]


@pytest.mark.timeout(60)
def test_text_report_on_real_inputs_with_a_slow_emulated_device(tmp_path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "axrun", "bench", "yolox-nano-coco",  # by name, elsewhere
         str(ROOT / "models" / "samples"), "--seconds", "3"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
        env={**__import__("os").environ, "AXRUN_EMULATOR_COMPUTE": "0",
             "AXRUN_EMULATOR_LATENCY_MS": "50"})
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "device" in out and "host" in out and "system" in out
    assert "emulated device" in out and "latency 50 ms" in out
    assert "verdict (device)" in out


def test_the_task_comes_from_the_folder_and_its_outputs(tiny, tmp_path: Path) -> None:
    # A folder without axrun.json or model_info.json: its outputs say what it is (a
    # detector benchmarked as a classifier would leave NMS out of the host figures).
    import shutil

    import numpy as np
    from sdkfolder import Planted, fixed_graph, sdk_folder
    from typer.testing import CliRunner

    from axrun.cli import app
    from axrun.modelfolder import load_model_folder
    from axrun.tasks import task_from_outputs

    classifier = tmp_path / "c"
    shutil.copytree(tiny(kind="classifier").path, classifier)
    (classifier / "axrun.json").unlink()
    head = Planted(np.zeros((4, 4, 6), np.float32), 0.1)
    post = fixed_graph({"output0": [1, 6, 4, 4]}, pred=np.zeros((1, 7, 21), np.float32))
    detector = sdk_folder(tmp_path / "d", [head], postamble=post)  # Ultralytics [1, 4+3, 21]
    headless = tiny(kind="detector", size=16).path  # two heads, no postamble
    assert [task_from_outputs(load_model_folder(p)) for p in (classifier, detector, headless)] \
        == ["classify", "detect", "detect"]
    for folder, task in ((classifier, "classify"), (detector, "detect")):
        result = CliRunner().invoke(app, ["bench", str(folder), "--seconds", "0.6", "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["task"] == task
    told = CliRunner().invoke(app, ["bench", str(detector), "--task", "classify", "--seconds",
                                    "0.6"])
    assert told.exit_code == 3 and "not a classification model" in told.stderr
