"""Home Assistant's MQTT discovery for the voice sensor: an event entity per command.

Pure functions over `ha_discovery`'s topics, device block and entity helpers, so the
layout is tested without a broker. The voice sensor is its own device, node
`NODE_voice` (so its availability is its own: the camera may run while the microphone's
process restarts):

    mlsensors/NODE_voice/availability       "online"/"offline", retained, last will
    mlsensors/NODE_voice/state              {"last_command", "confidence", "events",
                                             "gated", "state"}, QoS 1, not retained
    mlsensors/NODE_voice/command/<index>    {"event_type": NAME, "confidence"}, QoS 1
    homeassistant/event/NODE_voice/command_<index>/config   one per enrolled command
    homeassistant/event/NODE_voice/wake_word/config         with a wake word
    homeassistant/sensor/NODE_voice/last_command/config     the "last command" sensor

Event entities are keyed by command index, not name (Home Assistant's object ids
allow no spaces); indices that no longer name a command get an empty retained config,
which deletes them.
"""

from __future__ import annotations

import json

from mlsensors.transports import ha_discovery as ha
from mlsensors.voice.events import WAKE_NAME, VoiceSnapshot
from mlsensors.voice.matcher import MAX_COMMANDS
from mlsensors.voice.record import EventKind, VoiceEvent

MODEL = "Voice command sensor (enrolled commands)"


def voice_node(node_id: str) -> str:
    return ha.check_node_id(f"{node_id}_voice"[:64])


def event_topic(t: ha.Topics, index: int | str) -> str:
    return f"{t.root}/command/{index}"


def voice_configs(t: ha.Topics, device: ha.Device, commands: tuple[str, ...],
                  wake_word: bool) -> list[ha.Message]:
    """Every retained config: the live ones, and deletions for unused command slots."""
    messages = [ha._config(t, "sensor", "last_command", ha._entity(
        t, device, "last_command", "Last command", icon="mdi:microphone-message",
        state_topic=t.state, value_template="{{ value_json.last_command }}",
        json_attributes_topic=t.state))]
    for i in range(MAX_COMMANDS):
        object_id = f"command_{i}"
        if i < len(commands):
            messages.append(ha._config(t, "event", object_id, ha._entity(
                t, device, object_id, f"Command {commands[i]}", event_types=[commands[i]],
                state_topic=event_topic(t, i), icon="mdi:account-voice")))
        else:
            messages.append(ha.Message(t.config("event", object_id), "", retain=True))
    if wake_word:
        messages.append(ha._config(t, "event", "wake_word", ha._entity(
            t, device, "wake_word", "Wake word", event_types=[WAKE_NAME],
            state_topic=event_topic(t, "wake"), icon="mdi:bullhorn")))
    else:
        messages.append(ha.Message(t.config("event", "wake_word"), "", retain=True))
    return messages


def event_message(t: ha.Topics, event: VoiceEvent) -> ha.Message:
    """One event for its entity (not retained: an old command must never fire again)."""
    where = "wake" if event.kind == EventKind.WAKE else event.command
    body = {"event_type": event.name, "confidence": event.confidence}
    return ha.Message(event_topic(t, where), json.dumps(body, separators=(",", ":")),
                      retain=False)


def state_payload(snapshot: VoiceSnapshot) -> str:
    last = snapshot.last
    return json.dumps({
        "last_command": last.name if last is not None else None,
        "confidence": last.confidence if last is not None else None,
        "events": snapshot.published,
        "gated": snapshot.gated,
        "state": snapshot.status.state,
    }, separators=(",", ":"))
