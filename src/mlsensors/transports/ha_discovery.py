"""Home Assistant's MQTT discovery for one sensor: topics, configs, state, commands.

Pure functions and small values, no network: what `mqtt.MqttBridge` publishes is decided
here, so the layout can be tested (and read) without a broker.

Layout for a sensor whose node id is `NODE` (see docs/home-assistant.md):

    mlsensors/NODE/availability   "online" / "offline"   retained, QoS 1, last will
    mlsensors/NODE/state          JSON                   QoS 1, not retained
    mlsensors/NODE/set/<command>  control (opt-in)       ignored when retained
    mlsensors/NODE/set/result     JSON reply to control  QoS 1, not retained
    homeassistant/<component>/NODE/<object_id>/config    retained, QoS 1

The state is deliberately not retained: a sensor that dies cannot leave "occupied"
behind in the broker. Its last will marks it offline, Home Assistant shows its entities
unavailable, and a state arrives again within one heartbeat of it coming back (or at
once, when Home Assistant announces itself on `homeassistant/status`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from mlsensors import __version__
from mlsensors.errors import InputError, ProtocolError
from mlsensors.hub import RegisterWrite, Snapshot
from mlsensors.transports import commands
from mlsensors.wire.record import MAX_ID

BASE_TOPIC = "mlsensors"
DISCOVERY_PREFIX = "homeassistant"
ONLINE = "online"
OFFLINE = "offline"
ERASE_PAYLOAD = "ERASE"
"""What `set/erase` must carry: a deliberate word, so a stray message cannot wipe IDs."""

_NODE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
COMMANDS = ("mode", "enable_id", "calibrate", "erase")


def check_node_id(node_id: str) -> str:
    """Home Assistant accepts only letters, digits, `_` and `-` in a discovery node id."""
    if not _NODE_ID.match(node_id):
        raise InputError(
            f"node id {node_id!r:.70} must be 1-64 letters, digits, '_' or '-'"
        )
    return node_id


def node_id_from_hostname(hostname: str) -> str:
    """A default node id: the host name with anything Home Assistant refuses replaced."""
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "_", hostname.split(".")[0]).strip("_")
    return (cleaned or "sensor")[:64]


@dataclass(frozen=True, slots=True)
class Message:
    """One MQTT publication: an empty payload on a retained topic deletes it."""

    topic: str
    payload: str
    retain: bool
    qos: int = 1


@dataclass(frozen=True, slots=True)
class Topics:
    """Every topic one sensor uses; two sensors differ only in `node_id`."""

    node_id: str
    base: str = BASE_TOPIC
    discovery_prefix: str = DISCOVERY_PREFIX

    def __post_init__(self) -> None:
        check_node_id(self.node_id)

    @property
    def root(self) -> str:
        return f"{self.base}/{self.node_id}"

    @property
    def availability(self) -> str:
        return f"{self.root}/availability"

    @property
    def state(self) -> str:
        return f"{self.root}/state"

    @property
    def result(self) -> str:
        return f"{self.root}/set/result"

    @property
    def ha_status(self) -> str:
        """Home Assistant's birth/will topic: "online" means it restarted and needs state."""
        return f"{self.discovery_prefix}/status"

    def command(self, name: str) -> str:
        return f"{self.root}/set/{name}"

    def config(self, component: str, object_id: str) -> str:
        return f"{self.discovery_prefix}/{component}/{self.node_id}/{object_id}/config"

    @property
    def id_config_filter(self) -> str:
        """Subscription that returns this sensor's retained per-ID configs."""
        return self.config("binary_sensor", "+")


@dataclass(frozen=True, slots=True)
class HaState:
    """What Home Assistant is told about one snapshot (no boxes: it has no use for them)."""

    occupancy: bool
    faces: int
    facing: bool
    ids: tuple[int, ...]
    mode: str
    state: str
    fps: float = 0.0
    frames: int = 0

    @property
    def fault(self) -> bool:
        return self.state == "fault"

    def same_facts(self, other: HaState | None) -> bool:
        """Equal apart from the counters that change every frame (those wait for heartbeat)."""
        return other is not None and (
            self.occupancy, self.faces, self.facing, self.ids, self.mode, self.state
        ) == (other.occupancy, other.faces, other.facing, other.ids, other.mode, other.state)

    def payload(self) -> str:
        return json.dumps({
            "occupancy": _onoff(self.occupancy),
            "faces": self.faces,
            "facing": _onoff(self.facing),
            "ids": list(self.ids),
            "mode": self.mode,
            "state": self.state,
            "fault": _onoff(self.fault),
            "fps": round(self.fps, 2),
            "frames": self.frames,
        }, separators=(",", ":"))


def state_of(snapshot: Snapshot) -> HaState:
    status = snapshot.status
    faces = () if status.state in ("fault", "starting") else snapshot.result.faces
    return HaState(
        occupancy=bool(faces),
        faces=len(faces),
        facing=any(f.is_facing for f in faces),
        ids=tuple(sorted({f.id for f in faces if 0 <= f.id <= MAX_ID})),
        mode="standby" if status.state == "standby" else "continuous",
        state=status.state,
        fps=status.fps,
        frames=status.frames,
    )


def _onoff(value: bool) -> str:
    return "ON" if value else "OFF"


@dataclass(frozen=True, slots=True)
class Device:
    """The `device` block every entity shares, so Home Assistant groups them as one device."""

    node_id: str
    name: str = ""
    model: str = "Person sensor (SEN21231-compatible)"

    def block(self) -> dict:
        return {
            "identifiers": [f"mlsensors_{self.node_id}"],
            "name": self.name or f"mlsensors {self.node_id}",
            "manufacturer": "mlsensors",
            "model": self.model,
            "sw_version": __version__,
        }


def _entity(topics: Topics, device: Device, object_id: str, name: str, **extra) -> dict:
    config = {
        "name": name,
        "unique_id": f"mlsensors_{topics.node_id}_{object_id}",
        "availability_topic": topics.availability,
        "payload_available": ONLINE,
        "payload_not_available": OFFLINE,
        "device": device.block(),
        "origin": {"name": "mlsensors", "sw_version": __version__},
    }
    config.update(extra)
    return config


def _config(topics: Topics, component: str, object_id: str, config: dict) -> Message:
    return Message(topics.config(component, object_id),
                   json.dumps(config, separators=(",", ":"), sort_keys=True), retain=True)


def _sensor_state(topics: Topics, template: str) -> dict:
    return {"state_topic": topics.state, "value_template": template}


def base_configs(topics: Topics, device: Device, *, control: bool) -> list[Message]:
    """The fixed entities; with `control`, also the command entities (else their removal)."""
    t = topics
    messages = [
        _config(t, "binary_sensor", "occupancy", _entity(
            t, device, "occupancy", "Occupancy", device_class="occupancy",
            **_sensor_state(t, "{{ value_json.occupancy }}"))),
        _config(t, "sensor", "faces", _entity(
            t, device, "faces", "Faces", state_class="measurement", icon="mdi:account-group",
            **_sensor_state(t, "{{ value_json.faces }}"))),
        _config(t, "binary_sensor", "facing", _entity(
            t, device, "facing", "Someone facing", icon="mdi:eye",
            **_sensor_state(t, "{{ value_json.facing }}"))),
        _config(t, "sensor", "fps", _entity(
            t, device, "fps", "Frame rate", unit_of_measurement="fps",
            state_class="measurement", entity_category="diagnostic",
            **_sensor_state(t, "{{ value_json.fps }}"))),
        _config(t, "binary_sensor", "fault", _entity(
            t, device, "fault", "Sensor fault", device_class="problem",
            entity_category="diagnostic", **_sensor_state(t, "{{ value_json.fault }}"))),
        _config(t, "sensor", "sensor_state", _entity(
            t, device, "sensor_state", "Sensor state", entity_category="diagnostic",
            icon="mdi:state-machine", **_sensor_state(t, "{{ value_json.state }}"))),
    ]
    control_configs = [
        _config(t, "select", "mode", _entity(
            t, device, "mode", "Mode", options=list(commands.MODES),
            command_topic=t.command("mode"), entity_category="config",
            **_sensor_state(t, "{{ value_json.mode }}"))),
        _config(t, "switch", "recognition", _entity(
            t, device, "recognition", "Recognise IDs", command_topic=t.command("enable_id"),
            payload_on="ON", payload_off="OFF", optimistic=True, entity_category="config",
            icon="mdi:face-recognition")),
        _config(t, "button", "erase_ids", _entity(
            t, device, "erase_ids", "Erase IDs", command_topic=t.command("erase"),
            payload_press=ERASE_PAYLOAD, entity_category="config", icon="mdi:delete")),
    ]
    control_configs += [
        _config(t, "button", f"calibrate_{n}", _entity(
            t, device, f"calibrate_{n}", f"Calibrate ID {n}",
            command_topic=t.command("calibrate"), payload_press=str(n),
            entity_category="config", icon="mdi:account-plus"))
        for n in range(MAX_ID + 1)
    ]
    if control:
        return messages + control_configs
    # Control off: clear whatever an earlier run with control on left retained.
    return messages + [Message(m.topic, "", retain=True) for m in control_configs]


def id_object_id(slot: int) -> str:
    return f"person_{slot}"


def id_config(topics: Topics, device: Device, slot: int) -> Message:
    """The presence binary_sensor for enrolled ID `slot` ("is person N in view?")."""
    return _config(topics, "binary_sensor", id_object_id(slot), _entity(
        topics, device, id_object_id(slot), f"Person {slot}", device_class="presence",
        **_sensor_state(topics, f"{{{{ 'ON' if {slot} in value_json.ids else 'OFF' }}}}")))


def id_removal(topics: Topics, slot: int) -> Message:
    """An empty retained config: Home Assistant deletes the entity, the broker the topic."""
    return Message(topics.config("binary_sensor", id_object_id(slot)), "", retain=True)


def id_from_config_topic(topics: Topics, topic: str) -> int | None:
    """The ID whose presence config sits at `topic`, or None if it is another entity's."""
    prefix = topics.config("binary_sensor", "person_")
    prefix = prefix[: prefix.rindex("person_") + len("person_")]
    if not (topic.startswith(prefix) and topic.endswith("/config")):
        return None
    digits = topic[len(prefix): -len("/config")]
    if digits.isdigit() and int(digits) <= MAX_ID:
        return int(digits)
    return None


def parse_command(topics: Topics, topic: str, payload: bytes, *, retained: bool
                  ) -> RegisterWrite:
    """Validate one control message and return the register write it asks for.

    Retained control messages are refused: a command left in the broker would otherwise
    run again every time the sensor reconnects (an erase on every reboot).
    """
    prefix = topics.command("")
    name = topic[len(prefix):] if topic.startswith(prefix) else ""
    if name not in COMMANDS:
        raise ProtocolError(f"unknown control topic {topic!r:.100}")
    if retained:
        raise ProtocolError(f"retained control message on {topic} ignored; publish without retain")
    if len(payload) > 32:
        raise ProtocolError(f"control payload on {topic} is {len(payload)} bytes; at most 32")
    try:
        text = payload.decode("ascii").strip()
    except UnicodeDecodeError:
        raise ProtocolError(f"control payload on {topic} is not ASCII text") from None
    if name == "mode":
        return commands.set_mode(text)
    if name == "enable_id":
        if text.upper() not in ("ON", "OFF"):
            raise ProtocolError(f"enable_id takes ON or OFF, got {text!r:.40}")
        return commands.enable_id(text.upper() == "ON")
    if name == "calibrate":
        return commands.calibrate(text)
    if text != ERASE_PAYLOAD:
        raise ProtocolError(f"erase takes the payload {ERASE_PAYLOAD}, got {text!r:.40}")
    return commands.erase()


@dataclass
class IdRegistry:
    """Which per-ID presence entities should exist, from what the bridge can see.

    An ID gets an entity when it is calibrated through any transport or first appears in
    a result; all go when an erase goes through. Entities an earlier run left retained
    are adopted (`adopt`) so that an erase after a restart removes them too.

    After an erase, results no longer create entities: the erase reaches the sensing
    process a little later than the hub learns of it, so for a few frames results still
    carry the IDs just erased, and an entity made from them would come back, retained,
    and outlive restarts. The sensor knows no IDs after an erase until a calibration
    teaches it one, and every calibration (whatever the transport) passes `forwarded`,
    which creates its entity; so nothing is lost.
    """

    known: set[int] = field(default_factory=set)
    results_create: bool = True
    """False once an erase went through while this registry was alive."""

    def adopt(self, slot: int) -> None:
        self.known.add(slot)

    def observe(self, state: HaState) -> list[int]:
        """IDs seen for the first time (an entity must be created for each)."""
        if not self.results_create:
            return []
        new = sorted(set(state.ids) - self.known)
        self.known.update(new)
        return new

    def forwarded(self, write: RegisterWrite) -> tuple[list[int], list[int]]:
        """(created, removed) IDs after a command went through to the sensor."""
        if write.register == commands.REG_CALIBRATE_ID and write.value not in self.known:
            self.known.add(write.value)
            return [write.value], []
        if write.register == commands.REG_ERASE_IDS:
            removed = sorted(self.known)
            self.known.clear()
            self.results_create = False
            return [], removed
        return [], []
