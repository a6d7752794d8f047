"""The MQTT bridge against a real Mosquitto broker on a free loopback port.

Each test starts its own broker (no persistence, so a restart forgets retained messages
and the bridge has to republish them) and watches it with an independent paho client.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from conftest import ROOT, require_tool

from mlsensors.hub import Hub, RegisterWrite, SensorStatus
from mlsensors.transports import commands
from mlsensors.transports.mqtt import MqttBridge, MqttSettings
from mlsensors.types import PersonFace, PersonResult

mqtt = pytest.importorskip("paho.mqtt.client")

TIMEOUT = 8.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """A Mosquitto process with a generated config; `restart` keeps the port."""

    def __init__(self, folder: Path, port: int | None = None, passwords: Path | None = None):
        path = Path("/usr/sbin/mosquitto")
        self.exe = str(path) if path.exists() else require_tool("mosquitto")
        self.port = port or free_port()
        self.config = folder / "mosquitto.conf"
        lines = [f"listener {self.port} 127.0.0.1", "persistence false",
                 "log_dest stderr", "log_type error"]
        if os.geteuid() == 0:
            lines.append("user root")  # else it drops to a user that cannot read tmp_path
        if passwords is not None:
            lines += ["allow_anonymous false", f"password_file {passwords}"]
        else:
            lines.append("allow_anonymous true")
        self.config.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen | None = None

    def start(self) -> Broker:
        self.proc = subprocess.Popen([self.exe, "-c", str(self.config)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.proc.stderr.read().decode()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start listening")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=5)
        self.proc = None


class Watcher:
    """An independent MQTT client that records every message it sees."""

    def __init__(self, port: int, topics=("homeassistant/#", "mlsensors/#")):
        self.messages: list = []
        self.cond = threading.Condition()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                                  client_id=f"watch-{time.monotonic_ns()}")
        self.client.reconnect_delay_set(0.1, 0.5)
        self.subscribed = threading.Event()
        self.client.on_connect = lambda c, *a: c.subscribe([(t, 1) for t in topics])
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect_async("127.0.0.1", port)
        self.client.loop_start()
        self.subscribed.wait(5)

    def _on_message(self, client, userdata, msg) -> None:
        with self.cond:
            self.messages.append(msg)
            self.cond.notify_all()

    def wait(self, topic: str, pred=lambda m: True, timeout: float = TIMEOUT, after: int = 0):
        """The first message on `topic` (from index `after`) satisfying `pred`."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for m in self.messages[after:]:
                    if m.topic == topic and pred(m):
                        return m
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = sorted({m.topic for m in self.messages})
                    raise AssertionError(f"no matching message on {topic}; saw {seen}")
                self.cond.wait(left)

    def mark(self) -> int:
        with self.cond:
            return len(self.messages)

    def on(self, topic: str, after: int = 0) -> list:
        with self.cond:
            return [m for m in self.messages[after:] if m.topic == topic]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def retained(port: int, topic_filter: str, settle: float = 0.5) -> dict[str, bytes]:
    """What a newcomer gets on subscribing: the broker's retained messages."""
    w = Watcher(port, (topic_filter,))
    time.sleep(settle)
    w.close()
    return {m.topic: m.payload for m in w.messages if m.retain}


def state(m) -> dict:
    return json.loads(m.payload)


def face(box=(60, 60, 180, 200), facing=True, id_=-1) -> PersonFace:
    return PersonFace(box, 95, facing, id_, 90 if id_ >= 0 else 0)


def result(*faces: PersonFace) -> PersonResult:
    return PersonResult(time.time(), tuple(faces), 1)


def settings(port: int, node: str = "livingroom", **kw) -> MqttSettings:
    kw.setdefault("reconnect_min", 0.1)
    kw.setdefault("reconnect_max", 0.5)
    return MqttSettings("127.0.0.1", node, port=port, **kw)


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path).start()
    yield b
    b.stop()


@pytest.fixture
def watcher(broker):
    w = Watcher(broker.port)
    yield w
    w.close()


def running_hub() -> Hub:
    hub = Hub()
    hub.set_status(SensorStatus("running", fps=7.0, frames=1))
    return hub


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_discovery_availability_and_state_changes(broker, watcher, protocol):
    hub = running_hub()
    with MqttBridge(hub, settings(broker.port, protocol=protocol)):
        online = watcher.wait("mlsensors/livingroom/availability")
        assert online.payload == b"online"
        occ = watcher.wait("homeassistant/binary_sensor/livingroom/occupancy/config")
        config = json.loads(occ.payload)
        assert config["device_class"] == "occupancy"
        assert config["state_topic"] == "mlsensors/livingroom/state"
        assert config["availability_topic"] == "mlsensors/livingroom/availability"
        assert config["device"]["identifiers"] == ["mlsensors_livingroom"]
        for topic in ("homeassistant/sensor/livingroom/faces/config",
                      "homeassistant/binary_sensor/livingroom/facing/config",
                      "homeassistant/sensor/livingroom/fps/config",
                      "homeassistant/binary_sensor/livingroom/fault/config"):
            cfg = json.loads(watcher.wait(topic).payload)
            assert cfg["device"] == config["device"]
        first = watcher.wait("mlsensors/livingroom/state")
        assert state(first)["occupancy"] == "OFF" and not first.retain

        hub.publish(result(face(facing=False)))
        m = watcher.wait("mlsensors/livingroom/state", lambda m: state(m)["faces"] == 1)
        assert state(m)["occupancy"] == "ON" and state(m)["facing"] == "OFF"

        hub.publish(result(face(), face((200, 10, 250, 60), facing=False)))
        m = watcher.wait("mlsensors/livingroom/state", lambda m: state(m)["faces"] == 2)
        assert state(m)["facing"] == "ON"

        # A recognised face creates its ID's presence entity, then the state names it.
        hub.publish(result(face(id_=3)))
        cfg = watcher.wait("homeassistant/binary_sensor/livingroom/person_3/config")
        assert json.loads(cfg.payload)["device_class"] == "presence"
        m = watcher.wait("mlsensors/livingroom/state", lambda m: state(m)["ids"] == [3])
        assert state(m)["occupancy"] == "ON"

        hub.set_status(SensorStatus("fault", detail="camera gone"))
        m = watcher.wait("mlsensors/livingroom/state", lambda m: state(m)["fault"] == "ON")
        assert state(m)["occupancy"] == "OFF" and state(m)["faces"] == 0

    watcher.wait("mlsensors/livingroom/availability", lambda m: m.payload == b"offline")
    kept = retained(broker.port, "#")
    assert kept["mlsensors/livingroom/availability"] == b"offline"
    assert "mlsensors/livingroom/state" not in kept  # nothing stale can claim occupancy
    assert "homeassistant/binary_sensor/livingroom/occupancy/config" in kept
    assert "homeassistant/binary_sensor/livingroom/person_3/config" in kept


def test_unchanged_facts_wait_for_the_heartbeat(broker, watcher):
    hub = running_hub()
    with MqttBridge(hub, settings(broker.port, heartbeat=0.4)):
        watcher.wait("mlsensors/livingroom/state")
        start = watcher.mark()
        for i in range(20):  # same facts every frame: no message per frame
            hub.publish(PersonResult(time.time(), (face(),), i))
            time.sleep(0.05)
        time.sleep(0.5)
        states = watcher.on("mlsensors/livingroom/state", start)
    assert 2 <= len(states) <= 6, len(states)  # one change, then heartbeats (and a resend)
    assert all(state(m)["faces"] == 1 for m in states[1:])


def test_last_will_marks_a_killed_sensor_offline(broker, watcher, tmp_path):
    script = tmp_path / "sensor.py"
    script.write_text(textwrap.dedent(f"""
        import time
        from mlsensors.hub import Hub, SensorStatus
        from mlsensors.transports.mqtt import MqttBridge, MqttSettings
        from mlsensors.types import PersonFace, PersonResult
        hub = Hub()
        hub.set_status(SensorStatus("running"))
        MqttBridge(hub, MqttSettings("127.0.0.1", "hall", port={broker.port})).start()
        hub.publish(PersonResult(time.time(), (PersonFace((1, 2, 30, 40), 90, True),)))
        time.sleep(60)
    """))
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.Popen([sys.executable, str(script)], env=env)
    try:
        watcher.wait("mlsensors/hall/state", lambda m: state(m)["occupancy"] == "ON")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    watcher.wait("mlsensors/hall/availability", lambda m: m.payload == b"offline")
    kept = retained(broker.port, "mlsensors/#")
    assert kept == {"mlsensors/hall/availability": b"offline"}


def test_broker_restart_mid_run_republishes_everything(broker, watcher):
    hub = running_hub()
    with MqttBridge(hub, settings(broker.port)) as bridge:
        watcher.wait("mlsensors/livingroom/state")
        hub.publish(result(face(id_=2)))
        watcher.wait("mlsensors/livingroom/state", lambda m: state(m)["ids"] == [2])

        broker.stop()
        for i in range(5):  # the sensor keeps sensing while the broker is away
            hub.publish(PersonResult(time.time(), (face(), face((0, 0, 40, 40))), i))
            time.sleep(0.05)
        assert not bridge.connected
        mark = watcher.mark()
        broker.start()

        watcher.wait("mlsensors/livingroom/availability", lambda m: m.payload == b"online",
                     after=mark)
        watcher.wait("homeassistant/binary_sensor/livingroom/occupancy/config", after=mark)
        watcher.wait("homeassistant/binary_sensor/livingroom/person_2/config", after=mark)
        m = watcher.wait("mlsensors/livingroom/state", after=mark)
        assert state(m)["faces"] == 2  # the current state, not the one before the outage
        assert bridge.connections == 2
    kept = retained(broker.port, "#")
    assert "homeassistant/binary_sensor/livingroom/person_2/config" in kept


def test_broker_down_at_start_connects_when_it_appears(tmp_path):
    broker = Broker(tmp_path)
    hub = running_hub()
    hub.publish(result(face()))
    with MqttBridge(hub, settings(broker.port)) as bridge:
        time.sleep(0.4)
        assert not bridge.connected
        broker.start()
        try:
            w = Watcher(broker.port)
            m = w.wait("mlsensors/livingroom/state")
            assert state(m)["occupancy"] == "ON"
            w.close()
        finally:
            broker.stop()


class Recorder:
    """Stands in for the sensing side's controller: records the writes it is sent."""

    def __init__(self):
        self.writes: list[RegisterWrite] = []

    def __call__(self, write: RegisterWrite) -> None:
        self.writes.append(write)


def send(port: int, topic: str, payload: bytes | str, retain: bool = False) -> None:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"send-{time.monotonic_ns()}")
    c.connect("127.0.0.1", port)
    c.loop_start()
    c.publish(topic, payload, qos=1, retain=retain).wait_for_publish(3)
    c.disconnect()
    c.loop_stop()


def reply(watcher, mark: int) -> dict:
    return json.loads(watcher.wait("mlsensors/livingroom/set/result", after=mark).payload)


def test_control_is_off_by_default(broker, watcher):
    hub = running_hub()
    recorder = Recorder()
    hub.set_controller(recorder)
    with MqttBridge(hub, settings(broker.port)):
        watcher.wait("mlsensors/livingroom/state")
        kept = retained(broker.port, "homeassistant/#")
        assert not any("/button/" in t or "/select/" in t for t in kept)
        send(broker.port, "mlsensors/livingroom/set/erase", "ERASE")
        time.sleep(0.5)
    assert recorder.writes == []
    assert watcher.on("mlsensors/livingroom/set/result") == []


def test_control_commands_and_bad_messages(broker, watcher, caplog):
    caplog.set_level(logging.WARNING, "mlsensors.transports.mqtt")
    hub = running_hub()
    recorder = Recorder()
    hub.set_controller(recorder)
    port = broker.port
    with MqttBridge(hub, settings(port, control=True)):
        erase_cfg = json.loads(
            watcher.wait("homeassistant/button/livingroom/erase_ids/config").payload)
        assert erase_cfg["command_topic"] == "mlsensors/livingroom/set/erase"
        watcher.wait("homeassistant/button/livingroom/calibrate_7/config")

        mark = watcher.mark()
        send(port, "mlsensors/livingroom/set/calibrate", "3")
        assert reply(watcher, mark) == {"topic": "mlsensors/livingroom/set/calibrate",
                                        "ok": True, "register": 4, "value": 3}
        watcher.wait("homeassistant/binary_sensor/livingroom/person_3/config", after=mark)

        bad = [("calibrate", b"9"), ("calibrate", b"three"), ("calibrate", b"\xff\xfe"),
               ("calibrate", b"1" * 100), ("mode", b"turbo"), ("enable_id", b"maybe"),
               ("erase", b"yes"), ("reboot", b"now")]
        for name, payload in bad:
            mark = watcher.mark()
            send(port, f"mlsensors/livingroom/set/{name}", payload)
            answer = reply(watcher, mark)
            assert answer["ok"] is False and answer["error"], (name, payload)
        mark = watcher.mark()
        send(port, "mlsensors/livingroom/set/mode", "standby")
        assert reply(watcher, mark)["ok"]
        mark = watcher.mark()
        send(port, "mlsensors/livingroom/set/erase", "ERASE")
        assert reply(watcher, mark)["ok"]
        removal = watcher.wait("homeassistant/binary_sensor/livingroom/person_3/config",
                               after=mark)
        assert removal.payload == b""

        # Still working after the garbage.
        hub.publish(result(face()))
        watcher.wait("mlsensors/livingroom/state", lambda m: state(m)["faces"] == 1)

    expected = [commands.calibrate(3), RegisterWrite(commands.REG_MODE, 0), commands.erase()]
    assert recorder.writes == expected
    assert "person_3" not in str(retained(port, "homeassistant/#"))

    # A command left retained in the broker must not run again at every (re)connection.
    send(port, "mlsensors/livingroom/set/erase", "ERASE", retain=True)
    mark = watcher.mark()
    with MqttBridge(hub, settings(port, control=True)):
        assert "retained" in reply(watcher, mark)["error"]
    send(port, "mlsensors/livingroom/set/erase", "", retain=True)
    assert recorder.writes == expected
    assert any("refused" in r.getMessage() for r in caplog.records)


def test_commands_without_a_listening_sensor_are_answered(broker, watcher):
    hub = running_hub()  # no controller registered
    with MqttBridge(hub, settings(broker.port, control=True)):
        watcher.wait("mlsensors/livingroom/state")
        mark = watcher.mark()
        send(broker.port, "mlsensors/livingroom/set/calibrate", "1")
        answer = reply(watcher, mark)
    assert answer["ok"] is False and "not accepting commands" in answer["error"]


def test_erase_after_restart_removes_ids_from_an_earlier_run(broker, watcher):
    hub = running_hub()
    hub.set_controller(Recorder())
    with MqttBridge(hub, settings(broker.port, control=True)):
        watcher.wait("mlsensors/livingroom/state")
        send(broker.port, "mlsensors/livingroom/set/calibrate", "5")
        watcher.wait("homeassistant/binary_sensor/livingroom/person_5/config")
    with MqttBridge(hub, settings(broker.port, control=True)) as second:
        deadline = time.monotonic() + TIMEOUT
        while 5 not in second._ids.known and time.monotonic() < deadline:
            time.sleep(0.05)
        mark = watcher.mark()
        send(broker.port, "mlsensors/livingroom/set/erase", "ERASE")
        m = watcher.wait("homeassistant/binary_sensor/livingroom/person_5/config", after=mark)
        assert m.payload == b""


def test_ids_learnt_and_erased_through_another_transport_follow(broker, watcher):
    """CALIBRATE_ID and ERASE_IDS written over I2C (here: straight into the hub, as every
    transport does) create and remove the per-ID entities, even with MQTT control off."""
    hub = running_hub()
    hub.set_controller(Recorder())
    with MqttBridge(hub, settings(broker.port)):
        watcher.wait("mlsensors/livingroom/state")
        mark = watcher.mark()
        hub.command(commands.calibrate(2))
        m = watcher.wait("homeassistant/binary_sensor/livingroom/person_2/config", after=mark)
        assert m.payload != b""
        mark = watcher.mark()
        hub.command(commands.erase())
        m = watcher.wait("homeassistant/binary_sensor/livingroom/person_2/config", after=mark)
        assert m.payload == b"", "erased IDs leave Home Assistant"


def test_fleet_two_sensors_one_broker(broker, watcher):
    kitchen, hall = running_hub(), running_hub()
    with MqttBridge(kitchen, settings(broker.port, "kitchen")), \
            MqttBridge(hall, settings(broker.port, "hall")) as hall_bridge:
        watcher.wait("mlsensors/kitchen/state")
        watcher.wait("mlsensors/hall/state")
        kitchen.publish(result(face()))
        watcher.wait("mlsensors/kitchen/state", lambda m: state(m)["occupancy"] == "ON")
        time.sleep(0.3)
        assert all(state(m)["occupancy"] == "OFF" for m in watcher.on("mlsensors/hall/state"))
        kept = retained(broker.port, "homeassistant/#")
        k = json.loads(kept["homeassistant/binary_sensor/kitchen/occupancy/config"])
        h = json.loads(kept["homeassistant/binary_sensor/hall/occupancy/config"])
        assert k["unique_id"] != h["unique_id"]
        assert k["device"]["identifiers"] != h["device"]["identifiers"]
        assert h["state_topic"] == "mlsensors/hall/state"
        hall_bridge.stop()
        watcher.wait("mlsensors/hall/availability", lambda m: m.payload == b"offline")
        kept = retained(broker.port, "mlsensors/#")
        assert kept["mlsensors/kitchen/availability"] == b"online"


def test_username_and_password(tmp_path, caplog):
    passwords = tmp_path / "passwd"
    subprocess.run([require_tool("mosquitto_passwd"), "-c", "-b", str(passwords),
                    "sensor", "s3cret"], check=True, capture_output=True)
    passwords.chmod(0o600)
    broker = Broker(tmp_path, passwords=passwords).start()
    try:
        hub = running_hub()
        caplog.set_level(logging.ERROR, "mlsensors.transports.mqtt")
        with MqttBridge(hub, settings(broker.port, "wrong", username="sensor",
                                      password="nope")) as wrong:
            time.sleep(0.6)
            assert not wrong.connected
        assert any("refused" in r.getMessage() for r in caplog.records)
        with MqttBridge(hub, settings(broker.port, username="sensor",
                                      password="s3cret")) as right:
            deadline = time.monotonic() + TIMEOUT
            while not right.connected and time.monotonic() < deadline:
                time.sleep(0.05)
            assert right.connected
    finally:
        broker.stop()


class LaggingSensor:
    """The sensing side as `serve` has it: the erase reaches the sensing process a few
    frames after the hub accepted it, so results still carry the erased ID meanwhile."""

    def __init__(self, hub: Hub, slot: int, stale_frames: int = 15) -> None:
        self.hub, self.slot, self.stale_frames = hub, slot, stale_frames
        self.erased_at: int | None = None
        self.frames = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __call__(self, write: RegisterWrite) -> None:
        if write == commands.erase():
            self.erased_at = self.frames

    @property
    def forgotten(self) -> bool:
        return self.erased_at is not None and self.frames > self.erased_at + self.stale_frames

    def _run(self) -> None:
        while not self.stop.wait(0.02):
            self.frames += 1
            who = -1 if self.forgotten else self.slot
            self.hub.publish(PersonResult(time.time(), (face(id_=who),), self.frames))


def test_erase_while_in_view_is_not_undone_by_stale_results(broker, watcher):
    """Erase IDs pressed while the person is in view: the empty config goes out, and
    the results that still carry the ID for a few frames must not publish it again (it
    would be retained and survive restarts)."""
    hub = running_hub()
    sensor = LaggingSensor(hub, 5)
    hub.set_controller(sensor)
    sensor.thread.start()
    config = "homeassistant/binary_sensor/livingroom/person_5/config"
    try:
        with MqttBridge(hub, settings(broker.port, control=True)):
            watcher.wait(config, lambda m: m.payload != b"")
            mark = watcher.mark()
            send(broker.port, "mlsensors/livingroom/set/erase", "ERASE")
            watcher.wait(config, lambda m: m.payload == b"", after=mark)
            deadline = time.monotonic() + TIMEOUT
            while not sensor.forgotten and time.monotonic() < deadline:
                time.sleep(0.02)
            assert sensor.forgotten
            # the stale frames and a few fresh ones have been through the bridge
            watcher.wait("mlsensors/livingroom/state", lambda m: state(m)["ids"] == [],
                         after=mark)
            assert config not in retained(broker.port, "homeassistant/#")
            assert [m.payload for m in watcher.on(config, mark)] == [b""]
        # The bridge restarts with the person still in view, unrecognised now.
        mark = watcher.mark()
        with MqttBridge(hub, settings(broker.port, control=True)):
            watcher.wait("mlsensors/livingroom/availability", lambda m: m.payload == b"online",
                         after=mark)
            watcher.wait("mlsensors/livingroom/state", lambda m: state(m)["faces"] == 1,
                         after=mark)
            assert config not in retained(broker.port, "homeassistant/#")
        assert config not in retained(broker.port, "homeassistant/#")
    finally:
        sensor.stop.set()
        sensor.thread.join(5)


def test_a_calibration_after_an_erase_brings_the_entity_back(broker, watcher):
    hub = running_hub()
    hub.set_controller(Recorder())
    config = "homeassistant/binary_sensor/livingroom/person_4/config"
    with MqttBridge(hub, settings(broker.port, control=True)):
        watcher.wait("mlsensors/livingroom/state")
        hub.publish(result(face(id_=4)))
        watcher.wait(config, lambda m: m.payload != b"")
        mark = watcher.mark()
        hub.command(commands.erase())
        watcher.wait(config, lambda m: m.payload == b"", after=mark)
        hub.publish(result(face(id_=4)))  # a stale frame: no entity
        mark = watcher.mark()
        hub.command(commands.calibrate(4))
        watcher.wait(config, lambda m: m.payload != b"", after=mark)
    assert config in retained(broker.port, "homeassistant/#")
