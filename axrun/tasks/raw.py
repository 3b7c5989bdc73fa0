"""The raw task: preprocess with a recipe, return each frame's depadded int8 outputs."""

from __future__ import annotations

import numpy as np

from axrun.modelfolder import ModelFolder
from axrun.preprocess import Geometry, Preprocessor, PreprocessRecipe
from axrun.results import Prediction, Tensors
from axrun.tensors import depad


class RawTask:
    """Returns, per frame, a list of int8 NHWC outputs without padding (copies)."""

    def __init__(self, folder: ModelFolder, recipe: PreprocessRecipe) -> None:
        self.folder = folder
        self.preprocessor = Preprocessor(recipe, folder.manifest.inputs[0])
        self.outputs = folder.manifest.outputs

    def preprocess(self, image: np.ndarray, slots: list[np.ndarray]) -> Geometry:
        return self.preprocessor(image, slots[0])

    def postprocess(self, outputs: list[np.ndarray],
                    geometries: list[Geometry | None]) -> list[Prediction | None]:
        return [
            None if geometry is None else Tensors(
                depad(out[slot], spec.padding[1:]).copy()
                for out, spec in zip(outputs, self.outputs, strict=True))
            for slot, geometry in enumerate(geometries)
        ]
