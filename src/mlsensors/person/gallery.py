"""The ID gallery: a few stored face embeddings per ID, and nearest-neighbour matching.

The Person Sensor's semantics: IDs 0–7 (more by configuration, never on the wire), each
learnt on the device from a few seconds of looking, no training. Here each ID keeps up
to `max_per_id` 128-D embeddings; a query matches the ID of its nearest stored vector
when that distance is below `threshold`, else it is unknown (id −1, confidence 0).

Calibration (bench/identity_calibrate.py, docs/identification.md): on all 20 × 10 ORL
images, same-person pairs have a median distance of 0.31 and a 99th percentile of 0.52;
different-person pairs a 1st percentile of 0.56. At 0.52 one same-person pair in 100 is
refused and 0.15 % of different-person pairs are accepted (≈ 1 % false accepts against
a full gallery of 8). The colour photos of the knn examples are easier (same person
0.33–0.52, different ≥ 0.70). dlib's customary 0.6 accepts 3.5 % of ORL impostor pairs,
too many for a gallery of 8 lookalikes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mlsensors.errors import InputError
from mlsensors.vision.embed import EMBEDDING_DIM

DEFAULT_NUM_IDS = 8
DEFAULT_MAX_PER_ID = 8
THRESHOLD = 0.52
"""Largest embedding distance accepted as the same person (calibrated on ORL, above)."""

CONFIDENCE_SCALE = 0.071
"""Width of the confidence curve: puts the median same-person distance (0.31) at 95."""

UNKNOWN = -1


def confidence(distance: float, threshold: float = THRESHOLD) -> int:
    """id_confidence 0–100 for a match at `distance`: 100 / (1 + e^((d − τ) / 0.071)).

    Strictly decreasing in distance up to the threshold τ, where it is 50; beyond τ the
    face is unknown and the confidence is 0. At the median same-person distance (0.31)
    it is 95, at 0.40 it is 84.
    """
    if not math.isfinite(distance) or distance >= threshold:
        return 0
    return round(100.0 / (1.0 + math.exp((distance - threshold) / CONFIDENCE_SCALE)))


@dataclass(frozen=True, slots=True)
class Match:
    """The gallery's answer for one embedding."""

    id: int
    distance: float
    """Distance to the nearest stored embedding of any ID (inf for an empty gallery)."""
    confidence: int

    @property
    def known(self) -> bool:
        return self.id != UNKNOWN


def as_embedding(vector) -> np.ndarray:
    """One embedding as float32 (128,), or an InputError naming what is wrong with it."""
    arr = np.asarray(vector, dtype=np.float32)
    if arr.shape != (EMBEDDING_DIM,):
        raise InputError(f"an embedding has {EMBEDDING_DIM} values, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InputError("an embedding contains NaN or infinite values")
    return arr


class Gallery:
    """IDs 0..num_ids−1, each with up to `max_per_id` embeddings. Not thread-safe."""

    def __init__(
        self,
        num_ids: int = DEFAULT_NUM_IDS,
        *,
        max_per_id: int = DEFAULT_MAX_PER_ID,
        threshold: float = THRESHOLD,
    ) -> None:
        if not 1 <= num_ids <= 65535:
            raise InputError(f"a gallery holds 1 to 65535 IDs, got {num_ids}")
        if max_per_id < 1:
            raise InputError(f"max_per_id must be ≥ 1, got {max_per_id}")
        if not 0.0 < threshold < 2.0:
            raise InputError(f"threshold {threshold} is outside (0, 2)")
        self.num_ids = int(num_ids)
        self.max_per_id = int(max_per_id)
        self.threshold = float(threshold)
        self._vectors: dict[int, np.ndarray] = {}

    def check_id(self, id_: int) -> int:
        if isinstance(id_, bool) or not isinstance(id_, (int, np.integer)):
            raise InputError(f"an ID is an integer, got {id_!r}")
        if not 0 <= id_ < self.num_ids:
            raise InputError(f"ID {id_} is outside 0–{self.num_ids - 1}")
        return int(id_)

    def ids(self) -> list[int]:
        """The IDs that have at least one embedding, ascending."""
        return sorted(self._vectors)

    def embeddings(self, id_: int) -> np.ndarray:
        """A copy of the embeddings stored for `id_`, shape (n, 128); n = 0 if none."""
        got = self._vectors.get(self.check_id(id_))
        return np.empty((0, EMBEDDING_DIM), np.float32) if got is None else got.copy()

    def __len__(self) -> int:
        return sum(len(v) for v in self._vectors.values())

    def set(self, id_: int, embeddings) -> None:
        """Make `embeddings` the whole of `id_`: what calibration and enrolment do.

        More than `max_per_id` of them is an InputError, not a silent cut: which samples
        an ID keeps is the caller's decision, and nothing is changed.
        """
        id_ = self.check_id(id_)
        rows = [as_embedding(e) for e in embeddings]
        if not rows:
            raise InputError(f"no embeddings given for ID {id_}")
        if len(rows) > self.max_per_id:
            raise InputError(f"ID {id_} holds at most {self.max_per_id} samples; "
                             f"{len(rows)} given")
        self.remove(id_)
        self._vectors[id_] = np.stack(rows)

    def add(self, id_: int, embedding) -> None:
        """Append one embedding to `id_`; an InputError (and no change) when the ID holds
        `max_per_id` already: no sample is ever dropped silently."""
        id_ = self.check_id(id_)
        row = as_embedding(embedding)[None]
        old = self._vectors.get(id_)
        if old is not None and len(old) >= self.max_per_id:
            raise InputError(f"ID {id_} already holds {len(old)} samples, the most an ID "
                             "keeps; enrol it again (replacing them) or erase it first")
        new = row if old is None else np.concatenate([old, row])
        if old is not None:
            old.fill(0.0)
        self._vectors[id_] = new

    def remove(self, id_: int) -> None:
        """Forget `id_`, zeroing its vectors first so the numbers do not linger in memory."""
        old = self._vectors.pop(self.check_id(id_), None)
        if old is not None:
            old.fill(0.0)

    def clear(self) -> None:
        for id_ in list(self._vectors):
            self.remove(id_)

    def match(self, embedding) -> Match:
        """The nearest ID if within the threshold, else UNKNOWN; confidence per `confidence`."""
        query = as_embedding(embedding)
        best_id, best = UNKNOWN, math.inf
        for id_, rows in self._vectors.items():
            d = float(np.min(np.linalg.norm(rows - query, axis=1)))
            if d < best:
                best_id, best = id_, d
        if best >= self.threshold:
            return Match(UNKNOWN, best, 0)
        return Match(best_id, best, confidence(best, self.threshold))

    def items(self) -> list[tuple[int, np.ndarray]]:
        """(id, embeddings) pairs, ascending by id, as copies (for saving)."""
        return [(i, self._vectors[i].copy()) for i in self.ids()]
