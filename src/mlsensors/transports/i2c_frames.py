"""The virtual I2C bus's framing: one I2C transaction per request, one response each.

    request  = address (1 byte, 7-bit I2C address)
               operation (1 byte: ASCII "W" write or "R" read)
               length (2 bytes, big-endian: bytes to write, or bytes to read)
               data (length bytes, writes only)
    response = status (1 byte: 0 ACK, 1 address NACK, 2 data NACK)
               length (2 bytes, big-endian) and data (the bytes read; 0 for writes
               and NACKs)

Lengths above 255 or an unknown operation make a frame malformed: the server closes
that connection (a stream that has lost its framing cannot be trusted to resync).
This module is pure: it encodes and decodes, and names the bus addresses that the
server and the client both accept ("tcp:HOST:PORT", "unix:PATH").
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

from mlsensors.errors import InputError, ProtocolError
from mlsensors.wire.record import MAX_READ

SENSOR_ADDRESS = 0x62
"""The Person Sensor's 7-bit I2C address."""

READ = ord("R")
WRITE = ord("W")

REQUEST_HEADER = struct.Struct(">BBH")
RESPONSE_HEADER = struct.Struct(">BH")


class Status(IntEnum):
    ACK = 0
    ADDRESS_NACK = 1
    DATA_NACK = 2


@dataclass(frozen=True, slots=True)
class Request:
    """One I2C transaction as a client asks for it."""

    address: int
    op: int
    length: int
    data: bytes = b""

    @classmethod
    def read(cls, address: int, length: int) -> Request:
        return cls(address, READ, length)

    @classmethod
    def write(cls, address: int, data: bytes) -> Request:
        return cls(address, WRITE, len(data), bytes(data))


@dataclass(frozen=True, slots=True)
class Response:
    status: Status
    data: bytes = b""


def parse_request_header(header: bytes) -> tuple[int, int, int]:
    """(address, op, length) of a 4-byte request header; ProtocolError if malformed."""
    if len(header) != REQUEST_HEADER.size:
        raise ProtocolError(f"request header is {len(header)} bytes, expected 4")
    address, op, length = REQUEST_HEADER.unpack(header)
    if op not in (READ, WRITE):
        raise ProtocolError(f"unknown operation 0x{op:02x} (expected 'R' or 'W')")
    if length > MAX_READ:
        raise ProtocolError(f"transaction length {length} is over {MAX_READ}")
    return address, op, length


def encode_request(request: Request) -> bytes:
    if request.op not in (READ, WRITE):
        raise ProtocolError(f"unknown operation 0x{request.op:02x}")
    if not 0 <= request.length <= MAX_READ or not 0 <= request.address <= 0xFF:
        raise ProtocolError(f"cannot frame {request}")
    data = request.data if request.op == WRITE else b""
    if request.op == WRITE and len(data) != request.length:
        raise ProtocolError("write length does not match its data")
    return REQUEST_HEADER.pack(request.address, request.op, request.length) + data


def encode_response(response: Response) -> bytes:
    return RESPONSE_HEADER.pack(response.status, len(response.data)) + response.data


def parse_response_header(header: bytes) -> tuple[Status, int]:
    if len(header) != RESPONSE_HEADER.size:
        raise ProtocolError(f"response header is {len(header)} bytes, expected 3")
    status, length = RESPONSE_HEADER.unpack(header)
    try:
        return Status(status), length
    except ValueError:
        raise ProtocolError(f"unknown response status {status}") from None


@dataclass(frozen=True, slots=True)
class BusAddress:
    """Where a virtual bus listens: a TCP host and port, or a unix socket path."""

    kind: str
    host: str = ""
    port: int = 0
    path: str = ""

    def __str__(self) -> str:
        return f"tcp:{self.host}:{self.port}" if self.kind == "tcp" else f"unix:{self.path}"


def parse_bus_address(spec: str) -> BusAddress:
    """Parse "tcp:HOST:PORT" or "unix:PATH"; InputError with an example otherwise."""
    kind, _, rest = spec.partition(":")
    if kind == "unix" and rest:
        return BusAddress("unix", path=rest)
    if kind == "tcp":
        host, _, port = rest.rpartition(":")
        host = host.strip("[]")
        if host and port.isdigit() and int(port) <= 65535:
            return BusAddress("tcp", host=host, port=int(port))
    raise InputError(
        f"bus address {spec!r} is not tcp:HOST:PORT or unix:PATH "
        "(e.g. tcp:127.0.0.1:6262)"
    )
