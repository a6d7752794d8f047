"""`mlsensors serve --voice`: the sealed voice sensor on the shared spine, the look-and-
speak gate, and the voice transports (bus register, MQTT/Home Assistant, GPIO, page).

The end-to-end tests run the real CLI with a real person source (a photo with a face
facing the camera, or one with no face) and real Speech Commands clips, paced as speech.
"""

from __future__ import annotations

import itertools
import json
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from mlsensors.errors import InputError, ProtocolError
from mlsensors.hub import Hub, RegisterWrite, SensorStatus
from mlsensors.types import PersonFace, PersonResult
from mlsensors.voice.events import VoiceHub
from mlsensors.voice.gate import Gate, default_gate
from mlsensors.voice.record import EventKind, VoiceEvent

FACING = PersonFace((60, 60, 180, 200), 95, True)
AWAY = PersonFace((60, 60, 180, 200), 95, False)


def command(index: int = 0, confidence: int = 90) -> VoiceEvent:
    return VoiceEvent(EventKind.COMMAND, index, confidence, 1, 0)


WAKE = VoiceEvent(EventKind.WAKE, 0, 97, 1, 0)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# -- the gate ------------------------------------------------------------------------

def test_facing_gate_passes_a_command_only_within_a_second_of_a_facing_face():
    person, clock = Hub(), Clock()
    gate = Gate("facing", person, clock=clock)
    assert not gate(command())  # nobody seen yet
    person.publish(PersonResult(1.0, (AWAY,)), SensorStatus("running"))
    assert not gate(command())  # a face, but not facing
    person.publish(PersonResult(2.0, (FACING,)), SensorStatus("running"))
    assert gate(command())
    clock.now += 0.9
    assert gate(command())
    clock.now += 0.2  # 1.1 s after the facing face
    assert not gate(command())
    person.publish(PersonResult(3.0, (FACING,)), SensorStatus("fault"))
    assert not gate(command())  # a faulty sensor's faces do not count


def test_wake_both_and_none_gates():
    person, clock = Hub(), Clock()
    wake, both, none = (Gate(m, person, clock=clock) for m in ("wake", "both", "none"))
    assert none(command())
    assert not wake(command()) and not both(command())
    assert wake(WAKE) and both(WAKE)  # the wake word itself always passes
    assert wake(command())
    assert not both(command())  # woken, but nobody facing
    person.publish(PersonResult(1.0, (FACING,)), SensorStatus("running"))
    assert both(command())
    clock.now += 5.1
    assert not wake(command()) and not both(command())


def test_gate_defaults_and_bad_gates():
    assert default_gate(person=True) == "facing"
    assert default_gate(person=False) == "wake"
    with pytest.raises(InputError, match="needs the person sensor"):
        Gate("facing", None)
    with pytest.raises(InputError, match="one of"):
        Gate("gaze", Hub())


def test_voice_hub_counts_gated_commands_and_publishes_the_rest():
    hub = VoiceHub(("lamp on", "lamp off"), gate=lambda e: e.command == 1)
    seen = []
    hub.subscribe(lambda s: seen.append(s.new))
    hub.publish(command(0))
    hub.publish(command(1, 77))
    snap = hub.snapshot()
    assert (snap.heard, snap.published, snap.gated) == (2, 1, 1)
    assert [e.name for e in snap.events] == ["lamp off"]
    assert seen == [None, snap.events[0]]  # subscribers never see the gated one
    with pytest.raises(ProtocolError):
        hub.command(None)


# -- the voice register on the bus ------------------------------------------------------

def test_voice_register_record_round_trip_and_checks():
    from mlsensors.voice.register import (
        VOICE_REGISTER_SIZE,
        VoiceRegister,
        pack_voice_register,
        unpack_voice_register,
    )

    r = VoiceRegister(counter=7, kind=1, command=3, confidence=88, enrolled=4, gated=2)
    data = pack_voice_register(r)
    assert len(data) == VOICE_REGISTER_SIZE == 16
    assert unpack_voice_register(data + bytes(24)) == r  # a longer read's zeros
    for i in range(VOICE_REGISTER_SIZE):
        bad = bytearray(data)
        bad[i] ^= 0x01
        with pytest.raises(ProtocolError):
            unpack_voice_register(bytes(bad))


def _bus_read(path: Path, address: int, length: int) -> tuple[int, bytes]:
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(path))
        s.sendall(bytes([address, ord("R")]) + length.to_bytes(2, "big"))
        head = b""
        while len(head) < 3:
            head += s.recv(3 - len(head))
        n = int.from_bytes(head[1:3], "big")
        data = b""
        while len(data) < n:
            data += s.recv(n - len(data))
        return head[0], data


def test_virtual_bus_serves_the_voice_register_beside_the_person_record(tmp_path):
    from mlsensors.transports.virtual_bus import VirtualBusServer
    from mlsensors.voice.register import unpack_voice_register
    from mlsensors.wire.record import unpack_record

    person = Hub()
    voice = VoiceHub(("lamp on", "lamp off"), gate=lambda e: e.command == 1)
    sock = tmp_path / "bus.sock"
    with VirtualBusServer(person, f"unix:{sock}", voice=voice):
        status, data = _bus_read(sock, 0x63, 16)
        assert status == 0 and unpack_voice_register(data).counter == 0
        voice.publish(command(0))  # gated
        voice.publish(command(1, 77))
        reg = unpack_voice_register(_bus_read(sock, 0x63, 16)[1])
        assert (reg.counter, reg.kind, reg.command, reg.confidence, reg.enrolled,
                reg.gated) == (1, 1, 1, 77, 2, 1)
        status, data = _bus_read(sock, 0x62, 39)
        assert status == 0 and unpack_record(data).faces == ()
        assert _bus_read(sock, 0x64, 1)[0] == 1  # nobody there: address NACK


# -- Home Assistant over MQTT -------------------------------------------------------------

def test_voice_discovery_has_an_event_entity_per_command():
    from mlsensors.transports import ha_discovery as ha
    from mlsensors.transports import ha_voice

    t = ha.Topics(ha_voice.voice_node("kitchen"))
    device = ha.Device(t.node_id, model=ha_voice.MODEL)
    messages = ha_voice.voice_configs(t, device, ("lamp on", "lamp off"), wake_word=False)
    live = {m.topic: json.loads(m.payload) for m in messages if m.payload}
    assert all(m.retain and m.qos == 1 for m in messages)
    events = {k: v for k, v in live.items() if k.startswith("homeassistant/event/")}
    assert sorted(v["event_types"] for v in events.values()) == [["lamp off"], ["lamp on"]]
    for config in live.values():
        assert config["availability_topic"] == "mlsensors/kitchen_voice/availability"
        assert config["device"]["identifiers"] == ["mlsensors_kitchen_voice"]
        assert config["unique_id"].startswith("mlsensors_kitchen_voice_")
    assert len({c["unique_id"] for c in live.values()}) == len(live)
    last = live["homeassistant/sensor/kitchen_voice/last_command/config"]
    assert last["state_topic"] == t.state and "last_command" in last["value_template"]
    # Unused command slots and the absent wake word are deleted, not left retained.
    deleted = [m.topic for m in messages if not m.payload]
    assert "homeassistant/event/kitchen_voice/command_2/config" in deleted
    assert "homeassistant/event/kitchen_voice/wake_word/config" in deleted
    event = ha_voice.event_message(t, VoiceEvent(EventKind.COMMAND, 1, 77, 1, 0, "lamp off"))
    assert not event.retain
    assert json.loads(event.payload) == {"event_type": "lamp off", "confidence": 77}
    assert event.topic == events["homeassistant/event/kitchen_voice/command_1/config"][
        "state_topic"]


def test_voice_events_reach_a_real_broker_and_gated_ones_do_not(tmp_path):
    from test_mqtt import Broker, Watcher, retained

    from mlsensors.transports.mqtt import MqttSettings
    from mlsensors.transports.mqtt_voice import VoiceMqttBridge

    broker = Broker(tmp_path).start()
    try:
        watcher = Watcher(broker.port)
        voice = VoiceHub(("lamp on", "lamp off"), gate=lambda e: e.command == 1)
        settings = MqttSettings("127.0.0.1", "hall", port=broker.port)
        with VoiceMqttBridge(voice, settings):
            watcher.wait("mlsensors/hall_voice/availability", lambda m: m.payload == b"online")
            configs = retained(broker.port, "homeassistant/event/hall_voice/+/config")
            assert {json.loads(p)["event_types"][0] for p in configs.values() if p} == {
                "lamp on", "lamp off"}
            mark = watcher.mark()
            voice.publish(command(0))  # held back by the gate
            voice.publish(command(1, 77))
            m = watcher.wait("mlsensors/hall_voice/command/1", after=mark)
            assert json.loads(m.payload) == {"event_type": "lamp off", "confidence": 77}
            state = watcher.wait("mlsensors/hall_voice/state",
                                 lambda m: json.loads(m.payload)["events"] == 1, after=mark)
            assert json.loads(state.payload)["last_command"] == "lamp off"
            assert json.loads(state.payload)["gated"] == 1
            assert watcher.on("mlsensors/hall_voice/command/0", after=mark) == []
            mark = watcher.mark()  # Home Assistant restarts: the state comes again
            from test_mqtt import send

            send(broker.port, "homeassistant/status", "online")
            again = watcher.wait("mlsensors/hall_voice/state", after=mark)
            assert json.loads(again.payload)["last_command"] == "lamp off"
        watcher.wait("mlsensors/hall_voice/availability", lambda m: m.payload == b"offline")
        watcher.close()
    finally:
        broker.stop()


# -- GPIO: one pin per command -----------------------------------------------------------

def test_command_pins_pulse_the_command_s_pin_only():
    pytest.importorskip("gpiozero", reason="gpiozero is in the 'pi' extra")
    from gpiozero.pins.mock import MockFactory

    from mlsensors.transports.gpio import CommandPins

    factory = MockFactory()
    voice = VoiceHub(("lamp on", "lamp off"), gate=lambda e: e.confidence > 50)
    pins = CommandPins(voice, [5, 6], pulse=0.05, pin_factory=factory)
    pins.start()
    try:
        voice.publish(command(1, 20))  # gated: no pulse
        voice.publish(command(1, 90))
        deadline = time.monotonic() + 10
        while factory.pin(6).state and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [s.state for s in factory.pin(6).states] == [False, True, False]
        assert [s.state for s in factory.pin(5).states] == [False]
    finally:
        pins.stop()
    with pytest.raises(InputError, match="one per command"):
        CommandPins(voice, [5], pin_factory=factory)


# -- the status page -----------------------------------------------------------------------

def test_status_page_lists_events_and_nothing_else(tmp_path):
    from mlsensors.transports.http import StatusPage

    voice = VoiceHub(("lamp on",))
    with StatusPage(Hub(), "127.0.0.1", 0, voice=voice) as page:
        voice.publish(VoiceEvent(EventKind.COMMAND, 0, 91, 1, 0, timestamp=1234.5))
        with urllib.request.urlopen(f"{page.url}/api/state", timeout=10) as r:
            state = json.load(r)
        html = urllib.request.urlopen(page.url, timeout=10).read().decode()
    assert state["voice"]["events"] == [
        {"command": "lamp on", "kind": "command", "confidence": 91, "time": 1234.5}]
    assert state["voice"]["published"] == 1
    assert 'id="voice-events"' in html
    assert not re.search(r"audio|waveform|<canvas[^>]*voice", html, re.IGNORECASE)


# -- the sealed voice process ------------------------------------------------------------

def test_templates_travel_as_blocks_and_the_child_reaches_no_store(tmp_path):
    from mlsensors.privacy.channel import split_commands
    from mlsensors.privacy.child import ChildConfig, launch_spec
    from mlsensors.voice.matcher import CommandSet
    from mlsensors.voice.template_link import TemplateReceiver, template_blocks

    commands = CommandSet()
    rng = np.random.default_rng(0)
    for i in range(16):  # the most a store holds: more than one block's worth
        commands.set(f"word {i}", rng.normal(size=(10, 268)).astype(np.float32))
    data = template_blocks(commands)
    blocks, rest = split_commands(data)
    assert rest == b"" and len(blocks) > 1
    receiver = TemplateReceiver()
    for block in blocks:
        receiver(block)
    assert receiver.commands.names() == commands.names()
    assert np.array_equal(receiver.commands.templates("word 3"), commands.templates("word 3"))
    config = ChildConfig(-1, -1, kind="voice", role="microphone", source="mic",
                         model_dir=str(tmp_path))
    policy = launch_spec(config).policy
    assert policy.role == "microphone" and not policy.write_paths
    assert not any("voice.bin" in p or "share/mlsensors" in p for p in policy.read_paths)
    with pytest.raises(ValueError, match="role"):
        launch_spec(ChildConfig(-1, -1, role="anything"))


def serve(*args: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlsensors", "serve", *args],
                          capture_output=True, text=True, timeout=240, env=env)


def test_voice_without_a_microphone_is_one_line_naming_what_to_pass(tmp_path):
    if Path("/dev/snd").exists():
        pytest.skip("this machine has sound devices")
    out = serve("--no-person", "--voice", "--http", "127.0.0.1:0")
    assert out.returncode == 1, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "no microphone" in lines[0]
    assert "--voice FILE or FOLDER" in lines[0] and "Traceback" not in out.stderr
    out = serve("--no-person", "--http", "127.0.0.1:0")
    assert out.returncode == 1 and "give --voice" in out.stderr


def _enrolled_store(tmp_path: Path, words) -> Path:
    store = tmp_path / "voice.bin"
    out = subprocess.run([sys.executable, "-m", "mlsensors", "voice", "enroll", "--store",
                          str(store), "--command", "yes", *map(str, words["yes"][:5])],
                         capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr
    return store


def _spoken(tmp_path: Path, words, lead_seconds: float) -> Path:
    """A folder heard in order: silence (while the person sensor starts), then three
    other takes of "yes" and one "left"."""
    import soundfile

    folder = tmp_path / "spoken"
    folder.mkdir()
    soundfile.write(folder / "0_silence.wav", np.zeros(int(16000 * lead_seconds), np.int16),
                    16000)
    for i, path in enumerate([*words["yes"][20:23], words["left"][0]]):
        (folder / f"{i + 1}_{path.name}").write_bytes(path.read_bytes())
    return folder


@pytest.fixture(scope="module")
def words(data_dir):
    root = data_dir / "voice" / "speech_commands"
    return {w: sorted((root / w).glob("*.flac")) for w in ("yes", "left")}


SUMMARY = re.compile(r"voice: (\d+) event\(s\) heard, (\d+) published, (\d+) held back "
                     r"by the (\w+) gate")


@pytest.mark.parametrize(("photo", "published"), [
    ("faces/face_recognition_examples/obama.jpg", True),
    ("faces/dlib_training/dogs.jpg", False),
])
def test_look_and_speak_end_to_end(tmp_path, data_dir, model_store, kws_store, words,
                                   photo, published):
    """gate=facing: commands count while the photo's face faces the sensor; with no face
    in view the same clips publish nothing (and are counted as held back)."""
    store = _enrolled_store(tmp_path, words)
    spoken = _spoken(tmp_path, words, lead_seconds=8.0)
    out = serve("--source", str(data_dir / photo), "--loop", "--voice", str(spoken),
                "--voice-store", str(store), "--gate", "facing", "--facing-seconds", "5",
                "--http", "127.0.0.1:0")
    assert out.returncode == 0, out.stderr
    heard, passed, held, gate = SUMMARY.search(out.stderr).groups()
    assert gate == "facing"
    assert int(heard) >= 2, out.stderr  # at least two of the three takes of "yes"
    if published:
        assert int(passed) >= 2 and int(held) <= int(heard) - 2, out.stderr
    else:
        assert int(passed) == 0 and int(held) == int(heard), out.stderr


def test_voice_alone_serves_the_bus_register(tmp_path, kws_store, words):
    """No camera, gate none: the events of the sealed voice process reach the bus."""
    from mlsensors.voice.register import unpack_voice_register

    store = _enrolled_store(tmp_path, words)
    spoken = _spoken(tmp_path, words, lead_seconds=0.5)
    sock = tmp_path / "bus.sock"
    proc = subprocess.Popen([sys.executable, "-m", "mlsensors", "serve", "--no-person",
                             "--voice", str(spoken), "--voice-store", str(store), "--gate",
                             "none", "--bus", f"unix:{sock}", "--duration", "120"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        seen = 0
        deadline = time.monotonic() + 120
        while seen < 2 and time.monotonic() < deadline and proc.poll() is None:
            if sock.exists():
                seen = max(seen, unpack_voice_register(_bus_read(sock, 0x63, 16)[1]).counter)
            time.sleep(0.1)
        assert seen >= 2
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert "sealed: role=microphone" in err, err


def test_the_guard_checks_a_hostile_voice_process(monkeypatch):
    """The real sealed child and guard with the voice kind: a burst passes at most 2
    events a second with the counter still forced; lies are dropped as malformed; what
    is published carries the guard's own count; register writes are refused."""
    from guard_helpers import SRC, TESTS

    from mlsensors.privacy.child import ChildConfig
    from mlsensors.privacy.guard import Guard, GuardTiming
    from mlsensors.voice.kind import VOICE

    monkeypatch.setenv("PYTHONPATH", f"{SRC}:{TESTS}")
    voice = VoiceHub(("lamp on", "lamp off"))
    times = []
    voice.subscribe(lambda s: s.new is not None and times.append(time.monotonic()))
    config = ChildConfig(-1, -1, work="privacy_children:voice_forger",
                         sensor_options=json.dumps({"commands": 2}), memory_bytes=1 << 30)
    guard = Guard(voice, config, max_rate=30.0, kind=VOICE,
                  timing=GuardTiming(startup_timeout=30.0, watchdog=5.0))
    assert guard.max_rate == 2.0  # the kind's cap, whatever the caller asks
    guard.start()
    try:
        deadline = time.monotonic() + 60
        while voice.snapshot().published < 5 and time.monotonic() < deadline:
            time.sleep(0.1)
        with pytest.raises(ProtocolError, match="no register writes"):
            guard.send(RegisterWrite(0x01, 0))
        stats = guard.stats()
    finally:
        guard.stop()
    snap = voice.snapshot()
    assert [e.counter for e in snap.events] == [1, 2, 3, 4, 5]
    assert [e.name for e in snap.events] == ["lamp off"] * 4 + ["lamp on"]
    assert stats.malformed >= 3 and stats.over_rate >= 6
    assert min(b - a for a, b in itertools.pairwise(times)) > 0.4


@pytest.mark.parametrize(("args", "message"), [
    (["--voice", "/no/such/clips"], "--voice /no/such/clips: no such file or folder"),
    (["--voice", "-"], "standard input is not passed"),
    (["--no-person", "--source", "demo", "--voice", "x"], "drop --source"),
    (["--command-pins", "5", "--source", "demo"], "--command-pins needs --voice"),
    (["--no-person", "--voice", "{clips}", "--gate", "facing"], "needs the person sensor"),
    (["--no-person", "--voice", "{clips}", "--gate", "none", "--voice-store", "{store}"],
     "no voice commands are enrolled"),
])
def test_bad_voice_arguments_are_one_line_errors(tmp_path, args, message):
    args = [a.format(clips=tmp_path, store=tmp_path / "none.bin") for a in args]
    out = serve(*args, "--http", "127.0.0.1:0")
    assert out.returncode == 1, out.stderr
    assert out.stderr.count("\n") == 1 and message in out.stderr, out.stderr


def test_the_microphone_role_reaches_capture_devices_only(monkeypatch, tmp_path):
    from mlsensors.privacy import policy
    from mlsensors.privacy.child import ChildConfig, launch_spec

    nodes = ("/dev/snd/controlC0", "/dev/snd/pcmC0D0c", "/dev/snd/pcmC0D0p",
             "/dev/snd/seq", "/dev/snd/timer")
    monkeypatch.setattr(policy.DeviceFamily, "nodes", lambda self: nodes
                        if self.name == "alsa" else ())
    mic = launch_spec(ChildConfig(-1, -1, kind="voice", role="microphone",
                                  source="mic")).policy
    assert set(mic.devices) == {"/dev/snd/controlC0", "/dev/snd/pcmC0D0c"}  # no playback
    assert mic.limits.address_space == 512 << 20
    clip = tmp_path / "clip.flac"
    clip.write_bytes(b"")
    from_file = launch_spec(ChildConfig(-1, -1, kind="voice", role="microphone",
                                        source=str(clip))).policy
    assert from_file.devices == () and str(clip) in from_file.read_paths
    camera = launch_spec(ChildConfig(-1, -1, source=str(clip))).policy
    assert camera.role == "sensing"
    assert not any(p.startswith("/dev/snd") for p in camera.devices)
