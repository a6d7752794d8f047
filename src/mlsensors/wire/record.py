"""The 39-byte results record of the Person Sensor, byte for byte.

Layout (packed, little-endian), as in the vendor's C header:

    0-1   reserved (zero)
    2-3   uint16 data_size
    4     int8   num_faces (0-4)
    5-36  4 faces × 8 bytes: uint8 box_confidence (0-100), uint8 box_left, box_top,
          box_right, box_bottom (0-255), int8 id_confidence (0-100, ≤ 0 when unknown),
          int8 id (0-7, -1 when none), uint8 is_facing (0/1); unused slots all zero
    37-38 uint16 checksum: CRC-16/CCITT-FALSE of bytes 0-36

The vendor says only "CRC16 of the preceding bytes". CRC-16/CCITT-FALSE (poly 0x1021,
init 0xFFFF, no reflection, no final xor; check value 0x29B1 for "123456789") is the
variant we emit and verify. `data_size` is 33: the bytes that carry results between the
header and the checksum (num_faces plus four 8-byte face slots), so a reader can check
it has the layout it expects.

Clients with native alignment (the vendor's Python examples: struct format
"BBH" + "B" + "BBBBBBbB"*4 + "H") read 40 bytes: `struct` inserts one pad byte at
offset 37 so that the final "H" is 2-aligned. A read continues the device's read
sequence and reads zeros past the record's end (read_pointer.py), so such a client gets
our 39 bytes plus one zero: bytes 0-36 (header and all faces) sit where both layouts
expect them and decode to the same faces. Those examples decode only `num_faces` slots
and then take their "checksum" with a separate unpack at offset 5 + 8 * num_faces:
a face slot's first bytes unless four faces are seen, never verified. A client that
wants to verify must use offsets 37-38, which is what `unpack_record` does with a
40-byte buffer (the 40th byte is ignored).
"""

from __future__ import annotations

import struct

from mlsensors.errors import ProtocolError
from mlsensors.types import MAX_FACES, PersonFace, PersonResult

RECORD_SIZE = 39
NATIVE_RECORD_SIZE = 40
DATA_SIZE = 1 + MAX_FACES * 8
MAX_ID = 7

_HEADER = struct.Struct("<BBHb")
_FACE = struct.Struct("<BBBBBbbB")
_CRC = struct.Struct("<H")
_BODY_SIZE = RECORD_SIZE - _CRC.size
MAX_READ = 255
"""Longest read (or write) transaction a transport serves."""


def _crc_table() -> tuple[int, ...]:
    table = []
    for top in range(256):
        crc = top << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16_ccitt_false(data: bytes) -> int:
    """CRC-16/CCITT-FALSE, table-driven: the driver checks every read, up to ~10^4/s."""
    crc = 0xFFFF
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC_TABLE[(crc >> 8) ^ byte]
    return crc


def largest_faces(faces: tuple[PersonFace, ...] | list[PersonFace]) -> tuple[PersonFace, ...]:
    """The four largest faces by box area, largest first (the record's order)."""

    def area(f: PersonFace) -> int:
        return max(0, f.box[2] - f.box[0]) * max(0, f.box[3] - f.box[1])

    return tuple(sorted(faces, key=area, reverse=True)[:MAX_FACES])


def _check_face(face: PersonFace) -> None:
    if not 0 <= face.confidence <= 100:
        raise ProtocolError(f"box confidence {face.confidence} is outside 0-100")
    if any(not 0 <= v <= 255 for v in face.box):
        raise ProtocolError(f"box {face.box} has a coordinate outside 0-255")
    if face.box[0] > face.box[2] or face.box[1] > face.box[3]:
        raise ProtocolError(f"box {face.box} has left > right or top > bottom")
    if not -1 <= face.id <= MAX_ID:
        raise ProtocolError(f"face id {face.id} is outside -1..{MAX_ID}")
    if not -128 <= face.id_confidence <= 100:
        raise ProtocolError(f"id confidence {face.id_confidence} is outside -128..100")
    if face.id == -1 and face.id_confidence > 0:
        raise ProtocolError("an unrecognised face (id -1) has a positive id confidence")


def pack_record(result: PersonResult) -> bytes:
    """The 39-byte record for `result` (largest four faces kept)."""
    faces = largest_faces(result.faces)
    out = bytearray(_HEADER.pack(0, 0, DATA_SIZE, len(faces)))
    for face in faces:
        _check_face(face)
        # "Not recognised" goes out as 0, never negative: the vendor's Python format
        # reads id_confidence as unsigned and would see 2xx.
        out += _FACE.pack(
            face.confidence, *face.box, max(0, face.id_confidence), face.id,
            1 if face.is_facing else 0,
        )
    out += bytes(_FACE.size * (MAX_FACES - len(faces)))
    out += _CRC.pack(crc16_ccitt_false(out))
    return bytes(out)


def unpack_record(data: bytes, timestamp: float = 0.0, *, strict: bool = True) -> PersonResult:
    """Decode a 39-byte (packed) or 40-byte (native-alignment read) record.

    Raises ProtocolError naming the first problem: length, checksum, data_size, face
    count, a non-zero unused slot, or a field outside its range. `strict=False` skips
    the checks whose expected values the vendor never published (the CRC variant,
    data_size, zeroed unused slots), for reading an original SEN21231; the face fields
    are still range-checked.
    """
    data = bytes(data)
    if len(data) not in (RECORD_SIZE, NATIVE_RECORD_SIZE):
        raise ProtocolError(
            f"record is {len(data)} bytes; expected {RECORD_SIZE} (packed) or "
            f"{NATIVE_RECORD_SIZE} (native alignment)"
        )
    body = data[:_BODY_SIZE]
    (checksum,) = _CRC.unpack_from(data, _BODY_SIZE)
    if strict and crc16_ccitt_false(body) != checksum:
        raise ProtocolError(
            f"record checksum 0x{checksum:04x} does not match 0x{crc16_ccitt_false(body):04x}"
        )
    return PersonResult(timestamp=timestamp, faces=_decode_body(body, strict))


def _decode_body(body: bytes, strict: bool) -> tuple[PersonFace, ...]:
    _r0, _r1, data_size, num_faces = _HEADER.unpack_from(body)
    if strict and data_size != DATA_SIZE:
        raise ProtocolError(f"record data_size {data_size}, expected {DATA_SIZE}")
    if not 0 <= num_faces <= MAX_FACES:
        raise ProtocolError(f"record num_faces {num_faces} is outside 0-{MAX_FACES}")
    faces = []
    for i in range(MAX_FACES):
        fields = _FACE.unpack_from(body, _HEADER.size + i * _FACE.size)
        if i >= num_faces:
            if strict and any(fields):
                raise ProtocolError(f"unused face slot {i} is not zero")
            continue
        conf, left, top, right, bottom, id_conf, face_id, facing = fields
        if facing > 1:
            raise ProtocolError(f"face {i} is_facing is {facing}, expected 0 or 1")
        face = PersonFace((left, top, right, bottom), conf, bool(facing), face_id, id_conf)
        try:
            _check_face(face)
        except ProtocolError as e:
            raise ProtocolError(f"face {i}: {e}") from None
        faces.append(face)
    return tuple(faces)
