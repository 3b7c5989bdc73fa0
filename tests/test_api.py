"""The Python front door: axrun.load(), calling a model on every kind of input, results,
the device's release, errors in library terms, and the documented public API."""

from __future__ import annotations

import gc
import json
import re
import subprocess
import sys
import types
from pathlib import Path

import cv2
import numpy as np
import pytest
from polling import wait_until
from typer.testing import CliRunner

import axrun
from axrun.cli import app

ROOT = Path(__file__).parents[1]
SAMPLES = ROOT / "models" / "samples"
DETECTOR = ROOT / "axrun" / "models" / "yolox-nano-coco"
pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def classifier():
    # 2 cores each: both models can be open at once on one emulated device
    with axrun.load(config=axrun.EngineConfig(aipu_cores=2)) as model:
        yield model


@pytest.fixture(scope="module")
def detector():
    with axrun.load(DETECTOR, config=axrun.EngineConfig(aipu_cores=2)) as model:
        yield model


def top(result: axrun.Result) -> tuple[str, float]:
    c = result.classification
    assert c is not None
    return c.label[0], round(float(c.confidence[0]), 4)


def test_the_readme_snippet_runs_on_every_kind_of_input(detector, tmp_path) -> None:
    photo = SAMPLES / "astronaut.jpg"
    frame_bgr = cv2.imread(str(photo))
    jpeg_bytes = photo.read_bytes()
    clips = tmp_path / "clips"
    clips.mkdir()
    writer = cv2.VideoWriter(str(clips / "c.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 5,
                             (frame_bgr.shape[1], frame_bgr.shape[0]))
    for _ in range(3):
        writer.write(frame_bgr)
    writer.release()
    got = list(detector([str(photo), str(clips), frame_bgr, jpeg_bytes]))
    assert [(r.source, r.frame) for r in got] == [
        (str(photo), None), (str(clips / "c.avi"), 0), (str(clips / "c.avi"), 1),
        (str(clips / "c.avi"), 2), ("<array 2>", None), ("<bytes 3>", None)]
    path, array, encoded = got[0].detections, got[4].detections, got[5].detections
    assert path is not None and array is not None and encoded is not None
    assert "person" in path.label
    # the same pixels give the same boxes, however they were given
    np.testing.assert_array_equal(path.xyxy, array.xyxy)
    np.testing.assert_array_equal(path.xyxy, encoded.xyxy)
    assert got[0].to_dict()["detections"] == got[5].to_dict()["detections"]


def test_paths_globs_pathlikes_generators_and_nesting(classifier) -> None:
    files = sorted(SAMPLES.glob("*.jpg"))[:3]
    by_path = [top(r) for r in classifier.predict([str(f) for f in files])]
    assert [top(r) for r in classifier.predict(files)] == by_path  # os.PathLike
    assert [top(r) for r in classifier(str(SAMPLES / "*.jpg"))][:3] == by_path  # a glob
    assert [top(r) for r in classifier(str(f) for f in files)] == by_path  # a generator
    nested = classifier.predict([str(files[0]), [files[1], (files[2],)]])
    assert [top(r) for r in nested] == by_path
    # a folder, recursive and sorted, and a single path on its own
    assert [r.source for r in classifier(str(SAMPLES))] == [str(f) for f in
                                                              sorted(SAMPLES.glob("*.jpg"))]
    assert top(classifier.predict(str(files[0]))[0]) == by_path[0]


def test_arrays_grey_and_bad_arrays(classifier) -> None:
    image = cv2.imread(str(SAMPLES / "coffee.jpg"))
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    results = classifier.predict([image, grey, grey[:, :, None], image.astype(np.float32),
                                  np.zeros((10, 10, 4), np.uint8), np.zeros((0, 5, 3), np.uint8)])
    assert top(results[0])[0] == "espresso"
    from_grey = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
    assert top(results[1]) == top(results[2]) == top(classifier.predict([from_grey])[0])
    # never a guess: the rest are error results that say why
    errors = [(r.source, r.error.kind, str(r.error)) for r in results[3:]]
    assert [e[:2] for e in errors] == [("<array 3>", "array"), ("<array 4>", "array"),
                                       ("<array 5>", "array")]
    assert "float32, not uint8" in errors[0][2] and "(10, 10, 4)" in errors[1][2]
    assert "no pixels" in errors[2][2]
    with pytest.raises(axrun.InputError, match="float32"):
        _ = results[3].classification


def test_bytes_that_are_not_an_image_get_an_error_result(classifier) -> None:
    good = (SAMPLES / "rocket.jpg").read_bytes()
    results = classifier.predict([b"not an image", bytearray(good), memoryview(good), b""])
    assert [r.error.kind if r.error else None for r in results] == ["decode", None, None,
                                                                   "empty"]
    assert top(results[1]) == top(results[2])
    assert results[0].to_dict()["error"]["type"] == "decode"


def test_an_unsupported_input_type_is_a_parameter_error(classifier) -> None:
    with pytest.raises(axrun.ParameterError, match="inputs cannot hold int values"):
        classifier.predict([str(SAMPLES / "coffee.jpg"), 42])


def test_to_dict_is_the_command_lines_record(classifier, tmp_path) -> None:
    out = tmp_path / "r.jsonl"
    photo = str(SAMPLES / "chelsea.jpg")
    result = CliRunner().invoke(app, ["classify", photo, "-o", str(out), "-q"])
    assert result.exit_code == 0, result.stderr
    record = json.loads(out.read_text())
    assert classifier.predict([photo])[0].to_dict() == record


def test_detect_records_and_the_shared_vocabulary(detector) -> None:
    r = detector.predict([str(SAMPLES / "astronaut.jpg")])[0]
    d = r.detections
    assert d is not None and r.classification is None
    assert d.xyxy.dtype == np.float32 and d.xyxy.shape == (len(d), 4)
    assert d.confidence.dtype == np.float32 and d.class_id.dtype == np.int64
    record = r.to_dict()
    assert [(x["id"], x["label"], x["score"]) for x in record["detections"]] == [
        (int(c), lab, round(float(s), 5)) for c, lab, s in zip(d.class_id, d.label,
                                                               d.confidence, strict=True)]
    assert record["width"] == r.geometry.width and record["height"] == r.geometry.height


def test_to_supervision_maps_every_field(detector, monkeypatch) -> None:
    made = {}
    fake = types.ModuleType("supervision")
    fake.Detections = lambda **kwargs: made.update(kwargs) or "sv"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "supervision", fake)
    d = detector.predict([str(SAMPLES / "astronaut.jpg")])[0].detections
    assert d.to_supervision() == "sv"
    np.testing.assert_array_equal(made["xyxy"], d.xyxy)
    np.testing.assert_array_equal(made["confidence"], d.confidence)
    np.testing.assert_array_equal(made["class_id"], d.class_id)
    assert list(made["data"]["class_name"]) == list(d.label)
    monkeypatch.setitem(sys.modules, "supervision", None)
    with pytest.raises(ImportError, match="pip install supervision"):
        d.to_supervision()


def test_keep_images_limit_and_stride(detector, tmp_path) -> None:
    image = cv2.imread(str(SAMPLES / "camera.jpg"))
    r = detector.predict([image], keep_images=True)[0]
    np.testing.assert_array_equal(r.image, image)
    assert detector.predict([image])[0].image is None
    assert len(detector.predict([image] * 5, limit=2)) == 2


def test_the_device_is_released_by_close_with_and_garbage_collection() -> None:
    first = axrun.load()
    with pytest.raises(axrun.DeviceBusy, match="this program opened still holds them"):
        axrun.load()
    first.close()
    first.close()  # idempotent
    with pytest.raises(RuntimeError, match="was closed"):
        first.predict([str(SAMPLES / "coffee.jpg")])  # not silently reserved again
    with axrun.load():
        pass
    forgotten = axrun.load()
    del forgotten
    gc.collect()
    two = [axrun.load(config=axrun.EngineConfig(aipu_cores=2)) for _ in range(2)]  # 2 + 2
    for model in two:
        model.close()


def test_one_call_at_a_time(classifier) -> None:
    running = classifier([str(SAMPLES / "coffee.jpg")] * 20)
    next(running)
    with pytest.raises(RuntimeError, match="already running a call"):
        classifier.predict([str(SAMPLES / "coffee.jpg")])
    running.close()  # ends the first call
    assert len(classifier.predict([str(SAMPLES / "coffee.jpg")])) == 1


def test_library_errors_name_parameters_and_the_cli_names_flags(tmp_path) -> None:
    with pytest.raises(axrun.ParameterError, match=r"^top_k must be at least 1 \(got 0\)"):
        axrun.load(top_k=0)
    with pytest.raises(ValueError, match="^conf must be between 0 and 1"):
        axrun.load(DETECTOR, conf=2.0)
    with pytest.raises(axrun.ParameterError, match="^conf is not an option of classify"):
        axrun.load(conf=0.5)
    with pytest.raises(axrun.ParameterError, match="^classes has an unknown class 'unicorn'"):
        axrun.load(DETECTOR, classes=["unicorn"])
    runner = CliRunner()
    photo = str(SAMPLES / "coffee.jpg")
    for args, said in ((["classify", photo, "-k", "0"], "error: --top-k must be at least 1"),
                       (["detect", photo, "--conf", "2"], "error: --conf must be between"),
                       (["detect", photo, "--max-det", "0"], "error: --max-det must be"),
                       (["classify", photo, "--mean", "1,2"], "error: --mean must be one")):
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and said in result.stderr, (args, result.stderr)


def test_importing_and_loading_change_no_process_setting() -> None:
    # a JPEG, a PNG and a HEIC decoded: Pillow's limit and its registry untouched too
    heic = ("import io, numpy, pillow_heif; b = io.BytesIO(); pillow_heif.from_bytes("
            "'RGB', (8, 8), bytes(192)).save(b, format='HEIF'); heic = b.getvalue(); ")
    code = ("import os, cv2; from PIL import Image; cv2.setNumThreads(3); " + heic +
            "import axrun; m = axrun.load(); "
            f"rs = m.predict([os.path.join({str(SAMPLES)!r}, 'coffee.jpg'), heic, "
            "cv2.imencode('.png', numpy.zeros((9, 9, 3), numpy.uint8))[1].tobytes()]); "
            "print(all(r.ok for r in rs), cv2.getNumThreads(), "
            "os.environ.get('OPENCV_IO_MAX_IMAGE_PIXELS'), "
            "os.environ.get('OPENCV_LOG_LEVEL'), Image.MAX_IMAGE_PIXELS, 'HEIF' in Image.OPEN); "
            "axrun.tune_process(); print(cv2.getNumThreads(), Image.MAX_IMAGE_PIXELS)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout.split()
    assert out == ["True", "3", "None", "None", "89478485", "False", "1", "None"]


def documented_api() -> set[str]:
    """The names the README's "Using axrun from Python" section lists as the API."""
    text = (ROOT / "README.md").read_text()
    section = text.split("<!-- api-names -->")[1].split("<!-- /api-names -->")[0]
    return set(re.findall(r"`(\w+)`", section))


def test_all_is_complete_and_documented() -> None:
    assert set(axrun.__all__) == documented_api()
    for name in axrun.__all__:
        assert getattr(axrun, name) is not None
    assert set(dir(axrun)) >= set(axrun.__all__)


def test_a_folder_that_does_not_say_its_task_needs_one(tmp_path) -> None:
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(ROOT / "axrun" / "models" / "efficientnet-lite0-imagenet", folder)
    sidecar = json.loads((folder / "axrun.json").read_text())
    del sidecar["task"]
    (folder / "axrun.json").write_text(json.dumps(sidecar))
    with pytest.raises(axrun.ParameterError, match="task is needed"):
        axrun.load(folder)
    with axrun.load(folder, task="classify") as model:
        assert top(model.predict([str(SAMPLES / "coffee.jpg")])[0])[0] == "espresso"


def test_arrays_are_copied_so_a_reused_buffer_gives_each_frame_its_own_result(
        classifier) -> None:
    images = [cv2.resize(cv2.imread(str(p)), (320, 240)) for p in sorted(SAMPLES.glob("*.jpg"))]
    expected = [top(r) for r in classifier.predict(images)]
    buffer = np.empty((240, 320, 3), np.uint8)

    def frames():  # like cv2.VideoCapture.read(buffer): one buffer, refilled
        for image in images:
            buffer[...] = image
            yield buffer

    assert [top(r) for r in classifier(frames())] == expected
    assert len(set(expected)) > 3  # the photos differ: a mix-up would show


def test_rgb_arrays_when_said_so(classifier) -> None:
    bgr = cv2.imread(str(SAMPLES / "rocket.jpg"))
    rgb = np.ascontiguousarray(bgr[:, :, ::-1])
    assert top(classifier.predict([rgb], color="rgb")[0]) == top(classifier.predict([bgr])[0])
    with pytest.raises(axrun.ParameterError, match="^color must be one of rgb, bgr"):
        classifier.predict([rgb], color="RGB!")


def test_an_empty_name_is_not_the_working_folder(classifier, tmp_path, monkeypatch) -> None:
    (tmp_path / "a.jpg").write_bytes((SAMPLES / "coffee.jpg").read_bytes())
    monkeypatch.chdir(tmp_path)
    (r,) = classifier.predict("")
    assert r.error is not None and r.error.kind == "not_found"
    assert [x.error.kind for x in classifier.predict(["", [""]])] == ["not_found"] * 2
    # (Path("") is Path("."): pathlib has already made it the working folder)
    result = CliRunner().invoke(app, ["classify", "", "-o", "-", "-q"])
    assert result.exit_code == 1 and json.loads(result.stdout)["error"]["type"] == "not_found"


def test_file_objects_and_mappings_are_refused_not_iterated(classifier) -> None:
    with open(SAMPLES / "coffee.jpg", "rb") as f, \
            pytest.raises(axrun.ParameterError, match="cannot hold BufferedReader"):
        classifier.predict(f)
    with pytest.raises(axrun.ParameterError, match="cannot hold dict"):
        classifier.predict({str(SAMPLES / "coffee.jpg"): "label"})


def test_a_detector_is_never_run_as_a_classifier(tmp_path) -> None:
    import shutil

    folder = tmp_path / "yolox"
    shutil.copytree(DETECTOR, folder)
    (folder / "axrun.json").unlink()
    with pytest.raises(axrun.ModelError, match="not a classification model"):
        axrun.load(folder, task="classify")


@pytest.mark.parametrize(("options", "said"), [
    ({"top_k": "3"}, "top_k must be an integer"), ({"top_k": 2.5}, "top_k must be an integer"),
    ({"top_k": True}, "top_k must be an integer"),
    ({"task": "segment"}, "task must be one of classify, detect"),
    ({"config": "x"}, "config must be an EngineConfig"),
    ({"scores": "odds"}, "scores must be one of logits, probabilities"),
])
def test_classify_options_of_the_wrong_type_are_parameter_errors(options, said) -> None:
    with pytest.raises(axrun.ParameterError, match=said):
        axrun.load(**options)


@pytest.mark.parametrize(("options", "said"), [
    ({"conf": "0.5"}, "conf must be a number"), ({"iou": None}, "iou must be a number"),
    ({"max_det": 2.5}, "max_det must be an integer"),
    ({"agnostic": "no"}, "agnostic must be True or False"),
    ({"classes": [-1]}, "classes must be class ids"),
    ({"classes": [0.0]}, "classes must be class ids or names"),
])
def test_detect_options_of_the_wrong_type_are_parameter_errors(options, said) -> None:
    with pytest.raises(axrun.ParameterError, match=said):
        axrun.load(DETECTOR, **options)


def test_classes_accept_one_name_numpy_ids_and_device_names() -> None:
    from axrun.tasks import class_ids

    labels = ("person", "bicycle", "car")
    assert class_ids("car", labels) == {2} and class_ids(np.int64(1), labels) == {1}
    assert class_ids([np.int64(0), "Car"], labels) == {0, 2}
    assert axrun.EngineConfig(devices="metis-0:1:0").devices == ("metis-0:1:0",)
    with pytest.raises(axrun.ParameterError, match="aipu_cores must be an integer"):
        axrun.EngineConfig(aipu_cores="2")  # type: ignore[arg-type]
    with pytest.raises(axrun.ParameterError, match="double_buffer must be True or False"):
        axrun.EngineConfig(double_buffer="no")  # type: ignore[arg-type]


def test_closing_a_model_ends_a_call_still_going_on() -> None:
    import threading

    model = axrun.load()
    results = model([str(SAMPLES / "coffee.jpg")] * 30)
    next(results)
    model.close()
    # the device's workers have ended when close() returns; a host thread may still
    # be finishing a read (it touches no device), and ends at once after
    assert not [t for t in threading.enumerate() if t.name.startswith("axrun-worker")]
    assert wait_until(lambda: not [t for t in threading.enumerate()
                                   if t.name.startswith("axrun-")])
    with pytest.raises(axrun.PipelineError, match="closed during this run"):
        list(results)
    with pytest.raises(RuntimeError, match="was closed"):
        model([str(SAMPLES / "coffee.jpg")])  # at the call, not at the first result
    with axrun.load() as again:  # the device was released
        assert len(again.predict([str(SAMPLES / "coffee.jpg")])) == 1


def test_exit_with_a_call_still_going_on_is_clean() -> None:
    # The device's threads were inside run() when the interpreter released the device:
    # the process ended by SIGABRT ("terminate called without an active exception").
    for script in ("m = axrun.load(); r = m([p] * 20); next(r)",
                   "with axrun.load() as m:\n    r = m([p] * 20); next(r)"):
        code = f"import axrun\np = {str(SAMPLES / 'coffee.jpg')!r}\n{script}\nprint('done')"
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=60)
        assert proc.returncode == 0 and proc.stdout == "done\n", proc.stderr[-500:]
