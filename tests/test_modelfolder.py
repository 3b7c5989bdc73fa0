"""Model folders: locating them, and one clear error per missing or malformed field."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from axrun.errors import ModelError
from axrun.modelfolder import describe, find_model_json, load_model_folder


@pytest.fixture
def folder(tiny, tmp_path: Path) -> Path:
    src = tiny(kind="twohead", batch=2, spatial=(1, 1, 1, 15), with_postamble=True).path
    dest = tmp_path / "build" / "net" / "net" / "1"
    shutil.copytree(src, dest)
    return dest


def edit_manifest(folder: Path, **changes) -> None:
    path = folder / "manifest.json"
    data = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    path.write_text(json.dumps(data))


def test_accepts_model_json_its_folder_and_a_parent_with_one_model(folder: Path) -> None:
    expected = folder / "model.json"
    assert find_model_json(expected) == expected
    assert find_model_json(folder) == expected
    assert find_model_json(folder.parent.parent.parent) == expected  # build/


def test_parent_with_several_models_lists_them(folder: Path) -> None:
    shutil.copytree(folder, folder.parent / "4")
    with pytest.raises(ModelError, match=r"holds 2 compiled models.*net/1.*net/4"):
        find_model_json(folder.parent)


def test_missing_path_and_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        find_model_json(tmp_path / "nope")
    with pytest.raises(ModelError, match="no compiled model"):
        find_model_json(tmp_path)


def test_parses_channel_and_spatial_padding(folder: Path) -> None:
    mf = load_model_folder(folder)
    (inp,) = mf.manifest.inputs
    assert inp.shape == (2, 10, 24, 4)
    assert inp.padding == ((0, 0), (1, 1), (1, 15), (0, 1))
    assert inp.unpadded_shape == (2, 8, 8, 3)
    assert [o.unpadded_shape for o in mf.manifest.outputs] == [(2, 8, 8, 5), (2, 4, 4, 7)]
    assert mf.manifest.batch == 2
    assert mf.postamble_path == folder / "postprocess_graph.onnx"


def test_legacy_four_tuple_padding(folder: Path) -> None:
    # (top, left, bottom, right); channel padding follows from the shapes.
    edit_manifest(folder, n_padded_ch_inputs=[[1, 1, 1, 15]])
    (inp,) = load_model_folder(folder).manifest.inputs
    assert inp.padding == ((0, 0), (1, 1), (1, 15), (0, 1))


def test_manifest_1_0_without_original_shapes_and_sdk_dtypes(folder: Path) -> None:
    # What SDK 1.0 manifests hold: no *_shapes_original (the 8-value padding says them),
    # and the original model's dtypes, bookkeeping only (device tensors are int8).
    before = load_model_folder(folder).manifest
    edit_manifest(folder, input_shapes_original=None, output_shapes_original=None,
                  manifest_version="1.0", input_dtypes=["uint8"],
                  output_dtypes=["float32"] * len(before.outputs))
    after = load_model_folder(folder).manifest
    assert [t.padding for t in after.inputs + after.outputs] == \
        [t.padding for t in before.inputs + before.outputs]
    assert [t.unpadded_shape for t in after.outputs] == [(2, 8, 8, 5), (2, 4, 4, 7)]


def test_padding_derived_from_shapes_when_absent(tiny, tmp_path: Path) -> None:
    src = tiny(kind="classifier", batch=1).path
    shutil.copytree(src, tmp_path / "m")
    edit_manifest(tmp_path / "m", n_padded_ch_inputs=None, n_padded_ch_outputs=None)
    mf = load_model_folder(tmp_path / "m")
    assert mf.manifest.inputs[0].padding == ((0, 0), (0, 0), (0, 0), (0, 1))
    assert mf.manifest.outputs[0].padding == ((0, 0), (0, 0), (0, 0), (0, 54))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"input_shapes": None}, "field 'input_shapes' is missing"),
        ({"output_shapes": "x"}, "field 'output_shapes' must be a non-empty list"),
        ({"quantize_params": [[0.1]]}, "field 'quantize_params' must be a list of 1"),
        ({"quantize_params": [[0, 0]]}, "invalid scale"),
        ({"dequantize_params": [[0.1, 300], [0.1, 0]]}, "invalid zero point"),
        ({"n_padded_ch_inputs": [[0, 0, 1, 1, 1, 15, 0, 2]]}, "n_padded_ch_inputs.*original"),
        ({"n_padded_ch_inputs": [[1, 2, 3]]}, "8 or 4 non-negative integers"),
        ({"input_shapes_original": [[2, 3, 8]]}, "n_padded_ch_inputs"),
        ({"postprocess_graph": "missing.onnx"}, "field 'postprocess_graph' names 'missing.onnx'"),
        ({"input_shapes_original": None, "n_padded_ch_inputs": [[1, 1, 1, 15]]},
         "legacy 4-value padding.*version 1.1"),
        (
            {"output_shapes": [[2, 8, 8, 64], [1, 4, 4, 64]],
             "output_shapes_original": [[2, 5, 8, 8], [1, 7, 4, 4]]},
            "disagree on the batch",
        ),
    ],
)
def test_malformed_manifest_fields_name_file_and_field(folder: Path, changes, message) -> None:
    edit_manifest(folder, **changes)
    with pytest.raises(ModelError, match=message) as info:
        load_model_folder(folder)
    assert "manifest.json" in str(info.value)


def test_invalid_json_and_missing_manifest(folder: Path) -> None:
    (folder / "manifest.json").write_text("{oops")
    with pytest.raises(ModelError, match=r"manifest.json: invalid JSON at line 1"):
        load_model_folder(folder / "model.json")
    (folder / "manifest.json").unlink()
    with pytest.raises(ModelError, match=r"manifest.json: file not found"):
        load_model_folder(folder / "model.json")


@pytest.mark.parametrize(
    ("sidecar", "message"),
    [
        ({"task": "segment"}, "field 'task' must be one of classify, detect"),
        ({"preprocess": {"mode": "zoom"}}, "field 'preprocess' is invalid: mode must be"),
        ({"preprocess": {"std": [1, 0, 1]}}, "std values must be non-zero"),
        ({"preprocess": {"bogus": 1}}, "unknown keys"),
        ({"labels": "nope.txt"}, "field 'labels' names 'nope.txt'"),
        ({"decoder": [1]}, "field 'decoder' must be an object"),
    ],
)
def test_malformed_sidecar(folder: Path, sidecar, message) -> None:
    (folder / "axrun.json").write_text(json.dumps(sidecar))
    with pytest.raises(ModelError, match=message) as info:
        load_model_folder(folder)
    assert "axrun.json" in str(info.value)


def test_sidecar_and_labels_are_read(tiny) -> None:
    mf = load_model_folder(tiny(kind="classifier", classes=10).path)
    assert mf.task == "classify"
    assert mf.labels is not None and len(mf.labels) == 10 and mf.labels[3] == "class_3"


def test_empty_labels_file(tiny, tmp_path: Path) -> None:
    shutil.copytree(tiny(kind="classifier").path, tmp_path / "m")
    (tmp_path / "m" / "labels.txt").write_text("\n\n")
    with pytest.raises(ModelError, match="labels file is empty"):
        load_model_folder(tmp_path / "m")


def test_describe_reports_postamble_io_and_instances(folder: Path) -> None:
    data = describe(load_model_folder(folder))
    assert data["batch"] == 2 and data["instances_per_device"] == 2
    assert [i["name"] for i in data["postamble"]["inputs"]] == ["head_b", "head_a"]
    assert data["inputs"][0]["bytes"] == 2 * 10 * 24 * 4


def test_bundled_models_search_path(tiny, tmp_path: Path, monkeypatch) -> None:
    import axrun.modelfolder
    from axrun.modelfolder import bundled_model

    src = tiny(kind="classifier").path
    shutil.copytree(src, tmp_path / "efficientnet-lite0-imagenet")
    monkeypatch.setenv("AXRUN_MODELS", str(tmp_path))
    assert bundled_model("classify") == tmp_path / "efficientnet-lite0-imagenet"
    # the package's own axrun/models/ is found without AXRUN_MODELS
    monkeypatch.delenv("AXRUN_MODELS")
    assert bundled_model("detect") == \
        Path(axrun.modelfolder.__file__).parent / "models" / "yolox-nano-coco"


def sdk_layout(tiny, tmp_path: Path, info: dict) -> Path:
    """A tiny classifier in the SDK's layout: build/<network>/<model>/1/ with
    model_info.json one level up, and no axrun.json."""
    cores = tmp_path / "build" / "net" / "net" / "1"
    shutil.copytree(tiny(kind="classifier", classes=10).path, cores)
    for extra in ("axrun.json", "labels.txt"):
        (cores / extra).unlink(missing_ok=True)
    (cores.parent / "model_info.json").write_text(json.dumps(info))
    return cores


def test_sdk_model_info_gives_labels_and_task(tiny, tmp_path: Path) -> None:
    names = [f"thing {i}" for i in range(10)]
    cores = sdk_layout(tiny, tmp_path, {"name": "net", "task_category": "Classification",
                                        "labels": names, "num_classes": 10})
    mf = load_model_folder(tmp_path / "build" / "net")  # a parent holding one model
    assert mf.root == cores and mf.task == "classify" and mf.labels == tuple(names)


def test_sdk_model_info_of_another_kind_is_refused_for_our_tasks(tiny, tmp_path: Path) -> None:
    from axrun.errors import UsageError
    from axrun.tasks import make_task

    cores = sdk_layout(tiny, tmp_path, {"task_category": "KeypointDetection", "labels": []})
    mf = load_model_folder(cores)
    assert mf.task is None and mf.labels is None
    with pytest.raises(UsageError, match="says keypointdetection: not a classify model"):
        make_task(mf, "classify")


def test_models_the_tasks_cannot_feed_are_refused_not_half_fed(tiny, tmp_path: Path) -> None:
    from axrun.tasks import make_task

    folder = tmp_path / "m"
    shutil.copytree(tiny(kind="classifier", classes=10).path, folder)
    (folder / "pre.onnx").write_bytes(b"")
    edit_manifest(folder, preprocess_graph="pre.onnx")
    with pytest.raises(ModelError, match=r"pre.onnx: the preamble must take one \[1, 3, H, W\]"):
        make_task(load_model_folder(folder), "classify")
    edit_manifest(folder, preprocess_graph="")
    manifest = json.loads((folder / "manifest.json").read_text())
    edit_manifest(folder, input_names=["a", "b"], **{key: manifest[key] * 2 for key in (
        "input_shapes", "input_shapes_original", "quantize_params", "n_padded_ch_inputs")})
    with pytest.raises(ModelError, match="2 device inputs"):
        make_task(load_model_folder(folder), "classify")
