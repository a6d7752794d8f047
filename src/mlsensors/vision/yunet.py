"""YuNet (libfacedetection.train, Apache-2.0) on onnxruntime: the far-field face detector.

Why YuNet: on WIDER-style crowds it finds faces of 16–32 px that BlazeFace cannot see at
any tiling (BlazeFace's full-range model was trained for faces of a person at a desk to a
few metres, at 192×192), and it is tiny (75k parameters) and fully convolutional, so it
runs on any input size that is a multiple of 32: the whole of a still photograph, or one
region of a video frame at a time (see `sensors.farfield`).

Stages, each a function: `to_input` (RGB uint8 → BGR float32 NCHW, 0–255, padded at the
right and bottom to a multiple of 32, boxes stay in input pixels) → `YunetModel.run` →
`decode` (grid points and regressors → candidates) → `suppress.hard_nms`.

The score is sqrt(cls · obj), as OpenCV's `FaceDetectorYN` computes it, so thresholds are
comparable with that API's. Landmarks (5): right eye, left eye, nose tip, right and left
mouth corner, named from the subject's view like BlazeFace's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlsensors.errors import InputError, ModelError
from mlsensors.types import YUNET_LANDMARKS
from mlsensors.vision.decode import Candidates
from mlsensors.vision.onnx import onnx_session
from mlsensors.vision.preprocess import check_image

STRIDES = (8, 16, 32)
ALIGN = 32
"""Input sides must be multiples of the coarsest stride."""
NUM_LANDMARKS = len(YUNET_LANDMARKS)
NMS_IOU = 0.45
"""Upstream's (and OpenCV's) NMS threshold for YuNet."""


def padded_size(width: int, height: int) -> tuple[int, int]:
    """The input size for an image: each side rounded up to a multiple of 32."""
    return -(-width // ALIGN) * ALIGN, -(-height // ALIGN) * ALIGN


def to_input(image: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """RGB uint8 H×W×3 → float32 (1, 3, H', W') BGR 0–255, zero-padded right and bottom.

    `out` (from a previous call of the same size) is reused to avoid an allocation.
    """
    check_image(image)
    h, w = image.shape[:2]
    pw, ph = padded_size(w, h)
    if out is None or out.shape != (1, 3, ph, pw):
        out = np.zeros((1, 3, ph, pw), np.float32)
    else:
        out[:, :, h:, :] = 0
        out[:, :, :h, w:] = 0
    for channel in range(3):
        out[0, channel, :h, :w] = image[:, :, 2 - channel]
    return out


@dataclass(frozen=True, slots=True)
class GridOutput:
    """One stride's outputs over its (H/s)·(W/s) grid points, row-major."""

    stride: int
    cls: np.ndarray
    obj: np.ndarray
    bbox: np.ndarray
    kps: np.ndarray

    def batch(self, b: int) -> GridOutput:
        """The outputs for batch element `b` (shape (1, K, C) like a single input's)."""
        return GridOutput(self.stride, self.cls[b:b + 1], self.obj[b:b + 1],
                          self.bbox[b:b + 1], self.kps[b:b + 1])


def decode(outputs: list[GridOutput], width: int, score_threshold: float) -> Candidates:
    """Grid outputs of an input `width` pixels wide → candidates in input pixels.

    Per grid point with centre c = (col·s, row·s): box centre = bbox[0:2]·s + c, size =
    exp(bbox[2:4])·s, landmark i = kps[2i:2i+2]·s + c; score = sqrt(cls·obj).
    """
    if not 0.0 < score_threshold < 1.0:
        raise InputError(f"score threshold {score_threshold} is outside (0, 1)")
    boxes, points, scores = [], [], []
    for g in outputs:
        cols = width // g.stride
        score = np.sqrt(np.clip(g.cls.reshape(-1), 0, 1) * np.clip(g.obj.reshape(-1), 0, 1))
        keep = np.flatnonzero(score >= score_threshold)
        if keep.size == 0:
            continue
        centre = np.stack([keep % cols, keep // cols], axis=1).astype(np.float32) * g.stride
        bbox = g.bbox.reshape(-1, 4)[keep]
        mid = bbox[:, :2] * g.stride + centre
        with np.errstate(over="ignore"):
            half = np.exp(bbox[:, 2:4]) * g.stride / 2
        boxes.append(np.concatenate([mid - half, mid + half], axis=1))
        kps = g.kps.reshape(-1, NUM_LANDMARKS, 2)[keep]
        points.append(kps * g.stride + centre[:, None, :])
        scores.append(score[keep])
    if not scores:
        return Candidates.empty(NUM_LANDMARKS)
    out_boxes = np.concatenate(boxes).astype(np.float32)
    out_points = np.concatenate(points).astype(np.float32)
    valid = np.isfinite(out_boxes).all(axis=1) & np.isfinite(out_points).all(axis=(1, 2))
    return Candidates(out_boxes[valid], out_points[valid],
                      np.concatenate(scores).astype(np.float32)[valid])


class YunetModel:
    """One onnxruntime session of a YuNet file, built from verified bytes."""

    def __init__(self, model_bytes: bytes, threads: int | None = None) -> None:
        self._session = onnx_session(model_bytes, threads, "YuNet")
        names = [o.name for o in self._session.get_outputs()]
        wanted = [f"{k}_{s}" for s in STRIDES for k in ("cls", "obj", "bbox", "kps")]
        if sorted(names) != sorted(wanted):
            raise ModelError(f"unexpected YuNet outputs {names}")
        self._input_name = self._session.get_inputs()[0].name
        self._names = wanted

    def run(self, tensor: np.ndarray) -> list[GridOutput]:
        """The network on one prepared input (1, 3, H, W)."""
        values = self._session.run(self._names, {self._input_name: tensor})
        return [GridOutput(s, *values[4 * i:4 * i + 4]) for i, s in enumerate(STRIDES)]
