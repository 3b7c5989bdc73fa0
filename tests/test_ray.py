"""Scale-out on a local Ray cluster: the same records as one process, resume, jobs in a
row, bytes input; --shard without Ray."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "models" / "samples"

ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install "
                          "'axrun[ray]'; make installs it)")
pytestmark = pytest.mark.timeout(300)


def axrun(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None,
          **kw) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "AXRUN_EMULATOR_DEVICES": "2", **(env or {})}
    return subprocess.run([sys.executable, "-m", "axrun", *args], capture_output=True,
                          text=True, cwd=cwd, env=full, timeout=240, **kw)


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The samples three times over (18 photos), a file that is not an image, and the
    demo's pan video."""
    folder = tmp_path_factory.mktemp("ray") / "in"
    folder.mkdir()
    for i in range(3):
        for p in SAMPLES.glob("*.jpg"):
            shutil.copy(p, folder / f"{p.stem}-{i}.jpg")
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    subprocess.run([sys.executable, str(ROOT / "models" / "make_pan_video.py"),
                    str(folder / "pan.mp4")], check=True, capture_output=True)
    return folder


@pytest.mark.parametrize("command", ["classify", "detect"])
def test_ray_local_gives_the_records_of_one_process(photos: Path, tmp_path: Path,
                                                    command: str) -> None:
    one, many = tmp_path / "one.jsonl", tmp_path / "ray.jsonl"
    common = [command, str(photos), str(photos / "missing.jpg"), "--vid-stride", "15"]
    assert axrun(*common, "-o", str(one)).returncode == 1
    result = axrun(*common, "-o", str(many), "--ray", "local")
    assert result.returncode == 1, result.stderr
    assert many.read_bytes() == one.read_bytes()  # byte for byte, in input order
    assert "plan: Ray at local: 2 actor(s)" in result.stderr
    assert f"wrote {many} (25 record(s))" in result.stderr


def test_limit_counts_frames_as_on_one_machine(photos: Path, tmp_path: Path) -> None:
    """Videos are rows of the job, but --limit counts records (frames)."""
    one, many = tmp_path / "one.jsonl", tmp_path / "ray.jsonl"
    common = ["detect", str(photos / "pan.mp4"), str(photos), "--limit", "9"]
    assert axrun(*common, "-o", str(one)).returncode == 0
    assert axrun(*common, "-o", str(many), "--ray", "local").returncode == 0
    assert many.read_bytes() == one.read_bytes()
    assert len(one.read_text().splitlines()) == 9


def test_resume_after_the_driver_is_stopped(photos: Path, tmp_path: Path) -> None:
    out, one = tmp_path / "r.jsonl", tmp_path / "one.jsonl"
    env = {"AXRUN_EMULATOR_COMPUTE": "0", "AXRUN_EMULATOR_LATENCY_MS": "400"}
    args = ["classify", str(photos), "-o", str(out), "--ray", "local"]
    proc = subprocess.Popen([sys.executable, "-m", "axrun", *args], cwd=ROOT,
                            env={**os.environ, "AXRUN_EMULATOR_DEVICES": "2", **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not out.exists() or
                                           len(out.read_text().splitlines()) < 3):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    done = len(out.read_text().splitlines())
    assert proc.returncode == 130 and 3 <= done < 19, err
    resumed = axrun(*args, "--resume", env=env)
    assert resumed.returncode in (0, 1), resumed.stderr  # 1 if broken.jpg is left
    assert f"{done} input(s) already recorded" in resumed.stderr
    assert axrun("classify", str(photos), "-o", str(one), env=env).returncode == 1
    assert out.read_bytes() == one.read_bytes()  # every input once, in input order


def test_two_jobs_in_a_row_and_bytes_in(photos: Path) -> None:
    """The library path: one driver, two jobs; the second gets the devices the first
    held (its actors ended), and encoded bytes go in as read_binary_files gives them."""
    import axrun
    import axrun.ray as axray

    env = {k: os.environ[k] for k in ("AXRUN_EMULATOR_STATE_DIR",) if k in os.environ}
    ray.init(num_cpus=2, resources={"metis": 2}, include_dashboard=False,
             log_to_driver=False, runtime_env={"env_vars": {"AXRUN_EMULATOR_DEVICES": "2",
                                                             **env}})
    try:
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True
        package = ray.put(axray.pack("efficientnet-lite0-imagenet"))
        jpegs = sorted(photos.glob("*.jpg"))
        for _ in range(2):
            ds = ray.data.read_binary_files([str(p) for p in jpegs], include_paths=True)
            # half a CPU each: the read tasks need the rest (whole CPUs: no read runs)
            out = ds.map_batches(axray.Predictor, batch_size=4, num_cpus=0.5,
                                 compute=ray.data.ActorPoolStrategy(size=2),
                                 resources={"metis": 1},
                                 fn_constructor_kwargs={"model": package})
            rows = list(out.iter_rows())
            assert [r["source"] for r in rows] == [str(p) for p in jpegs]
            assert set(rows[0]) == set(axray.SCHEMA)
    finally:
        ray.shutdown()
    bad = [r for r in rows if not r["ok"]]
    assert [Path(r["source"]).name for r in bad] == ["broken.jpg"]
    assert bad[0]["error_type"] == "decode" and bad[0]["record"]
    os.environ["AXRUN_EMULATOR_DEVICES"] = "2"
    try:
        with axrun.load("efficientnet-lite0-imagenet") as model:
            local = {r.source: r.to_dict() for r in model(jpegs)}
    finally:
        del os.environ["AXRUN_EMULATOR_DEVICES"]
    for row in rows:  # the same predictions as one process reading the files
        record = axray.record_of(row)
        assert record.get("top") == local[record["source"]].get("top")


def test_ray_refuses_what_needs_the_pixels(photos: Path, tmp_path: Path) -> None:
    result = axrun("detect", str(photos), "--ray", "local", "--save-dir", str(tmp_path / "a"))
    assert result.returncode == 2 and "--save-dir needs the pixels" in result.stderr
    result = axrun("detect", str(photos), "--ray", "local", "-o", str(tmp_path / "x.coco.json"))
    assert result.returncode == 2 and "COCO results need a run on this machine" in result.stderr


def test_shards_split_the_inputs_the_same_way_every_time(photos: Path) -> None:
    def sources(shard: str) -> list[str]:
        result = axrun("classify", str(photos), "--shard", shard, "-o", "-", "-q",
                       "--vid-stride", "25")
        return [json.loads(line)["source"] for line in result.stdout.splitlines()]

    everything = sources("1/1")
    parts = [sources(f"{k}/3") for k in (1, 2, 3)]
    assert sorted(s for part in parts for s in part) == sorted(everything)
    assert all(part == [s for s in everything if s in part] for part in parts)  # in order
    assert sources("2/3") == parts[1]  # stable
    # a video's frames stay together
    assert sum(any("pan.mp4" in s for s in part) for part in parts) == 1


def test_pages_disguised_images_and_names_as_given(tmp_path: Path) -> None:
    """A multi-page TIFF and GIF (a row per page, each read once), a JPEG named .txt
    (read as the file it is, not as a list), a name with spaces: run from another
    working folder with a relative input, byte for byte as one process."""
    from PIL import Image

    mix = tmp_path / "mix"
    mix.mkdir()
    pages = [Image.open(SAMPLES / f"{n}.jpg").convert("RGB") for n in ("coffee", "rocket")]
    pages[0].save(mix / "multi.tif", save_all=True, append_images=pages[1:])
    pages[0].save(mix / "anim.gif", save_all=True, append_images=pages[1:])
    shutil.copy(SAMPLES / "camera.jpg", mix / "disguised.txt")
    shutil.copy(SAMPLES / "chelsea.jpg", mix / "a b ü.jpg")
    one, many = tmp_path / "one.jsonl", tmp_path / "ray.jsonl"
    assert axrun("classify", "mix", "-o", str(one), cwd=tmp_path).returncode == 0
    result = axrun("classify", "mix", "-o", str(many), "--ray", "local", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert many.read_bytes() == one.read_bytes()
    assert len(one.read_text().splitlines()) == 6


def test_an_actor_reads_the_path_and_records_the_source(tmp_path: Path) -> None:
    """Outside a cluster too: the file is read from ``path``, the record names
    ``source`` (a cluster's nodes do not share the driver's working folder)."""
    import axrun.ray as axray

    predictor = axray.Predictor("efficientnet-lite0-imagenet", backend="emulator")
    try:
        out = predictor({"path": [str(SAMPLES / "coffee.jpg"), str(tmp_path / "gone.jpg")],
                         "source": ["photos/coffee.jpg", "photos/gone.jpg"]})
    finally:
        predictor.close()
    assert out["source"] == ["photos/coffee.jpg", "photos/gone.jpg"]
    assert out["ok"] == [True, False]
    assert json.loads(out["record"][0])["top"][0]["label"] == "espresso"
    assert out["error_type"][1] == "not_found" and str(tmp_path) not in out["error_message"][1]
