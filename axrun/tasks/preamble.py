"""The preamble: a float ONNX graph the compiler moved off the front of the network
(``preprocess_graph`` in the manifest, e.g. YOLOv5's space-to-depth "focus"), run on
the host as the Voyager SDK runs it: between preprocessing and quantization.

Preprocessing then targets the preamble's input (``[N, 3, H, W]``, float, normalized
by the recipe); the preamble's output is the device input (any channel count), which
is quantized and written into the padded int8 buffer.
"""

from __future__ import annotations

import numpy as np

from axrun.errors import ModelError
from axrun.modelfolder import ModelFolder
from axrun.preprocess import Geometry, Preprocessor, PreprocessRecipe, fit
from axrun.tasks.postamble import host_session
from axrun.tensors import quantize


class PreambleInput:
    """Writes decoded BGR images into the device input through the folder's preamble
    (thread-safe: ONNX Runtime sessions are). ``size_hw``: the preamble's input size,
    the network input size that boxes are decoded against."""

    def __init__(self, recipe: PreprocessRecipe, folder: ModelFolder) -> None:
        path = folder.root / folder.manifest.preprocess_graph
        self.recipe, self.spec = recipe, folder.manifest.inputs[0]
        self.session = host_session(str(path), path, "preamble")
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        shape = [d if isinstance(d, int) else None for d in inputs[0].shape]
        if len(inputs) != 1 or len(shape) != 4 or shape[1] != 3 or shape[0] not in (1, None) \
                or shape[2] is None or shape[3] is None:
            raise ModelError(f"{path}: the preamble must take one [1, 3, H, W] image, not "
                             f"{[i.shape for i in inputs]}")
        self.name = inputs[0].name
        self.height, self.width = shape[2], shape[3]
        _, h, w, c = self.spec.unpadded_shape
        out = [d if isinstance(d, int) else None for d in outputs[0].shape]
        if len(outputs) != 1 or out[1:] != [c, h, w]:
            raise ModelError(f"{path}: the preamble gives {[o.shape for o in outputs]}; the "
                             f"device input {self.spec.name!r} is [N, {c}, {h}, {w}]")
        (_, _), (self._y0, _), (self._x0, _), (self._c0, _) = self.spec.padding
        self._src = [2, 1, 0] if recipe.color == "rgb" else [0, 1, 2]
        self._mean = np.array(recipe.mean, np.float32)
        self._std = np.array(recipe.std, np.float32)

    @property
    def size_hw(self) -> tuple[int, int]:
        return self.height, self.width

    def __call__(self, image: np.ndarray, dest: np.ndarray) -> Geometry:
        """Preprocess one BGR ``uint8`` image through the preamble into one batch slot
        ``dest`` (padded H, W, C int8); only its interior is written."""
        pixels, geometry, (py, px) = fit(image, self.recipe, self.size_hw)
        canvas = np.full((self.height, self.width, 3), self.recipe.pad_value, np.uint8)
        canvas[py : py + pixels.shape[0], px : px + pixels.shape[1]] = pixels
        x = (canvas[..., self._src].astype(np.float32) - self._mean) / self._std
        y = self.session.run(None, {self.name: x.transpose(2, 0, 1)[None]})[0][0]
        q = quantize(y.transpose(1, 2, 0), self.spec.scale, self.spec.zero_point)
        h, w, c = q.shape
        dest[self._y0 : self._y0 + h, self._x0 : self._x0 + w, self._c0 : self._c0 + c] = q
        return geometry


def input_writer(folder: ModelFolder, recipe: PreprocessRecipe) -> Preprocessor | PreambleInput:
    """What writes images into ``folder``'s device input: through its preamble when it
    has one, else the fused :class:`~axrun.preprocess.Preprocessor`."""
    if folder.manifest.preprocess_graph:
        return PreambleInput(recipe, folder)
    return Preprocessor(recipe, folder.manifest.inputs[0])
