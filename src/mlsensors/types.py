"""The values that flow between the stages of the data path.

source → preprocess → model → decode → suppress → track → identify → record → transport

Each stage takes and returns these small frozen dataclasses, never dicts, so that
what crosses a module boundary is named, typed and cheap to check.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

Box = tuple[float, float, float, float]
"""x0, y0, x1, y1 in pixels of the original image (x1 > x0, y1 > y0)."""

Point = tuple[float, float]


class Keypoint(IntEnum):
    """Face landmarks that some detector gives; each model gives a subset (its layout).

    Named from the subject's point of view, as MediaPipe does: the subject's right eye
    appears on the left of an unmirrored photo (checked on real portraits in the tests).
    BlazeFace gives the first six (mouth centre and ears), YuNet the eyes, the nose tip
    and the two mouth corners (no ears).
    """

    RIGHT_EYE = 0
    LEFT_EYE = 1
    NOSE_TIP = 2
    MOUTH = 3
    RIGHT_EAR = 4
    LEFT_EAR = 5
    RIGHT_MOUTH_CORNER = 6
    LEFT_MOUTH_CORNER = 7


BLAZEFACE_LANDMARKS = (Keypoint.RIGHT_EYE, Keypoint.LEFT_EYE, Keypoint.NOSE_TIP,
                       Keypoint.MOUTH, Keypoint.RIGHT_EAR, Keypoint.LEFT_EAR)
"""BlazeFace's keypoints, in its output order."""
YUNET_LANDMARKS = (Keypoint.RIGHT_EYE, Keypoint.LEFT_EYE, Keypoint.NOSE_TIP,
                   Keypoint.RIGHT_MOUTH_CORNER, Keypoint.LEFT_MOUTH_CORNER)
"""YuNet's landmarks, in its output order."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One picture from a source: RGB uint8, height × width × 3, C-contiguous.

    `index` counts frames from the source's start; `timestamp` is seconds on the
    monotonic clock when the frame was captured (or synthesised).
    """

    image: np.ndarray
    index: int
    timestamp: float
    origin: str = ""

    @property
    def width(self) -> int:
        return int(self.image.shape[1])

    @property
    def height(self) -> int:
        return int(self.image.shape[0])


@dataclass(frozen=True, slots=True)
class SourceGap:
    """A source's word that it has no picture right now (camera unplugged, retrying).

    Sources yield it instead of a Frame so that the sensor reports no faces while the
    camera is gone, rather than repeating the last ones.
    """

    timestamp: float
    reason: str


@dataclass(frozen=True, slots=True)
class Face:
    """One detected face in pixels of the image it was found in.

    `score` is the calibrated confidence 0–1 (the record's confidence / 100; see
    `vision.calibrate`), the same scale whichever model found the face. `keypoints` are
    the landmarks named, in order, by `landmarks` (the finding model's layout); `model`
    names that model.
    """

    box: Box
    score: float
    keypoints: tuple[Point, ...]
    facing: bool
    facing_score: float
    landmarks: tuple[Keypoint, ...] = BLAZEFACE_LANDMARKS
    model: str = "full"

    @property
    def area(self) -> float:
        return max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1])

    def has(self, which: Keypoint) -> bool:
        return which in self.landmarks

    def keypoint(self, which: Keypoint) -> Point:
        """The landmark's point; KeyError if the finding model does not give it."""
        try:
            return self.keypoints[self.landmarks.index(which)]
        except ValueError:
            raise KeyError(f"{self.model} gives no {which.name.lower()} landmark") from None


@dataclass(frozen=True, slots=True)
class PersonFace:
    """One face as the Person Sensor reports it: exactly the fields of its I2C record.

    The box is in 0–255 units of the frame (left, top, right, bottom), so a client never
    learns the camera's resolution. `id` is −1 and `id_confidence` 0 while the face is
    not recognised.
    """

    box: tuple[int, int, int, int]
    confidence: int
    is_facing: bool
    id: int = -1
    id_confidence: int = 0


MAX_FACES = 4
"""The Person Sensor's record has room for four faces; the largest four are kept."""


@dataclass(frozen=True, slots=True)
class PersonResult:
    """What the sensor says about one processed frame, and nothing more.

    `timestamp` is Unix time in seconds (wall clock), so that consumers on other
    machines can place it; `frame_index` counts processed frames from the start.
    """

    timestamp: float
    faces: tuple[PersonFace, ...] = field(default_factory=tuple)
    frame_index: int = 0

    @property
    def num_faces(self) -> int:
        return len(self.faces)
