"""MQTT transport for the voice sensor: Home Assistant events, one entity per command.

`VoiceMqttBridge(voice_hub, settings, wake_word=...)` connects as its own client (node
`NODE_voice`, its own last will), publishes the discovery configs of `ha_voice` and its
availability (retained), then each published command as an event on its entity's topic
and the "last command" state (neither retained: a command must never fire twice, and a
dead sensor must not leave one behind). Commands the gate held back are never sent;
their count is in the state. It accepts no control: the voice sensor has nothing to
set. Like `MqttBridge`, it never blocks the sensor: publishing only queues in paho, and
a broker that is down is retried with backoff; every (re)connection republishes the
configs and the state, as does Home Assistant announcing itself on its status topic.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging

from mlsensors.transports import ha_discovery as ha
from mlsensors.transports import ha_voice
from mlsensors.transports.mqtt import MqttSettings, new_client
from mlsensors.voice.events import VoiceHub, VoiceSnapshot

log = logging.getLogger(__name__)


class VoiceMqttBridge:
    def __init__(self, voice: VoiceHub, settings: MqttSettings, *,
                 wake_word: bool = False) -> None:
        self.voice = voice
        self.settings = dataclasses.replace(settings,
                                            node_id=ha_voice.voice_node(settings.node_id))
        s = self.settings
        self.topics = ha.Topics(s.node_id, s.base_topic, s.discovery_prefix)
        self.device = ha.Device(s.node_id, f"{s.name} voice" if s.name else "",
                                model=ha_voice.MODEL)
        self.wake_word = wake_word
        self._client = None
        self._connected = False
        self._unsubscribe = None

    def start(self) -> VoiceMqttBridge:
        s = self.settings
        client = new_client(s, self.topics.availability)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self._client = client
        client.connect_async(s.host, s.port, keepalive=s.keepalive)
        client.loop_start()
        self._unsubscribe = self.voice.subscribe(self._on_snapshot)
        return self

    def stop(self) -> None:
        if self._client is None:
            return
        if self._unsubscribe is not None:
            self._unsubscribe()
        client, self._client = self._client, None
        if self._connected:
            info = client.publish(self.topics.availability, ha.OFFLINE, qos=1, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(timeout=2)
        client.disconnect()
        client.loop_stop()

    def __enter__(self) -> VoiceMqttBridge:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _on_connect(self, client, userdata, flags, reason_code, properties=None) -> None:
        if reason_code.is_failure:
            log.error("MQTT broker %s:%s refused the voice sensor's connection: %s",
                      self.settings.host, self.settings.port, reason_code)
            return
        snap = self.voice.snapshot()
        client.subscribe([(self.topics.ha_status, 1)])
        client.publish(self.topics.availability, ha.ONLINE, qos=1, retain=True)
        for m in ha_voice.voice_configs(self.topics, self.device, snap.commands,
                                        self.wake_word):
            client.publish(m.topic, m.payload, qos=m.qos, retain=m.retain)
        client.publish(self.topics.state, ha_voice.state_payload(snap), qos=1, retain=False)
        self._connected = True

    def _on_disconnect(self, client, userdata, flags, reason_code, properties=None) -> None:
        self._connected = False

    def _on_message(self, client, userdata, message) -> None:
        """Home Assistant came back: the state (never retained) again, at once."""
        if message.topic == self.topics.ha_status and message.payload == b"online":
            client.publish(self.topics.state, ha_voice.state_payload(self.voice.snapshot()),
                           qos=1, retain=False)

    def _on_snapshot(self, snap: VoiceSnapshot) -> None:
        client = self._client
        if client is None or not self._connected:
            return
        if snap.new is not None:
            m = ha_voice.event_message(self.topics, snap.new)
            client.publish(m.topic, m.payload, qos=m.qos, retain=False)
        client.publish(self.topics.state, ha_voice.state_payload(snap), qos=1, retain=False)


def from_args(args, voice: VoiceHub | None, *, wake_word: bool = False
              ) -> VoiceMqttBridge | None:
    """The voice bridge `serve --voice --mqtt URL` asks for (not started), or None."""
    from mlsensors.transports.mqtt import settings_from_args

    settings = settings_from_args(args) if voice is not None else None
    return None if settings is None else VoiceMqttBridge(voice, settings, wake_word=wake_word)
