"""The guard's side of face IDs: what a calibration record must be to be accepted, and
how the register writes that touch the gallery file are applied before they are
acknowledged. Real files, no processes (the sealed path is in test_gallery_sealed.py)."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from mlsensors.errors import ProtocolError
from mlsensors.hub import RegisterWrite
from mlsensors.person.gallery import Gallery
from mlsensors.person.gallery_file import GalleryFile
from mlsensors.person.gallery_keeper import CALIBRATION_WINDOW_S, GalleryKeeper
from mlsensors.person.gallery_link import (
    RECORD_SIZE,
    component_values,
    decode_load,
    decode_record,
    encode_calibration,
    encode_failure,
    record_capacity_bits,
)
from mlsensors.person.identify import CalibrationResult, Failure
from mlsensors.wire.registers import Register


def face_vec(seed: int, length: float = 1.4) -> np.ndarray:
    """A vector shaped like dlib's descriptors (length 1.27-1.59, values within ±0.5)."""
    v = np.random.default_rng(seed).normal(size=128)
    return (length * v / np.linalg.norm(v)).astype(np.float32)


def write(reg: Register, value: int) -> RegisterWrite:
    return RegisterWrite(int(reg), value)


class Sent:
    def __init__(self):
        self.blocks: list[bytes] = []

    def __call__(self, data: bytes) -> None:
        self.blocks.append(data)


def keeper(tmp_path, **kwargs) -> GalleryKeeper:
    return GalleryKeeper(GalleryFile(tmp_path / "ids" / "g.bin"), **kwargs)


def calibrating(k: GalleryKeeper, id_: int, now: float = 0.0) -> None:
    w = write(Register.CALIBRATE_ID, id_)
    assert k.check(w) is False
    k.forwarded(w, now)


def test_a_calibration_is_accepted_once_for_its_request_and_saved(tmp_path):
    k = keeper(tmp_path)
    sent = Sent()
    rows = [face_vec(i) for i in range(5)]
    frame = encode_calibration(3, rows)
    assert len(frame) == RECORD_SIZE
    with pytest.raises(ProtocolError, match="no calibration of it is pending"):
        k.record(frame, 0.0, sent)  # nobody asked
    calibrating(k, 3)
    k.record(frame, 1.0, sent)
    with pytest.raises(ProtocolError, match="pending"):
        k.record(frame, 1.1, sent)  # at most one per request
    assert k.gallery.ids() == [3] and len(k.gallery.embeddings(3)) == 5
    # half precision on the way: within 0.001 of what the sensor computed
    assert np.abs(k.gallery.embeddings(3) - np.stack(rows)).max() < 1e-3
    (block,) = sent.blocks  # the sensing process learns the ID from the guard
    id_, back = decode_load(block[3:])
    assert id_ == 3 and np.array_equal(back, k.gallery.embeddings(3))
    assert GalleryFile(k.file.path).load().ids() == [3]  # PERSIST_IDS is on by default


def test_a_record_for_another_id_or_after_the_window_is_refused(tmp_path):
    k = keeper(tmp_path)
    calibrating(k, 2, now=100.0)
    with pytest.raises(ProtocolError, match="ID 4"):
        k.record(encode_calibration(4, [face_vec(1)]), 100.5, Sent())
    with pytest.raises(ProtocolError, match="pending"):
        k.record(encode_calibration(2, [face_vec(1)]), 100.0 + CALIBRATION_WINDOW_S + 0.1,
                 Sent())
    assert k.gallery.ids() == []
    calibrating(k, 2, now=200.0)
    k.tick(200.0 + CALIBRATION_WINDOW_S + 0.1)
    assert "calibration of ID 2 failed: no result" in k.problem
    with pytest.raises(ProtocolError):
        k.record(encode_calibration(2, [face_vec(1)]), 200.0 + CALIBRATION_WINDOW_S, Sent())


def _forged() -> dict[str, bytes]:
    good = bytearray(encode_calibration(1, [face_vec(7), face_vec(8)]))

    def body(values) -> bytes:
        rows = np.zeros((5, 128), "<f2")
        rows[0] = values
        return bytes(good[:8]) + rows.tobytes()

    def head(**fields) -> bytes:
        names = ("tag", "version", "id", "outcome", "n", "failure", "reserved")
        values = dict(zip(names, struct.unpack_from("<BBBBBBH", good), strict=True))
        values.update(fields)
        return struct.pack("<BBBBBBH", *values.values()) + bytes(good[8:])

    tail = bytearray(good)
    tail[-1] = 0x3C  # a value in an unused row
    negative_zero = bytearray(good)
    negative_zero[-1] = 0x80
    nan = face_vec(9)
    nan[5] = np.nan
    big = face_vec(9)
    big[0] = 1.5
    return {
        "short": bytes(good[:-2]),
        "tag": head(tag=ord("R")),
        "version": head(version=2),
        "reserved": head(reserved=1),
        "id 9": head(id=9),
        "outcome 3": head(outcome=3),
        "no samples": head(n=0),
        "six samples": head(n=6),
        "learnt with a failure code": head(failure=1),
        "unused row": bytes(tail),
        "negative zero in an unused row": bytes(negative_zero),
        "NaN": body(nan),
        "infinity": body(np.full(128, np.inf)),
        "value beyond 1": body(big),
        "too short a vector": body(face_vec(9, length=0.5)),
        "too long a vector": body(np.full(128, 0.99)),
        "zero vector": body(np.zeros(128)),
        "failure with samples": head(outcome=2, n=0, failure=1),
        "failure with unknown reason": bytes(encode_failure(
            CalibrationResult(1, False, 0, Failure.NO_FACE)))[:5] + b"\x09" + bytes(
            RECORD_SIZE - 6),
    }


@pytest.mark.parametrize("name", list(_forged()))
def test_every_field_of_a_record_is_checked(tmp_path, name):
    frame = _forged()[name]
    with pytest.raises(ProtocolError):
        decode_record(frame)
    k = keeper(tmp_path)
    calibrating(k, 1)
    with pytest.raises(ProtocolError):
        k.record(frame, 0.5, Sent())
    assert k.gallery.ids() == [] and not k.file.path.exists()


def test_a_failure_record_settles_the_request_and_shows_in_the_problem(tmp_path):
    k = keeper(tmp_path)
    calibrating(k, 6)
    k.record(encode_failure(CalibrationResult(6, False, 0, Failure.NO_FACE)), 1.0, Sent())
    assert "calibration of ID 6 failed: no face" in k.problem
    assert k.gallery.ids() == []
    calibrating(k, 6)  # the next request clears it
    assert "calibration" not in k.problem


def test_calibrate_is_refused_while_ids_are_off_or_in_standby(tmp_path):
    k = keeper(tmp_path)
    k.forwarded(write(Register.ENABLE_ID, 0), 0.0)
    with pytest.raises(ProtocolError, match="identification is off"):
        k.check(write(Register.CALIBRATE_ID, 1))
    k.forwarded(write(Register.ENABLE_ID, 1), 0.0)
    k.forwarded(write(Register.MODE, 0), 0.0)
    with pytest.raises(ProtocolError, match="standby"):
        k.check(write(Register.CALIBRATE_ID, 1))
    k.forwarded(write(Register.MODE, 1), 0.0)
    calibrating(k, 1)


def test_persist_is_refused_when_the_file_cannot_be_written(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the gallery's folder should be")
    k = GalleryKeeper(GalleryFile(blocker / "g.bin"), persist=False)
    calibrating(k, 0)
    k.record(encode_calibration(0, [face_vec(1)]), 0.1, Sent())  # in memory only
    with pytest.raises(ProtocolError, match="PERSIST_IDS refused: cannot write gallery"):
        k.check(write(Register.PERSIST_IDS, 1))
    assert "IDs not saved" in k.problem
    assert k.gallery.ids() == [0]  # nothing lost


def test_erase_forgets_memory_and_file_and_must_reach_the_sensing_process(tmp_path):
    k = keeper(tmp_path)
    calibrating(k, 4)
    k.record(encode_calibration(4, [face_vec(2)]), 0.1, Sent())
    assert k.file.path.exists()
    calibrating(k, 5)
    assert k.check(write(Register.ERASE_IDS, 0)) is True
    assert k.gallery.ids() == [] and not k.file.path.exists() and k.blocks() == b""
    with pytest.raises(ProtocolError):  # the pending calibration went with it
        k.record(encode_calibration(5, [face_vec(2)]), 0.2, Sent())


def test_a_restarted_sensing_process_gets_the_stored_gallery(tmp_path):
    path = tmp_path / "g.bin"
    g = Gallery()
    g.set(2, [face_vec(1), face_vec(2)])
    g.set(7, [face_vec(3)])
    GalleryFile(path).save(g)
    k = GalleryKeeper(GalleryFile(path))
    from mlsensors.privacy.channel import split_commands

    blocks, rest = split_commands(k.blocks())
    assert rest == b""
    got = {i: rows for i, rows in map(decode_load, blocks)}
    assert sorted(got) == [2, 7]
    assert np.array_equal(got[2], g.embeddings(2)) and np.array_equal(got[7], g.embeddings(7))


def test_the_capacity_bound_counts_what_the_validator_accepts():
    """Every half-precision pattern in one slot of a plausible vector, through the real
    decoder: the accepted count is the figure the bound uses."""
    base = face_vec(3, length=1.2)
    base[0] = 0.0
    frame = bytearray(encode_calibration(0, [base]))
    accepted = 0
    for pattern in range(1 << 16):
        struct.pack_into("<H", frame, 8, pattern)
        try:
            decode_record(bytes(frame))
        except ProtocolError:
            continue
        accepted += 1
    assert accepted == component_values() == 30722
    bits = record_capacity_bits(CALIBRATION_WINDOW_S, 30.0)
    assert 9_540 < bits < 9_560  # 5 × 128 × log2(30722) plus the timing of the answer
