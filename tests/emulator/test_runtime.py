"""The emulator behaves like axelera.runtime: results, buffers, double buffering, release."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from modelgen import random_padded_input, reference_outputs

from axrun import emulator as axr
from axrun.tensors import depad


def open_instance(ctx, path, batch=1, **flags):
    model = ctx.load_model(str(path / "model.json"))
    conn = ctx.device_connect(None, num_sub_devices=batch)
    return model, conn, conn.load_model_instance(model, num_sub_devices=batch,
                                                 aipu_cores=batch, **flags)


def empty_outputs(model):
    return [np.zeros(i.shape, i.dtype) for i in model.outputs()]


@pytest.mark.parametrize(
    "settings",
    [
        dict(kind="classifier", batch=1),
        dict(kind="classifier", batch=4),
        dict(kind="twohead", batch=2, spatial=(1, 1, 1, 15)),
    ],
    ids=["classifier-b1", "classifier-b4", "twohead-b2-spatial"],
)
def test_results_match_float_reference_within_one_lsb(tiny, settings) -> None:
    gen = tiny(**settings)
    rng = np.random.default_rng(7)
    with axr.Context() as ctx:
        model, _, inst = open_instance(ctx, gen.path, settings["batch"])
        for _ in range(3):
            x = random_padded_input(model.inputs()[0], rng)
            outs = empty_outputs(model)
            inst.run([x], outs)
            expected = reference_outputs(gen, model.inputs()[0], model.outputs(), x)
            for out, ref, info in zip(outs, expected, model.outputs(), strict=True):
                got = depad(out, info.padding).astype(int)
                assert np.abs(got - ref.astype(int)).max() <= 1
                # padding holds the zero point
                mask = np.ones(out.shape, bool)
                mask[tuple(slice(lo, d - hi) for d, (lo, hi) in
                           zip(out.shape, info.padding, strict=True))] = False
                assert (out[mask] == info.zero_point).all()


def test_tensor_info_fields(tiny) -> None:
    gen = tiny(kind="twohead", batch=2, spatial=(1, 1, 1, 15), with_postamble=True)
    with axr.Context() as ctx:
        model = ctx.load_model(str(gen.path / "model.json"))
        (inp,) = model.inputs()
        assert inp.shape == (2, 10, 24, 4) and inp.unpadded_shape == (2, 8, 8, 3)
        assert inp.padding == [(0, 0), (1, 1), (1, 15), (0, 1)]
        assert inp.dtype == np.int8 and inp.size == 2 * 10 * 24 * 4 and inp.name == "images"
        assert [o.name for o in model.outputs()] == ["head_a", "head_b"]
        assert model.postamble_graph == "postprocess_graph.onnx"
        assert model.input_tensor_layout == "NHWC"


def test_results_are_written_in_place(tiny) -> None:
    gen = tiny(kind="classifier")
    with axr.Context() as ctx:
        model, _, inst = open_instance(ctx, gen.path)
        outs = empty_outputs(model)
        ids = [id(o) for o in outs]
        x = random_padded_input(model.inputs()[0], np.random.default_rng(0))
        assert inst.run([x], outs) is None
        assert [id(o) for o in outs] == ids
        assert outs[0].any()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda i, o: ([], o), "expected 1 input buffer"),
        (lambda i, o: (i, o + o), "expected 1 output buffer"),
        (lambda i, o: ([i[0].astype(np.uint8)], o), r"input 0 \('input'\): dtype uint8"),
        (lambda i, o: ([i[0][..., :3].copy()], o), r"input 0 \('input'\): shape"),
        (lambda i, o: ([np.asfortranarray(i[0])], o), "not C-contiguous"),
        (lambda i, o: (i, [o[0].astype(np.float32)]), r"output 0 \('logits'\): dtype float32"),
        (lambda i, o: ([i[0].tolist()], o), "expected a numpy array"),
    ],
)
def test_bad_buffers_are_rejected_naming_the_tensor(tiny, mutate, message) -> None:
    gen = tiny(kind="classifier", size=8)
    with axr.Context() as ctx:
        model, _, inst = open_instance(ctx, gen.path)
        x = random_padded_input(model.inputs()[0], np.random.default_rng(0))
        x = np.ascontiguousarray(np.broadcast_to(x, x.shape))
        ins, outs = mutate([x], empty_outputs(model))
        with pytest.raises(axr.InvalidArgument, match=message):
            inst.run(ins, outs)


def test_read_only_output_rejected(tiny) -> None:
    gen = tiny(kind="classifier")
    with axr.Context() as ctx:
        model, _, inst = open_instance(ctx, gen.path)
        outs = empty_outputs(model)
        outs[0].flags.writeable = False
        x = random_padded_input(model.inputs()[0], np.random.default_rng(0))
        with pytest.raises(axr.InvalidArgument, match="read-only"):
            inst.run([x], outs)


def test_double_buffer_returns_results_two_calls_late(tiny) -> None:
    gen = tiny(kind="classifier")
    rng = np.random.default_rng(3)
    with axr.Context() as ctx:
        model, _, plain = open_instance(ctx, gen.path)
        _, _, lagged = open_instance(ctx, gen.path, double_buffer=True)
        xs = [random_padded_input(model.inputs()[0], rng) for _ in range(5)]
        expected = []
        for x in xs:
            outs = empty_outputs(model)
            plain.run([x], outs)
            expected.append(outs[0].copy())
        got = []
        for x in [*xs, xs[0], xs[0]]:  # two fillers drain the last two
            outs = empty_outputs(model)
            lagged.run([x], outs)
            got.append(outs[0].copy())
        zp = model.outputs()[0].zero_point
        assert (got[0] == zp).all() and (got[1] == zp).all()
        for i in range(5):
            np.testing.assert_array_equal(got[i + 2], expected[i])


def test_strict_mode_reads_input_late_to_catch_reuse(tiny, monkeypatch) -> None:
    """AXRUN_EMULATOR_STRICT=1: overwriting an input still in flight corrupts its
    result (what axrun's engine tests rely on to show it never does so)."""
    monkeypatch.setenv("AXRUN_EMULATOR_STRICT", "1")
    gen = tiny(kind="classifier")
    rng = np.random.default_rng(4)
    with axr.Context() as ctx:
        model, _, inst = open_instance(ctx, gen.path, double_buffer=True)
        a = random_padded_input(model.inputs()[0], rng)
        b = random_padded_input(model.inputs()[0], rng)
        _, _, plain = open_instance(ctx, gen.path)
        ref_a = empty_outputs(model)
        plain.run([a.copy()], ref_a)
        buf = a.copy()
        outs = empty_outputs(model)
        inst.run([buf], outs)
        buf[:] = b  # reused too early
        inst.run([random_padded_input(model.inputs()[0], rng)], outs)
        inst.run([random_padded_input(model.inputs()[0], rng)], outs)
        assert not np.array_equal(outs[0], ref_a[0])


def test_double_buffer_consumes_inputs_during_the_call_as_documented(tiny) -> None:
    """The vendor's double-buffering loop refills one input buffer right after run()
    returns; each result (two calls later) must still be its own input's."""
    gen = tiny(kind="classifier")
    rng = np.random.default_rng(5)
    with axr.Context() as ctx:
        model, _, inst = open_instance(ctx, gen.path, double_buffer=True)
        _, _, plain = open_instance(ctx, gen.path)
        frames = [random_padded_input(model.inputs()[0], rng) for _ in range(6)]
        expected = []
        for f in frames:
            ref = empty_outputs(model)
            plain.run([f.copy()], ref)
            expected.append(ref[0].copy())
        buf, got = np.empty_like(frames[0]), []
        for f in frames + [frames[0]] * 2:  # two more calls drain the last two results
            buf[:] = f  # one buffer, refilled at once
            outs = empty_outputs(model)
            inst.run([buf], outs)
            got.append(outs[0].copy())
        for i in range(6):
            np.testing.assert_array_equal(got[i + 2], expected[i])


def test_unknown_and_mismatched_instance_flags(tiny) -> None:
    gen = tiny(kind="classifier", batch=2)
    with axr.Context() as ctx:
        model = ctx.load_model(str(gen.path / "model.json"))
        conn = ctx.device_connect(None, num_sub_devices=2)
        with pytest.raises(axr.InvalidArgument, match="unknown keyword argument.*turbo"):
            conn.load_model_instance(model, turbo=True)
        with pytest.raises(axr.InvalidArgument, match="num_sub_devices=1 does not match.*2"):
            conn.load_model_instance(model, num_sub_devices=1)
        with pytest.raises(axr.InvalidArgument, match="aipu_cores=1 must be 2-4"):
            conn.load_model_instance(model, aipu_cores=1)
        conn.load_model_instance(model, aipu_cores=4)  # an L2 share beyond the batch's cores
        with pytest.raises(axr.NotImplemented, match="input_dmabuf"):
            conn.load_model_instance(model, input_dmabuf=True)
        small = ctx.device_connect(None, num_sub_devices=1, device_firmware_check=False)
        assert small.properties == {"device_firmware_check": False}  # kept, as the runtime does
        with pytest.raises(axr.InvalidArgument, match="needs 2 cores"):
            small.load_model_instance(model)


def test_release_releases_children_and_frees_cores(tiny) -> None:
    gen = tiny(kind="classifier")
    ctx = axr.Context()
    model, conn, inst = open_instance(ctx, gen.path)
    conn2 = ctx.device_connect(None, num_sub_devices=3)
    with pytest.raises(axr.DeviceInUse):
        ctx.device_connect(None, num_sub_devices=1)
    conn.release()
    x = random_padded_input(model.inputs()[0], np.random.default_rng(0))
    with pytest.raises(axr.InvalidArgument, match="ModelInstance has been released"):
        inst.run([x], empty_outputs(model))
    ctx.device_connect(None, num_sub_devices=1)  # conn's core is free again
    ctx.release()
    with pytest.raises(axr.InvalidArgument, match="Connection has been released"):
        conn2.load_model_instance(model)
    with pytest.raises(axr.InvalidArgument, match="Model has been released"):
        model.inputs()
    with pytest.raises(axr.InvalidArgument, match="Context has been released"):
        ctx.list_devices()
    with axr.Context() as ctx2:
        assert ctx2.list_devices()[0].cores_free == 4


def test_devices_by_index_and_name(tiny, monkeypatch) -> None:
    monkeypatch.setenv("AXRUN_EMULATOR_DEVICES", "2")
    with axr.Context() as ctx:
        devices = ctx.list_devices()
        assert [d.name for d in devices] == ["metis-0:1:0", "metis-0:2:0"]
        assert devices[0].subdevice_count == 4 and devices[0].board_type is axr.BoardType.pcie
        c = ctx.device_connect(device=devices[1].name, num_sub_devices=4)
        assert c.device_name == "metis-0:2:0"
        assert ctx.device_connect(device=0, num_sub_devices=4).device_name == "metis-0:1:0"
        with pytest.raises(axr.ConnectionError, match="no device 5"):
            ctx.device_connect(device=5)
        with pytest.raises(axr.ConnectionError, match="no device named 'metis-9:9:9'"):
            ctx.device_connect(device="metis-9:9:9")
        with pytest.raises(axr.DeviceInUse, match="pid"):
            ctx.device_connect(device=None, num_sub_devices=1)
        with pytest.raises(axr.InvalidArgument, match="num_sub_devices must be 1-4"):
            ctx.device_connect(num_sub_devices=5)


def test_voyager_model_json_needs_hardware(tmp_path) -> None:
    (tmp_path / "model.json").write_text(json.dumps({"name": "yolo11s", "elf": "model.elf"}))
    with axr.Context() as ctx, pytest.raises(axr.NotImplemented, match="needs a Metis device"):
        ctx.load_model(str(tmp_path / "model.json"))


def test_latency_and_no_compute_timing_model(tiny, monkeypatch) -> None:
    monkeypatch.setenv("AXRUN_EMULATOR_LATENCY_MS", "30")
    monkeypatch.setenv("AXRUN_EMULATOR_COMPUTE", "0")
    gen = tiny(kind="classifier")
    with axr.Context() as ctx:
        model, _, inst = open_instance(ctx, gen.path)
        x = random_padded_input(model.inputs()[0], np.random.default_rng(0))
        outs = empty_outputs(model)
        outs[0].fill(5)
        start = time.perf_counter()
        for _ in range(3):
            inst.run([x], outs)
        assert time.perf_counter() - start >= 0.09
        assert (outs[0] == model.outputs()[0].zero_point).all()


def test_configure_device(tiny) -> None:
    with axr.Context() as ctx:
        assert ctx.configure_device(0, clock_profile=1000) is True
        assert ctx.device_ready(0) is True
        with pytest.raises(axr.InvalidConfiguration, match="unknown device setting"):
            ctx.configure_device(0, warp_speed=9)


def test_exception_names_match_the_sdk() -> None:
    names = ["ConnectionError", "DeviceInUse", "IncompatibleDevice", "InternalError",
             "InvalidArgument", "InvalidConfiguration", "NotImplemented", "Pending",
             "UnknownError"]
    for name in names:
        assert issubclass(getattr(axr, name), Exception)
    assert axr.ConnectionError is not ConnectionError
