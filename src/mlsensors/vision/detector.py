"""FaceDetector: the one detection path for still pictures, whichever model runs it.

    from mlsensors import FaceDetector
    faces = FaceDetector().detect(rgb_image)   # list[Face], highest score first

`model="auto"` (the default) is YuNet (`vision.yunet_detector`) when its file is in the
model cache, else BlazeFace full-range; "yunet", "full" and "short" pick one. Every
model's score is reported on the calibrated confidence scale (`vision.calibrate`), and a
small picture in which nothing is found clear of the edges (a tight face crop: an ID
photo, ORL) is padded with grey by half its size on each side and searched again, so
`mlsensors detect`, `id enroll` and `id match` find the same faces.

`BlazeFace` is MediaPipe's detector on LiteRT, decoded and suppressed exactly as
MediaPipe does: preprocess.letterbox_into → model.TfliteModel.invoke → decode.decode →
suppress.weighted_nms → back to pixels through the letterbox.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from mlsensors.errors import InputError, ModelError
from mlsensors.models import ModelStore
from mlsensors.models.manifest import DETECTOR_MODELS
from mlsensors.types import Face
from mlsensors.vision.anchors import FULL_RANGE, SHORT_RANGE, AnchorOptions, generate_anchors
from mlsensors.vision.calibrate import ANCHOR, FOR_MODEL, Calibration
from mlsensors.vision.decode import VALUES_PER_ANCHOR, Candidates, concatenate, decode
from mlsensors.vision.facing import FACING_THRESHOLD, facing_scores
from mlsensors.vision.model import TfliteModel
from mlsensors.vision.preprocess import Letterbox, letterbox_into
from mlsensors.vision.suppress import DEFAULT_IOU_THRESHOLD, weighted_nms


@dataclass(frozen=True, slots=True)
class DetectorOptions:
    """Per-model settings from MediaPipe's face detection graphs."""

    model_file: str
    anchors: AnchorOptions
    score_threshold: float
    iou_threshold: float = DEFAULT_IOU_THRESHOLD


OPTIONS = {
    "full": DetectorOptions(DETECTOR_MODELS["full"], FULL_RANGE, 0.6),
    "short": DetectorOptions(DETECTOR_MODELS["short"], SHORT_RANGE, 0.5),
}


@dataclass(frozen=True, slots=True)
class RawOutput:
    """The network's two output tensors for one pass: regressors and score logits."""

    boxes: np.ndarray
    scores: np.ndarray


MODELS = ("auto", "yunet", "full", "short")
PAD_BELOW = 320
"""Pictures whose larger side is under this are padded and searched again when no face
is found clear of their edges (tight face crops)."""


def check_threshold(threshold: float | None) -> float:
    """The confidence threshold (calibrated scale), default ANCHOR; InputError outside (0, 1)."""
    value = ANCHOR if threshold is None else float(threshold)
    if not 0.0 < value < 1.0:
        raise InputError(f"score threshold {value} is outside (0, 1)")
    return value


def resolve_model(model: str, store: ModelStore) -> str:
    """"auto" → "yunet" when its file is cached and intact, else "full"."""
    if model not in MODELS:
        raise ModelError(f"unknown detector model {model!r}; choose one of {', '.join(MODELS)}")
    if model != "auto":
        return model
    return "yunet" if not store.missing([DETECTOR_MODELS["yunet"]]) else "full"


def make_engine(model: str, threads: int | None, threshold: float, store: ModelStore,
                tiling: bool = True, judge: bool = True):
    """The detector of one model (already resolved): `.detect(image) -> list[Face]`.
    YuNet's finds are checked by RetinaFace too when `judge` and its file is in the cache
    (still pictures; the sensor loop checks with YuNet alone)."""
    if model == "yunet":
        from mlsensors.vision.yunet_detector import YunetDetector

        second = None
        if judge and not store.missing([DETECTOR_MODELS["retinaface"]]):
            from mlsensors.vision.retinaface import RetinaFaceModel

            second = RetinaFaceModel(store.load_bytes(DETECTOR_MODELS["retinaface"]), threads)
        return YunetDetector(store.load_bytes(DETECTOR_MODELS["yunet"]), threads, threshold,
                             judge=second)
    return BlazeFace(model, threads, threshold, store, tiling)


class FaceDetector:
    """Finds faces in RGB uint8 still pictures; reusable, not thread-safe (one per thread).

    `score_threshold` is on the calibrated confidence scale (default 0.6 for every
    model). `tiling` applies to BlazeFace only (see `BlazeFace`).
    """

    def __init__(self, model: str = "auto", threads: int | None = None,
                 score_threshold: float | None = None, store: ModelStore | None = None,
                 tiling: bool = True) -> None:
        store = store or ModelStore()
        self.model_name = resolve_model(model, store)
        self.score_threshold = check_threshold(score_threshold)
        self.engine = make_engine(self.model_name, threads, self.score_threshold, store,
                                  tiling)

    def detect(self, image: np.ndarray) -> list[Face]:
        """All faces in `image` (H×W×3 RGB uint8), highest score first, in its pixels."""
        faces = self.engine.detect(image)
        h, w = image.shape[:2]
        if max(h, w) >= PAD_BELOW or any(clear_of_edges(f.box, w, h) for f in faces):
            return faces
        py, px = h // 2, w // 2
        padded = np.ascontiguousarray(cv2.copyMakeBorder(
            image, py, py, px, px, cv2.BORDER_CONSTANT, value=(128, 128, 128)))
        again = [moved(f, -px, -py, w, h) for f in self.engine.detect(padded)]
        again = [f for f in again if f is not None]
        return again if again else faces


def clear_of_edges(box, width: int, height: int, margin: float = 0.1) -> bool:
    """True if the box keeps a margin (fraction of its larger side) from every edge."""
    x0, y0, x1, y1 = box
    m = margin * max(x1 - x0, y1 - y0)
    return x0 - m >= 0 and y0 - m >= 0 and x1 + m <= width and y1 + m <= height


def moved(face: Face, dx: float, dy: float, width: int, height: int) -> Face | None:
    """`face` shifted by (dx, dy) and clipped to width×height (None if nothing is left)."""
    x0, y0, x1, y1 = face.box
    box = (min(max(x0 + dx, 0.0), width), min(max(y0 + dy, 0.0), height),
           min(max(x1 + dx, 0.0), width), min(max(y1 + dy, 0.0), height))
    if box[2] <= box[0] or box[3] <= box[1]:
        return None
    points = tuple((x + dx, y + dy) for x, y in face.keypoints)
    return replace(face, box=box, keypoints=points)


class BlazeFace:
    """MediaPipe's BlazeFace (full or short range); not thread-safe (one per thread).

    `tiling` (default on) adds a pass over four overlapping tiles for images much
    larger than the model input, finding faces a single pass shrinks below its reach.
    `score_threshold` is on the calibrated scale; MediaPipe's raw thresholds (0.6 full,
    0.5 short) are what the default 0.6 maps to.
    """

    def __init__(
        self,
        model: str = "full",
        threads: int | None = None,
        score_threshold: float | None = None,
        store: ModelStore | None = None,
        tiling: bool = True,
    ) -> None:
        if model not in OPTIONS:
            raise ModelError(f"unknown BlazeFace model {model!r}; choose 'full' or 'short'")
        base = OPTIONS[model]
        self.calibration: Calibration = FOR_MODEL[model]
        raw = self.calibration.raw(check_threshold(score_threshold))
        self.model_name = model
        self.tiling = tiling
        self.options = DetectorOptions(base.model_file, base.anchors, raw,
                                       base.iou_threshold)
        store = store or ModelStore()
        self.model = TfliteModel(store.load_bytes(self.options.model_file), threads)
        self._anchors = generate_anchors(self.options.anchors)
        size = self.options.anchors.input_size
        if self.model.input_shape != (1, size, size, 3):
            raise ModelError(f"{self.options.model_file} has input {self.model.input_shape}, "
                             f"expected (1, {size}, {size}, 3)")
        self._boxes_name, self._scores_name = self._output_names()

    @property
    def input_size(self) -> int:
        return self.options.anchors.input_size

    def _output_names(self) -> tuple[str, str]:
        boxes = scores = None
        for name, shape in self.model.output_shapes.items():
            if shape[-1] == VALUES_PER_ANCHOR:
                boxes = name
            elif shape[-1] == 1:
                scores = name
        if boxes is None or scores is None:
            raise ModelError(f"unexpected detector outputs {self.model.output_shapes}")
        return boxes, scores

    def detect(self, image: np.ndarray) -> list[Face]:
        """All faces in `image` (H×W×3 RGB uint8), highest score first, in its pixels.

        With tiling on and an image more than twice the model input on its longer side,
        the model also looks at four overlapping tiles (each 2/3 of the image per axis),
        so that faces too small for one pass over the whole image are found too.
        """
        height, width = image.shape[:2] if isinstance(image, np.ndarray) else (0, 0)
        if not self.tiling or max(height, width) < 2 * self.input_size:
            return self.finish(self.run(image), width, height)
        parts = [self.run(image)]
        for x0, y0, x1, y1 in tile_regions(width, height):
            found = self.run(np.ascontiguousarray(image[y0:y1, x0:x1]))
            parts.append(drop_cut_faces(found, (x0, y0, x1, y1), width, height).shifted(x0, y0))
        return self.finish(concatenate(parts), width, height)

    def run(self, image: np.ndarray) -> Candidates:
        """One pass of the model over `image`: candidates in its pixels, not yet merged."""
        box = self.prepare(image)
        return to_pixels(self.decode(self.infer()), box)

    def prepare(self, image: np.ndarray) -> Letterbox:
        """Stage 1: letterbox the image straight into the model's input tensor."""
        view = self.model.input_view()
        try:
            return letterbox_into(image, view)
        finally:
            del view

    def infer(self) -> RawOutput:
        """Stage 2: run the network on the prepared input."""
        out = self.model.invoke()
        return RawOutput(out[self._boxes_name], out[self._scores_name])

    def decode(self, raw: RawOutput) -> Candidates:
        """Stage 3: raw tensors → candidates relative to the square input."""
        return decode(raw.boxes, raw.scores, self._anchors, self.input_size,
                      self.options.score_threshold)

    def finish(self, candidates: Candidates, width: int, height: int) -> list[Face]:
        """Stage 4: merge overlapping candidates and make Face objects."""
        return to_faces(weighted_nms(candidates, self.options.iou_threshold), width, height,
                        self.calibration, self.model_name)


TILE_FRACTION = 2 / 3
"""Each tile spans 2/3 of the image per axis, so neighbouring tiles overlap by 1/3: a
face smaller than that lies whole inside at least one tile."""


def tile_regions(width: int, height: int) -> list[tuple[int, int, int, int]]:
    """The four corner tiles (x0, y0, x1, y1) of the image."""
    tw, th = round(width * TILE_FRACTION), round(height * TILE_FRACTION)
    return [(x, y, x + tw, y + th) for y in (0, height - th) for x in (0, width - tw)]


def drop_cut_faces(
    c: Candidates, tile: tuple[int, int, int, int], width: int, height: int, margin: float = 2.0
) -> Candidates:
    """Drop tile candidates touching an edge of the tile that is inside the image: those
    faces are cut by the tile, and another tile or the whole-image pass sees them whole."""
    x0, y0, x1, y1 = tile
    tw, th = x1 - x0, y1 - y0
    keep = np.ones(len(c), dtype=bool)
    if x0 > 0:
        keep &= c.boxes[:, 0] > margin
    if y0 > 0:
        keep &= c.boxes[:, 1] > margin
    if x1 < width:
        keep &= c.boxes[:, 2] < tw - margin
    if y1 < height:
        keep &= c.boxes[:, 3] < th - margin
    return Candidates(c.boxes[keep], c.keypoints[keep], c.scores[keep])


def to_pixels(c: Candidates, box: Letterbox) -> Candidates:
    """Candidates relative to the square input → pixels of the letterboxed image."""
    corners = box.to_pixels(c.boxes.reshape(-1, 2, 2)).reshape(-1, 4)
    return Candidates(corners, box.to_pixels(c.keypoints), c.scores)


def to_faces(c: Candidates, width: int, height: int, calibration: Calibration,
             model: str) -> list[Face]:
    """Merged candidates in pixels → Face objects, boxes clipped to the image (keypoints
    are not: an ear may lie outside it). Faces clipped to nothing are dropped."""
    if len(c) == 0:
        return []
    boxes = c.boxes.copy()
    boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, width)
    boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, height)
    facing = facing_scores(c.keypoints)
    faces = []
    for i in range(len(c)):
        x0, y0, x1, y1 = (float(v) for v in boxes[i])
        if x1 <= x0 or y1 <= y0:
            continue
        faces.append(Face(
            box=(x0, y0, x1, y1),
            score=calibration.confidence(float(c.scores[i])),
            keypoints=tuple((float(x), float(y)) for x, y in c.keypoints[i]),
            facing=bool(facing[i] >= FACING_THRESHOLD),
            facing_score=float(facing[i]),
            model=model,
        ))
    return faces
