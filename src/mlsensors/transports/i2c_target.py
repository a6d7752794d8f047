"""The sensor as an I2C target: what it answers to each transaction on any bus.

Shared by the virtual bus (one framed request per transaction) and the Raspberry Pi's
BSC peripheral (a real bus), so that both behave the same and the behaviour is tested
once, here, without hardware:

- a read of N bytes (0-255) returns the first N bytes of the current record,
  zero-padded; the record is taken whole from one hub snapshot (immutable bytes), so a
  read is never half old, half new;
- a 2-byte write is a register write, handed to the device model through
  `Hub.command`; if it is refused the target answers data NACK and nothing changes;
- a 0-byte write is an address probe (i2cdetect) and a 1-byte write is the register
  pointer that SMBus-style clients send before reading: both are acknowledged and do
  nothing, because the sensor has no register pointer;
- a longer write is refused whole (data NACK): no part of it is applied;
- any other address is not us (address NACK).
"""

from __future__ import annotations

from mlsensors.errors import MlsensorsError
from mlsensors.hub import Hub, RegisterWrite
from mlsensors.transports.i2c_frames import READ, SENSOR_ADDRESS, Request, Response, Status
from mlsensors.wire.record import read_window


class I2CTarget:
    def __init__(self, hub: Hub, address: int = SENSOR_ADDRESS) -> None:
        self.hub = hub
        self.address = address

    def read(self, length: int) -> bytes:
        return read_window(self.hub.snapshot().record, length)

    def write(self, data: bytes) -> Status:
        if len(data) < 2:
            return Status.ACK
        if len(data) > 2:
            return Status.DATA_NACK
        try:
            self.hub.command(RegisterWrite(data[0], data[1]))
        except MlsensorsError:
            return Status.DATA_NACK
        return Status.ACK

    def transact(self, request: Request) -> Response:
        if request.address != self.address:
            return Response(Status.ADDRESS_NACK)
        if request.op == READ:
            return Response(Status.ACK, self.read(request.length))
        return Response(self.write(request.data))
