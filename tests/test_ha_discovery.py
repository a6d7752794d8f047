"""Home Assistant discovery layout, state and command parsing, without a broker."""

from __future__ import annotations

import argparse
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlsensors.errors import InputError, ProtocolError
from mlsensors.hub import Hub, RegisterWrite, SensorStatus, Snapshot
from mlsensors.transports import commands, mqtt
from mlsensors.transports import ha_discovery as ha
from mlsensors.types import PersonFace, PersonResult
from mlsensors.wire.record import pack_record

T = ha.Topics("kitchen")
DEVICE = ha.Device("kitchen")


def snap(*faces: PersonFace, state: str = "running") -> Snapshot:
    result = PersonResult(1.0, faces)
    return Snapshot(result, pack_record(result), SensorStatus(state, fps=5.0))


def test_topics_follow_the_documented_layout():
    assert T.availability == "mlsensors/kitchen/availability"
    assert T.state == "mlsensors/kitchen/state"
    assert T.command("erase") == "mlsensors/kitchen/set/erase"
    assert T.config("binary_sensor", "occupancy") == \
        "homeassistant/binary_sensor/kitchen/occupancy/config"
    assert T.ha_status == "homeassistant/status"


@pytest.mark.parametrize("bad", ["", "living room", "a/b", "x+", "#", "é", "a" * 65])
def test_node_ids_home_assistant_refuses_are_clear_errors(bad):
    with pytest.raises(InputError, match="node id"):
        ha.Topics(bad)


def test_default_node_id_from_hostname():
    assert ha.node_id_from_hostname("pi-zero.local") == "pi-zero"
    assert ha.node_id_from_hostname("my host!") == "my_host"
    assert ha.node_id_from_hostname("...") == "sensor"


def test_base_configs_share_one_device_and_are_retained():
    messages = ha.base_configs(T, DEVICE, control=False)
    live = [m for m in messages if m.payload]
    assert {m.topic.split("/")[3] for m in live} == {
        "occupancy", "faces", "facing", "fps", "fault", "sensor_state"}
    devices = {json.dumps(json.loads(m.payload)["device"], sort_keys=True) for m in live}
    assert len(devices) == 1
    assert all(m.retain and m.qos == 1 for m in messages)
    occupancy = json.loads(live[0].payload)
    assert occupancy["device_class"] == "occupancy"
    assert occupancy["availability_topic"] == T.availability
    # Control off: the command entities are deleted (empty retained config), not left over.
    removed = [m.topic for m in messages if not m.payload]
    assert "homeassistant/button/kitchen/erase_ids/config" in removed
    with_control = ha.base_configs(T, DEVICE, control=True)
    assert all(m.payload for m in with_control)
    unique_ids = [json.loads(m.payload)["unique_id"] for m in with_control]
    assert len(set(unique_ids)) == len(unique_ids)


def test_state_reports_facts_not_boxes():
    s = ha.state_of(snap(PersonFace((0, 0, 10, 10), 90, False, 4, 70),
                         PersonFace((20, 20, 90, 90), 90, True)))
    assert (s.occupancy, s.faces, s.facing, s.ids, s.mode) == (True, 2, True, (4,), "continuous")
    body = json.loads(s.payload())
    assert body["occupancy"] == "ON" and body["fault"] == "OFF" and "box" not in s.payload()
    fault = ha.state_of(snap(PersonFace((0, 0, 10, 10), 90, True), state="fault"))
    assert (fault.occupancy, fault.faces, fault.fault) == (False, 0, True)
    assert ha.state_of(snap(state="standby")).mode == "standby"


def test_same_facts_ignores_frame_counters():
    a = ha.state_of(snap(PersonFace((0, 0, 10, 10), 90, True)))
    b = ha.HaState(a.occupancy, a.faces, a.facing, a.ids, a.mode, a.state, fps=9.0, frames=99)
    assert a.same_facts(b) and not a.same_facts(None)
    assert not a.same_facts(ha.state_of(snap()))


def test_id_entities_are_created_and_removed():
    config = json.loads(ha.id_config(T, DEVICE, 3).payload)
    assert config["device_class"] == "presence"
    assert "3 in value_json.ids" in config["value_template"]
    assert ha.id_removal(T, 3) == ha.Message(
        "homeassistant/binary_sensor/kitchen/person_3/config", "", retain=True)
    assert ha.id_from_config_topic(T, "homeassistant/binary_sensor/kitchen/person_3/config") == 3
    for other in ("homeassistant/binary_sensor/kitchen/occupancy/config",
                  "homeassistant/binary_sensor/hall/person_3/config",
                  "homeassistant/binary_sensor/kitchen/person_9/config",
                  "homeassistant/binary_sensor/kitchen/person_x/config"):
        assert ha.id_from_config_topic(T, other) is None


def test_id_registry_follows_results_and_forwarded_commands():
    ids = ha.IdRegistry()
    assert ids.observe(ha.state_of(snap(PersonFace((0, 0, 9, 9), 90, True, 2, 80)))) == [2]
    assert ids.observe(ha.state_of(snap(PersonFace((0, 0, 9, 9), 90, True, 2, 80)))) == []
    assert ids.forwarded(commands.calibrate(5)) == ([5], [])
    assert ids.forwarded(commands.calibrate(5)) == ([], [])
    assert ids.forwarded(commands.set_mode("standby")) == ([], [])
    assert ids.forwarded(commands.erase()) == ([], [2, 5])
    assert ids.known == set()
    # After an erase, results still carrying an erased ID (in flight to the sensing
    # process) create nothing; a calibration does.
    assert ids.observe(ha.state_of(snap(PersonFace((0, 0, 9, 9), 90, True, 2, 80)))) == []
    assert ids.forwarded(commands.calibrate(2)) == ([2], [])


@pytest.mark.parametrize(("name", "payload", "write"), [
    ("calibrate", b"0", RegisterWrite(0x04, 0)),
    ("calibrate", b" 7 ", RegisterWrite(0x04, 7)),
    ("mode", b"standby", RegisterWrite(0x01, 0)),
    ("mode", b"Continuous", RegisterWrite(0x01, 1)),
    ("enable_id", b"on", RegisterWrite(0x02, 1)),
    ("enable_id", b"OFF", RegisterWrite(0x02, 0)),
    ("erase", b"ERASE", RegisterWrite(0x06, commands.ERASE_VALUE)),
])
def test_documented_commands(name, payload, write):
    assert ha.parse_command(T, T.command(name), payload, retained=False) == write


@pytest.mark.parametrize(("topic", "payload", "message"), [
    ("mlsensors/kitchen/set/calibrate", b"8", "0-7"),
    ("mlsensors/kitchen/set/calibrate", b"-1", "0-7"),
    ("mlsensors/kitchen/set/calibrate", b"", "integer"),
    ("mlsensors/kitchen/set/calibrate", b"\xd9\xa3", "ASCII"),
    ("mlsensors/kitchen/set/mode", b"1", "mode"),
    ("mlsensors/kitchen/set/erase", b"PRESS", "ERASE"),
    ("mlsensors/kitchen/set/enable_id", b"1", "ON or OFF"),
    ("mlsensors/kitchen/set/single_shot", b"1", "unknown control topic"),
    ("mlsensors/hall/set/erase", b"ERASE", "unknown control topic"),
    ("mlsensors/kitchen/set/erase", b"E" * 33, "at most 32"),
])
def test_bad_commands_are_refused_with_a_reason(topic, payload, message):
    with pytest.raises(ProtocolError, match=message):
        ha.parse_command(T, topic, payload, retained=False)


def test_retained_commands_are_refused():
    with pytest.raises(ProtocolError, match="retained"):
        ha.parse_command(T, T.command("erase"), b"ERASE", retained=True)


@given(st.sampled_from(ha.COMMANDS), st.binary(max_size=40), st.booleans())
def test_any_payload_gives_a_valid_write_or_a_protocol_error(name, payload, retained):
    try:
        write = ha.parse_command(T, T.command(name), payload, retained=retained)
    except ProtocolError as e:
        assert str(e) and "\n" not in str(e)
        return
    assert not retained
    assert (write.register, write.value) in {(0x01, 0), (0x01, 1), (0x02, 0), (0x02, 1),
                                             (0x06, 0), *((0x04, n) for n in range(8))}


@pytest.mark.parametrize(("url", "host", "port", "tls", "protocol"), [
    ("mqtt://broker", "broker", 1883, False, "3.1.1"),
    ("mqtt://10.0.0.2:1884", "10.0.0.2", 1884, False, "3.1.1"),
    ("mqtts://broker", "broker", 8883, True, "3.1.1"),
    ("mqtt://broker:1883?protocol=5", "broker", 1883, False, "5"),
])
def test_broker_urls(url, host, port, tls, protocol):
    s = mqtt.MqttSettings.from_url(url, "kitchen")
    assert (s.host, s.port, s.tls, s.protocol) == (host, port, tls, protocol)


@pytest.mark.parametrize(("url", "message"), [
    ("broker:1883", "mqtt://HOST:PORT"),
    ("http://broker", "mqtt://HOST:PORT"),
    ("mqtt://user:pw@broker", "credentials"),
    ("mqtt://broker:99999", "port"),
    ("mqtt://broker?protocol=4", "3.1.1 or 5"),
    ("mqtt://broker?qos=2", "unknown options"),
])
def test_bad_broker_urls(url, message):
    with pytest.raises(InputError, match=message):
        mqtt.MqttSettings.from_url(url, "kitchen")


def test_cli_options(tmp_path):
    parser = argparse.ArgumentParser()
    mqtt.add_arguments(parser)
    assert mqtt.from_args(parser.parse_args([]), Hub()) is None
    secret = tmp_path / "pw"
    secret.write_text("hunter2\n")
    args = parser.parse_args(["--mqtt", "mqtt://127.0.0.1:1883", "--mqtt-username", "u",
                              "--mqtt-password-file", str(secret), "--node-id", "hall",
                              "--mqtt-control", "--mqtt-tls"])
    s = mqtt.from_args(args, Hub()).settings
    assert (s.username, s.password, s.node_id, s.control, s.tls, s.ca_file) == (
        "u", "hunter2", "hall", True, True, None)
    assert "hunter2" not in repr(s)
    args = parser.parse_args(["--mqtt", "mqtt://h", "--mqtt-tls", "/etc/ca.pem"])
    assert mqtt.from_args(args, Hub()).settings.ca_file == "/etc/ca.pem"
    (tmp_path / "empty").write_text("\n")
    for path, message in ((tmp_path / "empty", "is empty"), (tmp_path / "none", "cannot read")):
        args = parser.parse_args(["--mqtt", "mqtt://h", "--mqtt-username", "u",
                                  "--mqtt-password-file", str(path)])
        with pytest.raises(InputError, match=message):
            mqtt.from_args(args, Hub())
    args = parser.parse_args(["--mqtt", "mqtt://h", "--mqtt-password-file", str(secret)])
    with pytest.raises(InputError, match="needs --mqtt-username"):
        mqtt.from_args(args, Hub())  # a password that would be silently unused
    s = mqtt.from_args(parser.parse_args(["--mqtt", "mqtts://h"]), Hub()).settings
    assert (s.tls, s.port) == (True, 8883)
    with pytest.raises(InputError, match="node id"):
        mqtt.from_args(parser.parse_args(["--mqtt", "mqtt://h", "--node-id", "a b"]), Hub())
