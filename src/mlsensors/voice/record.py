"""The voice record: the only thing that leaves the voice sensor, 39 bytes, checked.

It is the Person Sensor record's size, so the sealed channel's 40-byte frame (a tag
byte and a body, privacy/channel.py) carries it under its own tag unchanged:

    0     u8   version (1)
    1     u8   kind: 0 none yet, 1 enrolled command, 2 wake word
    2     u8   command index 0..MAX_COMMANDS-1 (0 for none and wake)
    3     u8   confidence 0-100 (0 for none)
    4-7   u32  event counter: events since the sensor started (+1 per event)
    8-11  u32  when: milliseconds on the sensor's clock since it started
    12-36      zero
    37-38 u16  CRC-16/CCITT-FALSE of bytes 0-36 (wire.record's)

`RecordChecker` is what the guard applies to every record: each field in range, padding
zero, the counter exactly one more than the last event's, the clock never going back,
and no more than `max_rate` events per second. `capacity` bounds what a hostile sensing
process could say through it, computed from those rules (see docs/voice.md).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from enum import IntEnum

from mlsensors.errors import ProtocolError
from mlsensors.voice.matcher import MAX_COMMANDS
from mlsensors.wire.record import RECORD_SIZE, crc16_ccitt_false

VOICE_RECORD_SIZE = RECORD_SIZE
VERSION = 1
MAX_RATE = 2.0
"""Events per second at most (the documented rate cap); the sensor's own refractory
period keeps a real sensor well under it."""
EVENT_TICK = 0.05
"""The guard's clock for voice frames: an event waits at most this long for its tick
(not a whole 0.5 s rate period), which gives the child a choice of tick that
`capacity` counts."""
_FIELDS = struct.Struct("<BBBBII")
_CRC = struct.Struct("<H")
_BODY = VOICE_RECORD_SIZE - _CRC.size


class EventKind(IntEnum):
    NONE = 0
    COMMAND = 1
    WAKE = 2


@dataclass(frozen=True, slots=True)
class VoiceEvent:
    """One recognised command (or the wake word), as the record says it.

    `name` is not in the record: whoever holds the enrolled names (the CLI, later the
    guard's side of the service) resolves `command` to it.
    """

    kind: EventKind
    command: int
    confidence: int
    counter: int
    when_ms: int
    name: str | None = None
    timestamp: float = 0.0
    """Wall-clock time (Unix seconds) the event was made, for local consumers."""


def check_event(e: VoiceEvent, num_commands: int = MAX_COMMANDS) -> None:
    if e.kind not in EventKind.__members__.values():
        raise ProtocolError(f"voice record kind {e.kind} is unknown")
    if e.kind == EventKind.COMMAND:
        if not 0 <= e.command < num_commands:
            raise ProtocolError(f"voice command {e.command} is outside 0-{num_commands - 1}")
    elif e.command != 0:
        raise ProtocolError(f"a {EventKind(e.kind).name.lower()} record names command "
                            f"{e.command}")
    if not 0 <= e.confidence <= 100:
        raise ProtocolError(f"voice confidence {e.confidence} is outside 0-100")
    if e.kind == EventKind.NONE and (e.confidence or e.counter):
        raise ProtocolError("an empty voice record has a confidence or a counter")
    if not 0 <= e.counter < 2**32 or not 0 <= e.when_ms < 2**32:
        raise ProtocolError("voice record counter or time is outside 32 bits")


def pack(e: VoiceEvent) -> bytes:
    check_event(e)
    body = _FIELDS.pack(VERSION, int(e.kind), e.command, e.confidence, e.counter, e.when_ms)
    body += bytes(_BODY - len(body))
    return body + _CRC.pack(crc16_ccitt_false(body))


def unpack(data: bytes, num_commands: int = MAX_COMMANDS) -> VoiceEvent:
    """Strict decode: length, checksum, version, padding, every field's range."""
    data = bytes(data)
    if len(data) != VOICE_RECORD_SIZE:
        raise ProtocolError(f"voice record is {len(data)} bytes, expected {VOICE_RECORD_SIZE}")
    body, (crc,) = data[:_BODY], _CRC.unpack_from(data, _BODY)
    if crc16_ccitt_false(body) != crc:
        raise ProtocolError("voice record checksum does not match")
    version, kind, command, conf, counter, when = _FIELDS.unpack_from(body)
    if version != VERSION:
        raise ProtocolError(f"voice record version {version}, expected {VERSION}")
    if any(body[_FIELDS.size:]):
        raise ProtocolError("voice record padding is not zero")
    try:
        kind = EventKind(kind)
    except ValueError:
        raise ProtocolError(f"voice record kind {kind} is unknown") from None
    event = VoiceEvent(kind, command, conf, counter, when)
    check_event(event, num_commands)
    return event


class RecordChecker:
    """The guard's stateful checks across records, on top of `unpack`'s."""

    def __init__(self, num_commands: int = MAX_COMMANDS, max_rate: float = MAX_RATE, *,
                 wake: bool = True) -> None:
        self.num_commands = num_commands
        self.max_rate = max_rate
        self.wake = wake
        """Whether a wake word is listened for (else a wake record is a lie)."""
        self.counter = 0
        self.when_ms = 0
        self._last_event_at: float | None = None

    def check(self, data: bytes, now: float, skipped: int = 0) -> VoiceEvent:
        """The event in `data` if every rule holds; ProtocolError naming the first broken.
        `skipped`: events the guard itself dropped since the last one (a burst over its
        rate), so the counter stays forced: it must be exactly that many further on."""
        e = unpack(data, self.num_commands)
        if e.kind == EventKind.WAKE and not self.wake:
            raise ProtocolError("a wake-word record from a sensor without a wake word")
        if e.when_ms < self.when_ms:
            raise ProtocolError(f"voice record time went back ({e.when_ms} < {self.when_ms} ms)")
        if e.kind == EventKind.NONE:
            if self.counter:
                raise ProtocolError("an empty voice record after events")
            return e
        if e.counter != self.counter + 1 + skipped:
            raise ProtocolError(f"voice event counter {e.counter}, expected "
                                f"{self.counter + 1 + skipped}")
        if self._last_event_at is not None and now - self._last_event_at < 1.0 / self.max_rate:
            raise ProtocolError(f"voice events faster than {self.max_rate:g} per second")
        self.counter, self.when_ms, self._last_event_at = e.counter, e.when_ms, now
        return e


@dataclass(frozen=True, slots=True)
class VoiceCapacity:
    max_rate: float
    ticks_per_slot: int
    symbols_per_slot: int
    bits_per_event: float
    bits_per_second: float
    seconds_per_ring: float
    """Time to leak the ring buffer's 2 s of 16 kHz audio at 8 bits a sample."""

    def describe(self) -> str:
        return (f"voice records ≤ {self.bits_per_second:.1f} bit/s at ≤ {self.max_rate:g} "
                f"events/s ({self.bits_per_event:.2f} bit per event); 2 s of 8-bit 16 kHz "
                f"audio would take ≥ {self.seconds_per_ring / 3600:.1f} h")


def capacity(num_commands: int = MAX_COMMANDS, max_rate: float = MAX_RATE,
             tick: float = EVENT_TICK) -> VoiceCapacity:
    """Upper bound on bits/s. Frames passed by the guard are at least 1/max_rate apart,
    so any slot of 1/max_rate s holds one at most, on one of the slot's guard ticks: the
    child chooses nothing, or a tick and one of the channel's status values, a wake word
    or one of the commands, each with a confidence 0–100. The counter is forced by the
    checker and the guard stamps its own time and count, so neither carries a choice."""
    from mlsensors.privacy.channel import status_values

    ticks = max(1, math.ceil(round(1.0 / (max_rate * tick), 6)))
    symbols = 1 + ticks * (status_values() + (num_commands + 1) * 101)
    bits = math.log2(symbols)
    ring_bits = 2 * 16000 * 8
    return VoiceCapacity(max_rate, ticks, symbols, bits, bits * max_rate,
                         ring_bits / (bits * max_rate))
