"""The 39-byte record: round trips and both published client layouts."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlsensors.errors import ProtocolError
from mlsensors.types import MAX_FACES, PersonFace, PersonResult
from mlsensors.wire.record import (
    DATA_SIZE,
    NATIVE_RECORD_SIZE,
    RECORD_SIZE,
    crc16_ccitt_false,
    largest_faces,
    pack_record,
    unpack_record,
)

# The two ways client code in the wild decodes the record, written out independently of
# record.py: C structs (packed, 39 bytes) and the vendor's Python examples (native
# alignment, 40 bytes, id_confidence read as unsigned).
PACKED_HEADER = struct.Struct("<BBHb")
PACKED_FACE = struct.Struct("<BBBBBbbB")
NATIVE_FORMAT = "BBH" + "B" + "BBBBBBbB" * 4 + "H"


def decode_packed(buf: bytes) -> tuple[int, int, list[tuple[int, ...]], int]:
    assert len(buf) == 39
    _r0, _r1, data_size, n = PACKED_HEADER.unpack_from(buf)
    faces = [PACKED_FACE.unpack_from(buf, 5 + 8 * i) for i in range(n)]
    (checksum,) = struct.unpack_from("<H", buf, 37)
    return data_size, n, faces, checksum


def decode_native(buf: bytes) -> tuple[int, int, list[tuple[int, ...]], int]:
    fields = struct.unpack(NATIVE_FORMAT, buf)
    data_size, n = fields[2], fields[3]
    faces = [tuple(fields[4 + 8 * i: 12 + 8 * i]) for i in range(n)]
    return data_size, n, faces, fields[-1]


@st.composite
def person_faces(draw) -> PersonFace:
    left = draw(st.integers(0, 255))
    top = draw(st.integers(0, 255))
    right = draw(st.integers(left, 255))
    bottom = draw(st.integers(top, 255))
    face_id = draw(st.integers(-1, 7))
    id_conf = draw(st.integers(0, 100)) if face_id >= 0 else draw(st.integers(-128, 0))
    return PersonFace(
        (left, top, right, bottom), draw(st.integers(0, 100)), draw(st.booleans()),
        face_id, id_conf,
    )


results = st.builds(
    PersonResult,
    timestamp=st.floats(0, 2e9, allow_nan=False),
    faces=st.lists(person_faces(), max_size=7).map(tuple),
)


def expected_faces(result: PersonResult) -> tuple[PersonFace, ...]:
    """What survives packing: the four largest, "not recognised" confidence as 0."""
    return tuple(
        PersonFace(f.box, f.confidence, f.is_facing, f.id, max(0, f.id_confidence))
        for f in largest_faces(result.faces)
    )


def test_crc_is_ccitt_false() -> None:
    assert crc16_ccitt_false(b"123456789") == 0x29B1
    assert crc16_ccitt_false(b"") == 0xFFFF


def test_native_layout_is_forty_bytes_with_pad_before_checksum() -> None:
    # The fact the 40-byte compatibility rests on: one pad byte at offset 37.
    assert struct.calcsize(NATIVE_FORMAT) == NATIVE_RECORD_SIZE
    assert struct.calcsize("<" + NATIVE_FORMAT) == RECORD_SIZE
    assert struct.calcsize(NATIVE_FORMAT[:-1]) == 37
    probe = struct.pack(NATIVE_FORMAT, *([0] * 36), 0xBEEF)
    assert probe[37] == 0 and probe[38:40] == b"\xef\xbe"


def test_empty_record_bytes() -> None:
    rec = pack_record(PersonResult(1.0))
    assert len(rec) == RECORD_SIZE
    assert rec[:5] == bytes([0, 0, DATA_SIZE, 0, 0])
    assert rec[5:37] == bytes(32)
    assert int.from_bytes(rec[37:], "little") == crc16_ccitt_false(rec[:37])


def test_known_record_layout() -> None:
    face = PersonFace((10, 20, 110, 140), 97, True, 3, 88)
    rec = pack_record(PersonResult(0.0, (face,)))
    assert rec[4] == 1
    assert rec[5:13] == bytes([97, 10, 20, 110, 140, 88, 3, 1])
    none = pack_record(PersonResult(0.0, (PersonFace((0, 0, 9, 9), 50, False),)))
    assert none[5:13] == bytes([50, 0, 0, 9, 9, 0, 0xFF, 0])


@settings(max_examples=300, deadline=None)
@given(results)
def test_round_trip(result: PersonResult) -> None:
    rec = pack_record(result)
    assert len(rec) == RECORD_SIZE
    back = unpack_record(rec, timestamp=result.timestamp)
    assert back.faces == expected_faces(result)
    assert back.timestamp == result.timestamp
    assert pack_record(back) == rec
    # a 40-byte read is the record plus one zero and decodes the same
    assert unpack_record(rec + b"\x00").faces == back.faces


@settings(max_examples=300, deadline=None)
@given(results)
def test_both_client_layouts_decode_the_same_faces(result: PersonResult) -> None:
    rec = pack_record(result)
    p_size, p_n, p_faces, p_crc = decode_packed(rec)
    n_size, n_n, n_faces, n_crc = decode_native(rec + b"\x00")  # a 40-byte read
    assert p_size == n_size == DATA_SIZE
    assert p_n == n_n == len(expected_faces(result))
    assert p_faces == n_faces
    assert p_faces == [
        (f.confidence, *f.box, f.id_confidence, f.id, int(f.is_facing))
        for f in expected_faces(result)
    ]
    assert p_crc == crc16_ccitt_false(rec[:37])
    # the native layout's "checksum" is our high byte and the zero pad (documented)
    assert n_crc == rec[38]


def test_largest_four_faces_kept_largest_first() -> None:
    faces = tuple(PersonFace((0, 0, s, s), 50, False) for s in (5, 50, 20, 80, 10, 30))
    back = unpack_record(pack_record(PersonResult(0.0, faces)))
    assert [f.box[2] for f in back.faces] == [80, 50, 30, 20]
    assert len(back.faces) == MAX_FACES


@pytest.mark.parametrize(
    ("face", "message"),
    [
        (PersonFace((0, 0, 10, 10), 101, False), "confidence"),
        (PersonFace((0, 0, 256, 10), 50, False), "outside 0-255"),
        (PersonFace((20, 0, 10, 10), 50, False), "left > right"),
        (PersonFace((0, 0, 10, 10), 50, False, 8, 10), "face id 8"),
        (PersonFace((0, 0, 10, 10), 50, False, -1, 5), "positive id confidence"),
    ],
)
def test_pack_rejects_bad_faces(face: PersonFace, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        pack_record(PersonResult(0.0, (face,)))


def _resign(body: bytes) -> bytes:
    return body + crc16_ccitt_false(body).to_bytes(2, "little")


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda r: r[:38], "38 bytes"),
        (lambda r: r + bytes(2), "41 bytes"),
        (lambda r: r[:37] + bytes([r[37] ^ 1, r[38]]), "checksum"),
        (lambda r: _resign(r[:2] + b"\x20\x00" + r[4:37]), "data_size 32"),
        (lambda r: _resign(r[:4] + b"\x05" + r[5:37]), "num_faces 5"),
        (lambda r: _resign(r[:4] + b"\xff" + r[5:37]), "num_faces -1"),
        (lambda r: _resign(r[:13] + b"\x01" + r[14:37]), "unused face slot 1"),
        (lambda r: _resign(r[:5] + b"\x65" + r[6:37]), "face 0: box confidence 101"),
        (lambda r: _resign(r[:12] + b"\x02" + r[13:37]), "is_facing is 2"),
    ],
)
def test_unpack_names_the_problem(mutate, message: str) -> None:
    rec = pack_record(PersonResult(0.0, (PersonFace((1, 2, 30, 40), 90, True),)))
    with pytest.raises(ProtocolError, match=message):
        unpack_record(mutate(rec))


def test_lenient_unpack_ignores_unpublished_details() -> None:
    rec = pack_record(PersonResult(0.0, (PersonFace((1, 2, 30, 40), 90, True),)))
    odd = rec[:2] + b"\x28\x00" + rec[4:37] + b"\x12\x34"  # other data_size, other CRC
    assert unpack_record(odd, strict=False).faces == unpack_record(rec).faces
    with pytest.raises(ProtocolError):
        unpack_record(odd)


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.binary(min_size=39, max_size=40), st.binary(max_size=80)), st.booleans())
def test_random_buffers_give_result_or_protocol_error(buf: bytes, strict: bool) -> None:
    try:
        result = unpack_record(buf, strict=strict)
    except ProtocolError:
        return
    assert len(result.faces) <= MAX_FACES
    assert all(-1 <= f.id <= 7 and 0 <= f.confidence <= 100 for f in result.faces)


@settings(max_examples=300, deadline=None)
@given(results, st.integers(0, 38), st.integers(1, 255))
def test_any_single_byte_corruption_is_caught(result: PersonResult, at: int, flip: int) -> None:
    rec = bytearray(pack_record(result))
    rec[at] ^= flip
    with pytest.raises(ProtocolError):
        unpack_record(bytes(rec))
