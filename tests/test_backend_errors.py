"""Exceptions the real axelera.runtime raises beyond its documented classes (the SDK's
own code expects RuntimeError and OSError) become axrun's errors, with a message and
exit status 3, and the context is released."""

from __future__ import annotations

import types
from pathlib import Path

import pytest
from typer.testing import CliRunner

from axrun.engine import Engine
from axrun.errors import DeviceError, ModelError
from axrun.runtime import Backend

MODEL = Path(__file__).parents[1] / "axrun" / "models" / "efficientnet-lite0-imagenet"
SAMPLES = Path(__file__).parents[1] / "models" / "samples"


def sdk_like(context_error: BaseException | None = None,
             load_error: BaseException | None = None) -> tuple[Backend, list[str]]:
    """A stand-in for axelera.runtime whose Context() or load_model() fails."""
    events: list[str] = []

    class Context:
        def __init__(self) -> None:
            if context_error is not None:
                raise context_error

        def load_model(self, path: str) -> None:
            raise load_error or RuntimeError("unreachable")

        def release(self) -> None:
            events.append("released")

    api = types.ModuleType("axelera.runtime")
    api.Context = Context  # type: ignore[attr-defined]
    return Backend("metis", api), events


def test_oserror_from_context_is_a_device_error() -> None:
    backend, _ = sdk_like(context_error=FileNotFoundError(2, "No such file", "/dev/metis-0"))
    with pytest.raises(DeviceError, match=r"opening the runtime: .*metis-0' \[FileNotFoundError\]"):
        Engine(MODEL, backend=backend).open()


def test_runtime_error_from_load_model_is_a_model_error_and_releases() -> None:
    backend, events = sdk_like(load_error=RuntimeError("bad elf"))
    with pytest.raises(ModelError, match="loading .*model.json: bad elf"):
        Engine(MODEL, backend=backend).open()
    assert events == ["released"]


def test_any_exception_from_the_real_library_is_an_axrun_error() -> None:
    # a binding refusing its arguments raises TypeError: a message, not a traceback
    backend, events = sdk_like(load_error=TypeError("load_model(): incompatible arguments"))
    with pytest.raises(ModelError, match=r"loading .*model.json: load_model\(\): incompatible"):
        Engine(MODEL, backend=backend).open()
    assert events == ["released"]


def test_the_cli_exits_3_with_one_line(monkeypatch) -> None:
    import axrun.cli.shared as shared
    from axrun.cli import app

    sdk, _ = sdk_like(context_error=OSError("no Metis driver loaded"))
    real = shared.Engine
    monkeypatch.setattr(shared, "Engine",
                        lambda folder, backend=None, config=None:
                        real(folder, backend=sdk, config=config))
    result = CliRunner().invoke(app, ["classify", str(SAMPLES), "-q"])
    assert result.exit_code == 3
    assert result.stderr.strip().splitlines() == [
        "error: opening the runtime: no Metis driver loaded [OSError]"]
