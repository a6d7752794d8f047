"""FaceDetector: BlazeFace on LiteRT, decoded and suppressed exactly as MediaPipe does.

    from mlsensors import FaceDetector
    faces = FaceDetector().detect(rgb_image)   # list[Face], highest score first

Stages (each its own module): preprocess.letterbox_into → model.TfliteModel.invoke →
decode.decode → suppress.weighted_nms → back to pixels through the letterbox.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlsensors.errors import InputError, ModelError
from mlsensors.models import ModelStore
from mlsensors.models.manifest import DETECTOR_MODELS
from mlsensors.types import Face
from mlsensors.vision.anchors import FULL_RANGE, SHORT_RANGE, AnchorOptions, generate_anchors
from mlsensors.vision.decode import VALUES_PER_ANCHOR, Candidates, decode
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


class FaceDetector:
    """Finds faces in RGB uint8 images; reusable, not thread-safe (one per thread).

    `tiling` (default on) adds a pass over four overlapping tiles for images much
    larger than the model input, finding faces a single pass shrinks below its reach.
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
            raise ModelError(f"unknown detector model {model!r}; choose 'full' or 'short'")
        base = OPTIONS[model]
        threshold = base.score_threshold if score_threshold is None else float(score_threshold)
        if not 0.0 < threshold < 1.0:
            raise InputError(f"score threshold {threshold} is outside (0, 1)")
        self.model_name = model
        self.tiling = tiling
        self.options = DetectorOptions(base.model_file, base.anchors, threshold,
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
            parts.append(shift(drop_cut_faces(found, (x0, y0, x1, y1), width, height), x0, y0))
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
        return to_faces(weighted_nms(candidates, self.options.iou_threshold), width, height)


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


def shift(c: Candidates, dx: float, dy: float) -> Candidates:
    offset = np.array([dx, dy], np.float32)
    return Candidates(c.boxes + np.tile(offset, 2), c.keypoints + offset, c.scores)


def concatenate(parts: list[Candidates]) -> Candidates:
    return Candidates(np.concatenate([p.boxes for p in parts]),
                      np.concatenate([p.keypoints for p in parts]),
                      np.concatenate([p.scores for p in parts]))


def to_pixels(c: Candidates, box: Letterbox) -> Candidates:
    """Candidates relative to the square input → pixels of the letterboxed image."""
    corners = box.to_pixels(c.boxes.reshape(-1, 2, 2)).reshape(-1, 4)
    return Candidates(corners, box.to_pixels(c.keypoints), c.scores)


def to_faces(c: Candidates, width: int, height: int) -> list[Face]:
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
            score=float(c.scores[i]),
            keypoints=tuple((float(x), float(y)) for x, y in c.keypoints[i]),
            facing=bool(facing[i] >= FACING_THRESHOLD),
            facing_score=float(facing[i]),
        ))
    return faces
