"""The engine's tests run the emulator in strict mode: it reads a run() call's inputs
only when that call's result is due, so a host that refills a buffer still in flight
gets a wrong result, and the tests that compare results with their inputs catch it."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _strict_emulator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AXRUN_EMULATOR_STRICT", "1")
