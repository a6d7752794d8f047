"""The Raspberry Pi edges without a Pi: BSC target logic on a simulated FIFO, GPIO pin."""

from __future__ import annotations

import time
from collections import deque

import pytest
from wire_doubles import RecordingControl

from mlsensors.errors import InputError
from mlsensors.hub import Hub
from mlsensors.transports.i2c_target import I2CTarget
from mlsensors.transports.pi_bsc import (
    FIFO_SIZE,
    BscAction,
    BscResponder,
    BscStatus,
    PiBscTarget,
    split_writes,
)
from mlsensors.types import PersonFace, PersonResult
from mlsensors.wire.device import PersonSensorDevice
from mlsensors.wire.read_pointer import ReadPointer

FACES = (PersonFace((10, 20, 90, 120), 95, True), PersonFace((100, 30, 140, 70), 60, False))
UNDERRUN = 0xEE


class SimulatedBsc:
    """The BSC peripheral as the responder sees it: 16-byte FIFOs and busy flags.

    The controller side (`controller_read`, `controller_write`) plays the bus master,
    with the target's poll loop running every `poll_every` bytes.
    """

    def __init__(self, responder: BscResponder | None) -> None:
        self.tx: deque[int] = deque()
        self.rx = bytearray()
        self.tx_busy = False
        self.responder = responder
        self.action = responder.start() if responder else BscAction(False, b"")
        self.transfers = 0

    # BscHardware
    def transfer(self, action: BscAction) -> tuple[BscStatus, bytes]:
        self.transfers += 1
        received = b""
        if action.clear:
            received, self.rx = bytes(self.rx), bytearray()
            self.tx.clear()
        for byte in action.tx:
            if len(self.tx) < FIFO_SIZE:
                self.tx.append(byte)
        received += bytes(self.rx)
        self.rx.clear()
        return BscStatus(len(self.tx), 0, self.tx_busy, False), received

    def wait(self, timeout: float) -> None:
        time.sleep(min(timeout, 0.001))

    def close(self) -> None:
        pass

    def poll(self) -> None:
        status, received = self.transfer(self.action)
        assert self.responder is not None
        self.action = self.responder.step(status, received)

    def controller_read(self, n: int, poll_every: int = 8) -> bytes:
        self.tx_busy = True
        out = bytearray()
        for i in range(n):
            if i % poll_every == 0:
                self.poll()
            out.append(self.tx.popleft() if self.tx else UNDERRUN)
        self.tx_busy = False
        self.poll()
        return bytes(out)

    def controller_write(self, data: bytes) -> None:
        self.rx += data
        self.poll()


def make() -> tuple[Hub, RecordingControl, SimulatedBsc]:
    hub = Hub()
    control = RecordingControl()
    PersonSensorDevice(control).attach(hub)
    hub.publish(PersonResult(1.0, FACES))
    sim = SimulatedBsc(BscResponder(I2CTarget(hub)))
    sim.poll()
    return hub, control, sim


@pytest.mark.parametrize("n", [1, 5, 16, 32, 39, 40, 64])
def test_reads_follow_the_read_pointer(n: int) -> None:
    """Reads of any length get what the shared read-pointer model says (read_pointer.py):
    short reads continue where the last stopped, the record then zeros, then again."""
    hub, _, sim = make()
    model = ReadPointer()
    for _ in range(5):
        assert sim.controller_read(n) == model.read(n, lambda: hub.snapshot().record)


def test_thirty_two_then_seven_is_the_whole_record() -> None:
    """The vendor's Arduino driver on a board with a 32-byte Wire buffer."""
    hub, _, sim = make()
    hub.publish(PersonResult(2.0, FACES * 2))  # four faces: slot 3 is in the second chunk
    sim.poll()
    for _ in range(3):
        assert sim.controller_read(32) + sim.controller_read(7) == hub.snapshot().record


def test_short_read_between_polls_is_continued() -> None:
    hub, _, sim = make()
    record = hub.snapshot().record
    sim.tx_busy = True
    for _ in range(5):  # a 5-byte read the poll loop never saw happening
        sim.tx.popleft()
    sim.tx_busy = False
    sim.poll()
    hub.publish(PersonResult(2.0))  # a new record does not cut the sequence short
    sim.poll()
    assert sim.controller_read(34) == record[5:]
    assert sim.controller_read(39) == hub.snapshot().record


def test_a_write_restarts_the_sequence() -> None:
    hub, _, sim = make()
    record = hub.snapshot().record
    assert sim.controller_read(20) == record[:20]
    sim.controller_write(b"\x62")  # ESPHome's one byte before its read
    assert sim.controller_read(39) == record


def test_a_read_never_mixes_two_records() -> None:
    hub, _, sim = make()
    old = hub.snapshot().record
    sim.tx_busy = True
    out = bytearray()
    for i in range(39):
        if i % 8 == 0:
            sim.poll()
        if i == 20:  # the sensor publishes mid-read
            hub.publish(PersonResult(2.0, FACES[:1]))
        out.append(sim.tx.popleft())
    sim.tx_busy = False
    sim.poll()
    assert bytes(out) == old
    assert sim.controller_read(39) == hub.snapshot().record != old


def test_idle_target_picks_up_new_records() -> None:
    hub, _, sim = make()
    hub.publish(PersonResult(2.0))
    sim.poll()
    assert sim.controller_read(39) == hub.snapshot().record


def test_register_writes_reach_the_device() -> None:
    _, control, sim = make()
    sim.controller_write(b"\x02\x01")
    sim.controller_write(b"\x00")  # SMBus-style pointer: rewinds, sets nothing
    sim.controller_write(b"\x07\x00\x04\x03")  # two writes between polls
    sim.controller_write(b"\x05\x00\x00\x02\x00\x00")  # two 3-byte writes between polls
    sim.controller_write(b"\x09\x09")  # refused (logged), nothing changes
    sim.controller_write(b"\x01\x00\x00")  # standby, written as register + 16-bit value
    sim.controller_write(b"\x03")  # single capture in one byte
    assert control.calls == [("set_identification", True), ("set_debug", False),
                             ("calibrate", 3), ("set_persist", False),
                             ("set_identification", False), ("set_continuous", False),
                             ("single_shot", None)]


def test_split_writes() -> None:
    assert split_writes(b"\x62") == [b"\x62"]
    assert split_writes(b"\x01\x00\x01") == [b"\x01\x00\x01"]
    assert split_writes(b"\x01\x00\x02\x01") == [b"\x01\x00", b"\x02\x01"]
    assert split_writes(b"\x01\x00\x01\x02\x00\x01") == [b"\x01\x00\x01", b"\x02\x00\x01"]
    assert split_writes(b"\x09\x09\x09\x09") is None


def test_poll_loop_thread_with_simulated_hardware() -> None:
    hub = Hub()
    hub.publish(PersonResult(1.0, FACES))
    sim = SimulatedBsc(None)  # the target's own loop drives it
    with PiBscTarget(hub, hardware=sim):
        deadline = time.monotonic() + 5
        while sim.transfers < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
    assert sim.transfers >= 5
    assert bytes(sim.tx) == hub.snapshot().record[:FIFO_SIZE]


def test_status_word_decoding() -> None:
    word = (7 << 6) | (3 << 11) | 0x20 | 0x01
    assert BscStatus.from_word(word) == BscStatus(7, 3, True, True)
    assert BscStatus.from_word(16 << 6) == BscStatus(16, 0, False, False)


def test_presence_pin_follows_faces() -> None:
    pytest.importorskip("gpiozero", reason="gpiozero is in the 'pi' extra")
    from gpiozero.pins.mock import MockFactory

    from mlsensors.transports.gpio import PresencePin

    factory = MockFactory()
    hub = Hub()
    device = PersonSensorDevice(RecordingControl())
    device.attach(hub)
    with PresencePin(device, 17, pin_factory=factory):
        pin = factory.pin(17)
        assert pin.state is False
        hub.publish(PersonResult(1.0, FACES))
        assert pin.state is True
        hub.publish(PersonResult(2.0))
        assert pin.state is False
        hub.publish(PersonResult(3.0, FACES))
        device.write(_mode(0))
        assert pin.state is False  # standby drops it
    hub.publish(PersonResult(4.0))  # after stop: no more writes to a closed pin
    with pytest.raises(InputError, match="BCM 0-27"):
        PresencePin(device, 40)


def _mode(value: int):
    from mlsensors.hub import RegisterWrite

    return RegisterWrite(0x01, value)
