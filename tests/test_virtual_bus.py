"""The virtual I2C bus, in process: framing, register writes, many clients, bad clients."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wire_doubles import RecordingControl

from mlsensors.errors import InputError, ProtocolError
from mlsensors.hub import Hub, RegisterWrite
from mlsensors.transports.i2c_frames import (
    SENSOR_ADDRESS,
    BusAddress,
    Request,
    Status,
    encode_request,
    parse_bus_address,
)
from mlsensors.transports.peers import PeerLimits
from mlsensors.transports.virtual_bus import (
    _HIGH_WATER,
    VirtualBusServer,
    add_arguments,
    from_args,
)
from mlsensors.types import PersonFace, PersonResult
from mlsensors.wire.device import DeviceState, PersonSensorDevice
from mlsensors.wire.read_pointer import ReadPointer
from mlsensors.wire.record import crc16_ccitt_false
from mlsensors.wire.registers import decode_write

FACES = (PersonFace((10, 20, 90, 120), 95, True), PersonFace((100, 30, 140, 70), 60, False))


class Rig:
    """A hub with a device model and a recording sensor behind a running server."""

    def __init__(self, spec: str = "tcp:127.0.0.1:0", **kw) -> None:
        self.hub = Hub()
        self.hub.publish(PersonResult(1.0, FACES))
        self.control = RecordingControl()
        self.device = PersonSensorDevice(self.control)
        self.detach = self.device.attach(self.hub)
        self.server = VirtualBusServer(self.hub, spec, **kw)
        self.address = self.server.start()

    def reset_device(self) -> None:
        self.detach()
        self.control = RecordingControl()
        self.device = PersonSensorDevice(self.control)
        self.detach = self.device.attach(self.hub)

    def connect(self) -> socket.socket:
        if self.address.kind == "tcp":
            s = socket.create_connection((self.address.host, self.address.port), 5)
        else:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(5)
            s.connect(self.address.path)
        s.settimeout(5)
        return s


@pytest.fixture(scope="module")
def rig():
    r = Rig()
    yield r
    r.server.stop()


@pytest.fixture()
def fresh(rig: Rig) -> Rig:
    rig.reset_device()
    rig.hub.publish(PersonResult(1.0, FACES))
    return rig


def recv_exact(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError(f"closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def transact(s: socket.socket, request: Request) -> tuple[int, bytes]:
    s.sendall(encode_request(request))
    head = recv_exact(s, 3)
    return head[0], recv_exact(s, int.from_bytes(head[1:], "big"))


def closed_by_server(s: socket.socket) -> bool:
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True


def test_reads_continue_the_sequence_then_zeros(fresh: Rig) -> None:
    record = fresh.hub.snapshot().record
    with fresh.connect() as s:
        model = ReadPointer()
        for n in (0, 1, 5, 32, 39, 40, 64, 255, 32, 7, 39):
            status, data = transact(s, Request.read(SENSOR_ADDRESS, n))
            assert status == Status.ACK
            assert data == model.read(n, lambda: record)
        assert transact(s, Request.read(SENSOR_ADDRESS, 40))[1] == record + b"\x00"
        assert transact(s, Request.read(SENSOR_ADDRESS, 32))[1] == record[:32]
        assert transact(s, Request.read(SENSOR_ADDRESS, 7))[1] == record[32:]


def test_each_connection_has_its_own_read_pointer(fresh: Rig) -> None:
    record = fresh.hub.snapshot().record
    with fresh.connect() as a, fresh.connect() as b:
        assert transact(a, Request.read(SENSOR_ADDRESS, 32))[1] == record[:32]
        assert transact(b, Request.read(SENSOR_ADDRESS, 39))[1] == record
        fresh.hub.publish(PersonResult(2.0))  # a's sequence keeps the record it began
        assert transact(a, Request.read(SENSOR_ADDRESS, 7))[1] == record[32:]
        assert transact(a, Request.read(SENSOR_ADDRESS, 39))[1] == fresh.hub.snapshot().record


def test_register_writes_reach_the_sensor(fresh: Rig) -> None:
    with fresh.connect() as s:
        assert transact(s, Request.write(SENSOR_ADDRESS, b"\x02\x01")) == (Status.ACK, b"")
        assert transact(s, Request.write(SENSOR_ADDRESS, b"\x01\x00")) == (Status.ACK, b"")
        assert transact(s, Request.write(SENSOR_ADDRESS, b"\x03\x00")) == (Status.ACK, b"")
        assert transact(s, Request.write(SENSOR_ADDRESS, b"\x04\x05")) == (Status.ACK, b"")
    assert fresh.control.calls == [("set_identification", True), ("set_continuous", False),
                                   ("single_shot", None), ("calibrate", 5)]
    assert fresh.device.state == DeviceState(mode=0, enable_id=True)


@pytest.mark.parametrize(
    ("address", "payload", "status"),
    [
        (SENSOR_ADDRESS, b"\x09\x01", Status.DATA_NACK),  # unknown register
        (SENSOR_ADDRESS, b"\x01\x02", Status.DATA_NACK),  # out of range
        (SENSOR_ADDRESS, b"\x03\x00", Status.DATA_NACK),  # single shot in continuous
        (SENSOR_ADDRESS, b"\x01\x00\x01\x00", Status.DATA_NACK),  # too long: nothing applied
        (SENSOR_ADDRESS, b"\x01\x01\x00", Status.DATA_NACK),  # 16-bit value 256
        (SENSOR_ADDRESS, b"\x03", Status.DATA_NACK),  # 1-byte single shot in continuous
        (SENSOR_ADDRESS, b"\x01", Status.DATA_NACK),  # a setting without its value
        (SENSOR_ADDRESS, b"", Status.ACK),  # address probe
        (SENSOR_ADDRESS, b"\x00", Status.ACK),  # SMBus-style register pointer
        (0x61, b"\x01\x00", Status.ADDRESS_NACK),
        (0x00, b"\x01\x00", Status.ADDRESS_NACK),
    ],
)
def test_refused_writes_change_nothing(fresh: Rig, address, payload, status) -> None:
    with fresh.connect() as s:
        assert transact(s, Request.write(address, payload)) == (status, b"")
        # the connection is still in step afterwards
        assert transact(s, Request.read(SENSOR_ADDRESS, 39))[1] == fresh.hub.snapshot().record
    assert fresh.control.calls == []
    assert fresh.device.state == DeviceState()


def test_read_at_wrong_address_is_address_nack(fresh: Rig) -> None:
    with fresh.connect() as s:
        assert transact(s, Request.read(0x63, 39)) == (Status.ADDRESS_NACK, b"")


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x62X\x00\x27",  # unknown operation
        b"\x62R\x01\x00",  # read length 256
        b"\x62W\xff\xff" + bytes(10),  # write length 65535
        b"GET / HTTP/1.1\r\n\r\n",
    ],
)
def test_malformed_frame_closes_only_that_connection(fresh: Rig, garbage: bytes) -> None:
    with fresh.connect() as good, fresh.connect() as bad:
        bad.sendall(garbage)
        assert closed_by_server(bad)
        assert transact(good, Request.read(SENSOR_ADDRESS, 39))[0] == Status.ACK
    assert fresh.control.calls == []


def wait_for_connections(server: VirtualBusServer, n: int) -> int:
    deadline = time.monotonic() + 5
    while server.connections != n and time.monotonic() < deadline:
        time.sleep(0.01)
    return server.connections


def test_truncated_frames_and_dead_clients(fresh: Rig) -> None:
    assert wait_for_connections(fresh.server, 0) == 0  # earlier tests' clients are gone
    for cut in (b"\x62", b"\x62W\x00\x02\x01", b"\x62R"):
        s = fresh.connect()
        s.sendall(cut)
        s.close()
    s = fresh.connect()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    s.sendall(b"\x62W\x00")
    s.close()  # reset, not a clean close
    assert wait_for_connections(fresh.server, 0) == 0
    assert fresh.control.calls == []
    with fresh.connect() as s:
        assert transact(s, Request.read(SENSOR_ADDRESS, 1)) == (Status.ACK, b"\x00")


def test_many_clients_get_whole_records_while_the_sensor_publishes(fresh: Rig) -> None:
    published: set[bytes] = {fresh.hub.snapshot().record}
    stop = threading.Event()

    def publisher() -> None:
        i = 0
        while not stop.wait(0.0005):  # far faster than a camera, without hogging the GIL
            i += 1
            faces = tuple(PersonFace((i % 50, 0, 60 + i % 100, 60), i % 101, bool(i & 1))
                          for _ in range(i % 5))
            published.add(fresh.hub.publish(PersonResult(float(i), faces)).record)

    seen: list[bytes] = []
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            with fresh.connect() as s:
                for _ in range(150):
                    status, data = transact(s, Request.read(SENSOR_ADDRESS, 39))
                    assert status == Status.ACK
                    seen.append(data)
        except BaseException as e:
            errors.append(e)

    pub = threading.Thread(target=publisher)
    pub.start()
    readers = [threading.Thread(target=reader) for _ in range(8)]
    for t in readers:
        t.start()
    for t in readers:
        t.join()
    stop.set()
    pub.join()
    assert not errors
    assert len(seen) == 8 * 150
    for data in seen:
        assert int.from_bytes(data[37:], "little") == crc16_ccitt_false(data[:37])
        assert data in published
    assert len(set(seen)) > 1  # the records really changed under the readers


def test_a_client_that_never_reads_is_dropped_without_stalling_others() -> None:
    rig = Rig(write_timeout=0.3)
    try:
        stuck = rig.connect()
        stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        flood = encode_request(Request.read(SENSOR_ADDRESS, 255)) * 20000

        def send_flood() -> None:
            with contextlib.suppress(OSError):
                stuck.sendall(flood)

        sender = threading.Thread(target=send_flood, daemon=True)
        sender.start()
        with rig.connect() as good:
            t0 = time.monotonic()
            while time.monotonic() - t0 < 1.0:
                assert transact(good, Request.read(SENSOR_ADDRESS, 39))[0] == Status.ACK
                rig.hub.publish(PersonResult(time.time()))
        assert wait_for_connections(rig.server, 0) == 0  # the stuck one was dropped
        stuck.close()
        sender.join(5)
    finally:
        rig.server.stop()


def test_unix_socket_and_stale_socket_file(tmp_path) -> None:
    path = str(tmp_path / "bus.sock")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(path)
    stale.close()  # leaves a socket file nobody listens on
    rig = Rig(f"unix:{path}")
    try:
        with rig.connect() as s:
            assert transact(s, Request.read(SENSOR_ADDRESS, 39))[1] == rig.hub.snapshot().record
        with pytest.raises(InputError, match="already listening"):
            VirtualBusServer(rig.hub, f"unix:{path}").start()
    finally:
        rig.server.stop()
    assert not os.path.exists(path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="not a socket"):
        VirtualBusServer(Hub(), f"unix:{tmp_path / 'file'}").start()


def test_bus_address_parsing_and_serve_arguments() -> None:
    assert parse_bus_address("tcp:127.0.0.1:6262") == BusAddress("tcp", "127.0.0.1", 6262)
    assert parse_bus_address("tcp:[::1]:7") == BusAddress("tcp", "::1", 7)
    assert parse_bus_address("unix:/run/x.sock") == BusAddress("unix", path="/run/x.sock")
    for bad in ("127.0.0.1:6262", "tcp:host", "tcp::1", "tcp:h:99999", "unix:", "i2c:1"):
        with pytest.raises(InputError, match="tcp:HOST:PORT"):
            parse_bus_address(bad)
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert from_args(parser.parse_args([]), Hub()) is None
    server = from_args(parser.parse_args(["--bus", "tcp:127.0.0.1:0"]), Hub())
    assert isinstance(server, VirtualBusServer)
    with server:
        assert server.address is not None and server.address.port > 0
    with pytest.raises(InputError):
        VirtualBusServer(Hub(), "tcp:192.0.2.1:1").start()  # not an address of ours


# -- hostile peers: caps, idle clients, the log ------------------------------------------


def wait_closed(s: socket.socket, timeout: float = 10) -> bool:
    s.settimeout(timeout)
    try:
        return closed_by_server(s)
    except TimeoutError:
        return False


@pytest.fixture(params=["tcp", "unix"])
def spec(request, tmp_path) -> str:
    return "tcp:127.0.0.1:0" if request.param == "tcp" else f"unix:{tmp_path / 'bus.sock'}"


def test_a_full_bus_refuses_newcomers_and_keeps_serving_its_clients(spec: str) -> None:
    rig = Rig(spec, limits=PeerLimits(4, idle_timeout=None, evict_after=None))
    try:
        held = [rig.connect() for _ in range(4)]
        assert wait_for_connections(rig.server, 4) == 4
        extra = [rig.connect() for _ in range(20)]
        assert all(wait_closed(s) for s in extra), "over the cap: closed at once"
        for s in held:
            assert transact(s, Request.read(SENSOR_ADDRESS, 39))[0] == Status.ACK
        assert rig.server.connections == 4
        for s in held + extra:
            s.close()
    finally:
        rig.server.stop()


def test_idle_clients_give_way_to_newcomers_and_time_out(spec: str) -> None:
    rig = Rig(spec, limits=PeerLimits(3, idle_timeout=None, evict_after=0.3))
    try:
        busy, idle1, idle2 = (rig.connect() for _ in range(3))
        assert wait_for_connections(rig.server, 3) == 3
        time.sleep(0.4)
        assert transact(busy, Request.read(SENSOR_ADDRESS, 39))[0] == Status.ACK
        newcomer = rig.connect()
        assert transact(newcomer, Request.read(SENSOR_ADDRESS, 39))[0] == Status.ACK
        assert wait_closed(idle1), "the client idle longest gave its slot"
        assert transact(busy, Request.read(SENSOR_ADDRESS, 39))[0] == Status.ACK
        for s in (busy, idle1, idle2, newcomer):
            s.close()
    finally:
        rig.server.stop()
    rig = Rig(spec, limits=PeerLimits(8, idle_timeout=0.2, evict_after=None))
    try:
        silent = rig.connect()
        assert wait_closed(silent), "a client idle past idle_timeout is closed"
        silent.close()
    finally:
        rig.server.stop()


def test_the_driver_reconnects_when_the_bus_closed_an_idle_connection() -> None:
    from mlsensors.transports.client import PersonSensorClient

    rig = Rig(limits=PeerLimits(8, idle_timeout=0.2, evict_after=None))
    try:
        client = PersonSensorClient(str(rig.address))
        assert client.read_results().num_faces == 2
        assert wait_for_connections(rig.server, 0) == 0  # the server closed it
        assert client.read_results().num_faces == 2
        client.close()
    finally:
        rig.server.stop()


def test_floods_of_bad_clients_are_logged_as_a_few_counted_lines(spec: str, caplog) -> None:
    rig = Rig(spec, limits=PeerLimits(2, idle_timeout=None, evict_after=None))
    try:
        held = [rig.connect() for _ in range(2)]
        assert wait_for_connections(rig.server, 2) == 2
        with caplog.at_level(logging.INFO, logger="mlsensors.transports.virtual_bus"):
            for s in held:  # malformed: each closes its own connection only
                s.sendall(b"\x62\xee\x00\x00")
                assert wait_closed(s)
            assert wait_for_connections(rig.server, 0) == 0
            held = [rig.connect() for _ in range(2)]
            assert wait_for_connections(rig.server, 2) == 2
            made = 0
            for _ in range(500):
                with contextlib.suppress(OSError), rig.connect() as s:
                    made += 1  # a full unix backlog refuses some connects outright
                    s.sendall(b"\x62\xee\x00\x00")
            deadline = time.monotonic() + 10
            while rig.server.events.total < 2 + made and time.monotonic() < deadline:
                time.sleep(0.01)
            rig.server.stop()
    finally:
        rig.server.stop()
    lines = [r.getMessage() for r in caplog.records]
    assert made > 100
    assert 1 <= len(lines) <= 3, lines
    assert "malformed clients closed (last: unknown operation 0xee" in lines[0]
    assert rig.server.events.total == 2 + made
    assert f"{made} connections refused (last: all 2 slots busy)" in " ".join(lines), lines


def test_the_loops_own_errors_are_counted_not_traced(caplog) -> None:
    rig = Rig()
    try:
        with caplog.at_level(logging.DEBUG):
            assert rig.server._loop is not None
            rig.server._loop.call_soon_threadsafe(
                rig.server._loop.call_exception_handler,
                {"message": "socket.accept() out of system resource",
                 "exception": OSError(24, "Too many open files")})
            deadline = time.monotonic() + 5
            while not rig.server.events.total and time.monotonic() < deadline:
                time.sleep(0.01)
    finally:
        rig.server.stop()
    assert [r.exc_info for r in caplog.records if r.exc_info] == []
    assert any("1 server errors (last: socket.accept() out of system resource: OSError"
               in r.getMessage() for r in caplog.records)


def test_a_flood_of_pipelined_reads_is_answered_a_bit_at_a_time(tmp_path) -> None:
    # 4 bytes ask for 258: unanswered, 64 KiB of requests would owe 4 MiB of replies.
    rig = Rig(f"unix:{tmp_path / 'bus.sock'}", write_timeout=30)
    try:
        s = rig.connect()
        s.sendall(encode_request(Request.read(SENSOR_ADDRESS, 255)) * 16384)
        assert wait_for_connections(rig.server, 1) == 1
        (connection,) = rig.server.peers.peers()
        deadline = time.monotonic() + 10
        while not connection.writing_paused and time.monotonic() < deadline:
            time.sleep(0.01)
        assert connection.writing_paused, "the client reads nothing, so writing pauses"
        assert connection.transport.get_write_buffer_size() <= 2 * _HIGH_WATER
        # It catches up: every request is answered, in order, nothing lost.
        s.settimeout(10)
        for _ in range(16384):
            status, data = transact_reply(s)
            assert status == Status.ACK and len(data) == 255
        s.close()
    finally:
        rig.server.stop()


def transact_reply(s: socket.socket) -> tuple[int, bytes]:
    head = recv_exact(s, 3)
    return head[0], recv_exact(s, int.from_bytes(head[1:], "big"))


# -- fuzzing ---------------------------------------------------------------------------


def reference(stream: bytes, record: bytes) -> list[bytes | tuple[int, int]]:
    """What the server must answer to `stream`, written from the framing spec and the
    shared read-pointer and write-decoding rules.

    Frames are answered until the first malformed or cut one. A write the sensor
    decodes as a register write appears as (register, value): whether it is ACKed is
    the device model's call.
    """
    out: list[bytes | tuple[int, int]] = []
    pointer = ReadPointer()
    i = 0
    while len(stream) - i >= 4:
        address, op, length = stream[i], stream[i + 1], int.from_bytes(stream[i + 2:i + 4])
        if op not in b"RW" or length > 255:
            break
        data = stream[i + 4:i + 4 + length] if op == ord("W") else b""
        if len(data) < length and op == ord("W"):
            break
        i += 4 + len(data)
        if address != SENSOR_ADDRESS:
            out.append(b"\x01\x00\x00")
        elif op == ord("R"):
            out.append(b"\x00" + length.to_bytes(2) + pointer.read(length, lambda: record))
        else:
            pointer.rewind()
            try:
                decoded = decode_write(data)
            except ProtocolError:
                out.append(b"\x02\x00\x00")
                continue
            out.append(b"\x00\x00\x00" if decoded is None else decoded)
    return out


frames = st.one_of(
    st.builds(lambda a, n: bytes([a]) + b"R" + n.to_bytes(2), st.sampled_from([0x62, 0x61, 0]),
              st.integers(0, 300)),
    st.builds(lambda a, d: bytes([a]) + b"W" + len(d).to_bytes(2) + d,
              st.sampled_from([0x62, 0x62, 0x13]),
              st.one_of(st.binary(max_size=4),
                        st.lists(st.integers(0, 8), max_size=4).map(bytes))),
    st.builds(lambda r, v: b"\x62W\x00\x02" + bytes([r, v]), st.integers(0, 9),
              st.integers(0, 9)),
    st.binary(min_size=1, max_size=6),
)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(frames, max_size=12).map(b"".join))
def test_fuzz_random_transactions(fresh: Rig, stream: bytes) -> None:
    fresh.reset_device()
    record = fresh.hub.snapshot().record
    oracle_control = RecordingControl()
    oracle = PersonSensorDevice(oracle_control)
    expected = b""
    for part in reference(stream, record):
        if isinstance(part, tuple):
            try:
                oracle.write(RegisterWrite(*part))
                part = b"\x00\x00\x00"
            except ProtocolError:
                part = b"\x02\x00\x00"
        expected += part
    with fresh.connect() as s:
        s.sendall(stream)
        s.shutdown(socket.SHUT_WR)
        got = b""
        while chunk := s.recv(65536):
            got += chunk
    assert got == expected
    assert fresh.device.state == oracle.state
    assert fresh.control.calls == oracle_control.calls
