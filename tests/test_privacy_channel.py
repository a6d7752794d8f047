"""The channel's framing, strict decoding, capacity bound, the guard's inbox and log filter."""

from __future__ import annotations

import logging
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlsensors.errors import ProtocolError
from mlsensors.privacy import channel
from mlsensors.privacy.channel import (
    FRAME_SIZE,
    ChildState,
    ChildStatus,
    Reason,
    capacity,
    decode_frame,
    encode_result,
    encode_status,
)
from mlsensors.privacy.guard import _Inbox
from mlsensors.privacy.logfilter import BURST, LogFilter, clean_line
from mlsensors.types import PersonFace, PersonResult
from mlsensors.wire.record import unpack_record

BIG = PersonFace((0, 0, 200, 200), 99, True, 3, 80)
SMALL = PersonFace((10, 10, 20, 20), 50, False)


def test_frames_round_trip_and_are_fixed_size():
    result = PersonResult(0.0, (BIG, SMALL))
    frame = encode_result(result)
    assert len(frame) == FRAME_SIZE == 40
    assert decode_frame(frame).faces == (BIG, SMALL)
    for state in ChildState:
        status = ChildStatus(state, Reason.SOURCE_GAP)
        frame = encode_status(status)
        assert len(frame) == FRAME_SIZE
        assert decode_frame(frame) == status


@pytest.mark.parametrize("mutate, problem", [
    (lambda f: f[:39], "39 bytes"),
    (lambda f: b"X" + f[1:], "tag"),
    (lambda f: f[:-1] + bytes([f[-1] ^ 1]), "checksum"),
])
def test_malformed_frames_are_refused(mutate, problem):
    with pytest.raises(ProtocolError, match=problem):
        decode_frame(mutate(encode_result(PersonResult(0.0, (BIG,)))))


def test_faces_out_of_canonical_order_are_refused():
    from mlsensors.wire.record import crc16_ccitt_false

    body = bytearray(encode_result(PersonResult(0.0, (BIG, SMALL)))[1:-2])
    body[5:13], body[13:21] = body[13:21], body[5:13]  # swap the two face slots
    frame = b"R" + bytes(body) + crc16_ccitt_false(bytes(body)).to_bytes(2, "little")
    with pytest.raises(ProtocolError, match="largest-first"):
        decode_frame(frame)


def test_status_padding_must_be_zero():
    from mlsensors.wire.record import crc16_ccitt_false

    body = bytearray(encode_status(ChildStatus(ChildState.RUNNING))[1:-2])
    body[10] = 1
    frame = b"S" + bytes(body) + crc16_ccitt_false(bytes(body)).to_bytes(2, "little")
    with pytest.raises(ProtocolError, match="padding"):
        decode_frame(frame)


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=FRAME_SIZE, max_size=FRAME_SIZE))
def test_any_accepted_frame_is_canonical(data):
    """Whatever a hostile child writes, what passes is exactly what encode would write."""
    try:
        message = decode_frame(data)
    except ProtocolError:
        return
    again = encode_result(message) if isinstance(message, PersonResult) \
        else encode_status(message)
    assert again == data


def _accepted_id_pairs() -> int:
    """Brute force over the wire: (id, id_confidence) pairs unpack_record accepts.

    Ids far outside -1..7 are refused by a plain range check, so a margin of a few
    either side covers the edges without 65,536 slow pure-Python CRCs.
    """
    ok = 0
    for face_id in range(-4, 12):
        for conf in range(-128, 128):
            face = PersonFace((0, 0, 1, 1), 50, False)
            record = bytearray(encode_result(PersonResult(0.0, (face,)))[1:])
            record[10], record[11] = conf & 0xFF, face_id & 0xFF
            from mlsensors.wire.record import crc16_ccitt_false
            record[37:39] = crc16_ccitt_false(bytes(record[:37])).to_bytes(2, "little")
            try:
                unpack_record(bytes(record))
            except ProtocolError:
                continue
            ok += 1
    return ok


def test_capacity_counts_what_the_validator_accepts():
    id_pairs = _accepted_id_pairs()
    assert channel.face_values() == 101 * 32896 * 32896 * 2 * id_pairs
    cap = capacity(1.0)
    assert 190 < cap.bits_per_record < 200
    assert cap.seconds_per_frame == pytest.approx(320 * 320 * 8 / cap.bits_per_second)
    assert capacity(30.0).bits_per_second == pytest.approx(30 * cap.bits_per_second)


def test_inbox_keeps_newest_and_counts_the_rest():
    inbox = _Inbox()
    r1 = encode_result(PersonResult(0.0, (SMALL,)))
    r2 = encode_result(PersonResult(0.0, (BIG,)))
    junk = b"\x00" * FRAME_SIZE
    inbox.feed(r1 + junk + r1 + r2)
    assert (inbox.received, inbox.malformed, inbox.over_rate) == (4, 1, 2)
    assert inbox.take() == r2
    assert inbox.take() is None


def test_inbox_result_before_newer_status_keeps_both_in_order():
    inbox = _Inbox()
    result = encode_result(PersonResult(0.0, (BIG,)))
    standby = encode_status(ChildStatus(ChildState.STANDBY))
    inbox.feed(result + standby)
    assert inbox.take() == result
    assert inbox.take() == standby
    inbox.feed(standby + result)  # the status is older than the result: stale
    assert inbox.take() == result
    assert inbox.take() is None
    assert inbox.over_rate == 1


def test_log_filter_drops_arrays_numbers_and_floods():
    import numpy as np

    assert clean_line(repr(np.zeros((4, 4), np.uint8)).encode()) is None
    assert clean_line(b"  [ 8,  9, 10, 11, 12, 13, 14, 15],") is None
    assert clean_line(" ".join(str(v) for v in range(50)).encode()) is None
    assert clean_line(os.urandom(48).hex().encode()) is None
    assert clean_line(b"model refused: sha256 mismatch\n") == "model refused: sha256 mismatch"
    assert len(clean_line(b"x " * 500)) == 160
    filt = LogFilter(logging.getLogger("test"))
    passed = [filt.accept(f"line {i}".encode()) for i in range(BURST + 10)]
    assert sum(p is not None for p in passed) == BURST
    assert filt.dropped == 10


def test_capacity_includes_the_log_side_channel():
    from mlsensors.privacy.logfilter import LINE_MAX, WINDOW

    cap = capacity(1.0)
    assert cap.log_bits_per_second == pytest.approx(BURST / WINDOW * LINE_MAX * 6.585, rel=1e-3)
    assert cap.seconds_per_frame_total < cap.seconds_per_frame
    assert "logs" in cap.describe()
