"""The sensor as an I2C target: what it answers to each transaction on any bus.

Shared by the virtual bus (one framed request per transaction) and the Raspberry Pi's
BSC peripheral (a real bus), so that both behave the same and the behaviour is tested
once, here, without hardware:

- a read of N bytes (0-255) continues the controller link's read sequence
  (`wire.read_pointer`): it starts at byte 0 with the record current then, goes on
  where the previous read stopped (32 + 7 chunks read the whole record), reads zeros
  past byte 38, and ends with the record, so one sequence never mixes two records;
- a write is decoded by `wire.registers.decode_write`: a register write (2 bytes, 3
  bytes with a 16-bit value, or the 1-byte single shot) goes to the device model
  through `Hub.command`, and is answered data NACK if it is refused; a 0-byte probe or
  a 1-byte register pointer is acknowledged; anything else is refused whole (data
  NACK) and nothing is applied;
- every write, accepted or not, ends the read sequence: the next read starts at byte 0;
- any other address is not us (address NACK).

One `I2CTarget` is one controller link with its own read pointer: the virtual bus makes
one per connection (`session`), the Pi one for its bus.
"""

from __future__ import annotations

from mlsensors.errors import MlsensorsError
from mlsensors.hub import Hub, RegisterWrite
from mlsensors.transports.i2c_frames import READ, SENSOR_ADDRESS, Request, Response, Status
from mlsensors.voice.register import VOICE_ADDRESS, voice_register_of
from mlsensors.wire.read_pointer import ReadPointer
from mlsensors.wire.registers import decode_write


class I2CTarget:
    def __init__(self, hub: Hub, address: int = SENSOR_ADDRESS) -> None:
        self.hub = hub
        self.address = address
        self.pointer = ReadPointer()

    def session(self) -> I2CTarget:
        """A new controller link to the same sensor, with its own read pointer."""
        return I2CTarget(self.hub, self.address)

    def current_record(self) -> bytes:
        return self.hub.snapshot().record

    def read(self, length: int) -> bytes:
        return self.pointer.read(length, self.current_record)

    def write(self, data: bytes) -> Status:
        self.pointer.rewind()
        try:
            decoded = decode_write(data)
            if decoded is not None:
                self.hub.command(RegisterWrite(*decoded))
        except MlsensorsError:
            return Status.DATA_NACK
        return Status.ACK

    def transact(self, request: Request) -> Response:
        if request.address != self.address:
            return Response(Status.ADDRESS_NACK)
        if request.op == READ:
            return Response(Status.ACK, self.read(request.length))
        return Response(self.write(request.data))


class VoiceTarget(I2CTarget):
    """The voice sensor's register record (voice/register.py) at its own address:
    the same read sequence; it takes no register writes (data NACK), only the address
    probe and a 1-byte register pointer, as the person target does."""

    def __init__(self, voice, address: int = VOICE_ADDRESS) -> None:
        self.voice = voice
        self.address = address
        self.pointer = ReadPointer()

    def session(self) -> VoiceTarget:
        return VoiceTarget(self.voice, self.address)

    def current_record(self) -> bytes:
        return voice_register_of(self.voice.snapshot())

    def write(self, data: bytes) -> Status:
        self.pointer.rewind()
        return Status.ACK if len(data) <= 1 else Status.DATA_NACK


class BusTargets:
    """Several targets on one bus, each at its own address (a controller link per
    target, as on a real bus where each device keeps its own read pointer)."""

    def __init__(self, targets: list) -> None:
        self.targets = {t.address: t for t in targets}

    def session(self) -> BusTargets:
        return BusTargets([t.session() for t in self.targets.values()])

    def transact(self, request: Request) -> Response:
        target = self.targets.get(request.address)
        if target is None:
            return Response(Status.ADDRESS_NACK)
        return target.transact(request)
