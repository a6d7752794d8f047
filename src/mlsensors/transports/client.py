"""A driver for the Person Sensor: a real SEN21231 on Linux I2C, or an mlsensors virtual bus.

    with PersonSensorClient("/dev/i2c-1") as sensor:          # real hardware
        result = sensor.read_results()                        # PersonResult, checked
    with PersonSensorClient("tcp:127.0.0.1:6262") as sensor:  # `mlsensors serve --bus`
        sensor.set_mode(continuous=False)
        sensor.single_shot()

Reads are plain I2C reads of the whole record in one transaction (no register pointer
is written first). Writes are the 2-byte register writes of the register map (the
device also takes other shapes from other clients; see wire/registers.py).

Adapters that cannot read 39 bytes at once (`max_read=32`, as on boards whose I2C
buffer is 32 bytes) read it in chunks: the sensor continues a read where the previous
one stopped until the record has been read (wire/read_pointer.py), so 32 + 7 bytes are
the whole record, checksum included, as the vendor's Arduino driver reads it.

An original SEN21231's CRC variant and data_size were never published: if its records
fail the checks, use `strict=False`, which keeps the range checks on every face field.
"""

from __future__ import annotations

import contextlib
import select
import socket
import time
from typing import Protocol

from mlsensors.errors import InputError, ProtocolError
from mlsensors.transports.i2c_frames import (
    RESPONSE_HEADER,
    SENSOR_ADDRESS,
    BusAddress,
    Request,
    Response,
    Status,
    encode_request,
    parse_bus_address,
    parse_response_header,
)
from mlsensors.types import PersonResult
from mlsensors.wire.record import RECORD_SIZE, unpack_record
from mlsensors.wire.registers import Mode, Register, check_write


class Bus(Protocol):
    """One I2C controller: raw transactions with a target, errors as ProtocolError."""

    def read(self, address: int, length: int) -> bytes: ...

    def write(self, address: int, data: bytes) -> None: ...

    def close(self) -> None: ...


class VirtualBusConnection:
    """A client connection to a virtual bus (framing in i2c_frames.py).

    The server closes clients that stay idle (minutes, or seconds when every slot is
    wanted; see transports/peers.py). A connection found closed before a request is sent
    is opened again, so a client that reads rarely keeps working; a request already
    sent is never repeated.
    """

    def __init__(self, address: BusAddress | str, timeout: float = 2.0) -> None:
        self.address = parse_bus_address(address) if isinstance(address, str) else address
        self.timeout = timeout
        self._sock = self._connect()

    def _connect(self) -> socket.socket:
        timeout = self.timeout
        try:
            if self.address.kind == "tcp":
                sock = socket.create_connection((self.address.host, self.address.port), timeout)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            else:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.settimeout(timeout)
                try:
                    sock.connect(self.address.path)
                except OSError:
                    sock.close()
                    raise
        except OSError as e:
            raise ProtocolError(f"cannot connect to {self.address}: {e.strerror or e}") from None
        sock.settimeout(timeout)
        return sock

    def _closed_by_server(self) -> bool:
        poller = select.poll()
        poller.register(self._sock, select.POLLIN)
        if not poller.poll(0):
            return False  # nothing pending: open (the usual case, no system call more)
        try:
            return self._sock.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def transact(self, request: Request) -> Response:
        if self._sock.fileno() < 0 or self._closed_by_server():
            self._sock.close()
            try:
                self._sock = self._connect()
            except ProtocolError as e:
                raise ProtocolError(f"virtual bus {self.address} closed the connection and "
                                    f"cannot be reached again ({e})") from None
        try:
            self._sock.sendall(encode_request(request))
            status, length = parse_response_header(self._recv(RESPONSE_HEADER.size))
            return Response(status, self._recv(length))
        except OSError as e:
            raise ProtocolError(f"virtual bus {self.address}: {e.strerror or e}") from None

    def _recv(self, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            chunk = self._sock.recv(n - len(buf))
            if not chunk:
                raise ProtocolError(f"virtual bus {self.address} closed the connection")
            buf += chunk
        return bytes(buf)

    def read(self, address: int, length: int) -> bytes:
        response = self.transact(Request.read(address, length))
        _check_status(response.status, address)
        if len(response.data) != length:
            raise ProtocolError(f"asked for {length} bytes, got {len(response.data)}")
        return response.data

    def write(self, address: int, data: bytes) -> None:
        _check_status(self.transact(Request.write(address, data)).status, address)

    def close(self) -> None:
        self._sock.close()


class LinuxI2CBus:
    """A Linux I2C adapter (/dev/i2c-N) through smbus2's combined transfers (I2C_RDWR).

    Hardware edge: smbus2 is imported only when a device path is opened.
    """

    def __init__(self, path: str) -> None:
        try:
            from smbus2 import SMBus, i2c_msg
        except ImportError:
            raise InputError(
                "reading /dev/i2c-* needs smbus2 (pip install 'mlsensors[i2c]')"
            ) from None
        self.path = path
        self._msg = i2c_msg
        try:
            self._bus = SMBus(path)
        except OSError as e:
            raise ProtocolError(f"cannot open {path}: {e.strerror or e}") from None

    def read(self, address: int, length: int) -> bytes:
        msg = self._msg.read(address, length)
        self._rdwr(msg, address, "read")
        return bytes(list(msg))

    def write(self, address: int, data: bytes) -> None:
        self._rdwr(self._msg.write(address, list(data)), address, "write")

    def _rdwr(self, msg, address: int, what: str) -> None:
        try:
            self._bus.i2c_rdwr(msg)
        except OSError as e:
            raise ProtocolError(
                f"I2C {what} at 0x{address:02x} on {self.path} failed: {e.strerror or e}"
            ) from None

    def close(self) -> None:
        self._bus.close()


def _check_status(status: Status, address: int) -> None:
    if status is Status.ADDRESS_NACK:
        raise ProtocolError(f"no device answered at address 0x{address:02x}")
    if status is Status.DATA_NACK:
        raise ProtocolError("the sensor refused the write (data NACK)")


def open_bus(spec: str, timeout: float = 2.0) -> Bus:
    """"/dev/i2c-N" for hardware, "tcp:HOST:PORT" or "unix:PATH" for a virtual bus."""
    if spec.startswith("/dev/"):
        return LinuxI2CBus(spec)
    return VirtualBusConnection(spec, timeout)


class PersonSensorClient:
    """The SEN21231's driver: typed, checked results and its configuration registers."""

    def __init__(
        self,
        bus: str | Bus,
        *,
        address: int = SENSOR_ADDRESS,
        strict: bool = True,
        max_read: int = RECORD_SIZE,
        timeout: float = 2.0,
    ) -> None:
        if not 1 <= max_read <= 255:
            raise InputError(f"max_read {max_read} is outside 1-255")
        self.bus: Bus = open_bus(bus, timeout) if isinstance(bus, str) else bus
        self.address = address
        self.strict = strict
        self.max_read = max_read

    def read_raw(self, length: int = RECORD_SIZE) -> bytes:
        """One read of `length` bytes, as read: the next bytes of the sensor's read
        sequence (from byte 0 of the newest record unless a read stopped midway)."""
        return self.bus.read(self.address, length)

    def read_results(self) -> PersonResult:
        """Read and decode one record (in chunks of `max_read`); ProtocolError if it
        fails any check."""
        data = b""
        while len(data) < RECORD_SIZE:
            data += self.read_raw(min(self.max_read, RECORD_SIZE - len(data)))
        return unpack_record(data, time.time(), strict=self.strict)

    def write_register(self, register: int, value: int) -> None:
        """A raw 2-byte configuration write, checked against the register map first."""
        check_write(register, value)
        self.bus.write(self.address, bytes((register, value)))

    def set_mode(self, continuous: bool) -> None:
        self.write_register(Register.MODE, Mode.CONTINUOUS if continuous else Mode.STANDBY)

    def single_shot(self) -> None:
        """Run one inference (the sensor must be in standby)."""
        self.write_register(Register.SINGLE_SHOT, 0)

    def enable_id(self, on: bool = True) -> None:
        self.write_register(Register.ENABLE_ID, int(on))

    def calibrate(self, face_id: int) -> None:
        """Label the next recognised largest face as `face_id` (0-7)."""
        self.write_register(Register.CALIBRATE_ID, face_id)

    def persist(self, on: bool = True) -> None:
        self.write_register(Register.PERSIST_IDS, int(on))

    def erase(self) -> None:
        self.write_register(Register.ERASE_IDS, 0)

    def debug(self, on: bool = True) -> None:
        self.write_register(Register.DEBUG_MODE, int(on))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.bus.close()

    def __enter__(self) -> PersonSensorClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
