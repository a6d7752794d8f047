"""The voice record: round trip, every field checked, stateful rules, stated capacity."""

from __future__ import annotations

import struct

import pytest

from mlsensors.errors import ProtocolError
from mlsensors.voice.record import (
    VOICE_RECORD_SIZE,
    EventKind,
    RecordChecker,
    VoiceEvent,
    capacity,
    pack,
    unpack,
)
from mlsensors.wire.record import crc16_ccitt_false

EVENT = VoiceEvent(EventKind.COMMAND, 3, 87, 1, 1500)


def reseal(body: bytearray) -> bytes:
    body[37:39] = struct.pack("<H", crc16_ccitt_false(bytes(body[:37])))
    return bytes(body)


def test_round_trip_and_fixed_size():
    data = pack(EVENT)
    assert len(data) == VOICE_RECORD_SIZE == 39
    assert unpack(data) == EVENT
    assert len(pack(VoiceEvent(EventKind.NONE, 0, 0, 0, 0))) == 39


@pytest.mark.parametrize("offset, value, words", [
    (0, 2, "version"),
    (1, 7, "kind"),
    (2, 16, "command 16"),
    (3, 101, "confidence"),
    (20, 1, "padding"),
])
def test_each_field_out_of_range_is_refused(offset, value, words):
    body = bytearray(pack(EVENT))
    body[offset] = value
    with pytest.raises(ProtocolError, match=words):
        unpack(reseal(body))


def test_checksum_and_length_and_command_count():
    body = bytearray(pack(EVENT))
    body[3] ^= 1
    with pytest.raises(ProtocolError, match="checksum"):
        unpack(bytes(body))
    with pytest.raises(ProtocolError, match="bytes"):
        unpack(pack(EVENT)[:-1])
    with pytest.raises(ProtocolError, match="command 3"):
        unpack(pack(EVENT), num_commands=3)  # only 3 enrolled: index 3 does not exist
    with pytest.raises(ProtocolError, match="names command"):
        pack(VoiceEvent(EventKind.WAKE, 2, 90, 1, 0))


def test_checker_enforces_counter_clock_and_rate():
    checker = RecordChecker(num_commands=4, max_rate=2.0)
    assert checker.check(pack(EVENT), now=10.0) == EVENT
    with pytest.raises(ProtocolError, match="faster than 2"):
        checker.check(pack(VoiceEvent(EventKind.COMMAND, 1, 80, 2, 1600)), now=10.2)
    with pytest.raises(ProtocolError, match="counter 5, expected 2"):
        checker.check(pack(VoiceEvent(EventKind.COMMAND, 1, 80, 5, 1600)), now=11.0)
    with pytest.raises(ProtocolError, match="went back"):
        checker.check(pack(VoiceEvent(EventKind.COMMAND, 1, 80, 2, 10)), now=11.0)
    ok = VoiceEvent(EventKind.WAKE, 0, 95, 2, 2600)
    assert checker.check(pack(ok), now=11.0) == ok
    with pytest.raises(ProtocolError, match="empty voice record after events"):
        checker.check(pack(VoiceEvent(EventKind.NONE, 0, 0, 0, 2700)), now=12.0)


def test_capacity_follows_the_rules():
    c = capacity(num_commands=16, max_rate=2.0)
    # nothing, or one of the slot's 10 guard ticks and a status or an event
    assert c.ticks_per_slot == 10
    assert c.symbols_per_slot == 1 + 10 * (6 * 7 + 17 * 101)
    assert 28 < c.bits_per_second < 29
    assert capacity(tick=0.5).symbols_per_slot == 1 + 6 * 7 + 17 * 101
    assert c.seconds_per_ring > 2.5 * 3600
    assert capacity(num_commands=4).bits_per_second < c.bits_per_second
    assert capacity(max_rate=4.0).bits_per_second > 1.5 * c.bits_per_second
    assert "bit/s" in c.describe()


def test_events_the_guard_dropped_keep_the_counter_forced():
    checker = RecordChecker(num_commands=2)
    checker.check(pack(VoiceEvent(EventKind.COMMAND, 1, 80, 1, 100)), now=1.0)
    with pytest.raises(ProtocolError, match="counter"):
        checker.check(pack(VoiceEvent(EventKind.COMMAND, 1, 80, 3, 900)), now=2.0)
    event = checker.check(pack(VoiceEvent(EventKind.COMMAND, 1, 80, 3, 900)), now=2.0,
                          skipped=1)
    assert event.counter == 3
