"""Every known Person Sensor client, unmodified but for its I2C transport, against the
real virtual bus.

Each client below is written from its documentation and published behaviour (what it
sends, how many bytes it reads, how it decodes them: docs/wire.md, "Known clients"),
not from its code. Only the I2C calls go through a shim that turns them into virtual-bus
frames, as a user's port would. The sensor's side is the real `VirtualBusServer`, with
a hub fed by the real sensor loop (detector and face IDs on a photograph) or, for the
cases a photograph cannot provoke, by results that change under the client's feet.
Every client's decoded faces, IDs and checksum are checked against the sensor's own
result.
"""

from __future__ import annotations

import errno
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from wire_doubles import RecordingControl

from mlsensors.hub import Hub
from mlsensors.transports.i2c_frames import (
    RESPONSE_HEADER,
    SENSOR_ADDRESS,
    Request,
    Status,
    encode_request,
    parse_response_header,
)
from mlsensors.transports.virtual_bus import VirtualBusServer
from mlsensors.types import PersonFace, PersonResult
from mlsensors.wire.device import DeviceState, PersonSensorDevice
from mlsensors.wire.record import crc16_ccitt_false, unpack_record

ROOT = Path(__file__).resolve().parent.parent
WIRE_DOC = ROOT / "docs" / "wire.md"


# -- the I2C controller a client's library gives it, over the virtual bus --------------


class VirtualI2C:
    """I2C transactions as frames on a virtual-bus connection. A NACK raises OSError as
    the clients' platforms do (EREMOTEIO for a refused byte, ENODEV for no device)."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(5)
        self.sock.connect(address.removeprefix("unix:"))
        self.log: list[tuple[str, int]] = []
        """(op, length) of every transaction, for the docs table check."""

    def _transact(self, request: Request) -> bytes:
        self.sock.sendall(encode_request(request))
        status, length = parse_response_header(self._recv(RESPONSE_HEADER.size))
        data = self._recv(length)
        self.log.append(("R" if request.op == ord("R") else "W", request.length))
        if status is Status.ADDRESS_NACK:
            raise OSError(errno.ENODEV, "no device at this address")
        if status is Status.DATA_NACK:
            raise OSError(errno.EREMOTEIO, "remote I/O error (NACK)")
        return data

    def _recv(self, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise OSError(errno.EPIPE, "bus closed")
            buf += chunk
        return buf

    def write(self, address: int, data: bytes) -> None:
        self._transact(Request.write(address, bytes(data)))

    def read(self, address: int, n: int) -> bytes:
        return self._transact(Request.read(address, n))

    def scan(self) -> list[int]:
        """What MicroPython's and CircuitPython's `scan()` do: an empty write to each
        address from 0x08 to 0x77; the ones that ACK are there."""
        found = []
        for address in range(0x08, 0x78):
            try:
                self.write(address, b"")
            except OSError:
                continue
            found.append(address)
        return found

    def close(self) -> None:
        self.sock.close()


# -- what the clients decode ------------------------------------------------------------


@dataclass(frozen=True)
class Decoded:
    """A client's view of one read: the face count, the faces it decoded as
    (confidence, left, top, right, bottom, id_confidence, id, is_facing), and the
    16-bit value it takes as the checksum (None if it never looks)."""

    num_faces: int
    faces: tuple[tuple[int, ...], ...]
    checksum: int | None


def decode_c_packed(buf: bytes, slots: str = "num_faces") -> Decoded:
    """A C client's packed struct (vendor Pico, Arduino, ESPHome, Particle): 39 bytes,
    little-endian, int8 num_faces, id_confidence and id, checksum at 37."""
    assert len(buf) == 39
    fields = struct.unpack("<BBHb" + "BBBBBbbB" * 4 + "H", buf)
    n = fields[3]
    faces = tuple(tuple(fields[4 + 8 * i:12 + 8 * i]) for i in range(4))
    return Decoded(n, faces[:n] if slots == "num_faces" else faces, fields[-1])


def decode_vendor_python(buf: bytes) -> Decoded:
    """The vendor's Python examples (Pi, CircuitPython, micro:bit) and the MicroPython and
    CircuitPython libraries built on them: native-alignment "BBH", then "B" for the
    count, then `num_faces` times "BBBBBBbB" (id_confidence unsigned), then one more
    "H" wherever the faces end: offset 5 + 8 * num_faces."""
    _pad1, _pad2, _size = struct.unpack_from("BBH", buf, 0)
    (n,) = struct.unpack_from("B", buf, 4)
    offset = 5
    faces = []
    for _ in range(n):
        faces.append(struct.unpack_from("BBBBBBbB", buf, offset))
        offset += 8
    (checksum,) = struct.unpack_from("H", buf, offset)
    return Decoded(n, tuple(faces), checksum)


def decode_all_slots_python(buf: bytes) -> Decoded:
    """The adafruit_bus_device CircuitPython library: the vendor's format strings, but
    all four slots decoded whatever num_faces says, so its checksum lands at 37."""
    (n,) = struct.unpack_from("B", buf, 4)
    faces = tuple(struct.unpack_from("BBBBBBbB", buf, 5 + 8 * i) for i in range(4))
    (checksum,) = struct.unpack_from("H", buf, 37)
    return Decoded(n, faces, checksum)


NATIVE_SIZE = struct.calcsize("BBH" + "B" + "BBBBBBbB" * 4 + "H")


# -- the clients: what each sends and reads --------------------------------------------


class Client:
    """One known client: `read` its way, and (for clients with setters) `setters`."""

    name = ""
    reads = ""  # the read pattern, as docs/wire.md names it

    def __init__(self, bus: VirtualI2C) -> None:
        self.bus = bus

    def read(self) -> Decoded:
        raise NotImplementedError


class VendorPiPython(Client):
    """usefulsensors/person_sensor_rpi_python: /dev/i2c-1 opened, the peripheral address
    set, then `read(calcsize(format))`: one 40-byte read."""

    name = "vendor Raspberry Pi Python"
    reads = "40"

    def read(self) -> Decoded:
        return decode_vendor_python(self.bus.read(SENSOR_ADDRESS, NATIVE_SIZE))


class VendorCircuitPython(VendorPiPython):
    """usefulsensors/person_sensor_circuit_python: `readfrom_into` a 40-byte bytearray."""

    name = "vendor CircuitPython example"


class VendorMicrobit(VendorPiPython):
    """usefulsensors/person_sensor_micro_bit: `i2c.read(0x62, 40)`."""

    name = "vendor micro:bit example"


class VendorPicoC(Client):
    """usefulsensors/person_sensor_pico_c: `i2c_read_blocking` of the packed struct, 39
    bytes; a short read is a failure."""

    name = "vendor Pico C example"
    reads = "39"

    def read(self) -> Decoded:
        return decode_c_packed(self.bus.read(SENSOR_ADDRESS, 39))


class ParticleDriver(VendorPicoC):
    """The Particle driver: `Wire.requestFrom(0x62, 39)`, then requires 39 available."""

    name = "Particle driver"


class VendorArduino(Client):
    """usefulsensors/person_sensor_arduino (and the ESP32 port of it): the Wire buffer
    holds 32 bytes, so the struct is read as 32 bytes (no stop, repeated start) then
    the remaining 7."""

    name = "vendor Arduino driver, ESP32 port"
    reads = "32 + 7"

    def read(self) -> Decoded:
        buf = b""
        while len(buf) < 39:
            buf += self.bus.read(SENSOR_ADDRESS, min(32, 39 - len(buf)))
        return decode_c_packed(buf)


class ESPHome(Client):
    """ESPHome's `sen21231` component: `read_bytes(0x62, ...)`, the I2C address passed
    as a register, so one byte 0x62 is written, then the 39-byte struct read. It
    publishes num_faces and, with one face, that face's is_facing."""

    name = "ESPHome sen21231"
    reads = "W 1 (0x62), 39"

    def read(self) -> Decoded:
        self.bus.write(SENSOR_ADDRESS, bytes([SENSOR_ADDRESS]))
        return decode_c_packed(self.bus.read(SENSOR_ADDRESS, 39))


class MicroPythonWritetoMem(Client):
    """A MicroPython library (machine.I2C): scans the bus in its constructor and fails
    without 0x62; each setter is `writeto_mem(0x62, register, one byte)` (2 bytes on
    the wire); calibration always labels ID 0; reads 40 bytes."""

    name = "MicroPython library (writeto_mem)"
    reads = "40"

    def __init__(self, bus: VirtualI2C) -> None:
        super().__init__(bus)
        if SENSOR_ADDRESS not in bus.scan():
            raise OSError(errno.ENODEV, "Could not find Person Sensor")

    def _mem(self, register: int, value: int) -> None:
        self.bus.write(SENSOR_ADDRESS, bytes([register, value]))

    def set_mode(self, mode: int) -> None:
        self._mem(0x01, 1 if mode == 1 else 0)

    def enable_id_model(self, on: bool) -> None:
        self._mem(0x02, 1 if on else 0)

    def single_shot(self) -> None:
        self._mem(0x03, 0)

    def label_next_id(self) -> None:
        self._mem(0x04, 0)

    def persist_ids(self, on: bool) -> None:
        self._mem(0x05, 1 if on else 0)

    def erase_ids(self) -> None:
        self._mem(0x06, 0)

    def enable_debug(self, on: bool) -> None:
        self._mem(0x07, 1 if on else 0)

    def read(self) -> Decoded:
        return decode_vendor_python(self.bus.read(SENSOR_ADDRESS, NATIVE_SIZE))


class MicroPythonWriteto(Client):
    """Another MicroPython library: `writeto(0x62, bytes([register, value]))` per
    setter, trigger registers written with 0, IDs 0-7 checked first; reads 40."""

    name = "MicroPython library (writeto)"
    reads = "40"

    def _write(self, register: int, value: int) -> None:
        self.bus.write(SENSOR_ADDRESS, bytes([register, value]))

    def set_mode(self, mode: int) -> None:
        self._write(0x01, mode)

    def trigger_single_shot(self) -> None:
        self._write(0x03, 0)

    def label_next_id(self, id_: int) -> None:
        if not 0 <= id_ < 8:
            raise ValueError("id must be between 0 and 7")
        self._write(0x04, id_)

    # (its other setters are 2-byte writes of the same shape: register, 0 or 1)

    def read(self) -> Decoded:
        return decode_vendor_python(self.bus.read(SENSOR_ADDRESS, NATIVE_SIZE))


class AdafruitBusDevice:
    """What adafruit_bus_device's I2CDevice does on the wire: at creation it probes the
    address with an empty write (and only if that fails, a 1-byte read)."""

    def __init__(self, bus: VirtualI2C, address: int) -> None:
        self.bus, self.address = bus, address
        try:
            bus.write(address, b"")
        except OSError:
            bus.read(address, 1)

    def write(self, data: bytes) -> None:
        self.bus.write(self.address, data)

    def readinto(self, buf: bytearray) -> None:
        buf[:] = self.bus.read(self.address, len(buf))


class CircuitPythonBusDevice2(MicroPythonWriteto):
    """A CircuitPython library on adafruit_bus_device: 2-byte writes, 40-byte reads."""

    name = "CircuitPython library (bus device, 2-byte writes)"

    def __init__(self, bus: VirtualI2C) -> None:
        super().__init__(bus)
        self.device = AdafruitBusDevice(bus, SENSOR_ADDRESS)

    def _write(self, register: int, value: int) -> None:
        self.device.write(bytes([register, value]))


class CircuitPythonBusDevice3(Client):
    """A CircuitPython library on adafruit_bus_device that writes each setting as 3
    bytes (register, value high byte, value low byte) and its single capture as the one
    byte 0x03; it decodes all four slots whatever num_faces says."""

    name = "CircuitPython library (bus device, 3-byte writes)"
    reads = "40"

    def __init__(self, bus: VirtualI2C) -> None:
        super().__init__(bus)
        self.device = AdafruitBusDevice(bus, SENSOR_ADDRESS)

    def _write_register(self, register: int, value: int) -> None:
        self.device.write(bytes([register, (value >> 8) & 0xFF, value & 0xFF]))

    def setStandbyMode(self) -> None:
        self._write_register(0x01, 0)

    def setContinuousMode(self) -> None:
        self._write_register(0x01, 1)

    def setIdModelEnabled(self, on: bool) -> None:
        self._write_register(0x02, int(on))

    def setDebugMode(self, on: bool) -> None:
        self._write_register(0x07, int(on))

    def setPersistentIds(self, on: bool) -> None:
        self._write_register(0x05, int(on))

    def setEraseSavedIds(self, on: bool) -> None:
        self._write_register(0x06, int(on))

    def singleCapture(self) -> None:
        self.device.write(bytes([0x03]))

    def calibrate(self, id_: int) -> None:
        self._write_register(0x04, id_)

    def read(self) -> Decoded:
        buf = bytearray(NATIVE_SIZE)
        self.device.readinto(buf)
        return decode_all_slots_python(bytes(buf))


class SMBusBlockRead(Client):
    """Not a published client, a plausible one: i2c-tools / smbus `read_i2c_block_data
    (0x62, 0, 32)`, a register byte 0 then at most 32 bytes (three faces, no checksum)."""

    name = "SMBus block read (plausible)"
    reads = "W 1 (0x00), 32"

    def read(self) -> Decoded:
        self.bus.write(SENSOR_ADDRESS, b"\x00")
        buf = self.bus.read(SENSOR_ADDRESS, 32) + bytes(7)
        d = decode_c_packed(buf)
        return Decoded(d.num_faces, d.faces[:3], None)


READERS: list[type[Client]] = [
    VendorPiPython, VendorCircuitPython, VendorMicrobit, VendorPicoC, ParticleDriver,
    VendorArduino, ESPHome, MicroPythonWritetoMem, MicroPythonWriteto,
    CircuitPythonBusDevice2, CircuitPythonBusDevice3, SMBusBlockRead,
]


# -- checking a client's view against the sensor's own result --------------------------


def as_fields(face: PersonFace) -> tuple[int, ...]:
    return (face.confidence, *face.box, face.id_confidence, face.id, int(face.is_facing))


def check(client: Client, got: Decoded, record: bytes) -> None:
    """`got` is what `client` decoded from `record`: faces, IDs and checksum as the
    sensor's own result says, within what the client's layout can see."""
    result = unpack_record(record)  # the sensor's result as it put it on the wire
    expected = [as_fields(f) for f in result.faces]
    assert got.num_faces == result.num_faces, client.name
    if isinstance(client, CircuitPythonBusDevice3):
        assert list(got.faces[:got.num_faces]) == expected
        assert all(f == (0,) * 8 for f in got.faces[got.num_faces:])  # unused slots zero
    elif isinstance(client, SMBusBlockRead):
        assert list(got.faces) == expected[:3]
    else:
        assert list(got.faces) == expected, client.name
    crc = crc16_ccitt_false(record[:37])
    if got.checksum is None:
        return
    if isinstance(client, VendorPiPython | MicroPythonWritetoMem | MicroPythonWriteto):
        # the native decoders take their "checksum" at 5 + 8 * num_faces: the real one
        # with four faces, else the first bytes of an unused (zero) slot (documented)
        assert got.checksum == (crc if result.num_faces == 4 else 0), client.name
    else:
        assert got.checksum == crc == int.from_bytes(record[37:], "little"), client.name


# -- fixtures ---------------------------------------------------------------------------


class Rig:
    """A hub, a device model and a virtual bus on a unix socket."""

    def __init__(self, control, tmp: Path) -> None:
        self.hub = Hub()
        self.control = control
        self.device = PersonSensorDevice(control)
        self.detach = self.device.attach(self.hub)
        self.server = VirtualBusServer(self.hub, f"unix:{tmp / 'bus.sock'}")
        self.address = str(self.server.start())
        self.buses: list[VirtualI2C] = []

    def bus(self) -> VirtualI2C:
        bus = VirtualI2C(self.address)
        self.buses.append(bus)
        return bus

    def close(self) -> None:
        for bus in self.buses:
            bus.close()
        self.server.stop()
        self.detach()


@pytest.fixture()
def rig(tmp_path):
    r = Rig(RecordingControl(), tmp_path)
    yield r
    r.close()


FOUR = (PersonFace((10, 20, 120, 150), 96, True, 3, 88),
        PersonFace((130, 30, 200, 110), 91, False, -1, 0),
        PersonFace((200, 40, 250, 90), 72, True, 7, 41),
        PersonFace((5, 200, 40, 240), 64, False, 0, 99))


# -- reads ------------------------------------------------------------------------------


@pytest.mark.parametrize("client_type", READERS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("count", [0, 1, 3, 4])
def test_each_client_reads_the_sensors_result(rig: Rig, client_type, count: int) -> None:
    rig.hub.publish(PersonResult(1.0, FOUR[:count]))
    client = client_type(rig.bus())
    for _ in range(3):  # and again: nothing left over from the read before
        check(client, client.read(), rig.hub.snapshot().record)


@pytest.mark.parametrize("client_type", READERS, ids=lambda c: c.__name__)
def test_reads_that_span_new_frames_are_never_mixed(rig: Rig, client_type) -> None:
    """The sensor publishes a different result between every transaction the client
    makes (between the Arduino's two chunks, between ESPHome's write and read): each
    read still decodes to one whole record, the one current when its read began."""
    results = [PersonResult(float(i), FOUR[: 1 + i % 4][::-1 if i % 2 else 1])
               for i in range(8)]
    bus = rig.bus()
    client = client_type(bus)
    original = bus._transact
    began: list[tuple[int, bytes]] = []  # (op, the record current as it began)

    def transact_then_publish(request: Request) -> bytes:
        began.append((request.op, rig.hub.snapshot().record))
        try:
            return original(request)
        finally:
            rig.hub.publish(results[len(began) % len(results)])

    bus._transact = transact_then_publish
    for _ in range(6):
        start = len(began)
        got = client.read()
        record = next(rec for op, rec in began[start:] if op == ord("R"))
        check(client, got, record)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.builds(
    PersonFace,
    box=st.tuples(st.integers(0, 100), st.integers(0, 100), st.integers(100, 255),
                  st.integers(100, 255)),
    confidence=st.integers(0, 100), is_facing=st.booleans(),
    id=st.integers(-1, 7), id_confidence=st.integers(0, 100),
).map(lambda f: f if f.id >= 0 else PersonFace(f.box, f.confidence, f.is_facing)),
    max_size=6))
def test_every_client_decodes_any_result(rig: Rig, faces: list[PersonFace]) -> None:
    rig.hub.publish(PersonResult(1.0, tuple(faces)))
    record = rig.hub.snapshot().record
    for client_type in READERS:
        client = client_type(rig.bus())
        check(client, client.read(), record)
        client.bus.close()
        rig.buses.remove(client.bus)


# -- writes -----------------------------------------------------------------------------


def test_two_byte_setters_of_both_micropython_libraries(rig: Rig) -> None:
    a = MicroPythonWritetoMem(rig.bus())  # scans first: the empty-write probe is ACKed
    a.enable_id_model(True)
    a.label_next_id()
    a.persist_ids(False)
    a.enable_debug(False)
    a.set_mode(0)
    a.single_shot()
    a.erase_ids()
    b = MicroPythonWriteto(rig.bus())
    b.set_mode(1)
    b.label_next_id(6)
    with pytest.raises(OSError) as refused:
        b.trigger_single_shot()  # continuous again: the SEN21231 runs single shots only in standby
    assert refused.value.errno == errno.EREMOTEIO
    assert rig.control.calls == [
        ("set_identification", True), ("calibrate", 0), ("set_persist", False),
        ("set_debug", False), ("set_continuous", False), ("single_shot", None),
        ("erase_ids", None), ("set_continuous", True), ("calibrate", 6)]


def test_three_byte_setters_and_one_byte_single_capture(rig: Rig) -> None:
    """The adafruit_bus_device library with 3-byte writes: every setter is applied (not
    OSError 121), and its 1-byte single capture runs a single shot in standby and is
    refused, not silently ignored, in continuous mode."""
    c = CircuitPythonBusDevice3(rig.bus())
    c.setIdModelEnabled(True)
    c.calibrate(5)
    c.setPersistentIds(False)
    c.setDebugMode(False)
    with pytest.raises(OSError) as refused:
        c.singleCapture()  # continuous mode
    assert refused.value.errno == errno.EREMOTEIO
    c.setStandbyMode()
    c.singleCapture()
    c.setEraseSavedIds(True)
    c.setContinuousMode()
    assert rig.control.calls == [
        ("set_identification", True), ("calibrate", 5), ("set_persist", False),
        ("set_debug", False), ("set_continuous", False), ("single_shot", None),
        ("erase_ids", None), ("set_continuous", True)]
    assert rig.device.state == DeviceState(enable_id=True, persist_ids=False,
                                           debug_mode=False)


def test_two_byte_bus_device_library_and_probes(rig: Rig) -> None:
    c = CircuitPythonBusDevice2(rig.bus())
    c.set_mode(0)
    c.trigger_single_shot()
    c.set_mode(1)
    assert rig.control.calls == [("set_continuous", False), ("single_shot", None),
                                 ("set_continuous", True)]
    assert rig.bus().scan() == [SENSOR_ADDRESS]  # only 0x62 answers an empty write


# -- the real sensor loop ---------------------------------------------------------------


GROUP = "faces/dlib_training/2007_007763.jpg"
"""Seven faces: the record carries the four largest, so slot 3 and the checksum fall in
the Arduino's second chunk."""


@pytest.mark.slow
def test_clients_against_the_real_sensor_loop(tmp_path, data_dir, model_store) -> None:
    """The real detector and face IDs on a photograph, served on the real virtual bus:
    the 3-byte-writing library turns identification on and calibrates ID 3, then every
    client reads the sensor's own result, four faces, ID 3 included."""
    pytest.importorskip("dlib", reason="face IDs need the id extra (dlib-bin)")
    from mlsensors.person.id_stage import IdentityStage, IdOptions
    from mlsensors.person.sensor import PersonSensor, SensorOptions
    from mlsensors.sources import open_source

    identity = IdentityStage(IdOptions(gallery=tmp_path / "g.bin", in_process=True),
                             store=model_store)
    sensor = PersonSensor(open_source(data_dir / GROUP, loop=True), SensorOptions(max_fps=8),
                          identity=identity)
    r = Rig(sensor, tmp_path)
    r.device.reset()
    stop = threading.Event()
    loop = threading.Thread(target=sensor.run, args=(r.hub, stop), daemon=True)
    loop.start()
    try:
        def wait(test: Callable[[PersonResult], bool], what: str) -> None:
            deadline = time.monotonic() + 60
            while not test(r.hub.snapshot().result):
                assert time.monotonic() < deadline, f"no {what}: {r.hub.snapshot().result}"
                time.sleep(0.05)

        wait(lambda res: res.num_faces == 4, "four faces")
        writer = CircuitPythonBusDevice3(r.bus())
        writer.setIdModelEnabled(True)
        writer.calibrate(3)
        wait(lambda res: res.faces and res.faces[0].id == 3, "ID 3 on the largest face")
        for client_type in READERS:
            client = client_type(r.bus())
            for _ in range(20):
                before = r.hub.snapshot().record
                got = client.read()
                if r.hub.snapshot().record != before:
                    continue  # the result changed during the read: compare the next one
                check(client, got, before)
                assert got.num_faces == 4 and got.faces[0][6] == 3, client.name
                break
            else:
                pytest.fail(f"{client.name}: the result never held still for one read")
    finally:
        stop.set()
        loop.join(10)
        r.close()
        sensor.close()


# -- the documentation ------------------------------------------------------------------


def test_wire_doc_has_a_row_per_client() -> None:
    text = WIRE_DOC.read_text()
    table = text[text.index("### Known clients"):]
    for client_type in READERS:
        row = next((line for line in table.splitlines()
                    if line.startswith(f"| {client_type.name} |")), None)
        assert row is not None, f"docs/wire.md has no row for {client_type.name}"
        assert client_type.reads in row, row
    assert "first 32 bytes" not in text and "only the first" not in text
