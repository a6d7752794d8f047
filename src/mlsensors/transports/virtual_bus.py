"""The virtual I2C bus: the Person Sensor's I2C interface over TCP or a unix socket.

`mlsensors serve --bus tcp:127.0.0.1:6262` (or `unix:/run/mlsensors.sock`) lets code
written for a SEN21231 talk to this sensor through a thin shim that turns its I2C
transactions into the frames of i2c_frames.py. The server runs an asyncio loop on its
own thread:

- up to `limits.max_peers` clients, each an asyncio protocol (one callback per
  request); a client idle for `limits.idle_timeout` is closed, and when every slot is
  taken a newcomer takes the slot of the client idle longest (see transports/peers.py),
  else it is refused (closed at once);
- each connection is one controller link with its own read pointer (i2c_target.py):
  a read sequence takes its record from one hub snapshot (immutable bytes), so it is
  consistent and never waits for the sensor; the sensor never waits for the bus either
  (the server only reads the hub's latest value, it does not subscribe);
- a client that stops reading its responses fills only its own buffer and is dropped
  after `write_timeout`; a client that vanishes is just closed;
- a malformed frame (unknown operation, length over 255, a header or write cut short)
  closes that connection and nothing else;
- refusals, malformed clients and the loop's own errors reach the log as one line per
  interval with counts (`PeerLog`), never one per connection and never a traceback.

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
from mlsensors.transports.i2c_target import BusTargets, I2CTarget, VoiceTarget
from mlsensors.transports.peers import PeerLimits, PeerLog, PeerTable
from mlsensors.voice.events import VoiceHub

log = logging.getLogger(__name__)

_HIGH_WATER = 64 * 1024
"""Bytes of unsent responses after which a client must catch up or be dropped."""

LIMITS = PeerLimits(max_peers=128, idle_timeout=300.0, evict_after=2.0)
"""A SEN21231 has one controller; 128 clients is plenty, and `serve` lowers it further
when the descriptor budget is smaller. A client polling faster than every 2 s is never
pushed out by newcomers."""

SWEEP = 1.0
"""Seconds between sweeps for idle clients and pending log lines."""


class VirtualBusServer:
    """Serve `hub` as an I2C target on a virtual bus; start()/stop() or a with-block."""

    def __init__(
        self,
        hub: Hub | None,
        address: BusAddress | str,
        *,
        voice: VoiceHub | None = None,
        i2c_address: int = SENSOR_ADDRESS,
        write_timeout: float = 5.0,
        limits: PeerLimits = LIMITS,
        log_interval: float = 10.0,
    ) -> None:
        targets = [] if hub is None else [I2CTarget(hub, i2c_address)]
        if voice is not None:  # the voice register record at its own address
            targets.append(VoiceTarget(voice))
        self.target = targets[0] if len(targets) == 1 else BusTargets(targets)
        self.requested = parse_bus_address(address) if isinstance(address, str) else address
        self.address: BusAddress | None = None
        self.write_timeout = write_timeout
        self.peers: PeerTable[_Connection] = PeerTable(limits)
        self.events = PeerLog(log, f"virtual bus {self.requested}", log_interval)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def target_names(self) -> str:
        addresses = sorted(self.target.targets) if isinstance(self.target, BusTargets) \
            else [self.target.address]
        return ", ".join(f"target 0x{a:02x}" for a in addresses)

    @property
    def connections(self) -> int:
        """Clients connected right now."""
        return len(self.peers)

    def cap_peers(self, most: int) -> None:
        """Hold at most `most` clients (serve's share of the descriptor budget)."""
        self.peers.limits = self.peers.limits.capped(most)

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
        self.events.name = f"virtual bus {self.address}"
        log.info("virtual I2C bus on %s (%s)", self.address, self.target_names())
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
        self._loop.set_exception_handler(self._loop_error)
        self._stopping = asyncio.Event()
        server = await self._listen()
        sweeper = asyncio.create_task(self._sweep())
        try:
            self._ready.set()
            await self._stopping.wait()
        finally:
            sweeper.cancel()
            server.close()
            for connection in self.peers.peers():
                connection.abort()
            await asyncio.sleep(0)  # let connection_lost run
            await server.wait_closed()
            self.events.flush(force=True)
            if self.requested.kind == "unix":
                with contextlib.suppress(OSError):
                    os.unlink(self.requested.path)

    async def _listen(self) -> asyncio.AbstractServer:
        loop = asyncio.get_running_loop()
        req = self.requested
        if req.kind == "tcp":
            server = await loop.create_server(self._connection, req.host, req.port)
            host, port = server.sockets[0].getsockname()[:2]
            self.address = BusAddress("tcp", host=host, port=port)
            return server
        _remove_stale_socket(req.path)
        server = await loop.create_unix_server(self._connection, req.path)
        self.address = req
        return server

    def _connection(self) -> _Connection:
        return _Connection(self)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP)
            for connection in self.peers.expired():
                self.events.note("idle clients closed")
                connection.abort()
            self.events.flush()

    def _loop_error(self, loop: asyncio.AbstractEventLoop, context: dict) -> None:
        """asyncio's own errors (e.g. accept() out of descriptors): counted, one line per
        interval, no traceback."""
        error = context.get("exception")
        detail = context.get("message", "")
        if error is not None:
            detail = f"{detail}: {type(error).__name__}: {error}".strip(": ")
        self.events.note("server errors", detail[:200])


class _Connection(asyncio.Protocol):
    """One client. A protocol rather than a stream task: a read costs one callback."""

    def __init__(self, server: VirtualBusServer) -> None:
        self.server = server
        self.target = server.target.session()  # its own read pointer
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.writing_paused = False
        self.backlog = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        server = self.server
        admitted, evicted = server.peers.admit(self)
        if evicted is not None:
            server.events.note("idle clients closed to make room")
            evicted.abort()
        if not admitted:
            server.events.note(
                "connections refused", f"all {server.peers.limits.max_peers} slots busy")
            transport.abort()
            return
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport.set_write_buffer_limits(high=_HIGH_WATER)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._answer()

    def _answer(self) -> None:
        """Answer the whole requests buffered, until `_HIGH_WATER` bytes of replies are
        owed: a few bytes of requests (4 for a 255-byte read) must not make megabytes of
        replies at once. The rest waits, with reading paused, until the client catches up.
        """
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        buf = self.buffer
        replies = []
        owed = transport.get_write_buffer_size()
        pos = 0
        try:
            while len(buf) - pos >= REQUEST_HEADER.size and owed <= _HIGH_WATER:
                address, op, length = parse_request_header(bytes(buf[pos:pos + 4]))
                payload = b""
                if op == WRITE:
                    if len(buf) - pos - 4 < length:
                        break  # the rest of this write is still on its way
                    payload = bytes(buf[pos + 4:pos + 4 + length])
                pos += 4 + len(payload)
                reply = encode_response(
                    self.target.transact(Request(address, op, length, payload)))
                replies.append(reply)
                owed += len(reply)
        except ProtocolError as e:
            self.server.events.note("malformed clients closed", str(e))
            transport.write(b"".join(replies))
            transport.close()  # after the replies already owed
            return
        del buf[:pos]
        if replies:
            self.server.peers.touch(self)
            transport.write(b"".join(replies))
        self.backlog = owed > _HIGH_WATER and len(buf) >= REQUEST_HEADER.size
        if self.backlog:
            transport.pause_reading()
            if not self.writing_paused:  # the socket took it all at once: go on soon
                asyncio.get_running_loop().call_soon(self._answer)
        elif not self.writing_paused:
            transport.resume_reading()

    def pause_writing(self) -> None:
        """The client is not reading its replies: stop reading its requests, and drop it
        unless it catches up within write_timeout."""
        assert self.transport is not None
        self.writing_paused = True
        self.transport.pause_reading()
        loop = asyncio.get_running_loop()
        self.timer = loop.call_later(self.server.write_timeout, self._drop_stalled)

    def _drop_stalled(self) -> None:
        self.server.events.note("clients dropped for not reading their replies")
        self.abort()

    def resume_writing(self) -> None:
        self.writing_paused = False
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.backlog:
            self._answer()
        elif self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.server.peers.remove(self)


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
        help="serve the Person Sensor I2C interface on a virtual bus (with --voice, also "
        "the voice register record at 0x63): tcp:127.0.0.1:6262 or unix:/path/to/socket",
    )


def from_args(args: argparse.Namespace, hub: Hub | None,
              voice: VoiceHub | None = None) -> VirtualBusServer | None:
    """The server `serve` should start, or None when --bus was not given: the person
    record at 0x62 when `hub` is given, the voice register record at 0x63 with `voice`."""
    if not getattr(args, "bus", None):
        return None
    return VirtualBusServer(hub, args.bus, voice=voice)
