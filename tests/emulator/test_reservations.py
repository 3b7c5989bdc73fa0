"""Core reservations hold across processes and die with their holder (even SIGKILL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from axrun import emulator as axr

HOLDER = """
import sys, time
from axrun import emulator as axr
ctx = axr.Context()
conn = ctx.device_connect(None, num_sub_devices=int(sys.argv[1]))
print("held", flush=True)
time.sleep(60)
"""


@pytest.fixture
def holder():
    procs = []

    def start(cores: int) -> subprocess.Popen:
        p = subprocess.Popen([sys.executable, "-c", HOLDER, str(cores)], stdout=subprocess.PIPE,
                             text=True, env=os.environ.copy())
        assert p.stdout is not None and p.stdout.readline().strip() == "held"
        procs.append(p)
        return p

    yield start
    for p in procs:
        p.kill()
        p.wait()


def test_second_process_gets_device_in_use_naming_the_holder(holder) -> None:
    proc = holder(3)
    with axr.Context() as ctx:
        assert ctx.list_devices()[0].cores_free == 1
        assert f"pid {proc.pid}" in ctx.list_devices()[0].in_use_by
        ctx.device_connect(None, num_sub_devices=1).release()
        with pytest.raises(axr.DeviceInUse, match=f"held by pid {proc.pid}"):
            ctx.device_connect(None, num_sub_devices=2)


def test_reservation_disappears_when_holder_is_killed(holder) -> None:
    proc = holder(4)
    with axr.Context() as ctx:
        with pytest.raises(axr.DeviceInUse):
            ctx.device_connect(None, num_sub_devices=1)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 5
        while ctx.list_devices()[0].cores_free != 4:
            assert time.monotonic() < deadline, "cores still held after SIGKILL"
            time.sleep(0.05)
        conn = ctx.device_connect(None, num_sub_devices=4)
        assert conn.num_sub_devices == 4
