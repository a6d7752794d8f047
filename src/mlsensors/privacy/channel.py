"""The one narrow channel out of the sealed process: fixed-size frames over a pipe.

Every frame is FRAME_SIZE (40) bytes: a tag byte and a 39-byte body. Tag "R" carries the
Person Sensor's results record exactly (mlsensors.wire.record), tag "V" the voice
sensor's event record (mlsensors.voice.record; each kind's tag is in its `RecordKind`,
privacy/kind.py); tag "S" carries a status
record of the same size whose only content is a state and a reason code. 40 bytes is
below PIPE_BUF, so each frame is written atomically and a well-behaved child can never
interleave or split one. Commands go the other way on a second pipe as COMMAND_SIZE (2)
byte register writes, and, from the guard only, blocks (CMD_BLOCK, u16 length, bytes):
state the guard keeps for the sensor, such as the ID gallery, handed to each child.

A sensor that keeps state (face IDs) has a third pipe, the store pipe: fixed-size
frames from the child that the guard's `Keeper` for that sensor validates field by
field (e.g. one calibration's embeddings); see `guard.Keeper`.

The channel's capacity is computed here from the layout, the value ranges the guard
accepts and the rate cap, so the figure published by `mlsensors audit` and the
datasheet follows the code rather than a document.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from enum import IntEnum

from mlsensors.errors import ProtocolError
from mlsensors.privacy.logfilter import capacity_bits_per_second
from mlsensors.types import MAX_FACES, PersonResult
from mlsensors.wire.record import (
    MAX_ID,
    RECORD_SIZE,
    crc16_ccitt_false,
    pack_record,
    unpack_record,
)

FRAME_SIZE = 1 + RECORD_SIZE
TAG_RESULT = ord("R")
TAG_STATUS = ord("S")
COMMAND_SIZE = 2
CMD_BLOCK = 0xFF
"""First byte of a block on the command pipe (registers are 0x01-0x07)."""
BLOCK_HEAD = struct.Struct("<BH")
PIPE_BUF = 4096
"""Writes up to this size are atomic on a Linux pipe: every store frame is smaller."""

_STATUS = struct.Struct("<BBB")
_CRC = struct.Struct("<H")


class ChildState(IntEnum):
    """What the sealed child can say about itself besides results."""

    STARTING = 0
    RUNNING = 1
    NO_SOURCE = 2
    """The source has no picture (camera gone, end of file): the sensor reports no faces."""
    FAILED = 3
    """The child cannot go on (model refused, source cannot open); it is about to exit."""
    STANDBY = 4
    """Mode register 0: no frames are read until continuous mode or a single shot."""
    ENDED = 5
    """A finite source (file, folder) has no more frames; the child is about to exit."""


class Reason(IntEnum):
    """Why the child is in its state; a closed set, so it cannot carry free text."""

    NONE = 0
    SOURCE_GAP = 1
    SOURCE_ERROR = 2
    MODEL_ERROR = 3
    INPUT_ERROR = 4
    INTERNAL = 5
    EMBEDDER = 6
    """The embedding process (face IDs) ended; the sensing process exits to be restarted
    with a new one (a sealed process cannot start programs)."""


REASON_TEXT = {
    Reason.SOURCE_GAP: "the source has no picture",
    Reason.SOURCE_ERROR: "the source failed",
    Reason.MODEL_ERROR: "a model was refused",
    Reason.INPUT_ERROR: "bad input",
    Reason.INTERNAL: "internal error",
    Reason.EMBEDDER: "the embedding process ended",
}


@dataclass(frozen=True, slots=True)
class ChildStatus:
    state: ChildState
    reason: Reason = Reason.NONE


STATUS_VERSION = 1


def encode_result(result: PersonResult) -> bytes:
    return bytes([TAG_RESULT]) + pack_record(result)


def encode_status(status: ChildStatus) -> bytes:
    body = _STATUS.pack(STATUS_VERSION, int(status.state), int(status.reason))
    body += bytes(RECORD_SIZE - 2 - len(body))
    return bytes([TAG_STATUS]) + body + _CRC.pack(crc16_ccitt_false(body))


def decode_status(body: bytes) -> ChildStatus:
    if len(body) != RECORD_SIZE:
        raise ProtocolError(f"status record is {len(body)} bytes, expected {RECORD_SIZE}")
    payload, (checksum,) = body[:-2], _CRC.unpack_from(body, RECORD_SIZE - 2)
    if crc16_ccitt_false(payload) != checksum:
        raise ProtocolError("status record checksum does not match")
    version, state, reason = _STATUS.unpack_from(payload)
    if version != STATUS_VERSION:
        raise ProtocolError(f"status record version {version}, expected {STATUS_VERSION}")
    if any(payload[_STATUS.size:]):
        raise ProtocolError("status record padding is not zero")
    try:
        return ChildStatus(ChildState(state), Reason(reason))
    except ValueError:
        raise ProtocolError(f"status record state {state} / reason {reason} unknown") from None


def _face_area(box: tuple[int, int, int, int]) -> int:
    return (box[2] - box[0]) * (box[3] - box[1])


def decode_result(body: bytes) -> PersonResult:
    """Strict decode: the wire format's checks plus the canonical order pack_record emits."""
    result = unpack_record(body)
    areas = [_face_area(f.box) for f in result.faces]
    if areas != sorted(areas, reverse=True):
        raise ProtocolError("faces are not in largest-first order")
    return result


def decode_frame(frame: bytes) -> PersonResult | ChildStatus:
    """One frame → a result or a status; ProtocolError for anything else."""
    if len(frame) != FRAME_SIZE:
        raise ProtocolError(f"frame is {len(frame)} bytes, expected {FRAME_SIZE}")
    tag, body = frame[0], bytes(frame[1:])
    if tag == TAG_RESULT:
        return decode_result(body)
    if tag == TAG_STATUS:
        return decode_status(body)
    raise ProtocolError(f"frame tag 0x{tag:02x} is neither result nor status")


def encode_command(register: int, value: int) -> bytes:
    if not (0 <= register <= 255 and 0 <= value <= 255) or register == CMD_BLOCK:
        raise ProtocolError(f"register write ({register}, {value}) is not two bytes")
    return bytes((register, value))


def encode_block(payload: bytes) -> bytes:
    """One block for the command pipe (guard → child)."""
    if len(payload) > 0xFFFF:
        raise ProtocolError(f"a block holds at most 65,535 bytes, got {len(payload)}")
    return BLOCK_HEAD.pack(CMD_BLOCK, len(payload)) + payload


def split_commands(buf: bytes) -> tuple[list[tuple[int, int] | bytes], bytes]:
    """The whole commands at the start of `buf` (register writes as (register, value),
    blocks as bytes) and the incomplete rest."""
    out: list[tuple[int, int] | bytes] = []
    pos = 0
    while pos < len(buf):
        if buf[pos] == CMD_BLOCK:
            if len(buf) - pos < BLOCK_HEAD.size:
                break
            (_, n) = BLOCK_HEAD.unpack_from(buf, pos)
            end = pos + BLOCK_HEAD.size + n
            if end > len(buf):
                break
            out.append(bytes(buf[pos + BLOCK_HEAD.size:end]))
            pos = end
        else:
            if len(buf) - pos < COMMAND_SIZE:
                break
            out.append((buf[pos], buf[pos + 1]))
            pos += COMMAND_SIZE
    return out, bytes(buf[pos:])


@dataclass(frozen=True, slots=True)
class Capacity:
    """An upper bound on what the channel can carry, whatever the child does."""

    max_rate: float
    symbols_per_slot: int
    bits_per_record: float
    bits_per_second: float
    frame_bits: int
    seconds_per_frame: float
    log_bits_per_second: float
    """The child's filtered stdout/stderr, the only other way out (see logfilter)."""
    seconds_per_frame_total: float
    """Time to leak one frame through records and logs together."""

    def describe(self) -> str:
        return (f"records ≤ {self.bits_per_second:,.0f} bit/s at ≤ {self.max_rate:g}/s "
                f"({self.bits_per_record:.1f} bit per slot), logs ≤ "
                f"{self.log_bits_per_second:,.0f} bit/s; one 320×320 8-bit frame takes ≥ "
                f"{_human_seconds(self.seconds_per_frame)} to leak through the records, "
                f"≥ {_human_seconds(self.seconds_per_frame_total)} through both")


def _human_seconds(s: float) -> str:
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    if s < 172800:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} days"


def face_values() -> int:
    """Distinct faces the guard accepts: confidence, box, facing, id and id confidence."""
    confidence = 101
    edge_pairs = 256 * 257 // 2  # (low, high) with low <= high, each 0-255
    facing = 2
    unknown = 129  # id -1 with id_confidence -128..0
    known = (MAX_ID + 1) * 229  # id 0-7 with id_confidence -128..100
    return confidence * edge_pairs * edge_pairs * facing * (unknown + known)


def status_values() -> int:
    return len(ChildState) * len(Reason)


def capacity(max_rate: float, frame_side: int = 320) -> Capacity:
    """Bits/s the guard can pass at most, and the time to leak one 8-bit square frame.

    The guard publishes on a fixed clock of `max_rate` ticks per second; in each tick it
    passes at most one record and that record's timestamp is the guard's own, so the
    child's only freedom per tick is the choice among: nothing, one status value or one
    results record (0-4 faces, order ignored: an over-count keeps this an upper bound).
    """
    f = face_values()
    results = sum(f**k for k in range(MAX_FACES + 1))
    symbols = results + status_values() + 1
    bits = math.log2(symbols)
    per_second = bits * max_rate
    frame_bits = frame_side * frame_side * 8
    logs = capacity_bits_per_second()
    return Capacity(max_rate, symbols, bits, per_second, frame_bits, frame_bits / per_second,
                    logs, frame_bits / (per_second + logs))
