"""The voice sensor as a kind of the sealed spine (privacy/kind.py).

Its records are the 39-byte voice records (voice/record.py) under the frame tag "V",
checked by `RecordChecker` (every field, the counter forced, at most MAX_RATE events a
second); the guard publishes each event with its own clock and count. Events are sparse
and each one matters, so a short FIFO keeps two that arrive within one tick, and no
"late" withdrawal applies. The child takes no register writes.
"""

from __future__ import annotations

import json
from dataclasses import replace

from mlsensors.privacy.kind import RecordKind
from mlsensors.voice.matcher import MAX_COMMANDS
from mlsensors.voice.record import EVENT_TICK, MAX_RATE, RecordChecker, VoiceEvent

TAG_VOICE = ord("V")
BACKLOG = 4


def _check(config):
    """Commands below the number enrolled, the wake word only when one is listened for."""
    options = json.loads(config.sensor_options or "{}")
    return RecordChecker(options.get("commands", MAX_COMMANDS), MAX_RATE,
                         wake=bool(options.get("wake_word"))).check


def _stamp(event: VoiceEvent, published: int, when: float) -> VoiceEvent:
    return replace(event, counter=published, when_ms=int(when * 1000) % 2**32,
                   timestamp=when)


VOICE = RecordKind(
    name="voice",
    tag=TAG_VOICE,
    work="mlsensors.voice.child:voice_sensor",
    checker=_check,
    stamp=_stamp,
    empty=None,
    streaming=False,
    backlog=BACKLOG,
    max_rate=MAX_RATE,
    tick=EVENT_TICK,
    takes_writes=False,
)
