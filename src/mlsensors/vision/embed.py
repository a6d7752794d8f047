"""Face embeddings: dlib's 5-point alignment inside a detector box, then its 128-D ResNet.

Why these models: dlib's ResNet (99.38 % on LFW, public domain) maps an aligned face to
128 numbers where the same person lands within ~0.6 (Euclidean) and different people
further away, so a gallery needs no training, only a few stored vectors. Alignment is
what makes that work on a detector's box: the 5-point shape predictor finds the eye
corners and the nose inside the box and `compute_face_descriptor` warps the face to the
150×150 chip (padding 0.25) the network was trained on. A naive similarity transform
from BlazeFace's keypoints measured worse on ORL (97.8 % against 100 % rank-1).

`compute_face_descriptor(img, shape)` and `get_face_chip` + `compute_face_descriptor(chip)`
give bit-identical vectors (checked), so the one-call form is used. Jitter (averaging
the network over randomly perturbed copies) costs one network pass per copy, ~100 ms
each here, and moved a descriptor by ~0.1 at 10 copies; it is off by default and only
worth it for enrolment from a single photo (see docs/identification.md).

dlib holds the GIL for the whole ~100 ms of a descriptor, so a caller that must keep a
detection loop running runs this in another process (see mlsensors.person.identify).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from mlsensors.errors import InputError, ModelError
from mlsensors.types import Box

EMBEDDING_DIM = 128
CHIP_SIZE = 150
CHIP_PADDING = 0.25
SHAPE_MODEL = "shape_predictor_5_face_landmarks.dat"
RECOGNITION_MODEL = "dlib_face_recognition_resnet_model_v1.dat"

CROP_MARGIN = 0.6
"""Border kept around a box by `crop_around`, as a fraction of the box's larger side.

The aligned chip reaches ~0.25 of the eye-to-mouth span beyond the landmarks on each
side, and the landmarks can sit at the box's edge, so 0.6 keeps everything dlib reads.
"""


def check_rgb(image: np.ndarray) -> np.ndarray:
    """The image as dlib wants it (uint8 H×W×3, C-contiguous), or an InputError."""
    if not isinstance(image, np.ndarray):
        raise InputError(f"expected an RGB image as a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise InputError(
            f"expected an RGB uint8 image of shape H×W×3, got {image.dtype} {image.shape}"
        )
    if image.shape[0] < 8 or image.shape[1] < 8:
        raise InputError(f"image of {image.shape[1]}×{image.shape[0]} px is too small")
    return np.ascontiguousarray(image)


def _check_box(box: Box, width: int, height: int) -> tuple[float, float, float, float]:
    try:
        x0, y0, x1, y1 = (float(v) for v in box)
    except (TypeError, ValueError):
        raise InputError(f"a face box is four numbers x0, y0, x1, y1, got {box!r}") from None
    if not all(np.isfinite((x0, y0, x1, y1))) or x1 - x0 < 4 or y1 - y0 < 4:
        raise InputError(f"face box {box!r} is empty or not finite")
    if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
        raise InputError(f"face box {box!r} lies outside the {width}×{height} image")
    return x0, y0, x1, y1


@dataclass(frozen=True, slots=True)
class Crop:
    """A piece of a frame around one face, small enough to hand to another process."""

    image: np.ndarray
    box: Box
    """The face box in the crop's own pixel coordinates."""


def crop_around(image: np.ndarray, box: Box, margin: float = CROP_MARGIN) -> Crop:
    """Copy the region around `box` that alignment can reach, and the box within it.

    Embedding `crop.image` at `crop.box` gives the same vector as the full frame at `box`
    (the predictor and the chip never read further out), while sending a ~200 × 200 px
    copy instead of the whole frame to the embedding worker.
    """
    image = check_rgb(image)
    h, w = image.shape[:2]
    x0, y0, x1, y1 = _check_box(box, w, h)
    pad = margin * max(x1 - x0, y1 - y0)
    cx0, cy0 = max(0, int(x0 - pad)), max(0, int(y0 - pad))
    cx1, cy1 = min(w, int(np.ceil(x1 + pad))), min(h, int(np.ceil(y1 + pad)))
    piece = np.ascontiguousarray(image[cy0:cy1, cx0:cx1])
    return Crop(piece, (x0 - cx0, y0 - cy0, x1 - cx0, y1 - cy0))


class FaceEmbedder:
    """128-D descriptors of faces given by their boxes. Thread-safe (calls serialise).

    `jitter` > 0 averages that many perturbed passes (≈ jitter × the cost of one).
    """

    def __init__(self, store=None, *, jitter: int = 0) -> None:
        import dlib

        from mlsensors.models import ModelStore

        store = store if store is not None else ModelStore()
        if jitter < 0:
            raise InputError(f"jitter must be ≥ 0, got {jitter}")
        self.jitter = int(jitter)
        try:
            self._shape = dlib.shape_predictor(str(store.path(SHAPE_MODEL)))
            self._net = dlib.face_recognition_model_v1(str(store.path(RECOGNITION_MODEL)))
        except RuntimeError as e:
            raise ModelError(f"dlib could not load its model files: {e}") from None
        self._dlib = dlib
        self._lock = threading.Lock()

    def _landmarks(self, image: np.ndarray, box: Box):
        h, w = image.shape[:2]
        x0, y0, x1, y1 = _check_box(box, w, h)
        rect = self._dlib.rectangle(round(x0), round(y0),
                                    round(x1), round(y1))
        return self._shape(image, rect)

    def landmarks(self, image: np.ndarray, box: Box) -> np.ndarray:
        """The five alignment points (x, y) found inside `box`, shape (5, 2)."""
        image = check_rgb(image)
        with self._lock:
            shape = self._landmarks(image, box)
        return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)

    def chip(self, image: np.ndarray, box: Box) -> np.ndarray:
        """The aligned 150×150 RGB face the network sees (for inspection and tests)."""
        image = check_rgb(image)
        with self._lock:
            shape = self._landmarks(image, box)
            return np.asarray(
                self._dlib.get_face_chip(image, shape, size=CHIP_SIZE, padding=CHIP_PADDING)
            )

    def embed(self, image: np.ndarray, box: Box) -> np.ndarray:
        """The unit-free 128-D descriptor (float32) of the face in `box`."""
        image = check_rgb(image)
        with self._lock:
            shape = self._landmarks(image, box)
            vec = self._net.compute_face_descriptor(image, shape, self.jitter, CHIP_PADDING)
        return np.asarray(vec, dtype=np.float32)

    def embed_crop(self, crop: Crop) -> np.ndarray:
        return self.embed(crop.image, crop.box)
