"""The virtual I2C bus: the Person Sensor's I2C interface over TCP or a unix socket.

`mlsensors serve --bus tcp:127.0.0.1:6262` (or `unix:/run/mlsensors.sock`) lets code
written for a SEN21231 talk to this sensor through a thin shim that turns its I2C
transactions into the frames of i2c_frames.py. The server runs an asyncio loop on its
own thread:

- any number of clients, each served by its own task;
- a read takes the record from one hub snapshot (immutable bytes), so it is consistent
  and never waits for the sensor; the sensor never waits for the bus either (the
  server only reads the hub's latest value, it does not subscribe);
- a client that stops reading its responses fills only its own buffer and is dropped
  after `write_timeout`; a client that vanishes is just closed;
- a malformed frame (unknown operation, length over 255, a header or write cut short)
  closes that connection and nothing else.

TCP binds where it is told; keep it on 127.0.0.1 unless other machines must read the
sensor, since anyone who can connect can read results and write registers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import socket
import stat
import threading

from mlsensors.errors import InputError, MlsensorsError, ProtocolError
from mlsensors.hub import Hub
from mlsensors.transports.i2c_frames import (
    REQUEST_HEADER,
    SENSOR_ADDRESS,
    WRITE,
    BusAddress,
    Request,
    encode_response,
    parse_bus_address,
    parse_request_header,
)
from mlsensors.transports.i2c_target import I2CTarget

log = logging.getLogger(__name__)

_HIGH_WATER = 64 * 1024
"""Bytes of unsent responses after which a client must catch up or be dropped."""


class VirtualBusServer:
    """Serve `hub` as an I2C target on a virtual bus; start()/stop() or a with-block."""

    def __init__(
        self,
        hub: Hub,
        address: BusAddress | str,
        *,
        i2c_address: int = SENSOR_ADDRESS,
        write_timeout: float = 5.0,
    ) -> None:
        self.target = I2CTarget(hub, i2c_address)
        self.requested = parse_bus_address(address) if isinstance(address, str) else address
        self.address: BusAddress | None = None
        self.write_timeout = write_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._tasks: set[asyncio.Task] = set()

    @property
    def connections(self) -> int:
        """Clients connected right now."""
        return len(self._tasks)

    def start(self) -> BusAddress:
        """Bind and serve on a background thread; returns the bound address."""
        if self._thread is not None:
            raise InputError("the virtual bus is already running")
        self._thread = threading.Thread(target=self._run, name="virtual-bus", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            self._thread = None
            error, self._error = self._error, None
            if isinstance(error, MlsensorsError):
                raise error
            raise InputError(f"cannot serve the virtual bus on {self.requested}: {error}")
        assert self.address is not None
        log.info("virtual I2C bus on %s (target 0x%02x)", self.address, self.target.address)
        return self.address

    def stop(self) -> None:
        """Close every connection and the listener; safe to call twice."""
        thread, loop, stopping = self._thread, self._loop, self._stopping
        if thread is None:
            return
        if loop is not None and stopping is not None:
            with contextlib.suppress(RuntimeError):  # loop already finished
                loop.call_soon_threadsafe(stopping.set)
        thread.join()
        self._thread = None
        self._ready.clear()

    def __enter__(self) -> VirtualBusServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the loop thread --------------------------------------------------------------

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as e:  # reported to start(); the thread must not die silently
            self._error = e
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        server = await self._listen()
        try:
            self._ready.set()
            await self._stopping.wait()
        finally:
            server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await server.wait_closed()
            if self.requested.kind == "unix":
                with contextlib.suppress(OSError):
                    os.unlink(self.requested.path)

    async def _listen(self) -> asyncio.AbstractServer:
        req = self.requested
        if req.kind == "tcp":
            server = await asyncio.start_server(self._serve, req.host, req.port)
            host, port = server.sockets[0].getsockname()[:2]
            self.address = BusAddress("tcp", host=host, port=port)
            return server
        _remove_stale_socket(req.path)
        server = await asyncio.start_unix_server(self._serve, req.path)
        self.address = req
        return server

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        sock = writer.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            while True:
                address, op, length = parse_request_header(
                    await reader.readexactly(REQUEST_HEADER.size)
                )
                data = await reader.readexactly(length) if op == WRITE else b""
                response = self.target.transact(Request(address, op, length, data))
                writer.write(encode_response(response))
                if writer.transport.get_write_buffer_size() > _HIGH_WATER:
                    await asyncio.wait_for(writer.drain(), self.write_timeout)
        except ProtocolError as e:
            log.info("virtual bus: closing a connection: %s", e)
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError):
            pass  # the client left, cut a frame short, or stopped reading
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


def _remove_stale_socket(path: str) -> None:
    """Remove a socket file left by a crashed server; refuse to touch anything else."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise InputError(f"{path} exists and is not a socket; refusing to replace it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        os.unlink(path)
        return
    finally:
        probe.close()
    raise InputError(f"another server is already listening on unix:{path}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `serve` options for the virtual bus."""
    parser.add_argument(
        "--bus",
        metavar="ADDR",
        help="serve the Person Sensor I2C interface on a virtual bus: "
        "tcp:127.0.0.1:6262 or unix:/path/to/socket",
    )


def from_args(args: argparse.Namespace, hub: Hub) -> VirtualBusServer | None:
    """The server `serve` should start, or None when --bus was not given."""
    if not getattr(args, "bus", None):
        return None
    return VirtualBusServer(hub, args.bus)
