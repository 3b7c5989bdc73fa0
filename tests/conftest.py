"""Shared fixtures: an isolated emulator state dir and cached tiny model folders."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from modelgen import Generated, make_model_folder


def pytest_configure(config: pytest.Config) -> None:
    """Before any fixture (module-scoped ones too): a private emulator state folder, so
    that cores held by axrun running elsewhere on the machine cannot interfere."""
    import os
    import tempfile

    os.environ["AXRUN_EMULATOR_STATE_DIR"] = tempfile.mkdtemp(prefix="axrun-test-state-")


@pytest.fixture(autouse=True)
def _isolated_emulator(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory):
    """Each test gets its own core-reservation state and default emulator settings."""
    monkeypatch.setenv("AXRUN_EMULATOR_STATE_DIR", str(tmp_path_factory.mktemp("emustate")))
    for var in ("AXRUN_EMULATOR_DEVICES", "AXRUN_EMULATOR_LATENCY_MS",
                "AXRUN_EMULATOR_COMPUTE", "AXRUN_BACKEND", "AXRUN_MODELS"):
        monkeypatch.delenv(var, raising=False)


_CACHE: dict[tuple, Generated] = {}


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def tiny(models_dir: Path):
    """``tiny(kind=..., batch=..., ...)`` → a generated model folder, built once per settings."""

    def build(**kw) -> Generated:
        key = tuple(sorted((k, repr(v)) for k, v in kw.items()))
        if key not in _CACHE:
            name = "m" + str(len(_CACHE))
            _CACHE[key] = make_model_folder(models_dir / name, **kw)
        return _CACHE[key]

    return build
