"""The driver and `mlsensors read`, against a real in-process virtual bus."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wire_doubles import RecordingControl

from mlsensors.cli.main import main
from mlsensors.errors import InputError, ProtocolError
from mlsensors.hub import Hub
from mlsensors.transports.client import PersonSensorClient
from mlsensors.transports.virtual_bus import VirtualBusServer
from mlsensors.types import PersonFace, PersonResult
from mlsensors.wire.device import PersonSensorDevice
from mlsensors.wire.record import pack_record, unpack_record

ROOT = Path(__file__).resolve().parent.parent
FACES = tuple(PersonFace((10 * i, 5, 10 * i + 5 + 10 * (4 - i), 80), 90 - i, i % 2 == 0)
              for i in range(4))


@pytest.fixture()
def served():
    hub = Hub()
    control = RecordingControl()
    device = PersonSensorDevice(control)
    device.attach(hub)
    hub.publish(PersonResult(1.0, FACES[:2]))
    with VirtualBusServer(hub, "tcp:127.0.0.1:0") as server:
        yield hub, control, device, str(server.address)


def test_read_results_matches_what_the_sensor_published(served) -> None:
    hub, _control, _device, bus = served
    with PersonSensorClient(bus) as sensor:
        assert sensor.read_results().faces == FACES[:2]
        hub.publish(PersonResult(2.0, FACES))
        result = sensor.read_results()
        assert result.faces == unpack_record(pack_record(PersonResult(0, FACES))).faces
        assert result.timestamp > 1e9  # stamped at read time, wall clock
        assert sensor.read_raw(40) == hub.snapshot().record + b"\x00"


def test_every_register_method_reaches_the_sensor(served) -> None:
    _hub, control, device, bus = served
    with PersonSensorClient(bus) as sensor:
        sensor.enable_id()
        sensor.calibrate(3)
        sensor.persist(False)
        sensor.erase()
        sensor.debug(False)
        sensor.set_mode(continuous=False)
        sensor.single_shot()
        sensor.set_mode(continuous=True)
    assert control.calls == [
        ("set_identification", True), ("calibrate", 3), ("set_persist", False),
        ("erase_ids", None), ("set_debug", False), ("set_continuous", False),
        ("single_shot", None), ("set_continuous", True),
    ]
    assert device.state.enable_id and not device.state.persist_ids


def test_refusals_are_clear_errors(served) -> None:
    _hub, control, _device, bus = served
    with PersonSensorClient(bus) as sensor:
        with pytest.raises(ProtocolError, match="refused the write"):
            sensor.single_shot()  # continuous mode
        with pytest.raises(ProtocolError, match="not valid for CALIBRATE_ID"):
            sensor.calibrate(9)  # checked before it is sent
        with pytest.raises(ProtocolError, match="unknown register"):
            sensor.write_register(0x42, 0)
    with PersonSensorClient(bus, address=0x63) as other, pytest.raises(
        ProtocolError, match="no device answered at address 0x63"
    ):
        other.read_results()
    assert control.calls == []


def test_32_byte_adapter_reads_the_record_in_chunks(served) -> None:
    """Adapters limited to 32-byte reads read 32 + 7, as the vendor's Arduino driver
    does; the sensor continues where the first chunk stopped, so all four faces and the
    checksum arrive."""
    hub, _control, _device, bus = served
    hub.publish(PersonResult(1.0, FACES))
    for max_read in (32, 16, 1):
        with PersonSensorClient(bus, max_read=max_read) as sensor:
            assert sensor.read_results().faces == unpack_record(hub.snapshot().record).faces
            assert len(sensor.read_results().faces) == 4


class ScriptedBus:
    """A Bus that returns the given buffers in turn (for what a server never sends)."""

    def __init__(self, *buffers: bytes) -> None:
        self.buffers = list(buffers)

    def read(self, address: int, length: int) -> bytes:
        return self.buffers.pop(0)[:length]

    def write(self, address: int, data: bytes) -> None:
        raise AssertionError("no writes expected")

    def close(self) -> None:
        pass


def test_chunks_of_two_records_are_rejected() -> None:
    a = pack_record(PersonResult(0, FACES[:1]))
    b = pack_record(PersonResult(0, FACES[1:2]))
    with pytest.raises(ProtocolError, match="checksum"):
        PersonSensorClient(ScriptedBus(a[:32], b[32:]), max_read=32).read_results()


@settings(max_examples=400, deadline=None)
@given(st.binary(min_size=39, max_size=40), st.booleans())
def test_random_buffers_at_the_driver(buf: bytes, strict: bool) -> None:
    sensor = PersonSensorClient(ScriptedBus(buf + bytes(1)), strict=strict)
    try:
        result = sensor.read_results()
    except ProtocolError:
        return
    assert isinstance(result, PersonResult) and len(result.faces) <= 4


def test_unix_bus(tmp_path) -> None:
    hub = Hub()
    hub.publish(PersonResult(1.0, FACES[:1]))
    with VirtualBusServer(hub, f"unix:{tmp_path / 's'}") as server, PersonSensorClient(
        str(server.address)
    ) as sensor:
        assert sensor.read_results().faces == FACES[:1]


def test_connection_problems_are_protocol_errors(tmp_path) -> None:
    with pytest.raises(ProtocolError, match="cannot connect to unix:"):
        PersonSensorClient(f"unix:{tmp_path / 'nobody'}")
    with pytest.raises(ProtocolError, match="cannot open /dev/i2c-250"):
        PersonSensorClient("/dev/i2c-250")
    with pytest.raises(InputError, match="tcp:HOST:PORT"):
        PersonSensorClient("i2c-1")
    with pytest.raises(InputError, match="max_read"):
        PersonSensorClient("tcp:127.0.0.1:1", max_read=0)
    hub = Hub()
    server = VirtualBusServer(hub, "tcp:127.0.0.1:0")
    address = str(server.start())
    sensor = PersonSensorClient(address)
    sensor.read_results()
    server.stop()
    with pytest.raises(ProtocolError, match="virtual bus"):
        sensor.read_results()
    sensor.close()


def test_cli_read_once(served, capsys) -> None:
    _hub, _control, _device, bus = served
    assert main(["read", "--bus", bus, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["num_faces"] == 2
    assert "frame" not in data  # the record carries no frame index: none is made up
    assert data["faces"][0] == {"box": list(FACES[0].box), "confidence": FACES[0].confidence,
                                "is_facing": True, "id": -1, "id_confidence": 0}
    assert main(["read", "--bus", bus]) == 0
    out = capsys.readouterr().out
    assert "2 faces" in out and "not recognised" in out


def test_cli_errors_are_one_line(capsys, tmp_path) -> None:
    assert main(["read", "--bus", "nonsense"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mlsensors: error: bus address") and err.count("\n") == 1
    assert main(["read", "--bus", f"unix:{tmp_path / 'x'}"]) == 1
    assert "cannot connect" in capsys.readouterr().err


def test_cli_watch_follows_the_sensor_and_gives_up_when_it_goes() -> None:
    hub = Hub()
    hub.publish(PersonResult(1.0, FACES[:2]))
    server = VirtualBusServer(hub, "tcp:127.0.0.1:0")
    bus = str(server.start())
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlsensors", "read", "--bus", bus, "--watch", "--json",
         "--interval", "0.02"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert json.loads(proc.stdout.readline())["num_faces"] == 2
        hub.publish(PersonResult(2.0, FACES))
        for _ in range(200):
            if json.loads(proc.stdout.readline())["num_faces"] == 4:
                break
        else:
            pytest.fail("watch never saw the new result")
        server.stop()
        _out, err = proc.communicate(timeout=20)
    finally:
        server.stop()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 1
    lines = err.strip().splitlines()
    assert lines[-1].startswith("mlsensors: error: virtual bus")
    assert "Traceback" not in err


def test_vendor_style_40_byte_read_over_the_bus(served) -> None:
    """The vendor's Python decoding (native alignment) of a 40-byte read from our bus."""
    import struct

    _hub, _control, _device, bus = served
    with PersonSensorClient(bus) as sensor:
        fields = struct.unpack("BBH" + "B" + "BBBBBBbB" * 4 + "H", sensor.read_raw(40))
    num_faces = fields[3]
    faces = [fields[4 + 8 * i: 12 + 8 * i] for i in range(num_faces)]
    assert faces == [(f.confidence, *f.box, f.id_confidence, f.id, int(f.is_facing))
                     for f in FACES[:2]]


@pytest.mark.parametrize(
    "reply",
    [b"\x07\x00\x00", b"\x00\x00\x05abc", b"\x00\x00\x27" + bytes(39), b""],
)
def test_a_broken_server_gives_protocol_errors(reply: bytes) -> None:
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve_once() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(64)
            conn.sendall(reply)

    thread = threading.Thread(target=serve_once, daemon=True)
    thread.start()
    try:
        with PersonSensorClient(f"tcp:127.0.0.1:{port}", timeout=2) as sensor, pytest.raises(
            ProtocolError
        ):
            sensor.read_results()  # bad status, short data, bad checksum, closed
    finally:
        thread.join(5)
        listener.close()
