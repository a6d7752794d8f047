"""MQTT transport: the sensor as a Home Assistant device on a broker.

`MqttBridge(hub, settings)` publishes what `ha_discovery` lays out: discovery configs and
availability (retained), the state on every change of a fact and on a heartbeat (never
retained, so a dead sensor cannot leave "occupied" behind), and, only when control is
enabled, accepts the documented commands and forwards them to the hub as register writes.

Per-ID entity configs are decided and published under one lock (`_ids_lock`), from
whichever thread acts (the worker on a new ID, paho's on a connection, any transport's
on a calibration or an erase), so the broker receives them in the order they were
decided: a config decided before an erase can never land after its removal.

The broker is an outside service that may be down: the bridge never blocks the sensor.
The hub callback only marks the state dirty; a worker thread publishes; paho's network
thread reconnects with exponential backoff, and every (re)connection republishes the
configs, the ID entities and the current state, because a restarted broker without
persistence has forgotten them.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from mlsensors.errors import InputError, MlsensorsError
from mlsensors.hub import Hub, RegisterWrite, Snapshot
from mlsensors.transports import ha_discovery as ha
from mlsensors.transports.secret_file import read_secret

log = logging.getLogger(__name__)

PROTOCOLS = ("3.1.1", "5")
DEFAULT_HEARTBEAT = 30.0
RESEND_AFTER = 2.0
"""Seconds after new configs before the state goes out again: Home Assistant subscribes to
an entity's state topic only once it has processed the config, and state is not retained."""


@dataclass(frozen=True)
class MqttSettings:
    """Where and how to connect; `from_url` parses `mqtt://HOST:PORT` and friends."""

    host: str
    node_id: str
    port: int = 1883
    protocol: str = "3.1.1"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    ca_file: str | None = None
    control: bool = False
    name: str = ""
    heartbeat: float = DEFAULT_HEARTBEAT
    keepalive: int = 30
    reconnect_min: float = 1.0
    reconnect_max: float = 60.0
    base_topic: str = ha.BASE_TOPIC
    discovery_prefix: str = ha.DISCOVERY_PREFIX

    def __post_init__(self) -> None:
        ha.check_node_id(self.node_id)
        if self.protocol not in PROTOCOLS:
            raise InputError(f"MQTT protocol must be 3.1.1 or 5, got {self.protocol!r:.20}")
        if not 0 < self.port < 65536:
            raise InputError(f"MQTT port must be 1-65535, got {self.port}")
        if self.heartbeat <= 0:
            raise InputError(f"heartbeat must be positive, got {self.heartbeat}")

    @classmethod
    def from_url(cls, url: str, node_id: str, **kwargs) -> MqttSettings:
        """`mqtt://HOST[:PORT][?protocol=5]`; `mqtts://` (default port 8883) turns on TLS."""
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise InputError(f"MQTT address must look like mqtt://HOST:PORT, got {url!r:.80}")
        if parts.username or parts.password:
            raise InputError("put MQTT credentials in --mqtt-username/--mqtt-password-file, "
                             "not in the address (it shows in the process list)")
        tls = bool(kwargs.pop("tls", False)) or parts.scheme == "mqtts"
        try:
            port = parts.port or (8883 if tls else 1883)
        except ValueError:
            raise InputError(f"MQTT address has a bad port: {url!r:.80}") from None
        query = parse_qs(parts.query)
        unknown = set(query) - {"protocol"}
        if unknown:
            raise InputError(f"MQTT address has unknown options: {', '.join(sorted(unknown))}")
        protocol = query.get("protocol", [kwargs.pop("protocol", "3.1.1")])[-1]
        return cls(host=parts.hostname, port=port, tls=tls, protocol=protocol,
                   node_id=node_id, **kwargs)


def new_client(s: MqttSettings, availability_topic: str):
    """A paho client for these settings, not yet connected: its id, protocol, last will
    (the availability topic goes "offline"), credentials, TLS and reconnect backoff."""
    try:
        import paho.mqtt.client as mqtt
    except ImportError:
        raise InputError("MQTT needs paho-mqtt: pip install 'mlsensors[mqtt]'") from None
    protocol = mqtt.MQTTv5 if s.protocol == "5" else mqtt.MQTTv311
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                         client_id=f"mlsensors-{s.node_id}", protocol=protocol)
    client.will_set(availability_topic, ha.OFFLINE, qos=1, retain=True)
    if s.username is not None:
        client.username_pw_set(s.username, s.password)
    if s.tls:
        try:
            client.tls_set(ca_certs=s.ca_file)
        except (OSError, ValueError) as e:
            raise InputError(f"MQTT TLS setup failed: {e}") from None
    client.reconnect_delay_set(s.reconnect_min, s.reconnect_max)
    return client


class MqttBridge:
    """Publishes a hub's snapshots to an MQTT broker for Home Assistant; see module doc."""

    def __init__(self, hub: Hub, settings: MqttSettings) -> None:
        self.hub = hub
        self.settings = settings
        self.topics = ha.Topics(settings.node_id, settings.base_topic, settings.discovery_prefix)
        self.device = ha.Device(settings.node_id, settings.name)
        self._ids = ha.IdRegistry()
        self._ids_lock = threading.Lock()
        self._cond = threading.Condition()
        self._dirty = True
        self._force = False
        self._due = 0.0  # next heartbeat (monotonic seconds)
        self._resend_at: float | None = None
        self._stopping = False
        self._connected = False
        self._last: ha.HaState | None = None
        self._last_refusal = ""
        self._client = None
        self._worker: threading.Thread | None = None
        self._unsubscribe = None
        self.connections = 0
        """How many times a connection was accepted (the first one and each reconnect)."""

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> MqttBridge:
        s = self.settings
        client = new_client(s, self.topics.availability)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self._client = client
        # connect_async + loop_start: a broker that is down now is retried with backoff
        # instead of failing the sensor's start.
        client.connect_async(s.host, s.port, keepalive=s.keepalive)
        client.loop_start()
        unsubscribe = self.hub.subscribe(self._on_snapshot)
        unwatch = self.hub.watch_commands(self._on_command)

        def detach() -> None:
            unsubscribe()
            unwatch()

        self._unsubscribe = detach
        self._worker = threading.Thread(target=self._run, name=f"mqtt-{s.node_id}", daemon=True)
        self._worker.start()
        return self

    def stop(self) -> None:
        """Say "offline" (retained), then disconnect; a no-op if never started."""
        if self._client is None:
            return
        if self._unsubscribe:
            self._unsubscribe()
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._worker:
            self._worker.join(timeout=5)
        client, self._client = self._client, None
        if self._connected:
            info = client.publish(self.topics.availability, ha.OFFLINE, qos=1, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):  # broker gone meanwhile
                info.wait_for_publish(timeout=2)
        client.disconnect()
        client.loop_stop()

    def __enter__(self) -> MqttBridge:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def connected(self) -> bool:
        return self._connected

    # -- paho callbacks (network thread) ----------------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties=None) -> None:
        if reason_code.is_failure:
            reason = str(reason_code)
            if reason != self._last_refusal:
                log.error("MQTT broker %s:%s refused the connection: %s",
                          self.settings.host, self.settings.port, reason)
                self._last_refusal = reason
            return
        self._last_refusal = ""
        self.connections += 1
        log.info("MQTT connected to %s:%s", self.settings.host, self.settings.port)
        t = self.topics
        subscriptions = [(t.ha_status, 1), (t.id_config_filter, 1)]
        if self.settings.control:
            subscriptions.append((t.command("+"), 1))
        client.subscribe(subscriptions)
        client.publish(t.availability, ha.ONLINE, qos=1, retain=True)
        for message in ha.base_configs(t, self.device, control=self.settings.control):
            self._send(message, client)
        with self._ids_lock:
            for slot in sorted(self._ids.known):
                self._send(ha.id_config(t, self.device, slot), client)
        with self._cond:
            self._connected = True
        self._request_state(resend=True)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties=None) -> None:
        with self._cond:
            was, self._connected = self._connected, False
        if was and not self._stopping:
            log.warning("MQTT connection lost (%s); reconnecting with backoff", reason_code)

    def _on_message(self, client, userdata, message) -> None:
        try:
            self._handle(client, message)
        except Exception:  # a bug here must not kill paho's network thread
            log.exception("MQTT message on %s not handled", message.topic)

    def _handle(self, client, message) -> None:
        t = self.topics
        if message.topic == t.ha_status:
            if message.payload == b"online":
                self._request_state(resend=True)
            return
        slot = ha.id_from_config_topic(t, message.topic)
        if slot is not None:
            # Per-ID configs retained from an earlier run, delivered as we subscribe:
            # track them so that an erase removes them as well. Live echoes of our own
            # publications (retain flag clear) are not news, and one arriving after an
            # erase would otherwise revive the ID at the next reconnection.
            if message.retain and message.payload:
                with self._ids_lock:
                    self._ids.adopt(slot)
            return
        if not message.topic.startswith(t.command("")) or message.topic == t.result:
            return
        try:
            write = ha.parse_command(t, message.topic, message.payload, retained=message.retain)
            self.hub.command(write)
        except MlsensorsError as e:
            log.warning("MQTT control refused: %s", e)
            self._reply(client, message.topic, ok=False, error=str(e))
            return
        self._reply(client, message.topic, ok=True, write=write)

    def _on_command(self, write: RegisterWrite) -> None:
        """Any accepted register write, from any transport: keep the per-ID entities in
        step with calibrations and erasures."""
        with self._ids_lock:
            created, removed = self._ids.forwarded(write)
            client = self._client
            if client is None or not (created or removed):
                return
            for slot in created:
                self._send(ha.id_config(self.topics, self.device, slot), client)
            for slot in removed:
                self._send(ha.id_removal(self.topics, slot), client)
        self._request_state(resend=bool(created))

    def _reply(self, client, topic: str, *, ok: bool, error: str = "",
               write: RegisterWrite | None = None) -> None:
        body: dict = {"topic": topic, "ok": ok}
        if error:
            body["error"] = error
        if write is not None:
            body["register"] = write.register
            body["value"] = write.value
        client.publish(self.topics.result, json.dumps(body), qos=1, retain=False)

    # -- publishing (worker thread) -------------------------------------------------

    def _on_snapshot(self, snapshot: Snapshot) -> None:
        with self._cond:
            self._dirty = True
            self._cond.notify()

    def _request_state(self, *, resend: bool) -> None:
        with self._cond:
            self._force = True
            if resend:
                self._resend_soon()
            self._cond.notify()

    def _resend_soon(self) -> None:
        at = time.monotonic() + RESEND_AFTER
        self._resend_at = at if self._resend_at is None else min(self._resend_at, at)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not (self._stopping or self._dirty or self._force):
                    wake = self._due if self._resend_at is None else min(self._due,
                                                                          self._resend_at)
                    timeout = wake - time.monotonic()
                    if timeout <= 0:
                        break
                    self._cond.wait(timeout)
                if self._stopping:
                    return
                force, self._force, self._dirty = self._force, False, False
            try:
                self._publish_state(force)
            except Exception:
                log.exception("MQTT state not published")
                time.sleep(1)

    def _publish_state(self, force: bool) -> None:
        now = time.monotonic()
        state = ha.state_of(self.hub.snapshot())
        with self._cond:
            client = self._client
            if client is None or not self._connected:
                # Nothing to send until a (re)connection asks for the state again.
                self._due, self._resend_at = now + self.settings.heartbeat, None
                return
        with self._ids_lock:
            new_ids = self._ids.observe(state)
            for slot in new_ids:
                self._send(ha.id_config(self.topics, self.device, slot), client)
        with self._cond:
            if new_ids:
                self._resend_soon()
            if self._resend_at is not None and now >= self._resend_at:
                self._resend_at, force = None, True
        if force or new_ids or now >= self._due or not state.same_facts(self._last):
            client.publish(self.topics.state, state.payload(), qos=1, retain=False)
            self._last = state
            with self._cond:
                self._due = now + self.settings.heartbeat

    @staticmethod
    def _send(message: ha.Message, client) -> None:
        client.publish(message.topic, message.payload, qos=message.qos, retain=message.retain)


# -- command line (composed by `mlsensors serve`) -------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The MQTT / Home Assistant options of `mlsensors serve`."""
    g = parser.add_argument_group("MQTT / Home Assistant")
    g.add_argument("--mqtt", metavar="URL",
                   help="publish to this broker: mqtt://HOST:PORT (mqtts:// for TLS; "
                        "add ?protocol=5 for MQTT 5, default 3.1.1)")
    g.add_argument("--mqtt-username", metavar="NAME", help="broker user name")
    g.add_argument("--mqtt-password-file", metavar="FILE", type=Path,
                   help="file whose first line is the broker password")
    g.add_argument("--mqtt-tls", metavar="CA_FILE", nargs="?", const="",
                   help="use TLS; optionally verify the broker against this CA file "
                        "(default: the system's CAs)")
    g.add_argument("--node-id", metavar="NAME",
                   help="this sensor's id in topics and Home Assistant (default: host name); "
                        "unique per broker")
    g.add_argument("--mqtt-control", action="store_true",
                   help="accept calibrate/erase/mode commands on mlsensors/NODE/set/* "
                        "(off by default)")


def settings_from_args(args: argparse.Namespace) -> MqttSettings | None:
    """The broker settings `args` give, or None without --mqtt."""
    if not getattr(args, "mqtt", None):
        return None
    password = None
    if args.mqtt_password_file is not None and not args.mqtt_username:
        raise InputError("--mqtt-password-file needs --mqtt-username")
    if args.mqtt_password_file is not None:
        password = read_secret(args.mqtt_password_file, "MQTT password file")
    node_id = args.node_id or ha.node_id_from_hostname(socket.gethostname())
    return MqttSettings.from_url(
        args.mqtt, node_id, username=args.mqtt_username, password=password,
        tls=args.mqtt_tls is not None, ca_file=args.mqtt_tls or None,
        control=args.mqtt_control)


def from_args(args: argparse.Namespace, hub: Hub) -> MqttBridge | None:
    """The bridge `args` ask for (not started), or None without --mqtt."""
    settings = settings_from_args(args)
    return None if settings is None else MqttBridge(hub, settings)
