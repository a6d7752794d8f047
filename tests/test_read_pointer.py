"""The device's read pointer and write decoding, without a bus: the rules every transport
shares (docs/wire.md, "Reads" and "Writes")."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wire_doubles import RecordingControl

from mlsensors.errors import ProtocolError
from mlsensors.hub import Hub
from mlsensors.transports.i2c_frames import SENSOR_ADDRESS, Request, Status
from mlsensors.transports.i2c_target import I2CTarget
from mlsensors.types import PersonFace, PersonResult
from mlsensors.wire.device import DeviceState, PersonSensorDevice
from mlsensors.wire.read_pointer import ReadPointer
from mlsensors.wire.record import MAX_READ, RECORD_SIZE, pack_record
from mlsensors.wire.registers import decode_write

FOUR = tuple(PersonFace((10 + 40 * i, 20, 40 + 40 * i, 60 + 10 * i), 90 - i, i % 2 == 0,
                        i if i < 3 else -1, 80 if i < 3 else 0) for i in range(4))


def records(n: int) -> list[bytes]:
    """`n` different records (different face counts and boxes)."""
    return [pack_record(PersonResult(0.0, FOUR[: 1 + i % 4] if i % 5 else ())) for i in range(n)]


class Feed:
    """The 'current record' callable, switching to the next record on demand."""

    def __init__(self, items: list[bytes]) -> None:
        self.items, self.i = items, 0

    def __call__(self) -> bytes:
        return self.items[self.i]

    def next(self) -> None:
        self.i = (self.i + 1) % len(self.items)


@pytest.mark.parametrize("chunks", [[39], [40], [32, 7], [32, 8], [16, 16, 7], [1] * 39,
                                    [5, 34], [64], [255], [20, 19]])
def test_every_chunking_reads_the_whole_record(chunks: list[int]) -> None:
    feed = Feed(records(2))
    pointer = ReadPointer()
    data = b"".join(pointer.read(n, feed) for n in chunks)
    assert data[:RECORD_SIZE] == feed.items[0]
    assert data[RECORD_SIZE:] == bytes(len(data) - RECORD_SIZE)


def test_thirty_two_then_seven_with_four_faces_decodes_slot_three() -> None:
    """The vendor's Arduino driver (Wire buffer of 32): the last face slot and the
    checksum live in the second chunk."""
    record = pack_record(PersonResult(0.0, FOUR))
    pointer = ReadPointer()
    head = pointer.read(32, lambda: record)
    tail = pointer.read(7, lambda: record)
    assert head + tail == record
    assert tail[:2] == record[32:34]  # slot 3 continues, not bytes 0-1 again
    assert pointer.read(39, lambda: record) == record  # and the next read starts over


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, MAX_READ), min_size=1, max_size=12),
       st.lists(st.booleans(), min_size=12, max_size=12))
def test_a_sequence_never_mixes_records(chunks: list[int], updates: list[bool]) -> None:
    """Whatever the chunking and however often the record changes between chunks,
    each 39 bytes read from byte 0 are one record, whole."""
    feed = Feed(records(7))
    pointer = ReadPointer()
    stream = b""
    starts: list[bytes] = []
    for n, update in zip(chunks, updates, strict=False):
        if pointer.offset == 0 and n:
            starts.append(feed())
        stream += pointer.read(n, feed)
        if update:
            feed.next()
    # Split the stream back into sequences: 39 record bytes, then zeros to the end of
    # the read that finished it.
    at, k = 0, 0
    consumed = 0
    for n in chunks:
        if not n:
            continue
        if consumed == 0:
            record = starts[k]
            k += 1
        take = min(n, RECORD_SIZE - consumed)
        assert stream[at:at + take] == record[consumed:consumed + take]
        assert stream[at + take:at + n] == bytes(n - take)
        at += n
        consumed = 0 if consumed + n >= RECORD_SIZE else consumed + n


def test_rewind_and_zero_length_reads() -> None:
    feed = Feed(records(2))
    pointer = ReadPointer()
    assert pointer.read(0, feed) == b""
    assert pointer.latched is None  # a 0-byte read clocks nothing out
    pointer.read(10, feed)
    feed.next()
    pointer.rewind()
    assert pointer.read(39, feed) == feed.items[1]
    with pytest.raises(ProtocolError, match="read length"):
        pointer.read(MAX_READ + 1, feed)


@pytest.mark.parametrize(("data", "meaning"), [
    (b"", None),                      # i2cdetect / bus scan probe
    (b"\x62", None),                  # ESPHome's "register" before its read
    (b"\x00", None),                  # SMBus-style register pointer
    (b"\xff", None),
    (b"\x03", (0x03, 0)),             # single capture, one byte
    (b"\x01\x00", (0x01, 0)),         # the documented 2-byte write
    (b"\x04\x07", (0x04, 7)),
    (b"\x01\x00\x01", (0x01, 1)),     # register, 16-bit value high byte first
    (b"\x04\x00\x05", (0x04, 5)),
    (b"\x06\x00\x01", (0x06, 1)),
    (b"\x03\x00\x00", (0x03, 0)),
])
def test_write_shapes(data: bytes, meaning) -> None:
    assert decode_write(data) == meaning


@pytest.mark.parametrize(("data", "why"), [
    (b"\x01", "without a value"),     # a setting with no value
    (b"\x06", "without a value"),     # erase is never one byte (i2cget 0x62 6)
    (b"\x04", "without a value"),
    (b"\x01\x01\x00", "not valid for MODE"),    # little-endian 1 = 256 big-endian
    (b"\x04\x00\x08", "not valid for CALIBRATE_ID"),
    (b"\x09\x00\x01", "unknown register"),
    (b"\x01\x00\x01\x00", "4-byte write"),
    (b"\x09\x01", "unknown register"),
])
def test_writes_that_would_set_nothing_are_refused(data: bytes, why: str) -> None:
    with pytest.raises(ProtocolError, match=why):
        decode_write(data)


def target() -> tuple[Hub, RecordingControl, PersonSensorDevice, I2CTarget]:
    hub = Hub()
    control = RecordingControl()
    device = PersonSensorDevice(control)
    device.attach(hub)
    hub.publish(PersonResult(1.0, FOUR))
    return hub, control, device, I2CTarget(hub)


def test_target_applies_three_byte_and_one_byte_writes() -> None:
    _, control, device, t = target()
    assert t.write(b"\x01\x00\x00") is Status.ACK  # standby
    assert t.write(b"\x03") is Status.ACK  # single capture
    assert t.write(b"\x02\x00\x01") is Status.ACK
    assert t.write(b"\x04\x00\x03") is Status.ACK
    assert t.write(b"\x06\x00\x00") is Status.ACK
    assert control.calls == [("set_continuous", False), ("single_shot", None),
                             ("set_identification", True), ("calibrate", 3),
                             ("erase_ids", None)]
    assert device.state == DeviceState(mode=0, enable_id=True)


def test_target_never_acks_a_write_that_did_nothing() -> None:
    _, control, device, t = target()
    assert t.write(b"\x03") is Status.DATA_NACK  # single shot outside standby
    assert t.write(b"\x01") is Status.DATA_NACK
    assert t.write(b"\x01\x00\x01\x00") is Status.DATA_NACK
    assert t.write(b"\x01\x01\x00") is Status.DATA_NACK
    assert control.calls == [] and device.state == DeviceState()


def test_every_write_restarts_the_read_sequence() -> None:
    hub, _, _, t = target()
    record = hub.snapshot().record
    for write in (b"", b"\x62", b"\x00", b"\x09\x09", b"\x07\x01"):
        assert t.read(20) == record[:20]
        t.write(write)
        assert t.read(39) == record, write


def test_sessions_have_their_own_pointers() -> None:
    hub, _, _, shared = target()
    record = hub.snapshot().record
    a, b = shared.session(), shared.session()
    assert a.read(32) == record[:32]
    assert b.read(39) == record  # b's read does not move a's pointer
    hub.publish(PersonResult(2.0))
    assert a.read(7) == record[32:]  # a still reads the record it latched
    assert a.transact(Request.read(SENSOR_ADDRESS, 39)).data == hub.snapshot().record
