"""Images -> (pixel_values, image_grid_thw) natively: Pillow, then the patchify graph in onnxruntime.

preprocessor = NativeImagePreprocessor(patchify_graph_path, spec)
pixel_values, image_grid_thw = preprocessor([path, ...])   # float32 [N, 3*T*P*P], int64 [I, 3]
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from qwen35web.runtime.errors import BundleError
from qwen35web.runtime.native.image_decode import ImageSource, ResizedImage, prepare_image
from qwen35web.runtime.vision.errors import ImageInputError
from qwen35web.runtime.vision.patchify import (
    PATCHIFY_INPUT,
    PATCHIFY_OUTPUT,
    image_grid_thw,
    patchify_feed,
)
from qwen35web.runtime.vision.processor_config import ImageProcessorSpec


class NativeImagePreprocessor:
    def __init__(self, patchify_graph: Path, spec: ImageProcessorSpec, threads: int | None = None):
        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(
                str(patchify_graph), options, providers=["CPUExecutionProvider"]
            )
        except Exception as err:  # onnxruntime raises its own exception types
            raise BundleError(f"cannot load {patchify_graph}: {str(err).strip().splitlines()[0]}") from None
        self.spec = spec

    def patchify(self, image: ResizedImage) -> np.ndarray:
        """One resized image -> its pixel_values rows float32 [h/P * w/P, 3*T*P*P]."""
        feed = patchify_feed(image)
        pixels = np.frombuffer(feed.data, dtype=np.uint8).reshape(feed.dims)
        (rows,) = self.session.run([PATCHIFY_OUTPUT], {PATCHIFY_INPUT: pixels})
        return rows

    def __call__(self, sources: list[ImageSource]) -> tuple[np.ndarray, np.ndarray]:
        if not sources:
            raise ImageInputError("no images given")
        images = [prepare_image(source, self.spec) for source in sources]
        pixel_values = np.concatenate([self.patchify(image) for image in images], axis=0)
        grid = np.asarray(image_grid_thw(images, self.spec), dtype=np.int64).reshape(len(images), 3)
        return pixel_values, grid
