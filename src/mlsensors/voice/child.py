"""What the sealed voice process runs: the VoiceSensor loop, events out as voice records.

Runs after `sandbox.seal` (privacy/child.py): the models are read from the model
directory the guard allowed, the audio source is opened inside the seal, and the
enrolled commands come from the guard as blocks (voice/template_link.py), so no file of
templates is open to this process. Each event leaves as one 40-byte frame; a status
frame every HEARTBEAT_S tells the guard the process is alive while nobody speaks.
"""

from __future__ import annotations

import json
import os
import threading

from mlsensors.privacy.channel import ChildState
from mlsensors.voice.kind import TAG_VOICE

HEARTBEAT_S = 1.0


def voice_sensor(hub, stop: threading.Event, config, channel) -> None:
    if config.model_dir:
        os.environ["MLSENSORS_MODEL_DIR"] = config.model_dir
    from mlsensors.errors import ProtocolError
    from mlsensors.models import ModelStore
    from mlsensors.voice.record import pack
    from mlsensors.voice.sensor import VoiceOptions, VoiceSensor
    from mlsensors.voice.sources import PacedSource, open_audio_source
    from mlsensors.voice.template_link import TemplateReceiver

    def refuse(write) -> None:
        raise ProtocolError("the voice sensor takes no register writes")

    receiver = TemplateReceiver()
    channel.link.receive(receiver)
    hub.set_controller(refuse)  # the command thread now passes the blocks on
    commands = receiver.wait(stop)
    settings = json.loads(config.sensor_options)
    settings.pop("commands", None)  # the guard's to check, not an option
    options = VoiceOptions(**settings)
    store = ModelStore(config.model_dir or None)
    source = open_audio_source(config.source or "mic")
    if config.realtime:
        source = PacedSource(source)
    beat = threading.Event()

    def heartbeat() -> None:
        while not beat.wait(HEARTBEAT_S):
            channel.status(ChildState.RUNNING)

    threading.Thread(target=heartbeat, name="heartbeat", daemon=True).start()
    try:
        channel.status(ChildState.RUNNING)
        with VoiceSensor(source, options, commands, store=store) as sensor:
            for event in sensor:
                channel.send(bytes([TAG_VOICE]) + pack(event))
                if stop.is_set():
                    return
        channel.status(ChildState.ENDED)
    finally:
        beat.set()
