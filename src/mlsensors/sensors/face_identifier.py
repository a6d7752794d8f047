"""FaceIdentifier: detector + embedder + gallery for single pictures, no sensor loop.

For tools and scripts (and `mlsensors id`): every face of a picture is embedded and
matched at once, synchronously. A live sensor uses Tracker + TrackIdentifier instead,
which embed only what needs it and vote over time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlsensors.errors import InputError
from mlsensors.sensors.gallery import Gallery
from mlsensors.types import Face


@dataclass(frozen=True, slots=True)
class IdentifiedFace:
    face: Face
    id: int
    id_confidence: int
    distance: float
    """Distance to the nearest stored embedding (inf when the gallery is empty)."""


class FaceIdentifier:
    """Enrol and identify faces in pictures. Not thread-safe (one per thread)."""

    def __init__(self, gallery: Gallery | None = None, *, detector=None, embedder=None,
                 store=None) -> None:
        if detector is None:
            from mlsensors.vision.detector import FaceDetector

            detector = FaceDetector(model="full", store=store)
        if embedder is None:
            from mlsensors.vision.embed import FaceEmbedder

            embedder = FaceEmbedder(store)
        self.gallery = gallery if gallery is not None else Gallery()
        self.detector = detector
        self.embedder = embedder

    def largest_face(self, image: np.ndarray, name: str = "image") -> tuple[Face, np.ndarray]:
        """The largest face of `image` and its embedding; InputError naming `name` if none."""
        faces = self.detector.detect(image)
        if not faces:
            raise InputError(f"{name}: no face found")
        face = max(faces, key=lambda f: f.area)
        return face, self.embedder.embed(image, face.box)

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
        out = []
        for face in sorted(self.detector.detect(image), key=lambda f: -f.area):
            m = self.gallery.match(self.embedder.embed(image, face.box))
            out.append(IdentifiedFace(face, m.id, m.confidence, m.distance))
        return out
