"""``axrun compile``: a float ONNX model → a model folder the emulator runs.

    prepare (static shapes, opset ≥ 13, cut at --postamble-from, op check)
      → calibrate on real images through the preprocessing recipe
      → quantize the device part (static QDQ INT8, per-channel weights)
      → wrap it in the device interface (int8 NHWC padded in and out)
      → write the folder atomically (model.json, manifest.json, model.onnx,
        postprocess_graph.onnx, axrun.json, labels)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from axrun.compiler.graph import PreparedGraph, infer_task, load, prepare
from axrun.compiler.interface import nhwc_spec, wrap_device_graph
from axrun.compiler.quantize import (
    boundary_params,
    calibration_images,
    check_calibration,
    load_calibration,
    quantize_device,
)
from axrun.compiler.sensitivity import layer_sensitivity
from axrun.compiler.writer import FolderContents, check_replaceable, write_model_folder
from axrun.errors import AxrunError, CompileError, ModelError
from axrun.modelfolder import TASKS, read_labels
from axrun.preprocess import PreprocessRecipe
from axrun.tasks.postamble import last_computing_op
from axrun.tensors import TensorSpec, pad, quantize

__all__ = ["CompileOptions", "compile_model"]


@dataclass(frozen=True)
class CompileOptions:
    """Everything ``axrun compile`` needs (see ``axrun compile --help``)."""

    model: Path
    output: Path
    calibration: Path
    recipe: PreprocessRecipe
    task: str | None = None
    labels: Path | None = None
    decoder: dict[str, Any] = field(default_factory=dict)
    postamble_from: tuple[str, ...] = ()
    input_shape: tuple[int, ...] | None = None
    channel_multiple: int = 4
    output_channel_multiple: int = 64
    spatial_pad: tuple[int, int, int, int] = (0, 0, 0, 0)
    calibration_limit: int = 200
    int16: tuple[str, ...] = ()
    auto_int16: int = 0
    holdout: int = 20

    def __post_init__(self) -> None:
        if self.task is not None and self.task not in TASKS:
            raise CompileError(f"--task must be one of {', '.join(TASKS)}")
        if self.channel_multiple < 1 or self.output_channel_multiple < 1:
            raise CompileError("channel multiples must be at least 1")
        if any(p < 0 for p in self.spatial_pad):
            raise CompileError("--spatial-pad values must be 0 or more")
        if self.calibration_limit < 1:
            raise CompileError("--calibration-limit must be at least 1")
        if self.auto_int16 < 0 or self.holdout < 0:
            raise CompileError("--auto-int16 and --holdout must be 0 or more")


def _smoke_test(device: Any, shape: Sequence[int]) -> None:
    """The wrapped graph must load and run in ONNX Runtime, as the emulator will."""
    try:
        sess = ort.InferenceSession(device.SerializeToString(), providers=["CPUExecutionProvider"])
        sess.run(None, {sess.get_inputs()[0].name: np.zeros(shape, np.int8)})
    except Exception as exc:
        raise CompileError(f"the compiled device graph does not run: {exc}") from exc


def compile_model(
    options: CompileOptions, on_progress: Callable[[int, int], None] | None = None
) -> Path:
    """Compile ``options.model`` into a model folder at ``options.output``.

    ``on_progress(done, total)`` is called per calibration image. Nothing is written
    unless everything succeeds.

    Raises:
        CompileError: one line saying what is wrong (shapes, cut names, calibration
            folder, unsupported operators...).
    """
    check_replaceable(options.output)  # before the work, as well as at the end
    labels = None
    if options.labels is not None:
        try:
            labels = read_labels(options.labels)
        except ModelError as exc:
            raise CompileError(str(exc)) from exc
    graph = prepare(load(options.model), input_shape=options.input_shape,
                    postamble_from=options.postamble_from)
    log = logging.getLogger("axrun")
    task = options.task
    if task is None:
        task, reason = infer_task(graph.model_output_shapes, bool(options.postamble_from),
                                  bool(options.decoder))
        log.info("task: %s (%s; --task to say otherwise)", task, reason)
    if labels is not None and task == "classify":
        classes = graph.output_shapes[0][1] if graph.postamble is None else None
        if classes is not None and classes != len(labels):
            raise CompileError(f"--labels has {len(labels)} names but the model outputs "
                               f"{classes} classes")
    paths, held_out, sample = calibration_images(options.calibration,
                                                 options.calibration_limit,
                                                 holdout=options.holdout)
    log.info("%s", sample)
    batches = load_calibration(paths, options.recipe, graph.input_shape, on_progress)
    for warning in check_calibration(batches, options.recipe):
        log.warning("warning: %s", warning)
    int16 = tuple(options.int16)
    device, in_spec, out_specs = _device_graph(graph, batches, int16, options)
    ranking: list[dict[str, object]] = []
    if options.auto_int16:
        chosen, ranking = _auto_int16(device, in_spec, graph, batches, held_out, options)
        int16 += tuple(chosen)
        device, in_spec, out_specs = _device_graph(graph, batches, int16, options)
    decoder = dict(options.decoder)
    if task == "classify" and graph.postamble is None and "scores" not in decoder and \
            last_computing_op(graph.device.graph, graph.output_names[0]) == "Softmax":
        decoder["scores"] = "probabilities"  # a second softmax would flatten them
        log.info("scores: probabilities (the network ends in Softmax)")
    sidecar = {
        "task": task,
        "preprocess": options.recipe.to_dict(),
        "decoder": decoder,
        "source_model": options.model.name,
        "calibration_images": len(paths),
        "int16_tensors": list(int16),
        **({"auto_int16": {"chosen": list(int16[len(options.int16):]), "ranking": ranking}}
           if options.auto_int16 else {}),
    }
    path = write_model_folder(options.output, FolderContents(
        device_graph=device,
        inputs=[in_spec],
        outputs=out_specs,
        originals_nchw=([graph.input_shape], graph.output_shapes),
        postamble=graph.postamble,
        sidecar=sidecar,
        labels=labels,
    ))
    _report_fidelity(path, options.model, held_out, options.calibration)
    return path


LAYER_IMAGES = 4  # images the --auto-int16 ranking runs on (one graph run per activation)
FIDELITY_WARNING = 0.9  # held-out agreement below which compile warns (also with -q)


def _device_graph(graph: PreparedGraph, batches: list[np.ndarray], int16: tuple[str, ...],
                  options: CompileOptions) -> tuple[Any, TensorSpec, list[TensorSpec]]:
    """Quantize the device part (``int16`` activations at 16 bits) and wrap it in the
    device interface; the wrapped graph and its input and output specs."""
    qdq = quantize_device(graph.device, graph.input_name, batches, int16)
    q_in, q_outs = boundary_params(qdq, graph.input_name, graph.output_names, batches)
    in_spec = nhwc_spec(graph.input_name, graph.input_shape, q_in.scale, q_in.zero_point,
                        channel_multiple=options.channel_multiple, spatial=options.spatial_pad)
    out_specs = [
        nhwc_spec(name, shape, q.scale, q.zero_point,
                  channel_multiple=options.output_channel_multiple)
        for name, shape, q in zip(graph.output_names, graph.output_shapes, q_outs, strict=True)
    ]
    device = wrap_device_graph(qdq, [in_spec], out_specs, [len(s) for s in graph.output_shapes])
    _smoke_test(device, in_spec.shape)
    return device, in_spec, out_specs


def _auto_int16(device: Any, in_spec: TensorSpec, graph: PreparedGraph,
                batches: list[np.ndarray], held_out: list[Path], options: CompileOptions) -> \
        tuple[list[str], list[dict[str, object]]]:
    """The ``options.auto_int16`` 8-bit activations of the quantized ``device`` graph
    whose rounding alone costs the outputs most, ranked on up to :data:`LAYER_IMAGES`
    held-out images (else calibration ones), and the top of the ranking (for
    ``axrun.json``), logged."""
    log = logging.getLogger("axrun")
    checked = batches[:LAYER_IMAGES]
    if held_out:
        try:
            checked = load_calibration(held_out[:LAYER_IMAGES], options.recipe,
                                       graph.input_shape)
        except CompileError:  # none of them readable: the calibration images then
            log.warning("warning: --auto-int16 ranks on calibration images: the held-out "
                        "ones could not be read")
    report = layer_sensitivity(device, [_device_input(b, in_spec) for b in checked])
    chosen = report.worst(options.auto_int16)  # 8-bit ones: --int16 ones are not ranked
    if len(chosen) < options.auto_int16:
        log.warning("warning: --auto-int16 %d: the device part has %d 8-bit activations "
                    "that can be kept at 16 bits; keeping all of them", options.auto_int16,
                    len(chosen))
    shown = report.layers[:options.auto_int16 + 3]
    log.info("--auto-int16: output SQNR %.1f dB as first quantized; rounded alone, these "
             "8-bit activations cost the most: %s", report.int8_sqnr_db,
             ", ".join(f"{layer.tensor} ({layer.op}) {layer.sqnr_db:.1f} dB" for layer in shown))
    log.info("--auto-int16: keeping %s at 16 bits", " ".join(chosen))
    return chosen, [layer.to_dict() for layer in shown]


def _device_input(batch: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """A float NCHW batch as the device input: quantized, NHWC, padded."""
    return pad(quantize(batch.transpose(0, 2, 3, 1), spec.scale, spec.zero_point),
               spec.padding, spec.zero_point)


def _report_fidelity(folder: Path, float_model: Path, held_out: list[Path],
                     calibration: Path) -> None:
    """Compare the folder just written with the float model on the held-out images, log
    the figures and the disagreements, and store them (``fidelity.json``).

    Raises:
        CompileError: the folder does not run or its outputs do not decode.
    """
    from axrun.fidelity import check_model, disagreement_text
    from axrun.sources import Item

    log = logging.getLogger("axrun")
    if not held_out:
        log.info("fidelity: no images held out (--holdout 0, fewer than 5 images, or "
                 "sub-folders of one image each, which calibration keeps); run axrun check "
                 "%s --float %s IMAGES... on other images", folder, float_model)
        return
    try:
        fidelity = check_model(folder, float_model, [Item(str(p)) for p in held_out],
                               backend="emulator",
                               images_from=f"{len(held_out)} held-out images of {calibration}",
                               float_recipe_from="compile's, on both sides: these figures "
                               "measure the quantization, not the recipe")
    except AxrunError as exc:
        raise CompileError(f"{folder} was written, but running it against the float model "
                           f"failed: {exc}") from exc
    fidelity.save(folder)
    log.info("fidelity against the float model (the same recipe on both sides), %s: %s",
             fidelity.images_from, fidelity.tally.summary())
    for entry in fidelity.disagreements[:5]:
        log.info("  differs: %s", disagreement_text(entry))
    agreement = fidelity.tally.agreement
    if agreement is not None and agreement < FIDELITY_WARNING:
        log.warning("warning: on the held-out images INT8 agrees with float %.0f%% (%s): "
                    "see axrun check --per-layer and --auto-int16, or calibrate on more "
                    "images like these", 100 * agreement,
                    "top-1" if fidelity.tally.task == "classify" else "box F1")
