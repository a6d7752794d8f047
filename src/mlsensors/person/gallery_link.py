"""Face IDs across the seal: what the sealed sensing process may say about the gallery.

The sensing process writes no file. When a calibration ends it sends one fixed-size
record on its store pipe (`encode_calibration` / `encode_failure`); the guard's
`gallery_keeper.GalleryKeeper` checks every field (`decode_record`), keeps the gallery
and its file, and hands IDs back as blocks on the command pipe (`encode_load`), which is
also how each (re)started sensing process gets the stored gallery. The sensing process
learns an ID only from such a block: what it knows is exactly what the guard accepted.

Calibration record (version 1), RECORD_SIZE = 1,288 bytes, little-endian:

    0   1  tag b"C"
    1   1  version (1)
    2   1  ID (0-7)
    3   1  outcome: 1 learnt, 2 failed
    4   1  samples n: 1-5 when learnt, 0 when failed
    5   1  failure: 0 when learnt; 1 no face, 2 no embedding, 3 switched off when failed
    6   2  reserved, 0
    8   5 × 128 × f16  embeddings; rows n.. and every row of a failure are all zero

Each value of a learnt row must be finite and within ±COMPONENT_MAX, and each row's
length within NORM_RANGE: dlib's descriptors measured 1.27-1.59 (112 faces of ORL, the
knn photos, group and WIDER photos; the largest single value 0.50). Half precision
changes a descriptor distance by less than 0.002 (the ID threshold is 0.52) and halves
what a compromised process could put into a record; `record_capacity_bits` gives the
bound.

Load block (guard → sensing process): u8 ID, u8 n, n × 128 × f32 (n = 0: forget the ID).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mlsensors.errors import ProtocolError
from mlsensors.person.identify import CALIBRATION_SAMPLES, CalibrationResult, Failure
from mlsensors.vision.embed import EMBEDDING_DIM
from mlsensors.wire.record import MAX_ID

TAG = ord("C")
VERSION = 1
LEARNT = 1
FAILED = 2
_HEAD = struct.Struct("<BBBBBBH")
_ROWS_BYTES = CALIBRATION_SAMPLES * EMBEDDING_DIM * 2
RECORD_SIZE = _HEAD.size + _ROWS_BYTES
COMPONENT_MAX = 1.0
NORM_RANGE = (0.8, 2.0)
_LOAD_HEAD = struct.Struct("<BB")
MAX_LOAD_SAMPLES = 8
"""Samples per ID the sensing process is given (the gallery's default per ID)."""


@dataclass(frozen=True, slots=True)
class CalibrationRecord:
    """A decoded record: for a learnt one, `samples` is (n, 128) float32."""

    id: int
    ok: bool
    samples: np.ndarray
    failure: Failure = Failure.NONE


def _half_rows(samples: Sequence[np.ndarray]) -> bytes:
    rows = np.zeros((CALIBRATION_SAMPLES, EMBEDDING_DIM), "<f2")
    rows[:len(samples)] = np.asarray(samples, np.float32)
    return rows.tobytes()


def encode_calibration(id_: int, samples: Sequence[np.ndarray]) -> bytes:
    """The record of a calibration that learnt `samples` (1-5) for `id_`."""
    if not 0 <= id_ <= MAX_ID or not 1 <= len(samples) <= CALIBRATION_SAMPLES:
        raise ProtocolError(f"a calibration record holds ID 0-{MAX_ID} and 1-"
                            f"{CALIBRATION_SAMPLES} samples, got ID {id_}, "
                            f"{len(samples)} samples")
    return _HEAD.pack(TAG, VERSION, id_, LEARNT, len(samples), 0, 0) + _half_rows(samples)


def encode_failure(result: CalibrationResult) -> bytes:
    """The record of a calibration that learnt nothing."""
    return (_HEAD.pack(TAG, VERSION, result.id, FAILED, 0, int(result.failure), 0)
            + bytes(_ROWS_BYTES))


def decode_record(frame: bytes) -> CalibrationRecord:
    """Strict decode; ProtocolError naming the first field that is wrong."""
    if len(frame) != RECORD_SIZE:
        raise ProtocolError(f"calibration record is {len(frame)} bytes, expected "
                            f"{RECORD_SIZE}")
    tag, version, id_, outcome, n, failure, reserved = _HEAD.unpack_from(frame)
    if tag != TAG or version != VERSION or reserved:
        raise ProtocolError("calibration record header is wrong (tag, version, reserved)")
    if not 0 <= id_ <= MAX_ID:
        raise ProtocolError(f"calibration record ID {id_} is outside 0-{MAX_ID}")
    body = np.frombuffer(frame, "<f2", offset=_HEAD.size).reshape(
        CALIBRATION_SAMPLES, EMBEDDING_DIM)
    raw = np.frombuffer(frame, "<u2", offset=_HEAD.size).reshape(body.shape)
    if outcome == FAILED:
        if n or raw.any() or failure not in set(Failure) - {Failure.NONE}:
            raise ProtocolError("calibration failure record has samples or an unknown "
                                "reason")
        return CalibrationRecord(id_, False, np.empty((0, EMBEDDING_DIM), np.float32),
                                 Failure(failure))
    if outcome != LEARNT or failure or not 1 <= n <= CALIBRATION_SAMPLES:
        raise ProtocolError(f"calibration record outcome {outcome}, failure {failure}, "
                            f"{n} samples: not a calibration")
    if raw[n:].any():
        raise ProtocolError("calibration record has bytes in unused sample rows")
    rows = body[:n].astype(np.float32)
    if not np.all(np.isfinite(rows)) or np.abs(rows).max() > COMPONENT_MAX:
        raise ProtocolError("calibration record has values that are not finite or "
                            f"beyond ±{COMPONENT_MAX:g}")
    norms = np.linalg.norm(rows, axis=1)
    low, high = NORM_RANGE
    if norms.min() < low or norms.max() > high:
        raise ProtocolError(f"calibration record has an embedding of length "
                            f"{norms.min():.2f}-{norms.max():.2f}, outside {low}-{high}")
    return CalibrationRecord(id_, True, rows)


def encode_load(id_: int, samples: Sequence[np.ndarray]) -> bytes:
    """The block that sets `id_` to `samples` in the sensing process (none: forget it)."""
    rows = np.asarray(samples, "<f4").reshape(-1, EMBEDDING_DIM)
    if not 0 <= id_ <= MAX_ID or len(rows) > MAX_LOAD_SAMPLES:
        raise ProtocolError(f"a load block holds ID 0-{MAX_ID} and at most "
                            f"{MAX_LOAD_SAMPLES} samples")
    return _LOAD_HEAD.pack(id_, len(rows)) + rows.tobytes()


def decode_load(block: bytes) -> tuple[int, np.ndarray]:
    if len(block) < _LOAD_HEAD.size:
        raise ProtocolError("load block is too short")
    id_, n = _LOAD_HEAD.unpack_from(block)
    if len(block) != _LOAD_HEAD.size + n * EMBEDDING_DIM * 4 or id_ > MAX_ID:
        raise ProtocolError(f"load block of {len(block)} bytes for ID {id_} with {n} "
                            "samples is inconsistent")
    rows = np.frombuffer(block, "<f4", offset=_LOAD_HEAD.size).reshape(n, EMBEDDING_DIM)
    return id_, rows.astype(np.float32)


class GuardStore:
    """The sensing process's `IdStore`: calibrations go to the guard as records and come
    back (if accepted) as load blocks; erasing and persisting are the guard's, which
    acts on them before it forwards the register write here."""

    problem = ""

    def __init__(self, link) -> None:
        """`link`: the child's `privacy.child.GuardLink`."""
        self.link = link

    def learnt(self, id_: int, samples, apply) -> None:
        self.link.send(encode_calibration(id_, samples))

    def failed(self, result: CalibrationResult) -> None:
        self.link.send(encode_failure(result))

    def erased(self) -> None:
        pass

    def persist(self, on: bool, gallery) -> None:
        pass


def component_values() -> int:
    """How many half-precision bit patterns `decode_record` accepts as one value (finite,
    within ±COMPONENT_MAX): counted, not estimated."""
    every = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(every) & (np.abs(every.astype(np.float32)) <= COMPONENT_MAX)
    return int(ok.sum())


def record_capacity_bits(window_s: float, max_rate: float) -> float:
    """Upper bound on the bits one user-initiated calibration lets a compromised sensing
    process put out: the record's choices (nothing, a failure reason, or 1-5 rows of
    accepted values; the row-length rule is ignored, an over-count) plus when within the
    window the ID shows up in the published results (one of window × max_rate ticks)."""
    c = component_values()
    row = c ** EMBEDDING_DIM
    choices = 1 + (len(Failure) - 1) + sum(row ** n for n in range(1, CALIBRATION_SAMPLES + 1))
    return math.log2(choices) + math.log2(window_s * max_rate + 1)
