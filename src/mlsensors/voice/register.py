"""The voice sensor's register record on the bus, in the Person Sensor's style.

At its own 7-bit address (VOICE_ADDRESS, 0x63, beside the Person Sensor's 0x62), read
with a plain I2C read like the person record (same read pointer, same checksum):

    0-1   reserved (zero)
    2-3   u16 data_size = 10
    4-7   u32 event counter: events published since the service started
    8     u8  kind of the last event: 0 none yet, 1 command, 2 wake word
    9     u8  its command index 0-15 (0 for none and the wake word)
    10    u8  its confidence 0-100 (0 for none)
    11    u8  commands enrolled (0-16)
    12-13 u16 commands the gate held back (saturates at 65535)
    14-15 u16 CRC-16/CCITT-FALSE of bytes 0-13

A controller polls it and acts when the counter moves: the counter tells it how many
events it missed between two polls, the rest is the newest one. See docs/wire.md.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from mlsensors.errors import ProtocolError
from mlsensors.wire.record import crc16_ccitt_false

VOICE_ADDRESS = 0x63
VOICE_REGISTER_SIZE = 16
DATA_SIZE = 10
_LAYOUT = struct.Struct("<HHIBBBBH")
_CRC = struct.Struct("<H")


@dataclass(frozen=True, slots=True)
class VoiceRegister:
    counter: int = 0
    kind: int = 0
    command: int = 0
    confidence: int = 0
    enrolled: int = 0
    gated: int = 0


def pack_voice_register(r: VoiceRegister) -> bytes:
    body = _LAYOUT.pack(0, DATA_SIZE, r.counter % 2**32, r.kind, r.command, r.confidence,
                        r.enrolled, min(r.gated, 0xFFFF))
    return body + _CRC.pack(crc16_ccitt_false(body))


def unpack_voice_register(data: bytes) -> VoiceRegister:
    """Strict decode of the 16 bytes (a longer read's trailing zeros are ignored)."""
    data = bytes(data[:VOICE_REGISTER_SIZE])
    if len(data) != VOICE_REGISTER_SIZE:
        raise ProtocolError(f"voice register is {len(data)} bytes, expected "
                            f"{VOICE_REGISTER_SIZE}")
    if crc16_ccitt_false(data[:-2]) != _CRC.unpack_from(data, 14)[0]:
        raise ProtocolError("voice register checksum does not match")
    reserved, size, counter, kind, command, conf, enrolled, gated = _LAYOUT.unpack_from(data)
    if reserved or size != DATA_SIZE:
        raise ProtocolError(f"voice register header ({reserved}, {size}) is not (0, "
                            f"{DATA_SIZE})")
    if kind > 2 or command > 15 or conf > 100 or enrolled > 16:
        raise ProtocolError("voice register field out of range")
    return VoiceRegister(counter, kind, command, conf, enrolled, gated)


def voice_register_of(snapshot) -> bytes:
    """The register bytes for a `voice.events.VoiceSnapshot`."""
    last = snapshot.last
    return pack_voice_register(VoiceRegister(
        counter=snapshot.published,
        kind=int(last.kind) if last is not None else 0,
        command=last.command if last is not None else 0,
        confidence=last.confidence if last is not None else 0,
        enrolled=len(snapshot.commands),
        gated=snapshot.gated))
