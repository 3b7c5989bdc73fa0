"""``axrun info``, ``axrun devices`` and the global options, through the real CLI."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from axrun import __version__
from axrun.cli import app

runner = CliRunner()


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"axrun {__version__}"


def test_info_text_and_json(tiny) -> None:
    path = tiny(kind="twohead", batch=2, spatial=(1, 1, 1, 15), with_postamble=True).path
    text = runner.invoke(app, ["info", str(path)], terminal_width=200)
    assert text.exit_code == 0, text.output
    assert "(2, 10, 24, 4)" in text.stdout and "head_b" in text.stdout
    assert "2 instance(s) per 4-core device" in text.stdout
    result = runner.invoke(app, ["info", str(path), "--json"])
    data = json.loads(result.stdout)
    assert data["batch"] == 2
    assert data["inputs"][0]["padding"] == [[0, 0], [1, 1], [1, 15], [0, 1]]
    assert [o["name"] for o in data["postamble"]["outputs"]] == ["scores"]


def test_info_on_bad_folder_is_one_line_exit_3(tmp_path) -> None:
    result = runner.invoke(app, ["info", str(tmp_path)])
    assert result.exit_code == 3
    assert result.stderr.strip().startswith("error: no compiled model")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_devices_text_and_json(tiny, monkeypatch) -> None:
    monkeypatch.setenv("AXRUN_EMULATOR_DEVICES", "2")
    text = runner.invoke(app, ["devices"], terminal_width=200)
    assert text.exit_code == 0 and "backend: emulator" in text.stdout
    assert "metis-0:2:0" in text.stdout
    data = json.loads(runner.invoke(app, ["devices", "--json"]).stdout)
    assert data["backend"] == "emulator"
    assert [(d["name"], d["cores"], d["cores_free"]) for d in data["devices"]] == [
        ("metis-0:1:0", 4, 4), ("metis-0:2:0", 4, 4)]


def test_metis_backend_without_sdk_says_how_to_get_it(monkeypatch) -> None:
    result = runner.invoke(app, ["--backend", "metis", "devices"])
    assert result.exit_code == 3
    assert "Voyager SDK" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    monkeypatch.setenv("AXRUN_BACKEND", "metis")
    assert runner.invoke(app, ["devices"]).exit_code == 3


def test_unknown_backend_is_usage_error() -> None:
    result = runner.invoke(app, ["--backend", "gpu", "devices"])
    assert result.exit_code == 2 and "unknown backend 'gpu'" in result.stderr
