"""Device settings (clock, MVM utilisation, DDR size) reach Context.configure_device()
before any connection, from axrun.json and from the caller, the caller's winning."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

import axrun
from axrun.cli import app

MODEL = Path(__file__).parents[2] / "axrun" / "models" / "efficientnet-lite0-imagenet"
SAMPLES = Path(__file__).parents[2] / "models" / "samples"


def configured(engine: axrun.Engine) -> dict[str, str]:
    assert engine.session is not None
    return dict(engine.session.ctx.read_device_configuration("metis-0:1:0"))


def test_settings_from_the_model_and_the_caller_reach_the_device(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    shutil.copytree(MODEL, folder)
    sidecar = json.loads((folder / "axrun.json").read_text())
    sidecar["device_config"] = {"mvm_utilisation_core_0": 57, "clock_profile": 600}
    (folder / "axrun.json").write_text(json.dumps(sidecar))
    config = axrun.EngineConfig(device_config={"clock_profile": 400})
    with axrun.Engine(folder, config=config) as engine:
        got = configured(engine)
    assert got["mvm_utilisation_core_0"] == "57" and got["clock_profile"] == "400"


def test_unknown_or_non_integer_settings_are_refused() -> None:
    with pytest.raises(axrun.ParameterError, match="device_config has an unknown setting "
                                                   "'turbo'"):
        axrun.EngineConfig(device_config={"turbo": 1})
    with pytest.raises(axrun.ParameterError, match="device_config must be an integer"):
        axrun.EngineConfig(device_config={"clock_profile": "fast"})  # type: ignore[dict-item]
    runner = CliRunner()
    photo = str(SAMPLES / "coffee.jpg")
    result = runner.invoke(app, ["classify", photo, "--device-config", "clock_profile=x"])
    assert result.exit_code == 2 and "--device-config clock_profile: expected an integer" \
        in result.stderr
    result = runner.invoke(app, ["classify", photo, "--device-config", "turbo=1"])
    assert result.exit_code == 2 and "--device-config has an unknown setting 'turbo'" \
        in result.stderr
    result = runner.invoke(app, ["classify", photo, "-q", "-o", "-",
                                 "--device-config", "ddr_size=0x40000000,clock_profile=800"])
    assert result.exit_code == 0 and json.loads(result.stdout)["top"][0]["label"] == "espresso"


def test_every_command_that_opens_the_device_takes_device_config(monkeypatch) -> None:
    import metis_standin
    from typer.testing import CliRunner

    from axrun.cli import app

    calls: list[str] = []
    metis_standin.install(monkeypatch, calls=calls)
    samples = str(SAMPLES)
    for command in (["classify", samples, "-q", "-o", "-", "-m", str(MODEL)],
                    ["bench", str(MODEL), "--seconds", "0.3", "--json"]):
        calls.clear()
        result = CliRunner().invoke(app, ["--backend", "metis", *command,
                                          "--device-config", "clock_profile=600"])
        assert result.exit_code == 0, result.output
        assert calls.index("configure_device") < calls.index("device_ready") \
            < calls.index("device_connect")
