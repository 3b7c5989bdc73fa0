"""``axrun exec``: programs written against axelera.runtime run on the emulator."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from axrun.execute import SHIM, child_environment

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "models" / "samples"
CLASSIFIER = ROOT / "axrun" / "models" / "efficientnet-lite0-imagenet"
pytestmark = pytest.mark.timeout(120)


def axrun_exec(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "axrun", "exec", *args], capture_output=True,
                          text=True, timeout=100, **kw)


def test_vendor_style_program_classifies_real_photos() -> None:
    photos = [str(SAMPLES / f"{n}.jpg") for n in ("coffee", "camera", "chelsea", "coffee",
                                                     "stereo_motorcycle")]
    proc = axrun_exec("--", sys.executable, str(Path(__file__).parent / "vendor_style.py"),
                      str(CLASSIFIER), *photos)
    assert proc.returncode == 0, proc.stderr
    out = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [o["image"] for o in out] == [Path(p).name for p in photos]
    assert out[0]["label"] == "espresso" and out[1]["label"] == "tripod"
    assert out[2]["class"] in (281, 282, 285) and out[3]["label"] == "espresso"


def test_the_vendors_double_buffering_loop_gets_each_images_class() -> None:
    # One input buffer, refilled right after run() returns: right only if run()
    # consumes its inputs during the call, as documented (the emulator once read them
    # two calls later, and every image got the class of the last one).
    photos = [str(SAMPLES / f"{n}.jpg") for n in ("coffee", "camera", "chelsea", "coffee")]
    proc = axrun_exec("--", sys.executable, str(Path(__file__).parent / "vendor_style.py"),
                      "--double-buffer", str(CLASSIFIER), *photos)
    assert proc.returncode == 0, proc.stderr
    out = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [o["image"] for o in out] == [Path(p).name for p in photos]
    assert [o["label"] for o in out[:2]] == ["espresso", "tripod"]
    assert out[2]["class"] in (281, 282, 285) and out[3]["label"] == "espresso"


def test_readme_example_runs_as_shown(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Develop without hardware"):]
    program = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    command = re.search(r"```sh\n(axrun exec .*?)\n```", section, re.S).group(1)
    (tmp_path / "top1.py").write_text(program)
    # through a shell, as typed (it may say "$(axrun models --path NAME)"), with this
    # interpreter's axrun and python first on PATH
    command = command.replace(" top1.py ", f" {tmp_path / 'top1.py'} ", 1)
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent),
                                                  os.environ.get("PATH", "")])}
    proc = subprocess.run(["bash", "-c", command], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=100)
    assert proc.returncode == 0, proc.stderr
    assert "espresso" in proc.stdout


def test_exit_status_and_stderr_pass_through() -> None:
    proc = axrun_exec("--", sys.executable, "-c",
                      "import sys; print('to stderr', file=sys.stderr); sys.exit(42)")
    assert proc.returncode == 42 and proc.stderr.strip() == "to stderr"
    proc = axrun_exec("--", "no-such-program-xyz")
    assert proc.returncode == 127 and "command not found" in proc.stderr
    proc = axrun_exec("--devices", "0", "--", sys.executable, "-c", "pass")
    assert proc.returncode == 2 and "--devices must be at least 1" in proc.stderr


def test_settings_reach_the_emulator() -> None:
    code = ("from axelera.runtime import Context\n"
            "with Context() as c:\n"
            "    s = c.settings\n"
            "    print(len(c.list_devices()), s.latency_ms, s.compute)")
    proc = axrun_exec("--devices", "3", "--latency-ms", "2.5", "--no-compute", "--",
                      sys.executable, "-c", code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["3", "2.5", "False"]


def test_every_documented_name_is_there() -> None:
    names = ["Context", "Model", "Connection", "ModelInstance", "Object", "TensorInfo",
             "DeviceInfo", "BoardType", "ConnectionError", "DeviceInUse", "IncompatibleDevice",
             "InternalError", "InvalidArgument", "InvalidConfiguration", "NotImplemented",
             "Pending", "UnknownError"]
    code = ("import axelera.runtime as r\n"
            f"missing = [n for n in {names!r} if not hasattr(r, n)]\n"
            "from axelera.runtime import TensorInfo, DeviceInfo, BoardType\n"
            "print(missing)")
    proc = axrun_exec("--", sys.executable, "-c", code)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stderr


def test_signals_are_forwarded() -> None:
    code = ("import signal, sys, time\n"
            "signal.signal(signal.SIGTERM, lambda *a: (print('got TERM', flush=True), "
            "sys.exit(5)))\n"
            "print('ready', flush=True)\n"
            "time.sleep(30)")
    proc = subprocess.Popen([sys.executable, "-m", "axrun", "exec", "--", sys.executable, "-c",
                             code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGTERM)
    assert proc.stdout.readline().strip() == "got TERM"
    assert proc.wait(20) == 5


def test_without_exec_the_name_is_not_shadowed() -> None:
    proc = subprocess.run([sys.executable, "-c", "import axelera.runtime"],
                          capture_output=True, text=True,
                          env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert proc.returncode != 0 and "No module named 'axelera'" in proc.stderr
    env = child_environment(base={"PATH": "/usr/bin", "PYTHONPATH": "/x"})
    assert env["PYTHONPATH"].split(os.pathsep) == [str(SHIM), "/x"]
    assert env["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)


def test_a_real_sdk_elsewhere_is_named_and_shadowed(tmp_path: Path) -> None:
    fake = tmp_path / "sdk" / "axelera" / "runtime"
    fake.mkdir(parents=True)
    (fake.parent / "__init__.py").write_text("")
    (fake / "__init__.py").write_text("REAL = True\n")
    (fake.parent / "app.py").write_text("NAME = 'voyager app'\n")
    code = ("import axelera.runtime as r, axelera.app as a\n"
            "print(getattr(r, '__axrun_emulator__', False), a.NAME)")
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "sdk")}
    proc = axrun_exec("--", sys.executable, "-c", code, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "True voyager app"
    assert "a real axelera.runtime is installed" in proc.stderr


def test_voyager_model_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    (tmp_path / "model.json").write_text('{"elf": "model.elf"}')
    code = ("from axelera.runtime import Context, NotImplemented as NI\n"
            "with Context() as c:\n"
            f"    try: c.load_model({str(tmp_path / 'model.json')!r})\n"
            "    except NI as e: print(e)")
    proc = axrun_exec("--", sys.executable, "-c", code)
    assert "needs a Metis device" in proc.stdout
