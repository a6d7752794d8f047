"""FaceIdentifier: detector + embedder + gallery for single pictures, no sensor loop.

For tools and scripts (and `mlsensors id`): every face of a picture is embedded and
matched at once, synchronously. A live sensor uses Tracker + TrackIdentifier instead,
which embed only what needs it and vote over time.

Faces are found by `FaceDetector.detect`, the one detection path (`mlsensors detect`
gives the same faces; it pads tight crops itself). When the aligned face would reach past
the picture's edge (tight crops: ID photos, the ORL set), the faces are embedded in the
picture padded with grey by half its size on each side (and doubled if small), the way
the threshold was calibrated (docs/identification.md); they are reported in the original
picture's pixels.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from mlsensors.errors import InputError
from mlsensors.person.gallery import Gallery
from mlsensors.types import Face


@dataclass(frozen=True, slots=True)
class IdentifiedFace:
    face: Face
    id: int
    id_confidence: int
    distance: float
    """Distance to the nearest stored embedding (inf when the gallery is empty)."""


SMALL_PX = 320
"""A padded crop whose longer side is below this is doubled before detection."""


@dataclass(frozen=True, slots=True)
class _Found:
    image: np.ndarray
    """The picture the faces were found (and are embedded) in."""
    faces: list[Face]
    """Faces in `image`'s pixels."""
    offset: tuple[float, float]
    scale: float

    def into(self, face: Face) -> Face:
        """`face` (original picture's pixels) in `image`'s pixels."""
        ox, oy, s = self.offset[0], self.offset[1], self.scale
        x0, y0, x1, y1 = face.box
        points = tuple((x * s + ox, y * s + oy) for x, y in face.keypoints)
        return replace(face, box=(x0 * s + ox, y0 * s + oy, x1 * s + ox, y1 * s + oy),
                       keypoints=points)

    def original(self, face: Face, width: int, height: int) -> Face:
        """`face` in the pixels of the picture the caller gave."""
        if self.scale == 1.0 and self.offset == (0.0, 0.0):
            return face
        ox, oy, s = self.offset[0], self.offset[1], self.scale
        x0, y0, x1, y1 = face.box
        box = (min(max((x0 - ox) / s, 0.0), width), min(max((y0 - oy) / s, 0.0), height),
               min(max((x1 - ox) / s, 0.0), width), min(max((y1 - oy) / s, 0.0), height))
        points = tuple(((x - ox) / s, (y - oy) / s) for x, y in face.keypoints)
        return replace(face, box=box, keypoints=points)


def _near_edge(face: Face, width: int, height: int, margin: float = 0.25) -> bool:
    """True if the aligned chip around `face` would reach past the picture's edge."""
    x0, y0, x1, y1 = face.box
    m = margin * max(x1 - x0, y1 - y0)
    return x0 - m < 0 or y0 - m < 0 or x1 + m > width or y1 + m > height


class FaceIdentifier:
    """Enrol and identify faces in pictures. Not thread-safe (one per thread)."""

    def __init__(self, gallery: Gallery | None = None, *, detector=None, embedder=None,
                 store=None) -> None:
        if detector is None:
            from mlsensors.vision.detector import FaceDetector

            detector = FaceDetector(store=store)
        if embedder is None:
            from mlsensors.vision.embed import FaceEmbedder

            embedder = FaceEmbedder(store)
        self.gallery = gallery if gallery is not None else Gallery()
        self.detector = detector
        self.embedder = embedder

    def _find(self, image: np.ndarray) -> _Found:
        faces = self.detector.detect(image)
        h, w = image.shape[:2]
        if not any(_near_edge(f, w, h) for f in faces):
            return _Found(image, faces, (0.0, 0.0), 1.0)
        py, px = h // 2, w // 2
        padded = cv2.copyMakeBorder(image, py, py, px, px, cv2.BORDER_CONSTANT,
                                    value=(128, 128, 128))
        scale = 2.0 if max(padded.shape[:2]) < SMALL_PX else 1.0
        if scale != 1.0:
            padded = cv2.resize(padded, None, fx=scale, fy=scale,
                                interpolation=cv2.INTER_CUBIC)
        found = _Found(np.ascontiguousarray(padded), [], (px * scale, py * scale), scale)
        return replace(found, faces=[found.into(f) for f in faces])

    def largest_face(self, image: np.ndarray, name: str = "image") -> tuple[Face, np.ndarray]:
        """The largest face of `image` and its embedding; InputError naming `name` if none."""
        found = self._find(image)
        if not found.faces:
            raise InputError(f"{name}: no face found")
        face = max(found.faces, key=lambda f: f.area)
        vector = self.embedder.embed(found.image, face.box)
        return found.original(face, image.shape[1], image.shape[0]), vector

    def enroll(self, id_: int, images, names=None) -> list[Face]:
        """Make the largest face of each image the samples of `id_` (replacing old ones).

        All images are checked before the gallery changes: one without a face leaves the
        gallery as it was and raises an InputError naming it.
        """
        names = list(names) if names is not None else [f"image {i + 1}" for i in
                                                         range(len(images))]
        faces, vectors = [], []
        for image, name in zip(images, names, strict=True):
            face, vec = self.largest_face(image, name)
            faces.append(face)
            vectors.append(vec)
        self.gallery.set(id_, vectors)
        return faces

    def identify(self, image: np.ndarray) -> list[IdentifiedFace]:
        """Every face of `image`, largest first, with its ID (−1 unknown) and distance."""
        found = self._find(image)
        out = []
        for face in sorted(found.faces, key=lambda f: -f.area):
            m = self.gallery.match(self.embedder.embed(found.image, face.box))
            original = found.original(face, image.shape[1], image.shape[0])
            out.append(IdentifiedFace(original, m.id, m.confidence, m.distance))
        return out
